//! `Queue` and `JoinableQueue`: Python's `queue.Queue` served by the
//! manager, with typed proxies.
//!
//! A getter waiting on an empty queue, a putter waiting on a full one and
//! a joiner waiting for `task_done` are futures in the server, not threads.
#![forbid(unsafe_code)]

pub mod server;
pub mod typed;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::SyncManager;
use crate::server::{Constructor, Registry};
use crate::Result;

pub(crate) fn register(registry: &mut Registry) {
    for typeid in ["Queue", "JoinableQueue"] {
        registry.register::<server::ManagedQueue>(
            typeid,
            None,
            Some(Constructor::new(|(maxsize,): (usize,)| {
                server::ManagedQueue::new(maxsize)
            })),
        );
    }
}

impl SyncManager {
    /// A new shared `Queue` of `T` holding at most `maxsize` items (`0`:
    /// unbounded): Python's `queue.Queue` through a manager. Every element
    /// crosses as a [`Value`](crate::value::Value); a proxy put in the
    /// queue stays a proxy.
    ///
    /// ```
    /// # extern crate manager_runtime as managers;
    /// # fn main() -> managers::Result<()> {
    /// let manager = managers::sync::SyncManager::new();
    /// manager.start_in_thread()?;
    /// let queue = manager.queue::<String>(0)?;
    /// queue.put("hello".to_string())?;
    /// assert_eq!(queue.get()?, "hello");
    /// assert!(queue.get_nowait().is_err()); // Empty
    /// # Ok(()) }
    /// ```
    pub fn queue<T: Serialize + DeserializeOwned>(
        &self,
        maxsize: usize,
    ) -> Result<typed::QueueProxy<T>> {
        self.create("Queue", &(maxsize,))
    }

    /// A new shared `JoinableQueue` of `T` holding at most `maxsize` items
    /// (`0`: unbounded).
    pub fn joinable_queue<T: Serialize + DeserializeOwned>(
        &self,
        maxsize: usize,
    ) -> Result<typed::JoinableQueueProxy<T>> {
        self.create("JoinableQueue", &(maxsize,))
    }

    /// Async form of [`queue`](Self::queue): a waiting `get` or `put` is
    /// a future on the client too.
    ///
    /// ```
    /// # extern crate manager_runtime as managers;
    /// # fn main() -> managers::Result<()> {
    /// # let manager = managers::sync::SyncManager::new();
    /// # manager.start_in_thread()?;
    /// # let runtime = tokio::runtime::Runtime::new()?;
    /// runtime.block_on(async {
    ///     let queue = manager.queue_async::<u32>(0).await?;
    ///     queue.put(7).await?;
    ///     assert_eq!(queue.get().await?, 7);
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub async fn queue_async<T: Serialize + DeserializeOwned>(
        &self,
        maxsize: usize,
    ) -> Result<typed::QueueAsyncProxy<T>> {
        self.create_async("Queue", &(maxsize,)).await
    }

    /// Async form of [`joinable_queue`](Self::joinable_queue).
    pub async fn joinable_queue_async<T: Serialize + DeserializeOwned>(
        &self,
        maxsize: usize,
    ) -> Result<typed::JoinableQueueAsyncProxy<T>> {
        self.create_async("JoinableQueue", &(maxsize,)).await
    }
}
