//! Typed proxies of `Queue` and `JoinableQueue`.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::server;
use crate::sync::typed::{decode, flatten, typed_proxy};
use crate::value::to_value;
use crate::Result;
use crate::{Proxy, ProxyBase};

/// Typed proxy of a shared [`Queue`](server::Queue) of `T`: Python's
/// `queue.Queue` through a manager. Every element crosses as a
/// [`Value`](crate::value::Value); a proxy put in the queue stays a proxy.
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
pub struct QueueProxy<T> {
    raw: server::QueueProxy,
    _type: PhantomData<fn(T) -> T>,
}

typed_proxy!(QueueProxy<T>, server::QueueProxy);

impl<T: Serialize + DeserializeOwned> QueueProxy<T> {
    /// Put `item`, waiting for room if the queue is full.
    pub fn put(&self, item: T) -> Result<()> {
        self.put_with(item, true, None)
    }

    /// Put `item`, waiting at most `timeout` for room; `Full` after that.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<()> {
        self.put_with(item, true, Some(timeout))
    }

    /// Put `item` only if there is room now; `Full` otherwise.
    pub fn put_nowait(&self, item: T) -> Result<()> {
        flatten(self.raw.put_nowait(to_value(&item)?))
    }

    /// Python's `put(item, block, timeout)` (`timeout` `None`: no limit;
    /// ignored when `block` is false).
    pub fn put_with(&self, item: T, block: bool, timeout: Option<Duration>) -> Result<()> {
        flatten(self.raw.put(to_value(&item)?, block, timeout))
    }

    /// Take the next item, waiting for one if the queue is empty.
    pub fn get(&self) -> Result<T> {
        self.get_with(true, None)
    }

    /// Take the next item, waiting at most `timeout`; `Empty` after that.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_with(true, Some(timeout))
    }

    /// Take the next item if there is one now; `Empty` otherwise.
    pub fn get_nowait(&self) -> Result<T> {
        let item = flatten(self.raw.get_nowait())?;
        decode(self.raw.base(), item.into_value())
    }

    /// Python's `get(block, timeout)` (`timeout` `None`: no limit; ignored
    /// when `block` is false).
    pub fn get_with(&self, block: bool, timeout: Option<Duration>) -> Result<T> {
        let item = flatten(self.raw.get(block, timeout))?;
        decode(self.raw.base(), item.into_value())
    }

    /// How many items are queued (Python's `qsize()`).
    pub fn qsize(&self) -> Result<usize> {
        self.raw.qsize()
    }

    /// Whether the queue is empty (Python's `empty()`).
    pub fn empty(&self) -> Result<bool> {
        self.raw.empty()
    }

    /// Whether the queue is at its `maxsize` (Python's `full()`).
    pub fn full(&self) -> Result<bool> {
        self.raw.full()
    }
}

/// Typed proxy of a shared `JoinableQueue` of `T`: a [`QueueProxy`] (every
/// queue method, through `Deref`) plus `task_done` and `join`.
pub struct JoinableQueueProxy<T> {
    queue: QueueProxy<T>,
}

impl<T> JoinableQueueProxy<T> {
    /// Mark one item taken earlier as processed (Python's `task_done()`).
    /// More calls than items put is a `RuntimeError`.
    pub fn task_done(&self) -> Result<()> {
        flatten(self.queue.raw.task_done())
    }

    /// Wait until every item put has been marked done (Python's `join()`).
    pub fn join(&self) -> Result<()> {
        self.queue.raw.join()
    }
}

impl<T> Deref for JoinableQueueProxy<T> {
    type Target = QueueProxy<T>;

    fn deref(&self) -> &QueueProxy<T> {
        &self.queue
    }
}

impl<T> Clone for JoinableQueueProxy<T> {
    fn clone(&self) -> Self {
        JoinableQueueProxy {
            queue: self.queue.clone(),
        }
    }
}

impl<T> From<server::QueueProxy> for JoinableQueueProxy<T> {
    fn from(raw: server::QueueProxy) -> Self {
        JoinableQueueProxy { queue: raw.into() }
    }
}

impl<T> Proxy for JoinableQueueProxy<T> {
    fn from_base(base: ProxyBase) -> Self {
        server::QueueProxy::from_base(base).into()
    }

    fn base(&self) -> &ProxyBase {
        self.queue.raw.base()
    }
}

impl<T> fmt::Debug for JoinableQueueProxy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.queue, f)
    }
}

impl<T> fmt::Display for JoinableQueueProxy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.queue, f)
    }
}

impl<T> Serialize for JoinableQueueProxy<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.queue.serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for JoinableQueueProxy<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        server::QueueProxy::deserialize(deserializer).map(Into::into)
    }
}
