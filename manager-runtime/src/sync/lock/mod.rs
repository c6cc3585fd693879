//! `Lock`, `RLock`, `Semaphore` and `BoundedSemaphore`: Python's
//! `threading` primitives served by the manager, with typed proxies and a
//! scope guard.
//!
//! Waiting to acquire is a future in the server, so a thousand blocked
//! clients cost a thousand small futures. An `RLock` (and a `Condition`)
//! belongs to the calling client thread, as in Python: the proxy sends its
//! [`caller_id`](crate::proxy::caller_id) with every call.
#![forbid(unsafe_code)]

pub mod server;
pub(in crate::sync) mod state;
pub mod typed;

use super::SyncManager;
use crate::server::{Constructor, Registry};
use crate::Result;

pub(crate) fn register(registry: &mut Registry) {
    registry.register::<server::ManagedLock>(
        "Lock",
        None,
        Some(Constructor::new(|(): ()| server::ManagedLock::default())),
    );
    registry.register::<server::ManagedRLock>(
        "RLock",
        None,
        Some(Constructor::new(|(): ()| server::ManagedRLock::default())),
    );
    registry.register::<server::Semaphore>(
        "Semaphore",
        None,
        Some(Constructor::new(|(value,): (usize,)| {
            server::Semaphore::new(value)
        })),
    );
    registry.register::<server::Semaphore>(
        "BoundedSemaphore",
        None,
        Some(Constructor::new(|(value,): (usize,)| {
            server::Semaphore::bounded(value)
        })),
    );
}

impl SyncManager {
    /// A new shared `Lock`, unlocked.
    pub fn lock(&self) -> Result<typed::LockProxy> {
        self.create("Lock", &())
    }

    /// A new shared `RLock`, unlocked.
    pub fn rlock(&self) -> Result<typed::RLockProxy> {
        self.create("RLock", &())
    }

    /// A new shared `Semaphore` at `value`.
    pub fn semaphore(&self, value: usize) -> Result<typed::SemaphoreProxy> {
        self.create("Semaphore", &(value,))
    }

    /// A new shared `BoundedSemaphore` at `value`: releasing above `value`
    /// is a `ValueError`.
    pub fn bounded_semaphore(&self, value: usize) -> Result<typed::BoundedSemaphoreProxy> {
        self.create("BoundedSemaphore", &(value,))
    }

    /// Async form of [`lock`](Self::lock).
    pub async fn lock_async(&self) -> Result<typed::LockAsyncProxy> {
        self.create_async("Lock", &()).await
    }

    /// Async form of [`rlock`](Self::rlock).
    pub async fn rlock_async(&self) -> Result<typed::RLockAsyncProxy> {
        self.create_async("RLock", &()).await
    }

    /// Async form of [`semaphore`](Self::semaphore).
    pub async fn semaphore_async(&self, value: usize) -> Result<typed::SemaphoreAsyncProxy> {
        self.create_async("Semaphore", &(value,)).await
    }

    /// Async form of [`bounded_semaphore`](Self::bounded_semaphore).
    pub async fn bounded_semaphore_async(
        &self,
        value: usize,
    ) -> Result<typed::BoundedSemaphoreAsyncProxy> {
        self.create_async("BoundedSemaphore", &(value,)).await
    }
}
