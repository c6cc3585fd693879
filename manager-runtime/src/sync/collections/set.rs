//! `set`: Python's set (a typeid of `SyncManager` since CPython 3.14),
//! served.
#![forbid(unsafe_code)]

/// The server-side set.
pub mod server {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    use super::super::iter::server::RemoteIter;
    use super::super::operand::elements;
    use super::super::table::Table;
    use crate::sync::held::{HeldTokens, Removed};
    use crate::sync::lock;
    use crate::value::Value;
    use crate::SyncError;

    #[derive(Debug, Default)]
    struct SetState {
        /// Elements as keys (values unused), in insertion order.
        table: Table,
        /// Bumped whenever an element comes or goes, so that iterators
        /// notice.
        version: u64,
        held: HeldTokens,
    }

    impl SetState {
        fn contains(&self, item: &Value) -> bool {
            self.table.contains(item)
        }

        fn elements(&self) -> Vec<Value> {
            self.table.keys().cloned().collect()
        }

        fn add(&mut self, item: Value) -> Result<(), SyncError> {
            if !self.table.contains(&item) {
                self.held.retain(&item)?;
                self.table.insert(item, Value::None);
                self.version += 1;
            }
            Ok(())
        }

        fn discard(&mut self, item: &Value) -> bool {
            match self.table.remove(item) {
                Some((item, _)) => {
                    self.version += 1;
                    self.held.release(&item);
                    true
                }
                None => false,
            }
        }
    }

    /// The distinct elements of an operand, as a lookup set.
    fn distinct(items: &[Value]) -> HashSet<&Value> {
        items.iter().collect()
    }

    /// Python's `set`, served (typeid `set`): distinct values, compared and
    /// hashed as Python does; kept in insertion order.
    #[derive(Debug, Default)]
    pub struct Set {
        state: Arc<Mutex<SetState>>,
    }

    impl Set {
        /// The elements that are (`in_other`) or are not in `other`: `s &
        /// other`, `s - other`.
        fn filtered(&self, other: Value, in_other: bool) -> Result<Vec<Value>, SyncError> {
            let other = elements(other)?;
            let other = distinct(&other);
            let state = lock(&self.state);
            Ok(state
                .table
                .keys()
                .filter(|item| other.contains(item) == in_other)
                .cloned()
                .collect())
        }

        /// `s <= other`, or `s < other` when `proper`.
        fn is_subset(&self, other: Value, proper: bool) -> Result<bool, SyncError> {
            let other = elements(other)?;
            let other = distinct(&other);
            let state = lock(&self.state);
            Ok((!proper || state.table.len() < other.len())
                && state.table.keys().all(|item| other.contains(item)))
        }

        /// `s >= other`, or `s > other` when `proper`.
        fn is_superset(&self, other: Value, proper: bool) -> Result<bool, SyncError> {
            let other = elements(other)?;
            let state = lock(&self.state);
            Ok((!proper || state.table.len() > distinct(&other).len())
                && other.iter().all(|item| state.contains(item)))
        }
    }

    #[crate::shared(typeid = "set")]
    impl Set {
        /// `len(s)`.
        pub fn len(&self) -> usize {
            lock(&self.state).table.len()
        }

        /// `not s`: whether it is empty.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// `item in s`.
        pub fn contains(&self, item: Value) -> bool {
            lock(&self.state).contains(&item)
        }

        /// `s.add(item)`.
        pub fn add(&self, item: Value) -> Result<(), SyncError> {
            lock(&self.state).add(item)
        }

        /// `s.discard(item)`: remove it if present.
        pub fn discard(&self, item: Value) {
            lock(&self.state).discard(&item);
        }

        /// `s.remove(item)`; `KeyError` if absent.
        pub fn remove(&self, item: Value) -> Result<(), SyncError> {
            if lock(&self.state).discard(&item) {
                Ok(())
            } else {
                Err(SyncError::KeyError(item.repr()))
            }
        }

        /// `s.pop()`: remove and return an element; `KeyError` if empty.
        pub fn pop(&self) -> Result<Removed, SyncError> {
            let mut state = lock(&self.state);
            let (item, _) = state
                .table
                .pop_last()
                .ok_or_else(|| SyncError::KeyError("'pop from an empty set'".into()))?;
            state.version += 1;
            Ok(state.held.release_after_reply(item))
        }

        /// `s.clear()`.
        pub fn clear(&self) {
            let mut state = lock(&self.state);
            let entries = state.table.drain();
            if !entries.is_empty() {
                state.version += 1;
            }
            entries
                .iter()
                .for_each(|(item, _)| state.held.release(item));
        }

        /// `list(s)` (and `s.copy()`): every element.
        pub fn to_vec(&self) -> Vec<Value> {
            lock(&self.state).elements()
        }

