//! What a caller holds while a pool works: [`AsyncResult`] (one result, or
//! one list for `map_async`) and [`IMapIterator`] (results as they come).
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::error::{Error, ProcessError, Result};

/// How long a waiter looks for the outcome before it sleeps.
const SPIN: Duration = Duration::from_micros(50);

/// Called once with the outcome, on the pool's thread.
pub(super) type Callback<T> = Box<dyn FnOnce(&Result<T>) + Send>;

struct SlotState<T> {
    value: Option<Result<T>>,
    done: bool,
    ok: bool,
    waker: Option<Waker>,
}

/// Where the pool puts one outcome and a caller waits for it.
pub(super) struct Slot<T> {
    state: Mutex<SlotState<T>>,
    ready: Condvar,
    /// `state.done`, readable without the lock (for a waiter's spin).
    done: std::sync::atomic::AtomicBool,
    callback: Mutex<Option<Callback<T>>>,
}

impl<T> Slot<T> {
    pub(super) fn new(callback: Option<Callback<T>>) -> Arc<Slot<T>> {
        Arc::new(Slot {
            state: Mutex::new(SlotState {
                value: None,
                done: false,
                ok: false,
                waker: None,
            }),
            ready: Condvar::new(),
            done: std::sync::atomic::AtomicBool::new(false),
            callback: Mutex::new(callback),
        })
    }

    fn state(&self) -> MutexGuard<'_, SlotState<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The outcome is known: run the callback (once; a panicking one is
    /// contained), then wake whoever waits. Later calls do nothing.
    pub(super) fn complete(&self, result: Result<T>) {
        if self.state().done {
            return;
        }
        let callback = self
            .callback
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(callback) = callback {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(&result)));
        }
        let mut state = self.state();
        state.ok = result.is_ok();
        state.value = Some(result);
        state.done = true;
        self.done.store(true, std::sync::atomic::Ordering::Release);
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
        drop(state);
        self.ready.notify_all();
    }

    fn wait_until(&self, deadline: Option<Instant>) -> MutexGuard<'_, SlotState<T>> {
        // The answer of a short task is often microseconds away, and a
        // wake-up from sleep costs tens of them on a VM: look first.
        if crate::process::shm::several_cpus() {
            let begun = Instant::now();
            while !self.done.load(std::sync::atomic::Ordering::Acquire)
                && begun.elapsed() < SPIN
                && deadline.is_none_or(|d| Instant::now() < d)
            {
                std::thread::yield_now();
            }
        }
        let mut state = self.state();
        while !state.done {
            match deadline {
                None => state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    state = self
                        .ready
                        .wait_timeout(state, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        state
    }
}

/// The outcome once known: a copy of it (`get` may be called again), or
/// the timeout.
fn copy<T: Clone>(state: MutexGuard<'_, SlotState<T>>, waited: Option<Duration>) -> Result<T> {
    if !state.done {
        return Err(Error::Timeout {
            after: waited.unwrap_or_default(),
            withdrawn: false,
        });
    }
    match &state.value {
        Some(Ok(value)) => Ok(value.clone()),
        Some(Err(e)) => Err(e.duplicate()),
        None => Err(ProcessError::ResultTaken.into()),
    }
}

/// Python's `AsyncResult`: the outcome of `apply_async`, `map_async` or
/// `starmap_async`, ready once the pool has it. Also a `Future`.
///
/// As in Python, `get` may be called again and gives the same outcome
/// (a copy: `T: Clone`); [`into_result`](Self::into_result) and `.await`
/// take it without a copy, consuming the handle.
pub struct AsyncResult<T> {
    slot: Arc<Slot<T>>,
}

impl<T> AsyncResult<T> {
    pub(super) fn new(slot: Arc<Slot<T>>) -> Self {
        AsyncResult { slot }
    }

    /// Wait for the outcome and give it (again on every call).
    pub fn get(&self) -> Result<T>
    where
        T: Clone,
    {
        copy(self.slot.wait_until(None), None)
    }

    /// Wait at most `timeout`; then [`Error::Timeout`] (Python's
    /// `multiprocessing.TimeoutError`), the task going on.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T>
    where
        T: Clone,
    {
        copy(
            self.slot.wait_until(Instant::now().checked_add(timeout)),
            Some(timeout),
        )
    }

    /// Wait for the outcome and take it, without a copy.
    pub fn into_result(self) -> Result<T> {
        let mut state = self.slot.wait_until(None);
        state
            .value
            .take()
            .unwrap_or(Err(ProcessError::ResultTaken.into()))
    }

    /// Wait for the outcome (without taking it).
    pub fn wait(&self) {
        drop(self.slot.wait_until(None));
    }

    /// Wait at most `timeout`; whether it is ready.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.slot
            .wait_until(Instant::now().checked_add(timeout))
            .done
    }

    /// Whether the outcome is known.
    pub fn ready(&self) -> bool {
        self.slot.state().done
    }

    /// Whether it succeeded; an error if it is not ready (Python's
    /// ValueError).
    pub fn successful(&self) -> Result<bool> {
        let state = self.slot.state();
        if !state.done {
            return Err(ProcessError::ResultNotReady.into());
        }
        Ok(state.ok)
    }
}

