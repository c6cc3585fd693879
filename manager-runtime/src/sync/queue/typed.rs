//! Typed proxies of `Queue` and `JoinableQueue`: generated with the
//! server ([`Queue`](server::ManagedQueue)), and the calls that wait (`put`,
//! `get` with and without a timeout).
#![forbid(unsafe_code)]

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::sync::typed::dual_proxy;
use crate::Result;

pub use super::server::{QueueAsyncProxy, QueueProxy};

/// A shared `JoinableQueue` (Python's): a queue whose `task_done` and
/// `join` are used. Every [`QueueProxy`] has them, as Python's
/// `queue.Queue` does.
pub type JoinableQueueProxy<T> = QueueProxy<T>;

/// The async form of [`JoinableQueueProxy`].
pub type JoinableQueueAsyncProxy<T> = QueueAsyncProxy<T>;

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

        /// Take the next item, waiting for one if the queue is empty.
        pub fn get(&self) -> Result<T> {
            wait!(self.get_with(true, None))
        }

        /// Take the next item, waiting at most `timeout`; `Empty` after that.
        pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
            wait!(self.get_with(true, Some(timeout)))
        }
    }
}
