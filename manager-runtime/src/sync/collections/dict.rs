//! `dict`: Python's dict, served, in insertion order.
#![forbid(unsafe_code)]

/// The server-side dict.
pub mod server {
    use std::sync::{Arc, Mutex};

    use super::super::iter::server::RemoteIter;
    use super::super::iter::typed::{IterAsyncProxy, IterProxy};
    use super::super::operand::{pairs, Elements};
    use std::borrow::Cow;

    use super::super::table::{owned, Table};
    use crate::sync::held::{HeldTokens, Removed};
    use crate::sync::lock;
    use crate::value::Value;
    use crate::SyncError;

    #[derive(Debug, Default)]
    struct DictState {
        table: Table,
        /// Bumped whenever a key comes or goes, so that iterators notice.
        version: u64,
        held: HeldTokens,
    }

    impl DictState {
        fn insert(&mut self, key: Value, value: Value) -> Result<(), SyncError> {
            if self.table.contains(&key) {
                // The dict keeps its own key, as Python's does.
                self.held.retain(&value)?;
                if let Some(old) = self.table.insert(key, value) {
                    self.held.release(&old);
                }
            } else {
                self.held.retain_all([&key, &value])?;
                self.table.insert(key, value);
                self.version += 1;
            }
            Ok(())
        }

        fn remove(&mut self, key: &Value) -> Option<Removed> {
            let (key, value) = self.table.remove(key)?;
            self.version += 1;
            self.held.release(&key);
            Some(self.held.release_after_reply(value))
        }
    }

    fn key_error(key: &Value) -> SyncError {
        SyncError::KeyError(key.repr())
    }

    /// Python's `dict`, served (typeid `dict`): keys compare and hash as
    /// Python's do (`1`, `1.0` and `True` are one key) and keep their
    /// insertion order.
    #[derive(Debug, Default)]
    pub struct Dict {
        state: Arc<Mutex<DictState>>,
    }

    impl Dict {
        /// Every entry, in order (the items of a dict read as an operand).
        pub(crate) fn entries(&self) -> Vec<(Value, Value)> {
            lock(&self.state).table.iter().map(owned).collect()
        }
    }

    #[crate::shared(typeid = "dict", typed(K, V))]
    impl Dict {
        /// `len(d)`.
        #[py("__len__")]
        pub fn len(&self) -> usize {
            lock(&self.state).table.len()
        }

        /// `not d`: whether it is empty.
        #[py("__len__", outgoing, back = is_zero)]
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// `key in d`.
        #[py("__contains__")]
        pub fn contains(&self, #[of(&K)] key: Value) -> bool {
            lock(&self.state).table.contains(&key)
        }

        /// `d[key]`; [`SyncError::KeyError`] if absent.
        #[py("__getitem__", key)]
        #[returns(V)]
        pub fn get(&self, #[of(&K)] key: Value) -> Result<Value, SyncError> {
            let state = lock(&self.state);
            state
                .table
                .get(&key)
                .map(Cow::into_owned)
                .ok_or_else(|| key_error(&key))
        }

        /// `d.get(key)`: the value, if present.
        #[py("__getitem__", outgoing, back = none_on_key_error)]
        #[returns(Option<V>)]
        pub fn get_opt(&self, #[of(&K)] key: Value) -> Option<Value> {
            lock(&self.state).table.get(&key).map(Cow::into_owned)
        }

        /// `d.get(key, default)`.
        #[py("get")]
        #[returns(V)]
        pub fn get_or(
            &self,
            #[of(&K)] key: Value,
            #[of(V)]
            #[py(default = None)]
            default: Value,
        ) -> Value {
            lock(&self.state)
                .table
                .get(&key)
                .map(Cow::into_owned)
                .unwrap_or(default)
        }

        /// `d[key] = value`.
        #[py("__setitem__")]
        pub fn set(&self, #[of(K)] key: Value, #[of(V)] value: Value) -> Result<(), SyncError> {
            lock(&self.state).insert(key, value)
        }

        /// `del d[key]`; [`SyncError::KeyError`] if absent.
        #[py("__delitem__", key)]
        pub fn del(&self, #[of(&K)] key: Value) -> Result<(), SyncError> {
            let mut state = lock(&self.state);
            state.remove(&key).map(drop).ok_or_else(|| key_error(&key))
        }