        /// `s | other`, `s.union(other)`: a new plain set.
        pub fn union(&self, other: Value) -> Result<Vec<Value>, SyncError> {
            let other = elements(other)?;
            let state = lock(&self.state);
            let mut union = state.elements();
            let mut seen: HashSet<Value> = union.iter().cloned().collect();
            union.extend(other.into_iter().filter(|item| seen.insert(item.clone())));
            Ok(union)
        }

        /// `s & other`, `s.intersection(other)`.
        pub fn intersection(&self, other: Value) -> Result<Vec<Value>, SyncError> {
            self.filtered(other, true)
        }

        /// `s - other`, `s.difference(other)`.
        pub fn difference(&self, other: Value) -> Result<Vec<Value>, SyncError> {
            self.filtered(other, false)
        }

        /// `s ^ other`, `s.symmetric_difference(other)`: what is in exactly
        /// one of the two.
        pub fn symmetric_difference(&self, other: Value) -> Result<Vec<Value>, SyncError> {
            let other = elements(other)?;
            let state = lock(&self.state);
            let theirs = distinct(&other);
            let mut result: Vec<Value> = state
                .table
                .keys()
                .filter(|item| !theirs.contains(item))
                .cloned()
                .collect();
            let mut seen = HashSet::new();
            result.extend(
                other
                    .iter()
                    .filter(|item| !state.contains(item) && seen.insert(*item))
                    .cloned(),
            );
            Ok(result)
        }

        /// `s |= other`, `s.update(other)`.
        pub fn update(&self, other: Value) -> Result<(), SyncError> {
            let other = elements(other)?;
            let mut state = lock(&self.state);
            other.into_iter().try_for_each(|item| state.add(item))
        }

        /// `s &= other`, `s.intersection_update(other)`.
        pub fn intersection_update(&self, other: Value) -> Result<(), SyncError> {
            let other = elements(other)?;
            let other = distinct(&other);
            let mut state = lock(&self.state);
            for item in state.elements() {
                if !other.contains(&item) {
                    state.discard(&item);
                }
            }
            Ok(())
        }

        /// `s -= other`, `s.difference_update(other)`.
        pub fn difference_update(&self, other: Value) -> Result<(), SyncError> {
            let other = elements(other)?;
            let mut state = lock(&self.state);
            other.iter().for_each(|item| {
                state.discard(item);
            });
            Ok(())
        }

        /// `s ^= other`, `s.symmetric_difference_update(other)`.
        pub fn symmetric_difference_update(&self, other: Value) -> Result<(), SyncError> {
            let other = elements(other)?;
            let mut seen = HashSet::new();
            let other: Vec<Value> = other
                .into_iter()
                .filter(|item| seen.insert(item.clone()))
                .collect();
            let mut state = lock(&self.state);
            for item in other {
                if !state.discard(&item) {
                    state.add(item)?;
                }
            }
            Ok(())
        }

        /// `s.isdisjoint(other)`: no element in common.
        pub fn isdisjoint(&self, other: Value) -> Result<bool, SyncError> {
            let other = elements(other)?;
            let state = lock(&self.state);
            Ok(!other.iter().any(|item| state.contains(item)))
        }

        /// `s <= other`, `s.issubset(other)`.
        pub fn issubset(&self, other: Value) -> Result<bool, SyncError> {
            self.is_subset(other, false)
        }

        /// `s >= other`, `s.issuperset(other)`.
        pub fn issuperset(&self, other: Value) -> Result<bool, SyncError> {
            self.is_superset(other, false)
        }

        /// `s < other`: a subset, and smaller.
        pub fn is_proper_subset(&self, other: Value) -> Result<bool, SyncError> {
            self.is_subset(other, true)
        }

        /// `s > other`: a superset, and larger.
        pub fn is_proper_superset(&self, other: Value) -> Result<bool, SyncError> {
            self.is_superset(other, true)
        }

        /// `iter(s)`: an iterator over the elements in the server. It fails
        /// with `RuntimeError` if an element comes or goes before it is
        /// done.
        #[proxy]
        pub fn iter(&self) -> RemoteIter {
            let state = Arc::clone(&self.state);
            let version = lock(&state).version;
            let mut slot = 0;
            RemoteIter::from_results(std::iter::from_fn(move || {
                let state = lock(&state);
                if state.version != version {
                    return Some(Err(SyncError::RuntimeError(
                        "Set changed size during iteration".into(),
                    )));
                }
                let ((item, _), next) = state.table.next_from(slot)?;
                slot = next;
                Some(Ok(item.clone()))
            }))
        }