impl<T> Future for AsyncResult<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let mut state = self.slot.state();
        if state.done {
            return Poll::Ready(
                state
                    .value
                    .take()
                    .unwrap_or(Err(ProcessError::ResultTaken.into())),
            );
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<T> std::fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.slot.state();
        write!(f, "<AsyncResult ready={} ok={}>", state.done, state.ok)
    }
}

/// A `map`'s list as its chunks come back: each chunk is decoded (on the
/// pool's thread) as it arrives, in order straight onto the list, early
/// ones aside until their turn; the list is the outcome once the caller
/// has sent its last chunk and every chunk is in. A failure is the
/// outcome at once; what comes after it is dropped.
pub(super) struct MapList<R> {
    slot: Arc<Slot<Vec<R>>>,
    state: Mutex<MapState<R>>,
}

struct MapState<R> {
    list: Vec<R>,
    /// The chunk whose results go onto the list next.
    next: usize,
    /// Chunks that came back before their turn.
    early: BTreeMap<usize, Vec<R>>,
    /// How many chunks there are, once the caller sent the last.
    total: Option<usize>,
    /// The outcome was given (the list, or a failure).
    over: bool,
}

impl<R: DeserializeOwned> MapList<R> {
    /// A list of about `expected` results for `slot`.
    pub(super) fn new(slot: Arc<Slot<Vec<R>>>, expected: usize) -> Arc<MapList<R>> {
        Arc::new(MapList {
            slot,
            state: Mutex::new(MapState {
                list: Vec::with_capacity(expected),
                next: 0,
                early: BTreeMap::new(),
                total: None,
                over: false,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, MapState<R>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Chunk `index` came back with the `count` encoded results `bytes`.
    pub(super) fn arrived(&self, index: usize, bytes: &[u8], count: u32) {
        let mut guard = self.state();
        let state = &mut *guard;
        if state.over {
            return;
        }
        let decoded = if index == state.next {
            decode_into(&mut state.list, bytes, count).map(|()| {
                state.next += 1;
                while let Some(part) = state.early.remove(&state.next) {
                    state.list.extend(part);
                    state.next += 1;
                }
            })
        } else {
            decode_all(bytes, count).map(|part| {
                state.early.insert(index, part);
            })
        };
        let state = guard;
        match decoded {
            Ok(()) => self.complete_if_whole(state),
            Err(e) => self.fail_with(state, e),
        }
    }

    /// The caller sent its last chunk, `total` in all.
    pub(super) fn sealed(&self, total: usize) {
        let mut state = self.state();
        state.total = Some(total);
        self.complete_if_whole(state);
    }

    /// A chunk failed (or the pool gave up on the job): the outcome.
    pub(super) fn fail(&self, error: Error) {
        self.fail_with(self.state(), error);
    }

    fn fail_with(&self, mut state: MutexGuard<'_, MapState<R>>, error: Error) {
        if std::mem::replace(&mut state.over, true) {
            return;
        }
        state.list = Vec::new();
        state.early.clear();
        drop(state);
        self.slot.complete(Err(error));
    }

    fn complete_if_whole(&self, mut state: MutexGuard<'_, MapState<R>>) {
        if state.over || state.total != Some(state.next) {
            return;
        }
        state.over = true;
        let list = std::mem::take(&mut state.list);
        drop(state);
        self.slot.complete(Ok(list));
    }
}

/// Chunks of an `imap` as they come back, for its iterator.
pub(super) struct Stream {
    state: Mutex<StreamState>,
    arrived: Condvar,
}

struct StreamState {
    /// Chunk index -> its encoded results (and their count), or the error.
    chunks: BTreeMap<usize, Result<(Vec<u8>, u32)>>,
    /// How many chunks there are, once the items ran out.
    total: Option<usize>,
    /// A failure that ends the iteration once this many chunks were
    /// taken (the items' iterator panicked after them; 0: the pool was
    /// terminated, at once).
    failed: Option<(usize, Error)>,
}

impl Stream {
    pub(super) fn new() -> Arc<Stream> {
        Arc::new(Stream {
            state: Mutex::new(StreamState {
                chunks: BTreeMap::new(),
                total: None,
                failed: None,
            }),
            arrived: Condvar::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, StreamState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn chunk(&self, index: usize, result: Result<(Vec<u8>, u32)>) {
        self.state().chunks.insert(index, result);
        self.arrived.notify_all();
    }

    pub(super) fn end(&self, total: usize) {
        self.state().total = Some(total);
        self.arrived.notify_all();
    }

    /// End the iteration with `error` after the first `after` chunks.
    pub(super) fn fail(&self, after: usize, error: Error) {
        let mut state = self.state();
        if state.failed.is_none() {
            state.failed = Some((after, error));
        }
        drop(state);
        self.arrived.notify_all();
    }
}

/// What the iterator tells the pool when it takes a chunk: room for more.
pub(super) type Consumed = Box<dyn Fn() + Send + Sync>;

/// Python's `IMapIterator`: the results of `imap` (in order) or
/// `imap_unordered` (as they finish), pulled lazily; the items are read
/// only as far ahead as the pool has room for.
pub struct IMapIterator<R> {
    stream: Arc<Stream>,
    ordered: bool,
    next_chunk: usize,
    taken: usize,
    items: VecDeque<R>,
    finished: bool,
    consumed: Consumed,
    dropped: Consumed,
}

impl<R: DeserializeOwned> IMapIterator<R> {
    pub(super) fn new(
        stream: Arc<Stream>,
        ordered: bool,
        consumed: Consumed,
        dropped: Consumed,
    ) -> Self {
        IMapIterator {
            stream,
            ordered,
            next_chunk: 0,
            taken: 0,
            items: VecDeque::new(),
            finished: false,
            consumed,
            dropped,
        }
    }

    /// The next result, waiting at most `timeout`; [`Error::Timeout`]
    /// (Python's `next(timeout)` raising TimeoutError) leaves the iterator
    /// where it was, to try again.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<R>> {
        self.next_until(Instant::now().checked_add(timeout), Some(timeout))
    }

    fn next_until(
        &mut self,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Option<Result<R>> {
        loop {
            if let Some(item) = self.items.pop_front() {
                return Some(Ok(item));
            }
            if self.finished {
                return None;
            }
            let mut state = self.stream.state();
            let chunk = loop {
                let wanted = if self.ordered {
                    state.chunks.remove(&self.next_chunk)
                } else {
                    state.chunks.pop_first().map(|(_, chunk)| chunk)
                };
                if let Some(chunk) = wanted {
                    break chunk;
                }
                if state
                    .failed
                    .as_ref()
                    .is_some_and(|(after, _)| self.taken >= *after)
                {
                    self.finished = true;
                    return state.failed.take().map(|(_, error)| Err(error));
                }
                if state.total == Some(self.taken) {
                    self.finished = true;
                    return None;
                }
                match deadline {
                    None => {
                        state = self
                            .stream
                            .arrived
                            .wait(state)
                            .unwrap_or_else(|e| e.into_inner())
                    }
                    Some(deadline) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return Some(Err(Error::Timeout {
                                after: timeout.unwrap_or_default(),
                                withdrawn: false,
                            }));
                        }
                        state = self
                            .stream
                            .arrived
                            .wait_timeout(state, left)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                }
            };
            drop(state);
            self.next_chunk += 1;
            self.taken += 1;
            (self.consumed)();
            // A failed chunk is an error in its place; the others follow.
            match chunk.and_then(|(bytes, count)| decode_all::<R>(&bytes, count)) {
                Ok(items) => self.items.extend(items),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl<R: DeserializeOwned> Iterator for IMapIterator<R> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        self.next_until(None, None)
    }
}

impl<R> Drop for IMapIterator<R> {
    /// The pool stops pulling items for it.
    fn drop(&mut self) {
        (self.dropped)();
    }
}

impl<R> std::fmt::Debug for IMapIterator<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<IMapIterator ordered={} taken={}>",
            self.ordered, self.taken
        )
    }
}

/// `count` results encoded one after the other.
pub(super) fn decode_all<R: DeserializeOwned>(bytes: &[u8], count: u32) -> Result<Vec<R>> {
    let mut out = Vec::with_capacity(count as usize);
    decode_into(&mut out, bytes, count)?;
    Ok(out)
}

/// [`decode_all`] onto the end of `out` (which, on an error, may have
/// some of them).
fn decode_into<R: DeserializeOwned>(out: &mut Vec<R>, mut bytes: &[u8], count: u32) -> Result<()> {
    out.reserve(count as usize);
    for _ in 0..count {
        let (item, rest): (R, &[u8]) = postcard::take_from_bytes(bytes)
            .map_err(|e| Error::codec("decoding a task's result", e))?;
        out.push(item);
        bytes = rest;
    }
    Ok(())
}
