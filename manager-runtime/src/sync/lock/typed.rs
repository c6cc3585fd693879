//! Typed proxies of the lock family (Python's `AcquirerProxy`), blocking
//! and async, and their scope guards.
#![forbid(unsafe_code)]

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use super::server;
use crate::sync::typed::typed_proxy;
use crate::Result;

/// What a [`LockGuard`] needs of a proxy: Python's `release` with errors
/// flattened, for the calling thread.
pub(in crate::sync) trait Acquirer {
    /// `release()`.
    fn release_for_caller(&self) -> Result<()>;
}

/// The release an [`AsyncLockGuard`] makes when it is done.
pub(in crate::sync) type Release = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// Python's `AcquirerProxy` methods on a blocking typed proxy and its async
/// form, from one list: `acquirer_methods!(LockProxy, LockAsyncProxy)`;
/// `acquirer_methods!(RLockProxy, RLockAsyncProxy, owned)` when the raw
/// calls take the owner first (the calling thread, or task, see
/// `dual_proxy!`'s `owner!()`). Also [`Acquirer`], and `guard()` on each.
macro_rules! acquirer_methods {
    ($blocking:ident, $asynchronous:ident) => {
        $crate::sync::lock::typed::acquirer_methods!(@impl $blocking, $asynchronous
            [] [] [] [] [] []);
    };
    ($blocking:ident, $asynchronous:ident, owned) => {
        // The owner goes first in the raw calls; a guard keeps the one that
        // acquired, to release as it.
        $crate::sync::lock::typed::acquirer_methods!(@impl $blocking, $asynchronous
            [owner!(),] [owner!()]
            [let owner = $crate::sync::typed::task_owner();] [owner]
            [let owner = owner!();] [owner]);
    };
    (@impl $blocking:ident, $asynchronous:ident
        [$($acquire_owner:tt)*] [$($release_owner:tt)*]
        [$($take_owner:tt)*] [$($guard_owner:tt)*]
        [$($bind_owner:tt)*] [$($bound_owner:tt)*]) => {
        $crate::sync::typed::dual_proxy! {
            impl $blocking, $asynchronous {
                /// Wait until acquired (Python's `acquire()`); returns `true`.
                pub fn acquire(&self) -> $crate::Result<bool> {
                    wait!(self.acquire_with(true, None))
                }

                /// Acquire only if that is possible at once (Python's
                /// `acquire(False)`).
                pub fn try_acquire(&self) -> $crate::Result<bool> {
                    wait!(self.acquire_with(false, None))
                }

                /// Wait at most `timeout` to acquire (Python's
                /// `acquire(timeout=t)`); `false` if the time ran out.
                pub fn acquire_timeout(&self, timeout: ::std::time::Duration) -> $crate::Result<bool> {
                    wait!(self.acquire_with(true, Some(timeout)))
                }

                /// Python's `acquire(blocking, timeout)` (`None`: no limit). A
                /// timeout on a non-blocking call is a `ValueError`.
                ///
                /// Dropping the async form's future never leaves the lock
                /// held for nobody: still waiting, the acquire is withdrawn
                /// on the server; already done, it is released again (as
                /// the caller that acquired it).
                pub fn acquire_with(
                    &self,
                    blocking: bool,
                    timeout: ::core::option::Option<::std::time::Duration>,
                ) -> $crate::Result<bool> {
                    $($bind_owner)*
                    $crate::sync::typed::flatten(undoable!(
                        self.raw.acquire($($bound_owner,)* blocking, timeout),
                        self.raw,
                        $crate::sync::lock::typed::release_if_taken(
                            ::core::clone::Clone::clone(&self.raw),
                            move |raw| async move { raw.release($($bound_owner)*).await },
                        )
                    ))
                }

                /// Release once (Python's `release()`).
                pub fn release(&self) -> $crate::Result<()> {
                    $crate::sync::typed::flatten(wait!(self.raw.release($($release_owner)*)))
                }
            }
        }

        impl $crate::sync::lock::typed::Acquirer for $blocking {
            fn release_for_caller(&self) -> $crate::Result<()> {
                self.release()
            }
        }

        impl $blocking {
            /// Acquire, and release when the returned guard drops: Python's
            /// `with lock:`.
            pub fn guard(&self) -> $crate::Result<$crate::sync::lock::typed::LockGuard<'_>> {
                self.acquire()?;
                Ok($crate::sync::lock::typed::LockGuard::new(self))
            }
        }

        impl $asynchronous {
            /// Acquire, and release when the returned guard drops (or
            /// with [`AsyncLockGuard::release`](crate::sync::AsyncLockGuard::release)):
            /// Python's `async with`.
            pub async fn guard(&self) -> $crate::Result<$crate::sync::lock::typed::AsyncLockGuard> {
                $($take_owner)*
                self.acquire().await?;
                let raw = ::core::clone::Clone::clone(&self.raw);
                let release = async move {
                    $crate::sync::typed::flatten(raw.release($($guard_owner)*).await)
                };
                Ok($crate::sync::lock::typed::AsyncLockGuard::new(::std::boxed::Box::pin(release)))
            }
        }
    };
}
pub(in crate::sync) use acquirer_methods;

/// The undo of an async acquire that nobody awaits any more: if it took
/// the lock, `release` (on a clone of the proxy) gives it back.
pub(in crate::sync) fn release_if_taken<P, F>(
    proxy: P,
    release: impl FnOnce(P) -> F + Send + 'static,
) -> impl FnOnce(
    std::result::Result<bool, crate::SyncError>,
) -> Pin<Box<dyn Future<Output = ()> + Send>>
       + Send
       + 'static
