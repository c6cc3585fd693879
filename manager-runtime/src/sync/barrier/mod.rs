//! `Barrier`: a fixed number of parties wait for each other (Python's
//! `threading.Barrier`, served).
//!
//! Each round of `parties` arrivals is a *generation*. The arrivals of one
//! generation share a `watch` channel whose value says where the generation
//! stands (filling, its action running, released, broken): waiters are
//! futures on that channel, so a thousand waiting parties cost a thousand
//! small futures, and a party that subscribed before the change cannot miss
//! it. A new generation starts the moment one is complete, so there is no
//! draining phase as in Python; what any party observes is the same.
//!
//! Python's `action` is a callable run by one thread before the others are
//! released. A closure cannot cross processes, so the action runs in a
//! client: a party that offers it
//! ([`BarrierProxy::wait_with_action`](typed::BarrierProxy::wait_with_action))
//! may be chosen to run it, and the others stay blocked until it reports
//! the action finished. One action runs per generation, chosen among the
//! parties that offered it (the last to arrive if it offered one). If the
//! chosen party never reports (its process died), the others wait until
//! their timeout, or until someone aborts or resets the barrier.
//!
//! As in Python, a party whose process dies while it waits still counts as
//! arrived.
#![forbid(unsafe_code)]

use std::time::Duration;

use super::SyncManager;
use crate::server::{Constructor, Registry};
use crate::{Error, Result, SyncError};

/// Server-side objects of this family.
pub mod server;

/// Typed proxies of this family.
pub mod typed;

use typed::BarrierProxy;

pub(crate) fn register(registry: &mut Registry) {
    registry.register::<server::Barrier>(
        "Barrier",
        None,
        Some(Constructor::new(
            |(parties, timeout): (usize, Option<Duration>)| server::Barrier::new(parties, timeout),
        )),
    );
}

impl SyncManager {
    /// A new shared `Barrier` for `parties` parties (Python's
    /// `manager.Barrier(parties)`); `parties` must be at least 1
    /// (ValueError).
    pub fn barrier(&self, parties: usize) -> Result<BarrierProxy> {
        self.create_barrier(parties, None)
    }

    /// A new shared `Barrier` whose waits time out after `timeout` unless
    /// they name their own (Python's `manager.Barrier(parties,
    /// timeout=timeout)`).
    pub fn barrier_with_timeout(&self, parties: usize, timeout: Duration) -> Result<BarrierProxy> {
        self.create_barrier(parties, Some(timeout))
    }

    /// Async form of [`barrier`](Self::barrier).
    pub async fn barrier_async(&self, parties: usize) -> Result<typed::BarrierAsyncProxy> {
        check_parties(parties)?;
        self.create_async("Barrier", &(parties, None::<Duration>))
            .await
    }

    /// Async form of [`barrier_with_timeout`](Self::barrier_with_timeout).
    pub async fn barrier_with_timeout_async(
        &self,
        parties: usize,
        timeout: Duration,
    ) -> Result<typed::BarrierAsyncProxy> {
        check_parties(parties)?;
        self.create_async("Barrier", &(parties, Some(timeout)))
            .await
    }

    fn create_barrier(&self, parties: usize, timeout: Option<Duration>) -> Result<BarrierProxy> {
        check_parties(parties)?;
        self.create("Barrier", &(parties, timeout))
    }
}

fn check_parties(parties: usize) -> Result<()> {
    if parties == 0 {
        return Err(Error::Sync(SyncError::ValueError(
            "a barrier needs at least one party".into(),
        )));
    }
    Ok(())
}
