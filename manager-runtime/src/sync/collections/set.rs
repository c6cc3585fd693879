//! `set`: Python's set (a typeid of `SyncManager` since CPython 3.14),
//! served.
#![forbid(unsafe_code)]

/// The server-side set.
pub mod server {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    use super::super::iter::server::RemoteIter;
    use super::super::iter::typed::{IterAsyncProxy, IterProxy};
    use super::super::operand::{elements, Elements};
    use std::borrow::Cow;

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
            self.table.keys().map(Cow::into_owned).collect()
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
                .filter(|item| other.contains(&**item) == in_other)
                .map(Cow::into_owned)
                .collect())
        }

        /// `s <= other`, or `s < other` when `proper`.
        fn is_subset(&self, other: Value, proper: bool) -> Result<bool, SyncError> {
            let other = elements(other)?;
            let other = distinct(&other);
            let state = lock(&self.state);
            Ok((!proper || state.table.len() < other.len())
                && state.table.keys().all(|item| other.contains(&*item)))
        }

        /// `s >= other`, or `s > other` when `proper`.
        fn is_superset(&self, other: Value, proper: bool) -> Result<bool, SyncError> {
            let other = elements(other)?;
            let state = lock(&self.state);
            Ok((!proper || state.table.len() > distinct(&other).len())
                && other.iter().all(|item| state.contains(item)))
        }
    }

    impl Set {
        /// A set of `items` (distinct) that keeps no proxy's object alive:
        /// a set in Redis, read for one call.
        #[cfg(feature = "redis")]
        pub(in crate::sync) fn scratch(items: Vec<Value>) -> Set {
            let mut state = SetState {
                held: HeldTokens::inert(),
                ..SetState::default()
            };
            for item in items {
                state.table.insert(item, Value::None);
            }
            Set {
                state: Arc::new(Mutex::new(state)),
            }
        }
    }

    #[crate::shared(typeid = "set", typed(T))]
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
        pub fn contains(&self, #[of(&T)] item: Value) -> bool {
            lock(&self.state).contains(&item)
        }

        /// `s.add(item)`.
        pub fn add(&self, #[of(T)] item: Value) -> Result<(), SyncError> {
            lock(&self.state).add(item)
        }

        /// `s.discard(item)`: remove it if present.
        pub fn discard(&self, #[of(&T)] item: Value) {
            lock(&self.state).discard(&item);
        }

        /// `s.remove(item)`; `KeyError` if absent.
        pub fn remove(&self, #[of(&T)] item: Value) -> Result<(), SyncError> {
            if lock(&self.state).discard(&item) {
                Ok(())
            } else {
                Err(SyncError::KeyError(item.repr()))
            }
        }

        /// `s.pop()`: remove and return an element; [`SyncError::KeyError`]
        /// if empty.
        #[returns(T)]
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
        #[returns(Vec<T>)]
        pub fn to_vec(&self) -> Vec<Value> {
            lock(&self.state).elements()
        }

        /// `s | other`, `s.union(other)`: a new plain set.
        #[returns(Vec<T>)]
        pub fn union(&self, #[of(impl Elements<T>)] other: Value) -> Result<Vec<Value>, SyncError> {
            let other = elements(other)?;
            let state = lock(&self.state);
            let mut union = state.elements();
            let mut seen: HashSet<Value> = union.iter().cloned().collect();
            union.extend(other.into_iter().filter(|item| seen.insert(item.clone())));
            Ok(union)
        }

        /// `s & other`, `s.intersection(other)`.
        #[returns(Vec<T>)]
        pub fn intersection(
            &self,
            #[of(impl Elements<T>)] other: Value,
        ) -> Result<Vec<Value>, SyncError> {
            self.filtered(other, true)
        }

        /// `s - other`, `s.difference(other)`.
        #[returns(Vec<T>)]
        pub fn difference(
            &self,
            #[of(impl Elements<T>)] other: Value,
        ) -> Result<Vec<Value>, SyncError> {
            self.filtered(other, false)
        }

        /// `s ^ other`, `s.symmetric_difference(other)`: what is in exactly
        /// one of the two.
        #[returns(Vec<T>)]
        pub fn symmetric_difference(
            &self,
            #[of(impl Elements<T>)] other: Value,
        ) -> Result<Vec<Value>, SyncError> {
            let other = elements(other)?;
            let state = lock(&self.state);
            let theirs = distinct(&other);
            let mut result: Vec<Value> = state
                .table
                .keys()
                .filter(|item| !theirs.contains(&**item))
                .map(Cow::into_owned)
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
        pub fn update(&self, #[of(impl Elements<T>)] other: Value) -> Result<(), SyncError> {
            let other = elements(other)?;
            let mut state = lock(&self.state);
            other.into_iter().try_for_each(|item| state.add(item))
        }

        /// `s &= other`, `s.intersection_update(other)`.
        pub fn intersection_update(
            &self,
            #[of(impl Elements<T>)] other: Value,
        ) -> Result<(), SyncError> {
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
        pub fn difference_update(
            &self,
            #[of(impl Elements<T>)] other: Value,
        ) -> Result<(), SyncError> {
            let other = elements(other)?;
            let mut state = lock(&self.state);
            other.iter().for_each(|item| {
                state.discard(item);
            });
            Ok(())
        }

        /// `s ^= other`, `s.symmetric_difference_update(other)`.
        pub fn symmetric_difference_update(
            &self,
            #[of(impl Elements<T>)] other: Value,
        ) -> Result<(), SyncError> {
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
        pub fn isdisjoint(&self, #[of(impl Elements<T>)] other: Value) -> Result<bool, SyncError> {
            let other = elements(other)?;
            let state = lock(&self.state);
            Ok(!other.iter().any(|item| state.contains(item)))
        }

        /// `s <= other`, `s.issubset(other)`.
        pub fn issubset(&self, #[of(impl Elements<T>)] other: Value) -> Result<bool, SyncError> {
            self.is_subset(other, false)
        }

        /// `s >= other`, `s.issuperset(other)`.
        pub fn issuperset(&self, #[of(impl Elements<T>)] other: Value) -> Result<bool, SyncError> {
            self.is_superset(other, false)
        }

        /// `s < other`: a subset, and smaller.
        pub fn is_proper_subset(
            &self,
            #[of(impl Elements<T>)] other: Value,
        ) -> Result<bool, SyncError> {
            self.is_subset(other, true)
        }

        /// `s > other`: a superset, and larger.
        pub fn is_proper_superset(
            &self,
            #[of(impl Elements<T>)] other: Value,
        ) -> Result<bool, SyncError> {
            self.is_superset(other, true)
        }

        /// `iter(s)`: an iterator over the elements in the server. It fails
        /// with `RuntimeError` if an element comes or goes before it is
        /// done.
        #[proxy]
        #[returns(IterProxy<T>)]
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
                Some(Ok(item.into_owned()))
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

/// The typed set proxy: generated with the server, see
/// [`Set`](server::Set) and [`SyncManager::set`].
pub mod typed {
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use super::super::operand::Elements;
    pub use super::server::{SetAsyncProxy, SetProxy};
    use crate::sync::typed::dual_proxy;
    use crate::sync::SyncManager;
    use crate::value::Value;
    use crate::Result;

    dual_proxy! {
        impl<T> SetProxy, SetAsyncProxy
        where [T: Serialize + DeserializeOwned]
        {
            /// `s.copy()`: every element.
            pub fn copy(&self) -> Result<Vec<T>> {
                wait!(self.to_vec())
            }

            /// `set(s)` as any collection: `s.to_set::<HashSet<_>>()`.
            pub fn to_set<S>(&self) -> Result<S> where [S: FromIterator<T>] {
                Ok(wait!(self.to_vec())?.into_iter().collect())
            }
        }
    }

    impl SyncManager {
        /// A new shared `set`, empty (Python's `SetProxy`, CPython 3.14):
        /// every method of its [`SetProxy`] is one call to the server.
        /// Operations that take another collection accept any `IntoIterator`
        /// of elements or a proxy of a list, set or dict of the same manager
        /// ([`Elements`]); those that build a new set return its elements as
        /// a `Vec` (see [`to_set`](SetProxy::to_set) for a set type).
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
