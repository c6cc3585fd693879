//! `Lock`, `RLock`, `Semaphore` and `BoundedSemaphore` as the server holds
//! them.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use super::state::{Counter, LockCore};
use crate::SyncError;

/// Python's `threading.Lock`, served: not re-entrant, releasable by anyone.
/// Waiting to acquire is a future in the server.
pub struct ManagedLock {
    pub(in crate::sync) core: Arc<LockCore>,
}

impl Default for ManagedLock {
    fn default() -> Self {
        ManagedLock {
            core: Arc::new(LockCore::new(false)),
        }
    }
}

#[crate::shared(typeid = "Lock", typed, proxy = "Lock")]
impl ManagedLock {
    /// Python's `acquire(blocking, timeout)` (`None`: no limit): `true` once
    /// the lock is taken, `false` if it is busy (`blocking == false`) or
    /// the timeout passed. A timeout with `blocking == false` is a
    /// `ValueError`.
    ///
    /// Dropping the async proxy's future never leaves the lock held for
    /// nobody: still waiting, the acquire is withdrawn on the server;
    /// already done, it is released again (as the caller that acquired it).
    #[py("acquire", timeout = lock)]
    #[undo(super::typed::release_if_taken::<super::typed::LockAsyncProxy>)]
    pub async fn acquire_with(
        &self,
        #[py(default = true)] blocking: bool,
        #[py(default = None)] timeout: Option<Duration>,
    ) -> Result<bool, SyncError> {
        self.core.acquire(0, 1, blocking, timeout).await
    }

    /// Release the lock (Python's `release()`); releasing an unlocked lock
    /// is a `RuntimeError`.
    #[py("release")]
    pub fn release(&self) -> Result<(), SyncError> {
        self.core.release(0)
    }

    /// Whether the lock is held (Python's `locked()`).
    pub fn locked(&self) -> bool {
        self.core.locked()
    }

    /// The fencing token of the current (or last) holder: it grows by one
    /// each time the lock is taken. With the state in Redis
    /// ([`ManagerOptions::redis`](crate::ManagerOptions::redis)), a holder
    /// that lost its lease (its gateway died, or it was cut off) may
    /// still believe it holds the lock: a resource that remembers the
    /// largest token it saw and refuses smaller ones stays safe.
    pub fn fence(&self) -> u64 {
        self.core.fence()
    }
}

/// Python's `threading.RLock`, served: re-entrant, owned by the calling
/// client thread (the `owner` argument, a [`caller_id`](crate::proxy::caller_id)),
/// even when threads share a connection.
pub struct ManagedRLock {
    pub(in crate::sync) core: Arc<LockCore>,
}

impl Default for ManagedRLock {
    fn default() -> Self {
        ManagedRLock {
            core: Arc::new(LockCore::new(true)),
        }
    }
}

#[crate::shared(typeid = "RLock", typed, proxy = "RLock")]
impl ManagedRLock {
    /// Python's `acquire(blocking, timeout)` for the calling thread (or
    /// task, for an async proxy): taking it again while holding it
    /// succeeds at once and counts one more level. Dropping the async
    /// proxy's future never leaves it held for nobody.
    #[py("acquire", timeout = lock)]
    #[undo(super::typed::release_owned_if_taken::<super::typed::RLockAsyncProxy>)]
    pub async fn acquire_with(
        &self,
        #[owner] owner: u64,
        #[py(default = true)] blocking: bool,
        #[py(default = None)] timeout: Option<Duration>,
    ) -> Result<bool, SyncError> {
        self.core.acquire(owner, 1, blocking, timeout).await
    }

    /// Release one level; a release by anyone but the owner, or of an
    /// unlocked lock, is a `RuntimeError`.
    #[py("release")]
    pub fn release(&self, #[owner] owner: u64) -> Result<(), SyncError> {
        self.core.release(owner)
    }

    /// Whether the caller (thread, or task for an async proxy) holds the
    /// lock (Python's `_is_owned`).
    pub fn is_owned(&self, #[owner] owner: u64) -> bool {
        self.core.is_owned(owner)
    }
}

/// Python's `threading.Semaphore` and `threading.BoundedSemaphore`, served
/// (one type: a bounded semaphore refuses to go above its initial value).
pub struct Semaphore {
    counter: Counter,
}

impl Semaphore {
    /// A semaphore at `value` (Python's `Semaphore(value)`).
    pub fn new(value: usize) -> Self {
        Semaphore {
            counter: Counter::new(value, false),
        }
    }

    /// A semaphore at `value` that may not be released above it (Python's
    /// `BoundedSemaphore(value)`).
    pub fn bounded(value: usize) -> Self {
        Semaphore {
            counter: Counter::new(value, true),
        }
    }
}

#[crate::shared(typeid = "Semaphore", typed)]
impl Semaphore {
    /// Python's `acquire(blocking, timeout)`: `true` once a unit is taken,
    /// `false` if none is free (`blocking == false`) or the timeout passed.
    #[py("acquire", timeout = semaphore)]
    #[undo(super::typed::release_if_taken::<super::typed::SemaphoreAsyncProxy>)]
    pub async fn acquire_with(
        &self,
        #[py(default = true)] blocking: bool,
        #[py(default = None)] timeout: Option<Duration>,
    ) -> Result<bool, SyncError> {
        self.counter.acquire(blocking, timeout).await
    }

    /// Give a unit back, waking one waiter. Above the initial value of a
    /// bounded semaphore it is a `ValueError`.
    #[py("release", plan = crate::__private::release_n_plan)]
    pub fn release(&self) -> Result<(), SyncError> {
        self.counter.release()
    }
}
