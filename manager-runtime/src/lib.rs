//! Runtime of the [`managers`](https://docs.rs/managers) crate: the wire
//! protocol, authentication, the server, blocking and async clients, proxies
//! and their reference counts, manager lifecycle and process start-up.
//!
//! Users depend on `managers`, which re-exports this crate and the macros.
#![warn(missing_docs)]
// Every unsafe block says why it is sound; modules that need none forbid
// unsafe code outright (`#![forbid(unsafe_code)]` at their top).
#![deny(clippy::undocumented_unsafe_blocks)]

// Built-in types use `#[shared]`, whose expansion names `::managers`.
extern crate self as managers;

// The layers, bottom up (ARCHITECTURE.md; `tests/layers.rs` keeps it true).
// Foundation: plain data.
mod address;
mod authkey;
mod codec;
pub mod error;
mod token;
pub mod value;
// A small Redis client, for the distributed pool; public only with
// `internals` (the fuzzers read its replies).
#[cfg(all(feature = "redis", feature = "internals"))]
pub mod redis;
#[cfg(all(feature = "redis", not(feature = "internals")))]
mod redis;
// What crosses to another process, and the process primitives: no tokio,
// no manager (the feature `process` of the facade is these alone).
mod crossing;
pub mod process;
mod wait;
// The manager (feature `manager`), from here on.
// Protocol: bytes on a socket. `wire` and `auth` are public only with the
// `internals` feature, for the fuzzers, the benchmarks and protocol tests.
#[cfg(feature = "internals")]
pub mod auth;
#[cfg(all(feature = "manager", not(feature = "internals")))]
#[allow(dead_code)] // parts only the fuzzers drive
mod auth;
#[cfg(feature = "manager")]
mod options;
#[cfg(feature = "internals")]
pub mod python;
#[cfg(all(feature = "manager", not(feature = "internals")))]
#[allow(dead_code, unused_imports)] // parts only the fuzzers and protocol tests use
mod python;
#[cfg(feature = "manager")]
mod ring;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "manager")]
mod transport;
#[cfg(feature = "internals")]
pub mod wire;
#[cfg(all(feature = "manager", not(feature = "internals")))]
#[allow(dead_code)]
mod wire;
// Object model: what a served object is.
#[cfg(feature = "manager")]
mod object;
#[cfg(feature = "manager")]
mod registry;
// Where the built-ins' state lives when not in the server (Redis).
#[cfg(all(feature = "manager", feature = "redis"))]
mod backend;
// The two sides, which never use each other.
#[cfg(feature = "manager")]
mod client;
#[cfg(feature = "manager")]
pub mod proxy;
#[cfg(feature = "manager")]
pub mod server;
// Lifecycle: starting and connecting managers.
#[cfg(feature = "manager")]
mod manager;
#[cfg(feature = "manager")]
mod spawn;
// Built on the public surface.
#[cfg(feature = "manager")]
pub mod sync;

// The root: what a user writes in the first hour. Everything else lives
// in a module named for what it holds.
pub use address::{Address, ToAddress};
pub use error::{Error, ProcessError, RemoteError, Result, SyncError};
#[cfg(feature = "manager")]
pub use manager::BaseManager;
pub use manager_macros::{manager, shared};
#[cfg(feature = "manager")]
pub use options::{default_authkey, ManagerOptions, Serializer};
pub use process::{
    active_children, bootstrap, current_process, AsyncResult, Connection, JoinableQueue, Pipe, Pod,
    Pool, Process, Queue, SimpleQueue,
};
#[cfg(feature = "manager")]
pub use proxy::Proxy;
#[cfg(feature = "manager")]
pub use sync::SyncManager;

/// What most programs import: `use managers::prelude::*;`.
///
/// The traits whose methods a proxy or a value is used through
/// ([`Proxy`]'s `token`, `base` and `with_timeout` on any proxy, including
/// one held as a generic `P: Proxy`), and the names of the first hour.
pub mod prelude {
    pub use crate::process::{Pipe, Pod, Pool, Process, Queue};
    pub use crate::{bootstrap, Error, Result};
    #[cfg(feature = "manager")]
    pub use crate::{proxy::Proxy, sync::SyncManager, BaseManager, ManagerOptions};
}

/// What generated code uses. Not a public API: it may change at any time.
#[doc(hidden)]
pub mod __private {
    pub use crate::error::{Error, RemoteError, Result};
    pub use crate::process::memory::assert_pod;
    pub use crate::process::Pod;
    #[cfg(feature = "manager")]
    pub use manager::*;
    pub use serde;

    /// What the manager's generated code uses.
    #[cfg(feature = "manager")]
    mod manager {
        pub use crate::client::caller_id;
        pub use crate::manager::BaseManager;
        pub use crate::object::MethodRef;
        pub use crate::object::{
            assert_deserialize, assert_serialize, assert_shared, decode_args, fingerprint, run_mut,
            run_mut_encoded, run_ref, run_ref_encoded, CallContext, MethodInfo, ObjectLock,
            Outcome, Plain, Reply, Returned, ReturnedOption, ReturnedResult, Shared,
        };
        pub use crate::options::ManagerOptions;
        pub use crate::proxy::{Adopt, AdoptOption, AdoptProxy, AdoptResult, Proxy, ProxyBase};
        pub use crate::python::names::{
            close_plan, release_n_plan, sort_plan, unsupported_plan, update_plan,
        };
        pub use crate::python::table::{
            PyArg, PyBack, PyDefault, PyException, PyKind, PyMethod, PyOptions, PyParam, PyReply,
            PyTimeout,
        };
        pub use crate::registry::{has_method, Constructor, Registry};
        pub use crate::sync::typed::{task_owner, FromReply};
        pub use crate::token::Token;
        pub use crate::value::{to_value, Value};
        // What the built-ins' Redis forms (`sync/redis/`) use.
        #[cfg(feature = "redis")]
        pub use crate::backend::{
            blocking, call_scratch, poll_until, ready, reply, stored, unstored, unstored_opt,
            RedisForm, RedisObject, RedisReply,
        };
        #[cfg(feature = "redis")]
        pub use crate::object::encode_args;
    }
}
