//! `Condition`: Python's `threading.Condition` served by the manager, on
//! its own `RLock` or on a supplied `Lock`/`RLock`, with a typed proxy.
#![forbid(unsafe_code)]

pub mod server;
pub mod typed;

use super::SyncManager;
use crate::proxy::Token;
use crate::server::{Constructor, Registry};
use crate::Result;

pub(crate) fn register(registry: &mut Registry) {
    registry.register::<server::Condition>(
        "Condition",
        None,
        Some(Constructor::try_new(
            |(lock,): (Option<Token>,)| match lock {
                Some(lock) => server::Condition::bound(lock),
                None => Ok(server::Condition::new()),
            },
        )),
    );
}

impl SyncManager {
    /// A new shared `Condition` on its own `RLock`: Python's
    /// `threading.Condition` through a manager. The lock and every wait
    /// belong to the calling thread ([`caller_id`](crate::proxy::caller_id)), or
    /// task for the async proxy.
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
    pub fn condition(&self) -> Result<typed::ConditionProxy> {
        self.create("Condition", &(None::<Token>,))
    }

    /// A new shared `Condition` on `lock`, a `Lock` or `RLock` of this
    /// manager: acquiring either acquires both (Python's
    /// `Condition(lock)`). One call: the server finds the lock while
    /// building the condition, so a wrong one fails here (`TypeError`).
    pub fn condition_with(
        &self,
        lock: &impl typed::ConditionLock,
    ) -> Result<typed::ConditionProxy> {
        self.create("Condition", &(Some(lock.token()),))
    }

    /// Async form of [`condition`](Self::condition).
    pub async fn condition_async(&self) -> Result<typed::ConditionAsyncProxy> {
        self.create_async("Condition", &(None::<Token>,)).await
    }

    /// Async form of [`condition_with`](Self::condition_with).
    pub async fn condition_with_async(
        &self,
        lock: &impl typed::ConditionLock,
    ) -> Result<typed::ConditionAsyncProxy> {
        self.create_async("Condition", &(Some(lock.token()),)).await
    }
}
