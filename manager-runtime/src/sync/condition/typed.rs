//! The typed proxy of `Condition`.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use super::server;
use crate::sync::lock::server::{LockProxy as RawLockProxy, RLockProxy as RawRLockProxy};
use crate::sync::lock::typed::{
    acquirer_methods, LockAsyncProxy, LockProxy, RLockAsyncProxy, RLockProxy,
};
use crate::sync::typed::{dual_proxy, flatten, flavours, typed_proxy};
use crate::Proxy;
use crate::Result;

/// Typed proxy of a shared [`Condition`](server::Condition): Python's
/// `threading.Condition` through a manager. The lock and every wait
/// belong to the calling thread ([`caller_id`](crate::caller_id)).
///
/// ```
/// # extern crate manager_runtime as managers;
/// # fn main() -> managers::Result<()> {
/// # use std::time::Duration;
/// let manager = managers::sync::SyncManager::new();
/// manager.start_in_thread()?;
/// let condition = manager.condition()?;
/// let _held = condition.guard()?;
/// assert!(!condition.wait_timeout(Duration::from_millis(10))?);
/// # Ok(()) }
/// ```
pub struct ConditionProxy {
    raw: server::ConditionProxy,
}

/// The async form of [`ConditionProxy`]: the lock and every wait belong
/// to the calling tokio task.
pub struct ConditionAsyncProxy {
    raw: server::ConditionAsyncProxy,
}

typed_proxy!(ConditionProxy, server::ConditionProxy);
typed_proxy!(ConditionAsyncProxy, server::ConditionAsyncProxy);
acquirer_methods!(ConditionProxy, ConditionAsyncProxy, owned);

flavours!(ConditionProxy, ConditionAsyncProxy);

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

        /// Python's `wait(timeout)` (`None`: no limit).
        pub fn wait_with(&self, timeout: Option<Duration>) -> Result<bool> {
            flatten(wait!(self.raw.wait(owner!(), timeout)))
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

        /// Wake the first `n` waiters (Python's `notify(n)`).
        pub fn notify_n(&self, n: usize) -> Result<()> {
            flatten(wait!(self.raw.notify(owner!(), n)))
        }

        /// Wake every waiter (Python's `notify_all()`).
        pub fn notify_all(&self) -> Result<()> {
            flatten(wait!(self.raw.notify_all(owner!())))
        }

        /// Whether the caller holds the lock (for a plain `Lock`: whether
        /// anyone does).
        pub fn is_owned(&self) -> Result<bool> {
            flatten(wait!(self.raw.is_owned(owner!())))
        }
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A lock a condition can be built on
/// ([`SyncManager::condition_with`](crate::sync::SyncManager::condition_with)):
/// a `Lock` or `RLock` proxy, typed or raw.
pub trait ConditionLock: Proxy + sealed::Sealed {}

impl sealed::Sealed for LockProxy {}
impl ConditionLock for LockProxy {}
impl sealed::Sealed for RLockProxy {}
impl ConditionLock for RLockProxy {}
impl sealed::Sealed for RawLockProxy {}
impl ConditionLock for RawLockProxy {}
impl sealed::Sealed for RawRLockProxy {}
impl ConditionLock for RawRLockProxy {}
impl sealed::Sealed for LockAsyncProxy {}
impl ConditionLock for LockAsyncProxy {}
impl sealed::Sealed for RLockAsyncProxy {}
impl ConditionLock for RLockAsyncProxy {}
