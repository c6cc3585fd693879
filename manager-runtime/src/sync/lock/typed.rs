//! Typed proxies of the lock family (Python's `AcquirerProxy`) and their
//! scope guard.

use std::marker::PhantomData;
use std::time::Duration;

use super::server;
use crate::sync::typed::typed_proxy;
use crate::Result;

/// What a [`LockGuard`] needs of a proxy: Python's `acquire` and `release`
/// with errors flattened, for the calling thread.
pub(in crate::sync) trait Acquirer {
    /// `acquire(blocking, timeout)`.
    fn acquire_for_caller(&self, blocking: bool, timeout: Option<Duration>) -> Result<bool>;
    /// `release()`.
    fn release_for_caller(&self) -> Result<()>;
}

/// Python's `AcquirerProxy` methods, and [`Acquirer`], for a typed proxy
/// whose raw proxy has `acquire(blocking, timeout)` and `release()`:
/// `acquirer_methods!(LockProxy)`; `acquirer_methods!(RLockProxy, owned)`
/// when they take the owner first (the calling thread's
/// [`caller_id`](crate::caller_id)).
macro_rules! acquirer_methods {
    ($name:ident) => {
        $crate::sync::lock::typed::acquirer_methods!(@impl $name []);
    };
    ($name:ident, owned) => {
        $crate::sync::lock::typed::acquirer_methods!(@impl $name [$crate::caller_id()]);
    };
    (@impl $name:ident [$($owner:expr)?]) => {
        impl $crate::sync::lock::typed::Acquirer for $name {
            fn acquire_for_caller(
                &self,
                blocking: bool,
                timeout: ::core::option::Option<::std::time::Duration>,
            ) -> $crate::Result<bool> {
                $crate::sync::typed::flatten(self.raw.acquire($($owner,)? blocking, timeout))
            }

            fn release_for_caller(&self) -> $crate::Result<()> {
                $crate::sync::typed::flatten(self.raw.release($($owner)?))
            }
        }

        impl $name {
            /// Block until acquired (Python's `acquire()`); returns `true`.
            pub fn acquire(&self) -> $crate::Result<bool> {
                self.acquire_with(true, None)
            }

            /// Acquire only if that is possible at once (Python's
            /// `acquire(False)`).
            pub fn try_acquire(&self) -> $crate::Result<bool> {
                self.acquire_with(false, None)
            }

            /// Wait at most `timeout` to acquire (Python's
            /// `acquire(timeout=t)`); `false` if the time ran out.
            pub fn acquire_timeout(&self, timeout: ::std::time::Duration) -> $crate::Result<bool> {
                self.acquire_with(true, Some(timeout))
            }

            /// Python's `acquire(blocking, timeout)` (`None`: no limit). A
            /// timeout on a non-blocking call is a `ValueError`.
            pub fn acquire_with(
                &self,
                blocking: bool,
                timeout: ::core::option::Option<::std::time::Duration>,
            ) -> $crate::Result<bool> {
                $crate::sync::lock::typed::Acquirer::acquire_for_caller(self, blocking, timeout)
            }

            /// Release once (Python's `release()`).
            pub fn release(&self) -> $crate::Result<()> {
                $crate::sync::lock::typed::Acquirer::release_for_caller(self)
            }

            /// Acquire, and release when the returned guard drops: Python's
            /// `with lock:`.
            pub fn guard(&self) -> $crate::Result<$crate::sync::lock::typed::LockGuard<'_>> {
                self.acquire()?;
                Ok($crate::sync::lock::typed::LockGuard::new(self))
            }
        }
    };
}
pub(in crate::sync) use acquirer_methods;

/// Holds a lock, semaphore or condition from [`guard()`](LockProxy::guard)
/// until dropped, then releases it: Python's `with lock:`. A failed release
/// cannot be returned from `drop`; it is reported on standard error.
///
/// The guard stays on the thread that acquired (it is not `Send`), because
/// an `RLock` or a condition belongs to the acquiring thread.
///
/// ```
/// # extern crate manager_runtime as managers;
/// # fn main() -> managers::Result<()> {
/// let manager = managers::sync::SyncManager::new();
/// manager.start_in_thread()?;
/// let lock = manager.lock()?;
/// {
///     let _held = lock.guard()?;
///     assert!(lock.locked()?);
/// }
/// assert!(!lock.locked()?);
/// # Ok(()) }
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a dyn Acquirer,
    _thread: PhantomData<*const ()>,
}

impl<'a> LockGuard<'a> {
    /// A guard releasing `lock`, which the caller has just acquired.
    pub(in crate::sync) fn new(lock: &'a dyn Acquirer) -> Self {
        LockGuard {
            lock,
            _thread: PhantomData,
        }
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.lock.release_for_caller() {
            eprintln!("managers: releasing a lock at the end of its guard failed: {e}");
        }
    }
}

impl std::fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

/// Typed proxy of a shared [`Lock`](server::Lock) (Python's
/// `AcquirerProxy` for `Lock`): not re-entrant, releasable by anyone.
pub struct LockProxy {
    raw: server::LockProxy,
}

typed_proxy!(LockProxy, server::LockProxy);
acquirer_methods!(LockProxy);

impl LockProxy {
    /// Whether the lock is held (Python's `locked()`).
    pub fn locked(&self) -> Result<bool> {
        self.raw.locked()
    }
}

/// Typed proxy of a shared [`RLock`](server::RLock): re-entrant, owned
/// by the calling thread ([`caller_id`](crate::caller_id)), so two
/// threads sharing one connection do not share ownership.
pub struct RLockProxy {
    raw: server::RLockProxy,
}

typed_proxy!(RLockProxy, server::RLockProxy);
acquirer_methods!(RLockProxy, owned);

impl RLockProxy {
    /// Whether the calling thread holds the lock.
    pub fn is_owned(&self) -> Result<bool> {
        self.raw.is_owned(crate::caller_id())
    }
}

/// Typed proxy of a shared [`Semaphore`](server::Semaphore).
pub struct SemaphoreProxy {
    raw: server::SemaphoreProxy,
}

typed_proxy!(SemaphoreProxy, server::SemaphoreProxy);
acquirer_methods!(SemaphoreProxy);

/// Typed proxy of a shared bounded [`Semaphore`](server::Semaphore)
/// (Python's `BoundedSemaphore`): releasing above the initial value is
/// a `ValueError`.
pub struct BoundedSemaphoreProxy {
    raw: server::SemaphoreProxy,
}

typed_proxy!(BoundedSemaphoreProxy, server::SemaphoreProxy);
acquirer_methods!(BoundedSemaphoreProxy);