        /// `repr(s)`: Python's form, `{1, 2}`, or `set()` when empty.
        pub fn repr(&self) -> String {
            let items = lock(&self.state).elements();
            if items.is_empty() {
                return "set()".into();
            }
            let list = Value::List(items).repr();
            format!("{{{}}}", &list[1..list.len() - 1])
        }
    }
}

/// The typed set proxy.
pub mod typed {
    use std::borrow::Borrow;
    use std::marker::PhantomData;

    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use super::super::iter::typed::{IterAsyncProxy, IterProxy};
    use super::super::operand::{send_operand, Elements};
    use super::server::{SetAsyncProxy as RawSetAsyncProxy, SetProxy as RawSetProxy};
    use crate::sync::typed::{decode, decode_all, dual_proxy, flatten, flavours, typed_proxy};
    use crate::sync::SyncManager;
    use crate::value::{to_value, Value};
    use crate::Proxy;
    use crate::Result;

    /// A typed proxy of a shared `set` (Python's `SetProxy`, CPython 3.14):
    /// every method is one call to the server. Operations that take another
    /// collection accept any `IntoIterator` of elements or a proxy of a
    /// list, set or dict of the same manager ([`Elements`]); those that
    /// build a new set return its elements as a `Vec` (see
    /// [`to_set`](Self::to_set) for a set type).
    ///
    /// ```
    /// # fn main() -> manager_runtime::Result<()> {
    /// let manager = manager_runtime::sync::SyncManager::new();
    /// manager.start_in_thread()?;
    /// let s = manager.set_from([1, 2, 3])?;
    /// assert_eq!(s.intersection([2, 3, 4])?, [2, 3]);
    /// s.difference_update([1])?;
    /// assert!(s.issubset([2, 3, 4])?);
    /// # Ok(()) }
    /// ```
    pub struct SetProxy<T> {
        raw: RawSetProxy,
        _type: PhantomData<fn() -> T>,
    }

    typed_proxy!(SetProxy<T>, RawSetProxy);

    /// The async form of [`SetProxy`]: the same methods, as futures.
    pub struct SetAsyncProxy<T> {
        raw: RawSetAsyncProxy,
        _type: PhantomData<fn() -> T>,
    }

    typed_proxy!(SetAsyncProxy<T>, RawSetAsyncProxy);

    flavours!(SetProxy<T>, SetAsyncProxy);

    impl<T> SetProxy<T> {
        /// `iter(s)`: an iterator in the server. It fails with
        /// [`SyncError::RuntimeError`](crate::SyncError::RuntimeError) if
        /// the set changes size meanwhile.
        pub fn iter(&self) -> Result<IterProxy<T>> {
            Ok(self.raw.iter()?.into())
        }
    }

    impl<T> SetAsyncProxy<T> {
        /// `iter()` as a [`Stream`](futures_core::Stream); see
        /// [`SetProxy::iter`].
        pub async fn iter(&self) -> Result<IterAsyncProxy<T>> {
            Ok(self.raw.iter().await?.into())
        }
    }

