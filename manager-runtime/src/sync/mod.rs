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

mod array;
mod barrier;
mod collections;
mod condition;
mod event;
mod lock;
mod manager;
mod namespace;
mod queue;
mod shared_value;

pub use manager::SyncManager;

/// The built-in objects as the server holds them, each with its generated
/// (dynamically typed) proxies. Typed proxies wrap these.
pub mod server {
    #[allow(unused_imports)] // until every family is filled in
    pub use super::array::server::*;
    #[allow(unused_imports)] // until every family is filled in
    pub use super::barrier::server::*;
    #[allow(unused_imports)] // until every family is filled in
    pub use super::collections::server::*;
    #[allow(unused_imports)] // until every family is filled in
    pub use super::condition::server::*;
    pub use super::event::{Event, EventAsyncProxy, EventProxy};
    #[allow(unused_imports)] // until every family is filled in
    pub use super::lock::server::*;
    #[allow(unused_imports)] // until every family is filled in
    pub use super::namespace::server::*;
    #[allow(unused_imports)] // until every family is filled in
    pub use super::queue::server::*;
    #[allow(unused_imports)] // until every family is filled in
    pub use super::shared_value::server::*;
}

#[allow(unused_imports)] // until every family is filled in
pub use array::typed::*;
#[allow(unused_imports)] // until every family is filled in
pub use barrier::typed::*;
#[allow(unused_imports)] // until every family is filled in
pub use collections::typed::*;
#[allow(unused_imports)] // until every family is filled in
pub use condition::typed::*;
pub use event::{EventAsyncProxy, EventProxy};
#[allow(unused_imports)] // until every family is filled in
pub use lock::typed::*;
#[allow(unused_imports)] // until every family is filled in
pub use namespace::typed::*;
#[allow(unused_imports)] // until every family is filled in
pub use queue::typed::*;
#[allow(unused_imports)] // until every family is filled in
pub use shared_value::typed::*;

/// Turn a `Duration` into the `Option<Duration>` timeout of Python's API
/// (`None` blocks forever).
#[allow(dead_code)] // used by the blocking built-ins
pub(crate) fn deadline(timeout: Option<std::time::Duration>) -> Option<tokio::time::Instant> {
    timeout.map(|t| tokio::time::Instant::now() + t)
}
