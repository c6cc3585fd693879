//! `dict`, `list`, `set` and the `Iterator` objects that walk them.
//!
//! Each container keeps its elements as [`Value`]s behind a
//! `std::sync::Mutex` inside an `Arc`, so that an iterator handed to a
//! client reads the live container (Python's list iterator sees writes made
//! after it was created; its dict iterator notices a resize). Values that
//! hold proxy tokens keep their objects alive through a `HeldTokens`.
//!
//! A method taking "another collection" (`extend`, `update`, `union`, ...)
//! accepts either the elements themselves or the token of a list, set or
//! dict served by the same manager, read in place as Python's server reads
//! a proxy argument that refers to one of its own objects (see
//! [`Elements`]).

mod dict;
mod iter;
mod list;
mod operand;
mod set;
mod table;

use crate::{Constructor, Registry};

/// Server-side objects of this family and their dynamically typed proxies.
pub mod server {
    pub use super::dict::server::*;
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
