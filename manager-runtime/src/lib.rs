//! Runtime of the [`managers`](https://docs.rs/managers) crate: the wire
//! protocol, authentication, the server, blocking and async clients, proxies
//! and their reference counts, manager lifecycle and process start-up.
//!
//! Users depend on `managers`, which re-exports this crate and the macros.
#![warn(missing_docs)]

// Built-in types use `#[shared]`, whose expansion names `::managers`.
extern crate self as managers;

mod address;
pub mod auth;
mod client;
mod error;
mod manager;
mod object;
mod proxy;
mod registry;
mod server;
mod spawn;
pub mod sync;
#[cfg(feature = "tls")]
pub mod tls;
mod transport;
pub mod value;
pub mod wire;

pub use address::{Address, ToAddress};
pub use client::{caller_id, Client};
pub use error::{Error, RemoteError, Result, SyncError};
pub use manager::{default_authkey, BaseManager, ManagerOptions, Serializer};
pub use manager_macros::{manager, shared};
pub use object::{CallContext, Cell, MethodInfo, ServerLink, Shared};
pub use proxy::{Proxy, ProxyBase, Token};
pub use registry::{Constructor, Registry};
pub use server::{DebugEntry, Server, ServerStopper};
pub use spawn::bootstrap;

/// What generated code uses. Not a public API: it may change at any time.
#[doc(hidden)]
pub mod __private {
    pub use crate::error::{Error, RemoteError, Result};
    pub use crate::manager::{BaseManager, ManagerOptions};
    pub use crate::object::{
        assert_deserialize, assert_serialize, assert_shared, decode_args, fingerprint, run_mut,
        run_ref, CallContext, Cell, MethodInfo, Outcome, Plain, Reply, Returned, ReturnedOption,
        ReturnedResult, Shared,
    };
    pub use crate::proxy::{Adopt, AdoptOption, AdoptProxy, AdoptResult, Proxy, ProxyBase, Token};
    pub use crate::registry::{has_method, Constructor, Registry};
    pub use serde;
}
