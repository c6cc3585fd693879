//! The typed proxy of `Condition`.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use crate::sync::lock::typed::{
    acquirer_methods, LockAsyncProxy, LockProxy, RLockAsyncProxy, RLockProxy,
};
use crate::sync::typed::dual_proxy;
use crate::Proxy;
use crate::Result;

pub use super::server::{ConditionAsyncProxy, ConditionProxy};

acquirer_methods!(ConditionProxy, ConditionAsyncProxy);

dual_proxy! {
    impl ConditionProxy, ConditionAsyncProxy {
        /// Wait for a notification (Python's `wait()`): the lock, which the
        /// caller must hold, is released meanwhile and held again on
        /// return. Returns `true`.
        pub fn wait(&self) -> Result<bool> {
            wait!(self.wait_with(None))
        }

        /// Wait at most `timeout` for a notification (Python's
        /// `wait(timeout)`); `false` if the time ran out.
        pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
            wait!(self.wait_with(Some(timeout)))
        }

        /// Python's `wait_for(predicate, timeout)`: wait until `predicate`
        /// holds, at most `timeout` in all (`None`: no limit), and return its
        /// last result. The predicate runs here, in the client, with the lock
        /// held, after each notification.
        pub fn wait_for(
            &self,
            predicate: impl FnMut() -> bool,
            timeout: Option<Duration>,
        ) -> Result<bool> {
            let mut predicate = predicate;
            let deadline = timeout.map(|timeout| Instant::now() + timeout);
            loop {
                if predicate() {
                    return Ok(true);
                }
                let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                if remaining.is_some_and(|r| r.is_zero()) || !wait!(self.wait_with(remaining))? {
                    return Ok(predicate());
                }
            }
        }

        /// Wake one waiter (Python's `notify()`). The caller must hold the
        /// lock.
        pub fn notify(&self) -> Result<()> {
            wait!(self.notify_n(1))
        }

    }
}

mod sealed {
    pub trait Sealed {}
}

/// A lock a condition can be built on
/// ([`SyncManager::condition_with`](crate::sync::SyncManager::condition_with)):
/// a `Lock` or `RLock` proxy.
pub trait ConditionLock: Proxy + sealed::Sealed {}

impl sealed::Sealed for LockProxy {}
impl ConditionLock for LockProxy {}
impl sealed::Sealed for RLockProxy {}
impl ConditionLock for RLockProxy {}
impl sealed::Sealed for LockAsyncProxy {}
impl ConditionLock for LockAsyncProxy {}
impl sealed::Sealed for RLockAsyncProxy {}
impl ConditionLock for RLockAsyncProxy {}