    dual_proxy! {
        impl<T> SetProxy, SetAsyncProxy
        where [T: Serialize + DeserializeOwned]
        {
            /// `len(s)`.
            pub fn len(&self) -> Result<usize> {
                wait!(self.raw.len())
            }

            /// `not s`: whether it is empty.
            pub fn is_empty(&self) -> Result<bool> {
                wait!(self.raw.is_empty())
            }

            /// `item in s`.
            pub fn contains<Q>(&self, item: &Q) -> Result<bool>
            where [T: Borrow<Q>, Q: Serialize + ?Sized]
            {
                wait!(self.raw.contains(to_value(item)?))
            }

            /// `s.add(item)`.
            pub fn add(&self, item: T) -> Result<()> {
                flatten(wait!(self.raw.add(to_value(&item)?)))
            }

            /// `s.discard(item)`: remove it if present.
            pub fn discard<Q>(&self, item: &Q) -> Result<()>
            where [T: Borrow<Q>, Q: Serialize + ?Sized]
            {
                wait!(self.raw.discard(to_value(item)?))
            }

            /// `s.remove(item)`;
            /// [`SyncError::KeyError`](crate::SyncError::KeyError) if absent.
            pub fn remove<Q>(&self, item: &Q) -> Result<()>
            where [T: Borrow<Q>, Q: Serialize + ?Sized]
            {
                flatten(wait!(self.raw.remove(to_value(item)?)))
            }

            /// `s.pop()`: remove and return an element;
            /// [`SyncError::KeyError`](crate::SyncError::KeyError) if empty.
            pub fn pop(&self) -> Result<T> {
                decode(self.raw.base(), flatten(wait!(self.raw.pop()))?.into_value())
            }

            /// `s.clear()`.
            pub fn clear(&self) -> Result<()> {
                wait!(self.raw.clear())
            }

            /// `s.copy()`: every element.
            pub fn copy(&self) -> Result<Vec<T>> {
                wait!(self.to_vec())
            }

            /// `list(s)`.
            pub fn to_vec(&self) -> Result<Vec<T>> {
                decode_all(self.raw.base(), wait!(self.raw.to_vec())?)
            }

            /// `set(s)` as any collection: `s.to_set::<HashSet<_>>()`.
            pub fn to_set<S>(&self) -> Result<S> where [S: FromIterator<T>] {
                Ok(wait!(self.to_vec())?.into_iter().collect())
            }

            /// `s | other`.
            pub fn union(&self, other: impl Elements<T>) -> Result<Vec<T>> {
                let values = send_operand!(other, |operand| wait!(self.raw.union(operand)))?;
                decode_all(self.raw.base(), values)
            }

            /// `s & other`.
            pub fn intersection(&self, other: impl Elements<T>) -> Result<Vec<T>> {
                decode_all(self.raw.base(), send_operand!(other, |operand| {
                    wait!(self.raw.intersection(operand))
                })?)
            }

            /// `s - other`.
            pub fn difference(&self, other: impl Elements<T>) -> Result<Vec<T>> {
                let values = send_operand!(other, |operand| wait!(self.raw.difference(operand)))?;
                decode_all(self.raw.base(), values)
            }

            /// `s ^ other`.
            pub fn symmetric_difference(&self, other: impl Elements<T>) -> Result<Vec<T>> {
                decode_all(self.raw.base(), send_operand!(other, |operand| {
                    wait!(self.raw.symmetric_difference(operand))
                })?)
            }

            /// `s |= other`.
            pub fn update(&self, other: impl Elements<T>) -> Result<()> {
                send_operand!(other, |operand| wait!(self.raw.update(operand)))
            }

            /// `s &= other`.
            pub fn intersection_update(&self, other: impl Elements<T>) -> Result<()> {
                send_operand!(other, |operand| wait!(self.raw.intersection_update(operand)))
            }

            /// `s -= other`.
            pub fn difference_update(&self, other: impl Elements<T>) -> Result<()> {
                send_operand!(other, |operand| wait!(self.raw.difference_update(operand)))
            }

            /// `s ^= other`.
            pub fn symmetric_difference_update(&self, other: impl Elements<T>) -> Result<()> {
                send_operand!(other, |operand| {
                    wait!(self.raw.symmetric_difference_update(operand))
                })
            }

            /// `s.isdisjoint(other)`.
            pub fn isdisjoint(&self, other: impl Elements<T>) -> Result<bool> {
                send_operand!(other, |operand| wait!(self.raw.isdisjoint(operand)))
            }

            /// `s <= other`, `s.issubset(other)`.
            pub fn issubset(&self, other: impl Elements<T>) -> Result<bool> {
                send_operand!(other, |operand| wait!(self.raw.issubset(operand)))
            }

            /// `s >= other`, `s.issuperset(other)`.
            pub fn issuperset(&self, other: impl Elements<T>) -> Result<bool> {
                send_operand!(other, |operand| wait!(self.raw.issuperset(operand)))
            }

            /// `s < other`.
            pub fn is_proper_subset(&self, other: impl Elements<T>) -> Result<bool> {
                send_operand!(other, |operand| wait!(self.raw.is_proper_subset(operand)))
            }

            /// `s > other`.
            pub fn is_proper_superset(&self, other: impl Elements<T>) -> Result<bool> {
                send_operand!(other, |operand| wait!(self.raw.is_proper_superset(operand)))
            }

            /// `repr(s)`: the set in Python's notation.
            pub fn repr(&self) -> Result<String> {
                wait!(self.raw.repr())
            }
        }
    }

    impl SyncManager {
        /// A new shared `set`, empty.
        pub fn set<T>(&self) -> Result<SetProxy<T>> {
            self.create("set", &(None::<Value>,))
        }

        /// A new shared `set` holding the distinct `items` (Python's
        /// `manager.set(items)`): any collection, or a list, set or dict
        /// proxy of this manager. One call: an item that cannot be stored
        /// fails it with its typed error.
        pub fn set_from<T>(&self, items: impl Elements<T>) -> Result<SetProxy<T>>
        where
            T: Serialize + DeserializeOwned,
        {
            self.create_filled("set", items)
        }

        /// Async form of [`set`](Self::set).
        pub async fn set_async<T>(&self) -> Result<SetAsyncProxy<T>> {
            self.create_async("set", &(None::<Value>,)).await
        }

        /// Async form of [`set_from`](Self::set_from).
        pub async fn set_from_async<T>(&self, items: impl Elements<T>) -> Result<SetAsyncProxy<T>>
        where
            T: Serialize + DeserializeOwned,
        {
            self.create_filled_async("set", items).await
        }
    }
}
