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

use crate::server::{Constructor, Registry};
use crate::sync::SyncManager;
use crate::value::Value;
use crate::{Proxy, Result};

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
    /// What a user's `#[proxy]` method returns to serve an iterator, and
    /// its proxies (`typed::<T>()` gives an [`IterProxy`]).
    pub use super::iter::server::{RemoteIter, RemoteIterAsyncProxy, RemoteIterProxy};
    pub use super::iter::typed::*;
    pub use super::list::typed::*;
    pub use super::operand::{Elements, Operand};
    pub use super::set::typed::*;
}

/// The constructor of a container: empty, or filled from an operand (the
/// elements, or another container of the server) in the same call, so a
/// bad element fails the creation with its typed error and nothing is
/// left behind.
fn filled<C: Default>(
    fill: fn(&C, Value) -> std::result::Result<(), crate::SyncError>,
) -> impl Fn((Option<Value>,)) -> std::result::Result<C, crate::SyncError> {
    move |(items,)| {
        let container = C::default();
        if let Some(items) = items {
            fill(&container, items)?;
        }
        Ok(container)
    }
}

pub(crate) fn register(registry: &mut Registry) {
    registry.register::<server::Dict>(
        "dict",
        None,
        Some(Constructor::try_new(filled(server::Dict::update))),
    );
    registry.register::<server::List>(
        "list",
        None,
        Some(Constructor::try_new(filled(server::List::extend))),
    );
    registry.register::<server::Set>(
        "set",
        None,
        Some(Constructor::try_new(filled(server::Set::update))),
    );
    // Only ever returned by `iter()` methods, as in Python.
    registry.register::<server::RemoteIter>("Iterator", None, None);
}

impl SyncManager {
    /// A new container of `typeid`, filled with `items` in the same call.
    fn create_filled<P: Proxy, T>(
        &self,
        typeid: &str,
        items: impl typed::Elements<T>,
    ) -> Result<P> {
        let (value, elements) = items.into_operand()?.into_parts();
        let created = self.create(typeid, &(Some(value),));
        // Proxies among the elements lived until the server held them.
        drop(elements);
        created
    }

    /// Async form of [`create_filled`](Self::create_filled).
    async fn create_filled_async<P: Proxy, T>(
        &self,
        typeid: &str,
        items: impl typed::Elements<T>,
    ) -> Result<P> {
        let (value, elements) = items.into_operand()?.into_parts();
        let created = self.create_async(typeid, &(Some(value),)).await;
        drop(elements);
        created
    }
}
