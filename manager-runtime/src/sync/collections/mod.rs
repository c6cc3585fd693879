//! `dict`, `list`, `set` and the `Iterator` objects that walk them.
//!
//! Each container keeps its elements as [`Value`]s behind a
//! `std::sync::Mutex` inside an `Arc`, so that an iterator handed to a
//! client reads the live container (Python's list iterator sees writes made
//! after it was created; its dict iterator notices a resize). Values that
//! hold proxy tokens keep their objects alive through [`Holds`].
//!
//! A method taking "another collection" (`extend`, `update`, `union`, ...)
//! accepts either the elements themselves or the token of a list, set or
//! dict served by the same manager, read in place as Python's server reads
//! a proxy argument that refers to one of its own objects (see
//! [`Elements`]).

mod dict;
mod holds;
mod iter;
mod list;
mod operand;
mod set;
mod table;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result, SyncError};
use crate::proxy::ProxyBase;
use crate::registry::{Constructor, Registry};
use crate::value::Value;

pub(crate) use holds::{Holds, Removed};

/// Server-side objects of this family and their dynamically typed proxies.
pub mod server {
    pub use super::dict::server::*;
    pub use super::holds::Removed;
    pub use super::iter::server::*;
    pub use super::list::server::*;
    pub use super::set::server::*;
}

/// Typed proxies of this family.
pub mod typed {
    pub use super::dict::typed::*;
    /// What a user's `#[proxy]` method returns to serve an iterator.
    pub use super::iter::server::RemoteIter;
    pub use super::iter::typed::*;
    pub use super::list::typed::*;
    pub use super::operand::{Elements, Operand};
    pub use super::set::typed::*;
}

pub(crate) fn register(registry: &mut Registry) {
    registry.register::<server::Dict>(
        "dict",
        None,
        Some(Constructor::new(|(): ()| server::Dict::default())),
    );
    registry.register::<server::List>(
        "list",
        None,
        Some(Constructor::new(|(): ()| server::List::default())),
    );
    registry.register::<server::Set>(
        "set",
        None,
        Some(Constructor::new(|(): ()| server::Set::default())),
    );
    // Only ever returned by `iter()` methods, as in Python.
    registry.register::<server::RemoteIter>("Iterator", None, None);
}

/// A proxy call's outcome with Python's exception folded into the error.
fn flatten<T>(result: Result<std::result::Result<T, SyncError>>) -> Result<T> {
    result?.map_err(Error::Sync)
}

/// Turn a value from a reply of `base`'s object into `T`, adopting the
/// proxies nested in it.
///
/// Each token of this server in a reply came with a reference granted to
/// the session, which a proxy decoded from it adopts. A token decoded as
/// something else (a bare `Value::Token`) would leave that reference held
/// until the session ends, so every grant is adopted by a guard first and
/// given back when the guards drop; a token that became a proxy keeps its
/// object alive through that proxy. (That proxy then counts one reference
/// more than the session holds, which is harmless: a session's release is
/// capped at what it holds.)
fn decode<T: DeserializeOwned>(base: &ProxyBase, value: Value) -> Result<T> {
    let client = base.client();
    let guards: Vec<ProxyBase> = value
        .tokens()
        .filter(|token| token.address == *client.address())
        .map(|token| ProxyBase::adopt(client.clone(), token.clone()))
        .collect();
    let decoded = base.decode_value(value);
    drop(guards);
    decoded
}

/// Lock a container's state, whatever a panicking caller left behind: every
/// method leaves the state consistent before it can panic.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
