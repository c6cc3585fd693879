//! `Queue` (and `JoinableQueue`) as the server holds it.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::error::SyncError;
use crate::object::{CallContext, ServerLink};
use crate::proxy::Token;
use crate::sync::deadline;
use crate::sync::lock::state::wait_until;
use crate::value::Value;

struct State {
    items: VecDeque<QueueItem>,
    /// Items put and not yet marked done (`task_done`).
    unfinished: usize,
}

/// Python's `queue.Queue`, served; also registered as `JoinableQueue`
/// (in Python's `SyncManager` both typeids are `queue.Queue`).
///
/// Getting from an empty queue and putting into a full one are futures in
/// the server. Elements are [`Value`]s: a proxy put in the queue keeps its
/// object alive until it is taken out.
pub struct Queue {
    maxsize: usize,
    state: Mutex<State>,
    not_empty: Notify,
    not_full: Notify,
    all_done: Notify,
    /// Taken from the first call that stores a proxy (constructors run
    /// outside any call).
    link: OnceLock<ServerLink>,
}

impl Queue {
    /// An empty queue holding at most `maxsize` items (`0`: unbounded).
    pub fn new(maxsize: usize) -> Self {
        Queue {
            maxsize,
            state: Mutex::new(State {
                items: VecDeque::new(),
                unfinished: 0,
            }),
            not_empty: Notify::new(),
            not_full: Notify::new(),
            all_done: Notify::new(),
            link: OnceLock::new(),
        }
    }

    fn link(&self) -> &ServerLink {
        self.link.get_or_init(|| {
            CallContext::current()
                .map(|cx| cx.link())
                .unwrap_or_default()
        })
    }

    /// Take a reference to every object `value` names (but not to this
    /// queue itself, which would never die), so it outlives its proxies.
    fn retain(&self, value: Value) -> Result<QueueItem, SyncError> {
        let this = CallContext::current().and_then(|cx| cx.object_id());
        let mut item = QueueItem {
            value: Value::None,
            retained: Vec::new(),
            link: self.link().clone(),
        };
        for token in value.tokens().filter(|token| Some(token.id) != this) {
            item.link.retain(token).map_err(|e| {
                SyncError::ValueError(format!("cannot store a proxy to {token}: {e}"))
            })?;
            item.retained.push(token.clone());
        }
        item.value = value;
        Ok(item)
    }

    fn is_full(&self, state: &State) -> bool {
        self.maxsize > 0 && state.items.len() >= self.maxsize
    }

    /// Store `item` if there is room; otherwise leave it.
    fn try_put(&self, item: &mut Option<QueueItem>) -> Option<()> {
        let mut state = self.state.lock().unwrap();
        if self.is_full(&state) {
            return None;
        }
        state.items.push_back(item.take()?);
        state.unfinished += 1;
        drop(state);
        self.not_empty.notify_one();
        Some(())
    }

    fn try_get(&self) -> Option<QueueItem> {
        let item = self.state.lock().unwrap().items.pop_front()?;
        self.not_full.notify_one();
        Some(item)
    }
}

#[crate::shared(typeid = "Queue")]
impl Queue {
    /// Python's `put(item, block, timeout)`: waits for room unless `block`
    /// is false, at most `timeout`; no room is `Full`.
    pub async fn put(
        &self,
        item: Value,
        block: bool,
        timeout: Option<Duration>,
    ) -> Result<(), SyncError> {
        let mut item = Some(self.retain(item)?);
        let stored = if block {
            wait_until(&self.not_full, deadline(timeout), || {
                self.try_put(&mut item)
            })
            .await
        } else {
            self.try_put(&mut item)
        };
        stored.ok_or(SyncError::Full)
    }

    /// Python's `put_nowait(item)`: `Full` if there is no room.
    pub fn put_nowait(&self, item: Value) -> Result<(), SyncError> {
        let mut item = Some(self.retain(item)?);
        self.try_put(&mut item).ok_or(SyncError::Full)
    }

    /// Python's `get(block, timeout)`: waits for an item unless `block` is
    /// false, at most `timeout`; nothing to get is `Empty`.
    pub async fn get(
        &self,
        block: bool,
        timeout: Option<Duration>,
    ) -> Result<QueueItem, SyncError> {
        let item = if block {
            wait_until(&self.not_empty, deadline(timeout), || self.try_get()).await
        } else {
            self.try_get()
        };
        item.ok_or(SyncError::Empty)
    }

    /// Python's `get_nowait()`: `Empty` if there is nothing to get.
    pub fn get_nowait(&self) -> Result<QueueItem, SyncError> {
        self.try_get().ok_or(SyncError::Empty)
    }

    /// How many items are queued.
    pub fn qsize(&self) -> usize {
        self.state.lock().unwrap().items.len()
    }

    /// Whether no item is queued.
    pub fn empty(&self) -> bool {
        self.state.lock().unwrap().items.is_empty()
    }

    /// Whether the queue is at its `maxsize` (never, when unbounded).
    pub fn full(&self) -> bool {
        self.is_full(&self.state.lock().unwrap())
    }

    /// Python's `task_done()`: one item put earlier is processed. More
    /// calls than items put is a `RuntimeError`.
    pub fn task_done(&self) -> Result<(), SyncError> {
        let mut state = self.state.lock().unwrap();
        if state.unfinished == 0 {
            return Err(SyncError::RuntimeError(
                "task_done() called too many times".into(),
            ));
        }
        state.unfinished -= 1;
        if state.unfinished == 0 {
            drop(state);
            self.all_done.notify_waiters();
        }
        Ok(())
    }

    /// Python's `join()`: wait until every item put has been marked done.
    pub async fn join(&self) {
        let done = || (self.state.lock().unwrap().unfinished == 0).then_some(());
        wait_until(&self.all_done, None, done).await;
    }
}

/// A value in a queue, with the references the queue holds on the objects
/// it names (proxies put in the queue), given back when the item drops.
///
/// A `get` replies with the item itself, so those references go only
/// after the reply is encoded: the caller's own references (granted while
/// encoding) are taken first and the objects never die in between. An item
/// dropped anywhere else (a failed or cancelled put, a dropped queue)
/// gives them back too. A client sees just the value.
pub struct QueueItem {
    value: Value,
    retained: Vec<Token>,
    link: ServerLink,
}

impl QueueItem {
    /// The value (on a client, where the item holds no references).
    pub fn into_value(mut self) -> Value {
        std::mem::take(&mut self.value)
    }
}

impl Drop for QueueItem {
    fn drop(&mut self) {
        for token in &self.retained {
            self.link.release(token);
        }
    }
}

impl std::fmt::Debug for QueueItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("QueueItem").field(&self.value).finish()
    }
}

impl Serialize for QueueItem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for QueueItem {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(QueueItem {
            value: Value::deserialize(deserializer)?,
            retained: Vec::new(),
            link: ServerLink::default(),
        })
    }
}
