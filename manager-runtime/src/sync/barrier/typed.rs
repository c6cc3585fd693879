//! The typed proxies of a barrier.
#![forbid(unsafe_code)]

use std::future::Future;
use std::time::Duration;

use crate::Result;

pub use super::server::{BarrierAsyncProxy, BarrierProxy};

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
        let arrival = self.wait_offering_action(timeout)?;
        if let Some(ticket) = arrival.action {
            let mut report = ActionReport {
                barrier: self,
                ticket,
                finished: false,
            };
            action();
            report.finished = true;
            self.action_done(ticket, true)?;
        }
        Ok(arrival.index)
    }
}

impl BarrierAsyncProxy {
    /// Pass the barrier offering an action, awaited if this party is
    /// chosen to run it; see [`BarrierProxy::wait_with_action`]. If the
    /// action panics or is dropped unfinished, the barrier breaks.
    pub async fn wait_with_action<F: Future<Output = ()>>(
        &self,
        timeout: Option<Duration>,
        action: impl FnOnce() -> F,
    ) -> Result<usize> {
        let arrival = self.wait_offering_action(timeout).await?;
        if let Some(ticket) = arrival.action {
            let blocking = self.to_blocking();
            let mut report = ActionReport {
                barrier: &blocking,
                ticket,
                finished: false,
            };
            action().await;
            report.finished = true;
            self.action_done(ticket, true).await?;
        }
        Ok(arrival.index)
    }
}

/// Reports the action failed unless it finished: when it panics, or when
/// an async action is dropped half-way. The report is a blocking call
/// (there is nothing to await it in a `Drop`), made at most once.
struct ActionReport<'a> {
    barrier: &'a BarrierProxy,
    ticket: u64,
    finished: bool,
}

impl Drop for ActionReport<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.barrier.action_done(self.ticket, false);
        }
    }
}
