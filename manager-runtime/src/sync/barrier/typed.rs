//! The typed proxies of a barrier.
#![forbid(unsafe_code)]

use std::future::Future;
use std::time::Duration;

use super::server::{BarrierAsyncProxy as RawBarrierAsyncProxy, BarrierProxy as RawBarrierProxy};
use crate::sync::typed::{dual_proxy, flatten, flavours, typed_proxy};
use crate::Result;

/// A proxy of a shared [`Barrier`](super::server::Barrier) (Python's
/// `BarrierProxy`). Errors of a broken barrier come back as
/// [`SyncError::BrokenBarrier`](crate::SyncError::BrokenBarrier).
///
/// ```
/// # fn main() -> manager_runtime::Result<()> {
/// let manager = manager_runtime::sync::SyncManager::new();
/// manager.start_in_thread()?;
/// let barrier = manager.barrier(2)?;
/// let other = barrier.clone();
/// let party = std::thread::spawn(move || other.wait(None));
/// let mine = barrier.wait(None)?;
/// let theirs = party.join().unwrap()?;
/// assert_eq!(mine + theirs, 1); // one got 0, the other 1
/// # Ok(()) }
/// ```
pub struct BarrierProxy {
    raw: RawBarrierProxy,
}

typed_proxy!(BarrierProxy, RawBarrierProxy);

impl BarrierProxy {
    /// Like [`wait`](Self::wait), with Python's barrier `action`: once
    /// every party has arrived, exactly one of the parties that passed an
    /// action runs it (this one if it arrived last) before any party is
    /// released. If the action panics, the barrier breaks (the other
    /// parties fail with `BrokenBarrier`) and the panic goes on here.
    ///
    /// Pass the same action from every party to have Python's behaviour:
    /// one run per generation, whoever arrives last.
    pub fn wait_with_action(
        &self,
        timeout: Option<Duration>,
        action: impl FnOnce(),
    ) -> Result<usize> {
        let arrival = flatten(self.raw.wait_offering_action(timeout))?;
        if let Some(ticket) = arrival.action {
            let mut report = ActionReport {
                raw: &self.raw,
                ticket,
                finished: false,
            };
            action();
            report.finished = true;
            flatten(self.raw.action_done(ticket, true))?;
        }
        Ok(arrival.index)
    }
}

/// The async form of [`BarrierProxy`]: waiting parties are futures on the
/// client too.
pub struct BarrierAsyncProxy {
    raw: RawBarrierAsyncProxy,
}

typed_proxy!(BarrierAsyncProxy, RawBarrierAsyncProxy);

flavours!(BarrierProxy, BarrierAsyncProxy);

impl BarrierAsyncProxy {
    /// Pass the barrier offering an action, awaited if this party is
    /// chosen to run it; see [`BarrierProxy::wait_with_action`]. If the
    /// action panics or is dropped unfinished, the barrier breaks.
    pub async fn wait_with_action<F: Future<Output = ()>>(
        &self,
        timeout: Option<Duration>,
        action: impl FnOnce() -> F,
    ) -> Result<usize> {
        let arrival = flatten(self.raw.wait_offering_action(timeout).await)?;
        if let Some(ticket) = arrival.action {
            let blocking = self.raw.to_blocking();
            let mut report = ActionReport {
                raw: &blocking,
                ticket,
                finished: false,
            };
            action().await;
            report.finished = true;
            flatten(self.raw.action_done(ticket, true).await)?;
        }
        Ok(arrival.index)
    }
}

dual_proxy! {
    impl BarrierProxy, BarrierAsyncProxy {
        /// Python's `barrier.wait(timeout)`: wait until every party has
        /// arrived; returns this party's index, `0..parties`, each given once
        /// per generation. `None` uses the barrier's default timeout (if any);
        /// a timeout breaks the barrier.
        pub fn wait(&self, timeout: Option<Duration>) -> Result<usize> {
            flatten(wait!(self.raw.wait(timeout)))
        }

        /// Python's `barrier.abort()`: break the barrier.
        pub fn abort(&self) -> Result<()> {
            wait!(self.raw.abort())
        }

        /// Python's `barrier.reset()`: fail the waiting parties and make the
        /// barrier usable again.
        pub fn reset(&self) -> Result<()> {
            wait!(self.raw.reset())
        }

        /// Python's `barrier.parties`.
        pub fn parties(&self) -> Result<usize> {
            wait!(self.raw.parties())
        }

        /// Python's `barrier.n_waiting`.
        pub fn n_waiting(&self) -> Result<usize> {
            wait!(self.raw.n_waiting())
        }

        /// Python's `barrier.broken`.
        pub fn broken(&self) -> Result<bool> {
            wait!(self.raw.broken())
        }
    }
}

/// Reports the action failed unless it finished: when it panics, or when
/// an async action is dropped half-way. The report is a blocking call
/// (there is nothing to await it in a `Drop`), made at most once.
struct ActionReport<'a> {
    raw: &'a RawBarrierProxy,
    ticket: u64,
    finished: bool,
}

impl Drop for ActionReport<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.raw.action_done(self.ticket, false);
        }
    }
}
