//! `Queue` (and `JoinableQueue`) as the server holds it.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use crate::proxy::ProxyBase;
use crate::sync::deadline;
use crate::sync::held::{HeldTokens, Removed};
use crate::sync::lock::state::wait_until;
use crate::value::Value;
use crate::Proxy;
use crate::SyncError;

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
pub struct ManagedQueue {
    maxsize: usize,
    state: Mutex<State>,
    not_empty: Notify,
    not_full: Notify,
    all_done: Notify,
    /// Gives each item its own references, held while it is queued.
    held: HeldTokens,
}

impl ManagedQueue {
    /// An empty queue holding at most `maxsize` items (`0`: unbounded).
    pub fn new(maxsize: usize) -> Self {
        ManagedQueue {
            maxsize,
            state: Mutex::new(State {
                items: VecDeque::new(),
                unfinished: 0,
            }),
            not_empty: Notify::new(),
            not_full: Notify::new(),
            all_done: Notify::new(),
            held: HeldTokens::new(),
        }
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

#[crate::shared(typeid = "Queue", typed(T), proxy = "Queue")]
impl ManagedQueue {
    /// Python's `put(item, block, timeout)`: waits for room unless `block`
    /// is false, at most `timeout`; no room is [`SyncError::Full`].
    #[py("put")]
    pub async fn put_with(
        &self,
        #[of(T)] item: Value,
        #[py(default = true)] block: bool,
        #[py(default = None)] timeout: Option<Duration>,
    ) -> Result<(), SyncError> {
        let mut item = Some(self.held.hold(item)?);
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

    /// Python's `put_nowait(item)`: [`SyncError::Full`] if there is no
    /// room.
    #[py("put_nowait")]
    pub fn put_nowait(&self, #[of(T)] item: Value) -> Result<(), SyncError> {
        let mut item = Some(self.held.hold(item)?);
        self.try_put(&mut item).ok_or(SyncError::Full)
    }

    /// Python's `get(block, timeout)`: waits for an item unless `block` is
    /// false, at most `timeout`; nothing to get is [`SyncError::Empty`].
    ///
    /// Dropping the async proxy's future loses no item: still waiting, the
    /// get is withdrawn on the server; already done, its item is put back
    /// at the head of the queue.
    #[py("get")]
    #[returns(T)]
    #[undo(put_back)]
    pub async fn get_with(
        &self,
        #[py(default = true)] block: bool,
        #[py(default = None)] timeout: Option<Duration>,
    ) -> Result<QueueItem, SyncError> {
        let item = if block {
            wait_until(&self.not_empty, deadline(timeout), || self.try_get()).await
        } else {
            self.try_get()
        };
        item.ok_or(SyncError::Empty)
    }

    /// Python's `get_nowait()`: [`SyncError::Empty`] if there is nothing
    /// to get.
    #[py("get_nowait", runtime_error = ValueError)]
    #[returns(T)]
    #[undo(put_back)]
    pub fn get_nowait(&self) -> Result<QueueItem, SyncError> {
        self.try_get().ok_or(SyncError::Empty)
    }

    /// Put back at the head an `item` a `get` took for a caller that gave
    /// up before receiving it (its async call was dropped after the server
    /// did it), so the next `get` takes it and the order is kept. It goes
    /// back whatever the queue's `maxsize` (it had its place), and counts
    /// as no new task for `join`.
    pub fn unget(&self, #[of(T)] item: Value) -> Result<(), SyncError> {
        let item = self.held.hold(item)?;
        self.state.lock().unwrap().items.push_front(item);
        self.not_empty.notify_one();
        Ok(())
    }

    /// How many items are queued (Python's `qsize()`).
    #[py("qsize", runtime_error = ValueError)]
    pub fn qsize(&self) -> usize {
        self.state.lock().unwrap().items.len()
    }

    /// Whether no item is queued (Python's `empty()`).
    #[py("empty", runtime_error = ValueError)]
    pub fn empty(&self) -> bool {
        self.state.lock().unwrap().items.is_empty()
    }

    /// Whether the queue is at its `maxsize` (never, when unbounded).
    #[py("full", runtime_error = ValueError)]
    pub fn full(&self) -> bool {
        self.is_full(&self.state.lock().unwrap())
    }

    /// Python's `task_done()`: one item put earlier is processed. More
    /// calls than items put is a `RuntimeError` (Python's `ValueError`).
    #[py("task_done", runtime_error = ValueError)]
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
    #[py("join", runtime_error = ValueError)]
    pub async fn join(&self) {
        let done = || (self.state.lock().unwrap().unfinished == 0).then_some(());
        wait_until(&self.all_done, None, done).await;
    }
}

/// A value in a queue, with the references the queue holds on the objects
/// it names (proxies put in the queue), given back when the item drops: a
/// `get` replies with the item itself, so they go only after the reply is
/// encoded. A client sees just the value.
pub type QueueItem = Removed;

/// The undo of an async `get` that nobody awaits any more: its item goes
/// back at the head of the queue. The references the reply granted for the
/// proxies in it are given back once the queue holds its own again.
fn put_back(
    base: ProxyBase,
) -> impl FnOnce(std::result::Result<QueueItem, crate::SyncError>) -> PutBack + Send + 'static {
    let raw = QueueAsyncProxy::<Value>::from_base(base);
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
            if let Err(e) = raw.unget(item).await {
                eprintln!("managers: putting back an item whose get was dropped failed: {e}");
            }
            drop(granted);
        })
    }
}

/// What [`put_back`] does, on its way.
type PutBack = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