        /// `d.clear()`.
        #[py("clear")]
        pub fn clear(&self) {
            let mut state = lock(&self.state);
            let entries = state.table.drain();
            if !entries.is_empty() {
                state.version += 1;
            }
            for (key, value) in &entries {
                state.held.release(key);
                state.held.release(value);
            }
        }

        /// `list(d.items())`: every entry, in order.
        #[py("items", reply = pairs)]
        #[py("copy", "#GETVALUE", reply = dict, incoming)]
        #[returns(Vec<(K, V)>)]
        pub fn items(&self) -> Vec<(Value, Value)> {
            self.entries()
        }

        /// `list(d.keys())`.
        #[py("keys")]
        #[returns(Vec<K>)]
        pub fn keys(&self) -> Vec<Value> {
            lock(&self.state)
                .table
                .keys()
                .map(Cow::into_owned)
                .collect()
        }

        /// `list(d.values())`.
        #[py("values")]
        #[returns(Vec<V>)]
        pub fn values(&self) -> Vec<Value> {
            let state = lock(&self.state);
            state
                .table
                .iter()
                .map(|(_, value)| value.into_owned())
                .collect()
        }

        /// `d.pop(key)`: remove it and return its value;
        /// [`SyncError::KeyError`] if absent.
        #[py("pop", key)]
        #[returns(V)]
        pub fn pop(&self, #[of(&K)] key: Value) -> Result<Removed, SyncError> {
            lock(&self.state)
                .remove(&key)
                .ok_or_else(|| key_error(&key))
        }

        /// `d.pop(key, None)`: remove it and return its value, if present.
        #[py("pop", outgoing, back = none_on_key_error)]
        #[returns(Option<V>)]
        pub fn pop_opt(&self, #[of(&K)] key: Value) -> Option<Removed> {
            lock(&self.state).remove(&key)
        }

        /// `d.pop(key, default)`.
        #[py("pop")]
        #[returns(V)]
        pub fn pop_or(&self, #[of(&K)] key: Value, #[of(V)] default: Value) -> Removed {
            lock(&self.state)
                .remove(&key)
                .unwrap_or_else(|| Removed::plain(default))
        }

        /// `d.popitem()`: remove and return the last inserted entry;
        /// [`SyncError::KeyError`] if the dict is empty.
        #[py("popitem", reply = tuple)]
        #[returns((K, V))]
        pub fn popitem(&self) -> Result<(Removed, Removed), SyncError> {
            let mut state = lock(&self.state);
            let (key, value) = state
                .table
                .pop_last()
                .ok_or_else(|| SyncError::KeyError("'popitem(): dictionary is empty'".into()))?;
            state.version += 1;
            Ok((
                state.held.release_after_reply(key),
                state.held.release_after_reply(value),
            ))
        }

        /// `d.setdefault(key, default)`: the value of `key`, inserting
        /// `default` first if it is absent.
        #[py("setdefault")]
        #[returns(V)]
        pub fn setdefault(
            &self,
            #[of(K)] key: Value,
            #[of(V)]
            #[py(default = None)]
            default: Value,
        ) -> Result<Value, SyncError> {
            let mut state = lock(&self.state);
            if let Some(value) = state.table.get(&key) {
                return Ok(value.into_owned());
            }
            state.insert(key, default.clone())?;
            Ok(default)
        }

        /// `d.update(other)`: from any collection of pairs (a `HashMap`, a
        /// `Vec<(K, V)>`, ...), or another dict proxy of this manager (read
        /// in the server).
        #[py("update", plan = crate::__private::update_plan)]
        pub fn update(&self, #[of(impl Elements<(K, V)>)] other: Value) -> Result<(), SyncError> {
            let entries = pairs(other)?;
            let mut state = lock(&self.state);
            entries
                .into_iter()
                .try_for_each(|(key, value)| state.insert(key, value))
        }

        /// `iter(d)`: an iterator over the keys, in the server. It fails
        /// with [`SyncError::RuntimeError`] if a key comes or goes before it
        /// is done, rather than return wrong data.
        #[proxy]
        #[py("__iter__")]
        #[returns(IterProxy<K>)]
        pub fn iter(&self) -> RemoteIter {
            let state = Arc::clone(&self.state);
            let (version, len) = {
                let state = lock(&state);
                (state.version, state.table.len())
            };
            let mut slot = 0;
            RemoteIter::from_results(std::iter::from_fn(move || {
                let state = lock(&state);
                if state.version != version {
                    let change = if state.table.len() == len {
                        "keys changed"
                    } else {
                        "changed size"
                    };
                    return Some(Err(SyncError::RuntimeError(format!(
                        "dictionary {change} during iteration"
                    ))));
                }
                let ((key, _), next) = state.table.next_from(slot)?;
                slot = next;
                Some(Ok(key.into_owned()))
            }))
        }

