//! "Another collection" as a method's argument: the elements themselves, or
//! a proxy of a container served by the same manager, read in place.
#![forbid(unsafe_code)]

use serde::Serialize;

use super::server::{Dict, List, Set};
use super::typed::{DictAsyncProxy, DictProxy, ListAsyncProxy, ListProxy, SetAsyncProxy, SetProxy};
use crate::server::{CallContext, ObjectLock, Shared};
use crate::value::{to_value, Value};
use crate::Proxy;
use crate::{Result, SyncError};

/// What a collection method accepts where Python takes "an iterable": any
/// `IntoIterator` of elements (sent to the server), or a reference to a
/// list, set or dict proxy of the same manager (read in the server, without
/// a round trip through the client).
///
/// ```
/// # fn main() -> manager_runtime::Result<()> {
/// let manager = manager_runtime::sync::SyncManager::new();
/// manager.start_in_thread()?;
/// let a = manager.set_from([1, 2, 3])?;
/// let b = manager.list_from([3, 4])?;
/// assert_eq!(a.union(vec![9])?.len(), 4);
/// assert_eq!(a.union(&b)?, [1, 2, 3, 4]);
/// # Ok(()) }
/// ```
pub trait Elements<T> {
    /// The operand as the server reads it.
    fn into_operand(self) -> Result<Operand<T>>;
}

/// An argument prepared by [`Elements`]: a list of the elements, or a
/// container's token. The elements travel with it so that a proxy among
/// them keeps its object alive until the server holds it.
pub struct Operand<T> {
    value: Value,
    elements: Vec<T>,
}

impl<T> Operand<T> {
    fn token(proxy: &impl Proxy) -> Operand<T> {
        Operand {
            value: Value::from(proxy.token().clone()),
            elements: Vec::new(),
        }
    }

    /// The value to send, and the elements to keep until the call is done.
    #[doc(hidden)]
    pub fn into_parts(self) -> (Value, Vec<T>) {
        (self.value, self.elements)
    }
}

impl<T: Serialize, I: IntoIterator<Item = T>> Elements<T> for I {
    fn into_operand(self) -> Result<Operand<T>> {
        let elements: Vec<T> = self.into_iter().collect();
        let value = Value::List(
            elements
                .iter()
                .map(to_value)
                .collect::<std::result::Result<_, _>>()?,
        );
        Ok(Operand { value, elements })
    }
}

/// A container proxy of the same manager, read in the server.
macro_rules! container_elements {
    ($($proxy:ident),*) => {$(
        impl<T> Elements<T> for &$proxy<T> {
            fn into_operand(self) -> Result<Operand<T>> {
                Ok(Operand::token(self))
            }
        }
    )*};
}

container_elements!(ListProxy, SetProxy, ListAsyncProxy, SetAsyncProxy);

/// A dict's items, for `update`.
impl<K, V> Elements<(K, V)> for &DictProxy<K, V> {
    fn into_operand(self) -> Result<Operand<(K, V)>> {
        Ok(Operand::token(self))
    }
}

/// A dict's items, for `update`.
impl<K, V> Elements<(K, V)> for &DictAsyncProxy<K, V> {
    fn into_operand(self) -> Result<Operand<(K, V)>> {
        Ok(Operand::token(self))
    }
}

/// A container of this server named by a token.
enum Container {
    Dict(std::sync::Arc<ObjectLock<Dict>>),
    List(std::sync::Arc<ObjectLock<List>>),
    Set(std::sync::Arc<ObjectLock<Set>>),
}

fn resolve(token: &crate::proxy::Token) -> std::result::Result<Container, SyncError> {
    let not_iterable = || SyncError::TypeError(format!("{token} is not iterable here"));
    let cx = CallContext::current().ok_or_else(not_iterable)?;
    if let Ok(dict) = cx.resolve::<Dict>(token) {
        return Ok(Container::Dict(dict));
    }
    if let Ok(list) = cx.resolve::<List>(token) {
        return Ok(Container::List(list));
    }
    cx.resolve::<Set>(token)
        .map(Container::Set)
        .map_err(|_| not_iterable())
}

/// Read a served container; its methods only ever take its lock shared.
fn read<T: Shared, R>(
    cell: &ObjectLock<T>,
    f: impl FnOnce(&T) -> R,
) -> std::result::Result<R, SyncError> {
    let guard = cell
        .try_read()
        .map_err(|_| SyncError::RuntimeError(format!("`{}` is busy", T::TYPEID)))?;
    Ok(f(&guard))
}

/// The elements of an operand: the values sent, or the elements of the list
/// or set (the keys of the dict) the token names. Call it before locking
/// the receiver: the operand may be the receiver itself.
pub(super) fn elements(operand: Value) -> std::result::Result<Vec<Value>, SyncError> {
    match operand {
        Value::List(items) => Ok(items),
        Value::Map(entries) => Ok(entries.into_iter().map(|(key, _)| key).collect()),
        Value::Token(token) => match resolve(&token)? {
            Container::Dict(dict) => read(&dict, Dict::keys),
            Container::List(list) => read(&list, List::to_vec),
            Container::Set(set) => read(&set, Set::to_vec),
        },
        other => Err(SyncError::TypeError(format!(
            "'{}' object is not iterable",
            other.type_name()
        ))),
    }
}

/// The key-value pairs of an operand (`dict.update`): pairs sent as
/// two-element lists, a map, or the items of the dict the token names.
pub(super) fn pairs(operand: Value) -> std::result::Result<Vec<(Value, Value)>, SyncError> {
    let pair = |(n, item): (usize, Value)| match item {
        Value::List(pair) if pair.len() == 2 => {
            let mut pair = pair.into_iter();
            Ok((
                pair.next().unwrap_or_default(),
                pair.next().unwrap_or_default(),
            ))
        }
        Value::List(other) => Err(SyncError::ValueError(format!(
            "dictionary update sequence element #{n} has length {}; 2 is required",
            other.len()
        ))),
        other => Err(SyncError::TypeError(format!(
            "cannot convert dictionary update sequence element #{n} ('{}') to a sequence",
            other.type_name()
        ))),
    };
    match operand {
        Value::Map(entries) => Ok(entries),
        Value::Token(ref token) => match resolve(token)? {
            Container::Dict(dict) => read(&dict, Dict::items),
            _ => elements(operand)?
                .into_iter()
                .enumerate()
                .map(pair)
                .collect(),
        },
        other => elements(other)?.into_iter().enumerate().map(pair).collect(),
    }
}
