//! Python's `SyncManager`: every built-in shared type, typed.
//!
//! [`SyncManager`] serves dicts, lists, sets, queues, locks, conditions,
//! events, barriers, namespaces, values and arrays without registering any
//! of them. The server stores their elements as a dynamic
//! [`Value`](crate::value::Value), so one server serves `Dict<String, i64>`
//! and `List<Vec<f64>>` alike, and compares, hashes, sorts and nests them as
//! Python does; the proxies here are generic and typed
//! ([`DictProxy<K, V>`](DictProxy)).
//!
//! Blocking operations (`Queue::get`, `Lock::acquire`, `Event::wait`, ...)
//! are futures inside the server: a thousand waiters cost a thousand small
//! futures, not a thousand threads. Python's exceptions come back as
//! [`SyncError`](crate::SyncError) inside [`Error::Sync`](crate::Error::Sync).
//!
//! The server-side objects are in [`server`]; register them in your own
//! `manager!` (as the seed registers a queue as `get_queue`, with
//! `server::ManagedQueue`) and view their proxies with your types with
//! `retype()` (`manager.get_queue()?.retype::<String>()`).
//!
//! # Writing a built-in
//!
//! A built-in is its server `impl` and attributes; `#[shared]` writes the
//! rest. `event.rs` is the smallest, `collections/dict.rs` the fullest.
//!
//! - `#[crate::shared(typeid = "dict", typed(K, V))]`: the proxies are
//!   `DictProxy<K = Value, V = Value>` and `DictAsyncProxy`, generic over
//!   the caller's types (`Value` by default: the dynamic proxy); `typed`
//!   alone for one that is not generic; `proxy = "Queue"` names them when
//!   the server type's name would clash (`ManagedQueue`).
//! - On a `Value` parameter, `#[of(K)]` (the proxy takes a `K`), `#[of(&K)]`
//!   (a borrowed form of `K`, as `HashMap::get` takes keys) or
//!   `#[of(impl Elements<T>)]` (any collection, or another container of the
//!   server); `#[owner]` on a `u64` is the calling thread (blocking proxy)
//!   or task (async), with an `_as` form of the method to name another.
//! - `#[returns(V)]` is the proxies' result for a method that returns
//!   values (`Vec<(K, V)>` for `Vec<(Value, Value)>`); a served
//!   `Result<T, SyncError>` is the proxy's `Result<T>`, Python's exception
//!   [`Error::Sync`](crate::Error::Sync). `#[undo(f)]` makes the async call
//!   safe to drop (`f` gets what the server did: a lock to release, an item
//!   to put back).
//! - `#[py("__getitem__", key)]` (and `#[py(default = true)]` on a
//!   parameter) is how CPython's proxies call the method and how ours call
//!   a CPython server's object: one table, both directions (the server's
//!   `python::names` reads it one way, the pickle client the other; a
//!   renamed method renames its entry).
//! - Every server method takes `&self`: state lives behind a
//!   `std::sync::Mutex` (never held across `.await`), waiting uses tokio's
//!   `Notify`/`watch`/`Semaphore`. A waiting `&mut self` method would hold
//!   the object's write lock and stall every other caller. Blocking
//!   operations are `async fn` with Python's `block` and
//!   `timeout: Option<Duration>` parameters.
//! - What is written by hand: guards (`guard()`), iterators and streams
//!   (`IterProxy`), the pool's chunking, and one-line conveniences over
//!   generated methods (`acquire()`, `get()`, `slice(range)`), written once
//!   for both flavours in `typed::dual_proxy!`.
//! - A built-in storing a value that holds tokens keeps those objects
//!   alive through a `HeldTokens` (`held.rs`): it `retain`s each token it
//!   stores (except a token of itself, to avoid a cycle) and `release`s it
//!   when the value leaves, at the latest when the holder drops; a value
//!   sent back to a caller (`pop`) goes out as a
//!   [`Removed`](server::Removed), which keeps its references until the
//!   reply is encoded.

mod array;
mod barrier;
mod collections;
mod condition;
mod event;
mod held;
mod lock;
mod manager;
mod namespace;
mod pool;
mod queue;
#[cfg(feature = "redis")]
mod redis;
mod shared_value;
pub(crate) mod typed;

pub use manager::SyncManager;

/// The built-in objects as the server holds them. Their proxies are in
/// [`sync`](self) (`sync::DictProxy`, ...).
pub mod server {
    pub use super::array::server::ManagedArray;
    pub use super::barrier::server::{Arrival, Barrier};
    pub use super::collections::server::{Dict, List, RemoteIter, Set};
    pub use super::condition::server::Condition;
    pub use super::event::Event;
    pub use super::held::Removed;
    pub use super::lock::server::{ManagedLock, ManagedRLock, Semaphore};
    pub use super::namespace::server::Namespace;
    pub use super::pool::server::{ManagedPool, PoolFailure, PoolJob, PoolRule};
    pub use super::queue::server::{ManagedQueue, QueueItem};
    pub use super::shared_value::server::ManagedValue;
}

pub use array::typed::*;
pub use barrier::typed::*;
pub use collections::typed::*;
pub use condition::typed::*;
pub use event::{EventAsyncProxy, EventProxy};
pub use lock::typed::*;
pub use namespace::typed::*;
pub use pool::typed::*;
pub use queue::typed::*;
pub use shared_value::typed::*;

/// Turn a `Duration` into the `Option<Duration>` timeout of Python's API
/// (`None` blocks forever).
pub(crate) fn deadline(timeout: Option<std::time::Duration>) -> Option<tokio::time::Instant> {
    timeout.map(|t| tokio::time::Instant::now() + t)
}

/// Lock a built-in's state, whatever a panicking caller left behind: every
/// critical section leaves its state consistent before anything can panic.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
