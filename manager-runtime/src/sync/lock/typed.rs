//! Typed proxies of the lock family (Python's `AcquirerProxy`), blocking
//! and async, and their scope guards.
#![forbid(unsafe_code)]

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use crate::proxy::ProxyBase;
use crate::Result;
use crate::{Proxy, SyncError};

/// What a [`ProxyGuard`] needs of a proxy: Python's `release` with errors
/// flattened, for the calling thread.
pub(in crate::sync) trait Acquirer {
    /// `release()`.
    fn release_for_caller(&self) -> Result<()>;
}

/// What an async guard, or the undo of an acquire nobody awaits, needs of
/// an async proxy: `release()` as `owner` (which a lock that is not owned
/// ignores).
pub(in crate::sync) trait AsyncRelease:
    Proxy + Clone + Send + Sync + 'static
{
    /// `release()` as `owner`.
    fn release_for(&self, owner: u64) -> impl Future<Output = Result<()>> + Send + '_;
}

/// The release an [`AsyncProxyGuard`] makes when it is done.
pub(in crate::sync) type Release = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// Python's `AcquirerProxy` conveniences on a blocking typed proxy and its
/// async form (`acquire_with` and `release` are generated with the
/// server): `acquire`, `try_acquire`, `acquire_timeout`, and `guard()`.
macro_rules! acquirer_methods {
    ($blocking:ident, $asynchronous:ident) => {
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
            pub fn guard(&self) -> $crate::Result<$crate::sync::lock::typed::ProxyGuard<'_>> {
                self.acquire()?;
                Ok($crate::sync::lock::typed::ProxyGuard::new(self))
            }
        }

        impl $asynchronous {
            /// Acquire, and release when the returned guard drops (or
            /// with [`AsyncProxyGuard::release`](crate::sync::AsyncProxyGuard::release)):
            /// Python's `async with`.
            pub async fn guard(&self) -> $crate::Result<$crate::sync::lock::typed::AsyncProxyGuard> {
                let owner = $crate::sync::typed::task_owner();
                self.acquire().await?;
                let proxy = ::core::clone::Clone::clone(self);
                let release = async move {
                    $crate::sync::lock::typed::AsyncRelease::release_for(&proxy, owner).await
                };
                Ok($crate::sync::lock::typed::AsyncProxyGuard::new(::std::boxed::Box::pin(release)))
            }
        }
    };
}
pub(in crate::sync) use acquirer_methods;

/// [`AsyncRelease`] for async proxies whose `release` takes an owner
/// (`owned`) or not.
macro_rules! async_release {
    ($($proxy:ty),* ; owned $($owned:ty),*) => {
        $(impl AsyncRelease for $proxy {
            fn release_for(&self, _: u64) -> impl Future<Output = Result<()>> + Send + '_ {
                self.release()
            }
        })*
        $(impl AsyncRelease for $owned {
            fn release_for(&self, owner: u64) -> impl Future<Output = Result<()>> + Send + '_ {
                self.release_as(owner)
            }
        })*
    };
}

async_release!(LockAsyncProxy, SemaphoreAsyncProxy; owned RLockAsyncProxy, crate::sync::ConditionAsyncProxy);

/// The undo of an async acquire that nobody awaits any more (`#[undo]`):
/// if it took the lock, it is released again.
pub(in crate::sync) fn release_if_taken<P: AsyncRelease>(
    base: ProxyBase,
) -> impl FnOnce(std::result::Result<bool, SyncError>) -> Pin<Box<dyn Future<Output = ()> + Send>>
       + Send
       + 'static {
    release_owned_if_taken::<P>(base, 0)
}

/// [`release_if_taken`] for a lock owned by `owner`, the caller whose
/// acquire was dropped.
pub(in crate::sync) fn release_owned_if_taken<P: AsyncRelease>(
    base: ProxyBase,
    owner: u64,
) -> impl FnOnce(std::result::Result<bool, SyncError>) -> Pin<Box<dyn Future<Output = ()> + Send>>
       + Send
       + 'static {
    let proxy = P::from_base(base);
    move |taken| {
        Box::pin(async move {
            if taken == Ok(true) {
                if let Err(e) = proxy.release_for(owner).await {
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
pub struct ProxyGuard<'a> {
    lock: &'a dyn Acquirer,
    _thread: PhantomData<*const ()>,
}

impl<'a> ProxyGuard<'a> {
    /// A guard releasing `lock`, which the caller has just acquired.
    pub(in crate::sync) fn new(lock: &'a dyn Acquirer) -> Self {
        ProxyGuard {
            lock,
            _thread: PhantomData,
        }
    }
}

impl Drop for ProxyGuard<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.lock.release_for_caller() {
            eprintln!("managers: releasing a lock at the end of its guard failed: {e}");
        }
    }
}

impl std::fmt::Debug for ProxyGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyGuard").finish_non_exhaustive()
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
pub struct AsyncProxyGuard {
    release: Option<Release>,
}

impl AsyncProxyGuard {
    /// A guard that makes `release` when done; the caller holds the lock.
    pub(in crate::sync) fn new(release: Release) -> Self {
        AsyncProxyGuard {
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

impl Drop for AsyncProxyGuard {
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

impl std::fmt::Debug for AsyncProxyGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncProxyGuard").finish_non_exhaustive()
    }
}

pub use super::server::{
    LockAsyncProxy, LockProxy, RLockAsyncProxy, RLockProxy, SemaphoreAsyncProxy, SemaphoreProxy,
};

/// A shared bounded [`Semaphore`](super::server::Semaphore) (Python's
/// `BoundedSemaphore`): releasing above the initial value is a
/// `ValueError`.
pub type BoundedSemaphoreProxy = SemaphoreProxy;

/// The async form of [`BoundedSemaphoreProxy`].
pub type BoundedSemaphoreAsyncProxy = SemaphoreAsyncProxy;

acquirer_methods!(LockProxy, LockAsyncProxy);
acquirer_methods!(RLockProxy, RLockAsyncProxy);
acquirer_methods!(SemaphoreProxy, SemaphoreAsyncProxy);
