//! Typed proxies of `Queue` and `JoinableQueue`.
#![forbid(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::server;
use crate::sync::typed::{decode, dual_proxy, flatten, flavours, typed_proxy};
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

/// The async form of [`QueueProxy`]: the same methods, as futures. A
/// waiting `get` or `put` is a future on the client too.
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
pub struct QueueAsyncProxy<T> {
    raw: server::QueueAsyncProxy,
    _type: PhantomData<fn(T) -> T>,
}

typed_proxy!(QueueAsyncProxy<T>, server::QueueAsyncProxy);

flavours!(QueueProxy<T>, QueueAsyncProxy);

dual_proxy! {
    impl<T> QueueProxy, QueueAsyncProxy where [T: Serialize + DeserializeOwned] {
        /// Put `item`, waiting for room if the queue is full.
        pub fn put(&self, item: T) -> Result<()> {
            wait!(self.put_with(item, true, None))
        }

        /// Put `item`, waiting at most `timeout` for room; `Full` after that.
        pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<()> {
            wait!(self.put_with(item, true, Some(timeout)))
        }

        /// Put `item` only if there is room now; `Full` otherwise.
        pub fn put_nowait(&self, item: T) -> Result<()> {
            flatten(wait!(self.raw.put_nowait(to_value(&item)?)))
        }

        /// Python's `put(item, block, timeout)` (`timeout` `None`: no limit;
        /// ignored when `block` is false).
        pub fn put_with(&self, item: T, block: bool, timeout: Option<Duration>) -> Result<()> {
            flatten(wait!(self.raw.put(to_value(&item)?, block, timeout)))
        }

        /// Take the next item, waiting for one if the queue is empty.
        pub fn get(&self) -> Result<T> {
            wait!(self.get_with(true, None))
        }

        /// Take the next item, waiting at most `timeout`; `Empty` after that.
        pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
            wait!(self.get_with(true, Some(timeout)))
        }

        /// Take the next item if there is one now; `Empty` otherwise.
        pub fn get_nowait(&self) -> Result<T> {
            let item = flatten(undoable!(
                self.raw.get_nowait(),
                self.raw,
                put_back(self.raw.clone())
            ))?;
            decode(self.raw.base(), item.into_value())
        }

        /// Python's `get(block, timeout)` (`timeout` `None`: no limit; ignored
        /// when `block` is false).
        ///
        /// Dropping the async form's future loses no item: still waiting,
        /// the get is withdrawn on the server; already done, its item is put
        /// back at the head of the queue.
        pub fn get_with(&self, block: bool, timeout: Option<Duration>) -> Result<T> {
            let item = flatten(undoable!(
                self.raw.get(block, timeout),
                self.raw,
                put_back(self.raw.clone())
            ))?;
            decode(self.raw.base(), item.into_value())
        }

        /// How many items are queued (Python's `qsize()`).
        pub fn qsize(&self) -> Result<usize> {
            wait!(self.raw.qsize())
        }

        /// Whether the queue is empty (Python's `empty()`).
        pub fn empty(&self) -> Result<bool> {
            wait!(self.raw.empty())
        }

        /// Whether the queue is at its `maxsize` (Python's `full()`).
        pub fn full(&self) -> Result<bool> {
            wait!(self.raw.full())
        }
    }
}

/// The undo of an async `get` that nobody awaits any more: its item goes
/// back at the head of the queue. The references the reply granted for the
/// proxies in it are given back once the queue holds its own again.
fn put_back(
    raw: server::QueueAsyncProxy,
) -> impl FnOnce(std::result::Result<server::QueueItem, crate::SyncError>) -> PutBack + Send + 'static
{
    move |item| {
        Box::pin(async move {
            let Ok(item) = item else {
                return;
            };
            let item = item.into_value();
            let client = raw.base().client().clone();
            let granted: Vec<ProxyBase> = item
                .tokens()
                .filter(|token| token.address == *client.address())
                .map(|token| ProxyBase::adopt(client.clone(), token.clone()))
                .collect();
            if let Err(e) = flatten(raw.unget(item).await) {
                eprintln!("managers: putting back an item whose get was dropped failed: {e}");
            }
            drop(granted);
        })
    }
}

/// What [`put_back`] does, on its way.
type PutBack = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Typed proxy of a shared `JoinableQueue` of `T`: a [`QueueProxy`] (every
/// queue method, through `Deref`) plus `task_done` and `join`.
pub struct JoinableQueueProxy<T> {
    queue: QueueProxy<T>,
}

/// The async form of [`JoinableQueueProxy`]: a [`QueueAsyncProxy`]
/// (through `Deref`) plus `task_done` and `join`, as futures.
pub struct JoinableQueueAsyncProxy<T> {
    queue: QueueAsyncProxy<T>,
}

impl<T> JoinableQueueProxy<T> {
    /// The async proxy of the same queue (another reference).
    pub fn to_async(&self) -> JoinableQueueAsyncProxy<T> {
        self.queue.raw.to_async().into()
    }
}

impl<T> JoinableQueueAsyncProxy<T> {
    /// The blocking proxy of the same queue (another reference).
    pub fn to_blocking(&self) -> JoinableQueueProxy<T> {
        self.queue.raw.to_blocking().into()
    }
}

dual_proxy! {
    impl<T> JoinableQueueProxy, JoinableQueueAsyncProxy {
        /// Mark one item taken earlier as processed (Python's `task_done()`).
        /// More calls than items put is a `RuntimeError`.
        pub fn task_done(&self) -> Result<()> {
            flatten(wait!(self.queue.raw.task_done()))
        }

        /// Wait until every item put has been marked done (Python's `join()`).
        pub fn join(&self) -> Result<()> {
            wait!(self.queue.raw.join())
        }
    }
}

/// What a joinable queue proxy shares with the queue proxy it wraps:
/// `Deref` to it, `Clone`, `From` the raw proxy, `Proxy`, `Debug`,
/// `Display` and serde (as the token).
macro_rules! joinable {
    ($joinable:ident, $queue:ident, $raw:ty) => {
        impl<T> Deref for $joinable<T> {
            type Target = $queue<T>;

            fn deref(&self) -> &$queue<T> {
                &self.queue
            }
        }

        impl<T> Clone for $joinable<T> {
            fn clone(&self) -> Self {
                $joinable {
                    queue: self.queue.clone(),
                }
            }
        }

        impl<T> From<$raw> for $joinable<T> {
            fn from(raw: $raw) -> Self {
                $joinable { queue: raw.into() }
            }
        }

        impl<T> Proxy for $joinable<T> {
            fn from_base(base: ProxyBase) -> Self {
                <$raw>::from_base(base).into()
            }

            fn base(&self) -> &ProxyBase {
                self.queue.raw.base()
            }
        }

        impl<T> fmt::Debug for $joinable<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.queue, f)
            }
        }

        impl<T> fmt::Display for $joinable<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.queue, f)
            }
        }

        impl<T> Serialize for $joinable<T> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.queue.serialize(serializer)
            }
        }

        impl<'de, T> Deserialize<'de> for $joinable<T> {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                <$raw>::deserialize(deserializer).map(Into::into)
            }
        }
    };
}

joinable!(JoinableQueueProxy, QueueProxy, server::QueueProxy);
joinable!(
    JoinableQueueAsyncProxy,
    QueueAsyncProxy,
    server::QueueAsyncProxy
);