where
    P: Send + 'static,
    F: Future<Output = Result<std::result::Result<(), crate::SyncError>>> + Send + 'static,
{
    move |taken| {
        Box::pin(async move {
            if taken == Ok(true) {
                if let Err(e) = crate::sync::typed::flatten(release(proxy).await) {
                    eprintln!("managers: releasing a lock whose acquire was dropped failed: {e}");
                }
            }
        })
    }
}

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

/// Holds a lock, semaphore or condition from an async proxy's `guard()`
/// until it is dropped or [`release`](Self::release)d: Python's `async
/// with lock:`.
///
/// Dropping it cannot wait for the server, so the release is sent from a
/// task spawned on the current tokio runtime (outside one, on a small
/// runtime of its own) and is done shortly after the drop, not during it.
/// `release().await` releases in place and returns the server's answer.
/// An `RLock` or condition stays owned by the task that acquired it, so
/// the guard may move to another task (it is `Send`).
///
/// ```
/// # extern crate manager_runtime as managers;
/// # fn main() -> managers::Result<()> {
/// # let manager = managers::sync::SyncManager::new();
/// # manager.start_in_thread()?;
/// # let runtime = tokio::runtime::Runtime::new()?;
/// runtime.block_on(async {
///     let lock = manager.lock_async().await?;
///     let held = lock.guard().await?;
///     assert!(lock.locked().await?);
///     held.release().await?;
///     assert!(!lock.locked().await?);
///     Ok(())
/// })
/// # }
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct AsyncLockGuard {
    release: Option<Release>,
}

impl AsyncLockGuard {
    /// A guard that makes `release` when done; the caller holds the lock.
    pub(in crate::sync) fn new(release: Release) -> Self {
        AsyncLockGuard {
            release: Some(release),
        }
    }

    /// Release now and wait for the server to confirm.
    pub async fn release(mut self) -> Result<()> {
        match self.release.take() {
            Some(release) => release.await,
            None => Ok(()),
        }
    }
}

impl Drop for AsyncLockGuard {
    fn drop(&mut self) {
        let Some(release) = self.release.take() else {
            return;
        };
        let report = |result: Result<()>| {
            if let Err(e) = result {
                eprintln!("managers: releasing a lock at the end of its guard failed: {e}");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { report(release.await) });
            }
            // No runtime here to drive the call: a small one of our own
            // (this is not async code, so blocking is allowed).
            Err(_) => match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => report(runtime.block_on(release)),
                Err(e) => report(Err(e.into())),
            },
        }
    }
}

impl std::fmt::Debug for AsyncLockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncLockGuard").finish_non_exhaustive()
    }
}

/// Both flavours of one lock type's typed proxy: the struct, the common
/// impls, and the conversions between them.
macro_rules! lock_proxies {
    ($(#[$doc:meta])* $blocking:ident, $(#[$adoc:meta])* $asynchronous:ident, $raw:ident, $raw_async:ident) => {
        $(#[$doc])*
        pub struct $blocking {
            raw: server::$raw,
        }

        $(#[$adoc])*
        pub struct $asynchronous {
            raw: server::$raw_async,
        }

        typed_proxy!($blocking, server::$raw);
        typed_proxy!($asynchronous, server::$raw_async);
        $crate::sync::typed::flavours!($blocking, $asynchronous);
    };
}

lock_proxies!(
    /// Typed proxy of a shared [`Lock`](server::Lock) (Python's
    /// `AcquirerProxy` for `Lock`): not re-entrant, releasable by anyone.
    LockProxy,
    /// The async form of [`LockProxy`].
    LockAsyncProxy,
    LockProxy,
    LockAsyncProxy
);
acquirer_methods!(LockProxy, LockAsyncProxy);

crate::sync::typed::dual_proxy! {
    impl LockProxy, LockAsyncProxy {
        /// Whether the lock is held (Python's `locked()`).
        pub fn locked(&self) -> Result<bool> {
            wait!(self.raw.locked())
        }
    }
}

lock_proxies!(
    /// Typed proxy of a shared [`RLock`](server::RLock): re-entrant, owned
    /// by the calling thread ([`caller_id`](crate::caller_id)), so two
    /// threads sharing one connection do not share ownership.
    RLockProxy,
    /// The async form of [`RLockProxy`]: owned by the calling tokio task
    /// (two tasks on one thread do not share it; one task that moves
    /// between threads keeps it).
    RLockAsyncProxy,
    RLockProxy,
    RLockAsyncProxy
);
acquirer_methods!(RLockProxy, RLockAsyncProxy, owned);

crate::sync::typed::dual_proxy! {
    impl RLockProxy, RLockAsyncProxy {
        /// Whether the caller (thread, or task for the async proxy) holds
        /// the lock.
        pub fn is_owned(&self) -> Result<bool> {
            wait!(self.raw.is_owned(owner!()))
        }
    }
}

lock_proxies!(
    /// Typed proxy of a shared [`Semaphore`](server::Semaphore).
    SemaphoreProxy,
    /// The async form of [`SemaphoreProxy`].
    SemaphoreAsyncProxy,
    SemaphoreProxy,
    SemaphoreAsyncProxy
);
acquirer_methods!(SemaphoreProxy, SemaphoreAsyncProxy);

lock_proxies!(
    /// Typed proxy of a shared bounded [`Semaphore`](server::Semaphore)
    /// (Python's `BoundedSemaphore`): releasing above the initial value is
    /// a `ValueError`.
    BoundedSemaphoreProxy,
    /// The async form of [`BoundedSemaphoreProxy`].
    BoundedSemaphoreAsyncProxy,
    SemaphoreProxy,
    SemaphoreAsyncProxy
);
acquirer_methods!(BoundedSemaphoreProxy, BoundedSemaphoreAsyncProxy);
