//! The SyncManager type.
#![forbid(unsafe_code)]

use std::ops::Deref;

use crate::server::Registry;
use crate::{BaseManager, ManagerOptions};

/// Python's `multiprocessing.Manager()`: a manager serving every built-in
/// shared type. Create objects with its methods (`dict()`, `list()`,
/// `queue(0)`, `lock()`, ...); lifecycle methods come from [`BaseManager`].
///
/// ```
/// # extern crate manager_runtime as managers;
/// # fn main() -> managers::Result<()> {
/// let manager = managers::sync::SyncManager::new();
/// manager.start_in_thread()?;
/// let event = manager.event()?;
/// event.set()?;
/// assert!(event.is_set()?);
/// # Ok(()) }
/// ```
pub struct SyncManager {
    base: BaseManager,
}

impl SyncManager {
    /// A SyncManager with default options (a fresh Unix socket, this
    /// process's authkey).
    pub fn new() -> Self {
        Self::with_options(ManagerOptions::default())
    }

    /// A SyncManager with these options.
    pub fn with_options(options: ManagerOptions) -> Self {
        SyncManager {
            base: BaseManager::new(Self::registry, options),
        }
    }

    /// Every built-in typeid with its constructor.
    pub fn registry() -> Registry {
        let mut registry = Registry::new();
        Self::register_builtins(&mut registry);
        registry
    }

    /// Add every built-in typeid to `registry` (for managers that serve
    /// their own types beside the built-ins).
    pub fn register_builtins(registry: &mut Registry) {
        super::event::register(registry);
        super::collections::register(registry);
        super::queue::register(registry);
        super::lock::register(registry);
        super::condition::register(registry);
        super::barrier::register(registry);
        super::namespace::register(registry);
        super::shared_value::register(registry);
        super::array::register(registry);
        super::pool::register(registry);
        #[cfg(feature = "redis")]
        super::redis::register(registry);
    }
}

impl Default for SyncManager {
    fn default() -> Self {
        Self::new()
    }
}

impl Deref for SyncManager {
    type Target = BaseManager;

    fn deref(&self) -> &BaseManager {
        &self.base
    }
}

impl std::fmt::Debug for SyncManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncManager")
            .field("address", &self.base.address())
            .finish_non_exhaustive()
    }
}