        /// `repr(d)`: Python's form, `{'a': 1}`.
        #[py("__repr__", "__str__")]
        pub fn repr(&self) -> String {
            Value::Map(self.entries()).repr()
        }
    }
}

/// The typed dict proxy: generated with the server, see
/// [`Dict`](server::Dict) and [`SyncManager::dict`].
pub mod typed {
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use super::super::operand::Elements;
    pub use super::server::{DictAsyncProxy, DictProxy};
    use crate::sync::typed::dual_proxy;
    use crate::sync::SyncManager;
    use crate::value::Value;
    use crate::Result;

    dual_proxy! {
        impl<K, V> DictProxy, DictAsyncProxy
        where [K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned]
        {
            /// `d.copy()`: every entry, in order. See [`to_map`](Self::to_map)
            /// for a map.
            pub fn copy(&self) -> Result<Vec<(K, V)>> {
                wait!(self.items())
            }

            /// `dict(d)` as any map (or collection of pairs):
            /// `d.to_map::<HashMap<_, _>>()`.
            pub fn to_map<M>(&self) -> Result<M> where [M: FromIterator<(K, V)>] {
                Ok(wait!(self.items())?.into_iter().collect())
            }
        }
    }

    impl SyncManager {
        /// A new shared `dict`, empty (Python's `manager.dict()`): every
        /// method of its [`DictProxy`] is one call to the server, entries
        /// keep their insertion order, and a missing key fails with
        /// [`SyncError::KeyError`](crate::SyncError::KeyError) holding the
        /// key's repr. Lookups borrow the key as `HashMap::get` does
        /// (`d.get("a")` for a `DictProxy<String, _>`); insertions take it
        /// by value.
        ///
        /// ```
        /// # fn main() -> manager_runtime::Result<()> {
        /// let manager = manager_runtime::sync::SyncManager::new();
        /// manager.start_in_thread()?;
        /// let d = manager.dict::<String, i64>()?;
        /// d.set("a".into(), 1)?;
        /// assert_eq!(d.get("a")?, 1);
        /// assert_eq!(d.get_or("b", 0)?, 0);
        /// assert_eq!(d.setdefault("b".into(), 2)?, 2);
        /// assert_eq!(d.keys()?, ["a", "b"]);
        /// # Ok(()) }
        /// ```
        pub fn dict<K, V>(&self) -> Result<DictProxy<K, V>> {
            self.create("dict", &(None::<Value>,))
        }

        /// A new shared `dict` holding `entries` (Python's
        /// `manager.dict(entries)`): any collection of pairs, or another dict
        /// proxy of this manager (copied in the server); a later entry for
        /// the same key wins. One call: an entry that cannot be stored fails
        /// it with its typed error.
        pub fn dict_from<K, V>(&self, entries: impl Elements<(K, V)>) -> Result<DictProxy<K, V>>
        where
            K: Serialize + DeserializeOwned,
            V: Serialize + DeserializeOwned,
        {
            self.create_filled("dict", entries)
        }

        /// Async form of [`dict`](Self::dict).
        ///
        /// ```
        /// # extern crate manager_runtime as managers;
        /// # fn main() -> managers::Result<()> {
        /// # let manager = managers::sync::SyncManager::new();
        /// # manager.start_in_thread()?;
        /// # let runtime = tokio::runtime::Runtime::new()?;
        /// runtime.block_on(async {
        ///     let d = manager.dict_async::<String, i64>().await?;
        ///     d.set("a".into(), 1).await?;
        ///     assert_eq!(d.get("a").await?, 1);
        ///     assert_eq!(d.keys().await?, ["a"]);
        ///     Ok(())
        /// })
        /// # }
        /// ```
        pub async fn dict_async<K, V>(&self) -> Result<DictAsyncProxy<K, V>> {
            self.create_async("dict", &(None::<Value>,)).await
        }

        /// Async form of [`dict_from`](Self::dict_from).
        pub async fn dict_from_async<K, V>(
            &self,
            entries: impl Elements<(K, V)>,
        ) -> Result<DictAsyncProxy<K, V>>
        where
            K: Serialize + DeserializeOwned,
            V: Serialize + DeserializeOwned,
        {
            self.create_filled_async("dict", entries).await
        }
    }
}
