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
//! `manager!` (as the seed registers a queue as `get_queue`) and turn their
//! proxies into typed ones with `.into()`.
//!
//! # Writing a built-in
//!
//! `event.rs` is the pattern. Each family file keeps `pub mod server` (the
//! `#[crate::shared(typeid = "...")]` types, Python's typeid names; their
//! generated proxies land there too), `pub mod typed` (typed proxies), a
//! `register` function, and `impl SyncManager` create methods.
//!
//! - Every server method takes `&self`: state lives behind a
//!   `std::sync::Mutex` (never held across `.await`), waiting uses tokio's
//!   `Notify`/`watch`/`Semaphore`. A waiting `&mut self` method would hold
//!   the object's write lock and stall every other caller.
//! - Blocking operations are `async fn` with Python's `block` and
//!   `timeout: Option<Duration>` parameters: waiters are futures, not
//!   threads, and timeouts are honoured to the millisecond.
//! - Elements cross as [`Value`](crate::value::Value); Python's exceptions
//!   are `Result<_, SyncError>`. Typed proxies (`typed.rs`) convert
//!   arguments with `to_value` and results with `typed::decode` (which
//!   adopts nested proxies into the caller's session), fold
//!   `Result<Result<T, SyncError>>` into `crate::Result<T>` with
//!   `typed::flatten`, and get `raw()`, `Clone`, `Debug`, `Display`, serde
//!   (as the token), `Proxy` and `From` the raw proxy from
//!   `typed_proxy!`.
//! - Every typed proxy comes in two flavours, `XProxy` and `XAsyncProxy`,
//!   wrapping the two raw proxies `#[shared]` generated. Their methods are
//!   written once, in `typed::dual_proxy!`, whose bodies say `wait!(call)`
//!   for each call (awaited in the async flavour) and `owner!()` for the
//!   thread or task that owns a lock; only methods whose types differ
//!   (`iter()`, `guard()`) are written per flavour. Each family also has
//!   `to_async()`/`to_blocking()` and an async create method
//!   (`dict_async()`, ...).
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
mod shared_value;
pub(crate) mod typed;

pub use manager::SyncManager;

/// The built-in objects as the server holds them, each with its generated
/// (dynamically typed) proxies. Typed proxies wrap these.
pub mod server {
    pub use super::array::server::*;
    pub use super::barrier::server::*;
    pub use super::collections::server::*;
    pub use super::condition::server::*;
    pub use super::event::{Event, EventAsyncProxy, EventProxy};
    pub use super::held::Removed;
    pub use super::lock::server::*;
    pub use super::namespace::server::*;
    pub use super::pool::server::*;
    pub use super::queue::server::*;
    pub use super::shared_value::server::*;
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
