//! Typed proxies of the lock family (Python's `AcquirerProxy`), their scope
//! guard, and the boilerplate every non-generic typed proxy shares.

use std::marker::PhantomData;
use std::time::Duration;

use super::server;
use crate::error::{Error, Result, SyncError};

/// Flatten a built-in's reply: Python's exception becomes [`Error::Sync`].
pub(in crate::sync) fn flatten<T>(reply: Result<Result<T, SyncError>>) -> Result<T> {
    reply?.map_err(Error::Sync)
}

/// A typed proxy that wraps one generated raw proxy: `raw()`, `From`,
/// [`Proxy`](crate::Proxy), and `Debug`, `Display` and serde delegated to
/// the raw proxy (a proxy travels as its token).
macro_rules! wrap_raw_proxy {
    ($(#[$doc:meta])* $name:ident($raw:ty)) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            raw: $raw,
        }

        impl $name {
            /// The dynamically typed proxy this one wraps.
            pub fn raw(&self) -> &$raw {
                &self.raw
            }
        }

        impl ::core::convert::From<$raw> for $name {
            fn from(raw: $raw) -> Self {
                $name { raw }
            }
        }

        impl $crate::Proxy for $name {
            fn from_base(base: $crate::ProxyBase) -> Self {
                $name {
                    raw: <$raw as $crate::Proxy>::from_base(base),
                }
            }

            fn base(&self) -> &$crate::ProxyBase {
                $crate::Proxy::base(&self.raw)
            }
        }

        impl ::core::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Debug::fmt(&self.raw, f)
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Display::fmt(&self.raw, f)
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> ::core::result::Result<S::Ok, S::Error> {
                ::serde::Serialize::serialize(&self.raw, serializer)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> ::core::result::Result<Self, D::Error> {
                <$raw as ::serde::Deserialize<'de>>::deserialize(deserializer).map(|raw| $name { raw })
            }
        }
    };
}
pub(in crate::sync) use wrap_raw_proxy;

/// What a [`LockGuard`] needs of a proxy: Python's `acquire` and `release`
/// with errors flattened, for the calling thread.
pub(in crate::sync) trait Acquirer {
    /// `acquire(blocking, timeout)`.
    fn acquire_for_caller(&self, blocking: bool, timeout: Option<Duration>) -> Result<bool>;
    /// `release()`.
    fn release_for_caller(&self) -> Result<()>;
}

/// Python's `AcquirerProxy` methods for a proxy implementing [`Acquirer`].
macro_rules! acquirer_methods {
    ($name:ident) => {
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
                crate::sync::lock::typed::Acquirer::acquire_for_caller(self, blocking, timeout)
            }

            /// Release once (Python's `release()`).
            pub fn release(&self) -> $crate::Result<()> {
                crate::sync::lock::typed::Acquirer::release_for_caller(self)
            }

            /// Acquire, and release when the returned guard drops: Python's
            /// `with lock:`.
            pub fn guard(&self) -> $crate::Result<crate::sync::lock::typed::LockGuard<'_>> {
                self.acquire()?;
                Ok(crate::sync::lock::typed::LockGuard::new(self))
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

wrap_raw_proxy! {
    /// Typed proxy of a shared [`Lock`](server::Lock) (Python's
    /// `AcquirerProxy` for `Lock`): not re-entrant, releasable by anyone.
    LockProxy(server::LockProxy)
}
acquirer_methods!(LockProxy);

impl LockProxy {
    /// Whether the lock is held (Python's `locked()`).
    pub fn locked(&self) -> Result<bool> {
        self.raw.locked()
    }
}

impl Acquirer for LockProxy {
    fn acquire_for_caller(&self, blocking: bool, timeout: Option<Duration>) -> Result<bool> {
        flatten(self.raw.acquire(blocking, timeout))
    }

    fn release_for_caller(&self) -> Result<()> {
        flatten(self.raw.release())
    }
}

wrap_raw_proxy! {
    /// Typed proxy of a shared [`RLock`](server::RLock): re-entrant, owned
    /// by the calling thread ([`caller_id`](crate::caller_id)), so two
    /// threads sharing one connection do not share ownership.
    RLockProxy(server::RLockProxy)
}
acquirer_methods!(RLockProxy);

impl RLockProxy {
    /// Whether the calling thread holds the lock.
    pub fn is_owned(&self) -> Result<bool> {
        self.raw.is_owned(crate::caller_id())
    }
}

impl Acquirer for RLockProxy {
    fn acquire_for_caller(&self, blocking: bool, timeout: Option<Duration>) -> Result<bool> {
        flatten(self.raw.acquire(crate::caller_id(), blocking, timeout))
    }

    fn release_for_caller(&self) -> Result<()> {
        flatten(self.raw.release(crate::caller_id()))
    }
}

wrap_raw_proxy! {
    /// Typed proxy of a shared [`Semaphore`](server::Semaphore).
    SemaphoreProxy(server::SemaphoreProxy)
}
acquirer_methods!(SemaphoreProxy);

impl Acquirer for SemaphoreProxy {
    fn acquire_for_caller(&self, blocking: bool, timeout: Option<Duration>) -> Result<bool> {
        flatten(self.raw.acquire(blocking, timeout))
    }

    fn release_for_caller(&self) -> Result<()> {
        flatten(self.raw.release())
    }
}

wrap_raw_proxy! {
    /// Typed proxy of a shared bounded [`Semaphore`](server::Semaphore)
    /// (Python's `BoundedSemaphore`): releasing above the initial value is
    /// a `ValueError`.
    BoundedSemaphoreProxy(server::SemaphoreProxy)
}
acquirer_methods!(BoundedSemaphoreProxy);

impl Acquirer for BoundedSemaphoreProxy {
    fn acquire_for_caller(&self, blocking: bool, timeout: Option<Duration>) -> Result<bool> {
        flatten(self.raw.acquire(blocking, timeout))
    }

    fn release_for_caller(&self) -> Result<()> {
        flatten(self.raw.release())
    }
}
