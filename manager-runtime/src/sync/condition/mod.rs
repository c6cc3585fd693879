//! `Condition`: Python's `threading.Condition` served by the manager, on
//! its own `RLock` or on a supplied `Lock`/`RLock`, with a typed proxy.

pub mod server;
pub mod typed;

use super::SyncManager;
use crate::Result;
use crate::Token;
use crate::{Constructor, Registry};

pub(crate) fn register(registry: &mut Registry) {
    registry.register::<server::Condition>(
        "Condition",
        None,
        Some(Constructor::new(|(lock,): (Option<Token>,)| match lock {
            Some(lock) => server::Condition::on(lock),
            None => server::Condition::new(),
        })),
    );
}

impl SyncManager {
    /// A new shared `Condition` on its own `RLock`.
    pub fn condition(&self) -> Result<typed::ConditionProxy> {
        self.create("Condition", &(None::<Token>,))
    }

    /// A new shared `Condition` on `lock`, a `Lock` or `RLock` of this
    /// manager: acquiring either acquires both (Python's
    /// `Condition(lock)`).
    pub fn condition_with(
        &self,
        lock: &impl typed::ConditionLock,
    ) -> Result<typed::ConditionProxy> {
        let condition: typed::ConditionProxy = self.create("Condition", &(Some(lock.token()),))?;
        // The server finds the lock on the condition's first call; make it
        // now, while `lock` is certainly alive, and report a wrong lock here.
        condition.is_owned()?;
        Ok(condition)
    }
}
