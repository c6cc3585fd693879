//! `dict`: Python's dict, served, in insertion order.
#![forbid(unsafe_code)]

/// The server-side dict.
pub mod server {
    use std::sync::{Arc, Mutex};

    use super::super::iter::server::RemoteIter;
    use super::super::operand::pairs;
    use super::super::table::Table;
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
            lock(&self.state).table.iter().cloned().collect()
        }
    }

    #[crate::shared(typeid = "dict")]
    impl Dict {
        /// `len(d)`.
        pub fn len(&self) -> usize {
            lock(&self.state).table.len()
        }

        /// `not d`: whether it is empty.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// `key in d`.
        pub fn contains(&self, key: Value) -> bool {
            lock(&self.state).table.contains(&key)
        }

        /// `d[key]`; `KeyError` if absent.
        pub fn get(&self, key: Value) -> Result<Value, SyncError> {
            let state = lock(&self.state);
            state
                .table
                .get(&key)
                .cloned()
                .ok_or_else(|| key_error(&key))
        }

        /// `d.get(key)`: the value, if present.
        pub fn get_opt(&self, key: Value) -> Option<Value> {
            lock(&self.state).table.get(&key).cloned()
        }

        /// `d[key] = value`.
        pub fn set(&self, key: Value, value: Value) -> Result<(), SyncError> {
            lock(&self.state).insert(key, value)
        }

        /// `del d[key]`; `KeyError` if absent.
        pub fn del(&self, key: Value) -> Result<(), SyncError> {
            let mut state = lock(&self.state);
            state.remove(&key).map(drop).ok_or_else(|| key_error(&key))
        }

        /// `d.clear()`.
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

        /// `d.items()`: every entry, in order.
        pub fn items(&self) -> Vec<(Value, Value)> {
            self.entries()
        }

        /// `d.keys()`.
        pub fn keys(&self) -> Vec<Value> {
            lock(&self.state).table.keys().cloned().collect()
        }

        /// `d.values()`.
        pub fn values(&self) -> Vec<Value> {
            let state = lock(&self.state);
            state.table.iter().map(|(_, value)| value.clone()).collect()
        }

        /// `d.pop(key)`: remove it and return its value; `KeyError` if
        /// absent.
        pub fn pop(&self, key: Value) -> Result<Removed, SyncError> {
            lock(&self.state)
                .remove(&key)
                .ok_or_else(|| key_error(&key))
        }

        /// `d.pop(key, None)`: remove it and return its value, if present.
        pub fn pop_opt(&self, key: Value) -> Option<Removed> {
            lock(&self.state).remove(&key)
        }

        /// `d.popitem()`: remove and return the last inserted entry;
        /// `KeyError` if the dict is empty.
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
        pub fn setdefault(&self, key: Value, default: Value) -> Result<Value, SyncError> {
            let mut state = lock(&self.state);
            if let Some(value) = state.table.get(&key) {
                return Ok(value.clone());
            }
            state.insert(key, default.clone())?;
            Ok(default)
        }

        /// `d.update(other)`: `other` is a list of key-value pairs, a map,
        /// or a dict of this server.
        pub fn update(&self, other: Value) -> Result<(), SyncError> {
            let entries = pairs(other)?;
            let mut state = lock(&self.state);
            entries
                .into_iter()
                .try_for_each(|(key, value)| state.insert(key, value))
        }

        /// `iter(d)`: an iterator over the keys, in the server. It fails
        /// with `RuntimeError` if a key comes or goes before it is done,
        /// rather than return wrong data.
        #[proxy]
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
                Some(Ok(key.clone()))
            }))
        }

        /// `repr(d)`: Python's form, `{'a': 1}`.
        pub fn repr(&self) -> String {
            Value::Map(self.entries()).repr()
        }
    }
}

/// The typed dict proxy.
pub mod typed {
    use std::borrow::Borrow;
    use std::marker::PhantomData;

    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use super::super::iter::typed::{IterAsyncProxy, IterProxy};
    use super::super::operand::{send_operand, Elements};
    use super::server::{DictAsyncProxy as RawDictAsyncProxy, DictProxy as RawDictProxy};
    use crate::sync::typed::{decode, dual_proxy, flatten, flavours, typed_proxy};
    use crate::sync::SyncManager;
    use crate::value::{to_value, Value};
    use crate::Proxy;
    use crate::Result;

    /// A typed proxy of a shared `dict` (Python's `DictProxy`): every method
    /// is one call to the server. Entries keep their insertion order. A
    /// missing key fails with
    /// [`SyncError::KeyError`](crate::SyncError::KeyError), holding the
    /// key's repr.
    ///
    /// Lookups borrow the key as `HashMap::get` does (`d.get("a")` for a
    /// `DictProxy<String, _>`); insertions take it by value.
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
    pub struct DictProxy<K, V> {
        raw: RawDictProxy,
        _type: PhantomData<fn() -> (K, V)>,
    }

    typed_proxy!(DictProxy<K, V>, RawDictProxy);

    /// The async form of [`DictProxy`]: the same methods, as futures.
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
    pub struct DictAsyncProxy<K, V> {
        raw: RawDictAsyncProxy,
        _type: PhantomData<fn() -> (K, V)>,
    }

    typed_proxy!(DictAsyncProxy<K, V>, RawDictAsyncProxy);

    /// Entries from the server as `(K, V)`s, proxies adopted by `base`.
    fn decode_entries<K: DeserializeOwned, V: DeserializeOwned>(
        base: &crate::ProxyBase,
        entries: Vec<(Value, Value)>,
    ) -> Result<Vec<(K, V)>> {
        let entries = entries
            .into_iter()
            .map(|(key, value)| Value::List(vec![key, value]))
            .collect();
        decode(base, Value::List(entries))
    }

    flavours!(DictProxy<K, V>, DictAsyncProxy);

    impl<K, V> DictProxy<K, V> {
        /// `iter(d)`: an iterator over the keys in the server. It fails with
        /// [`SyncError::RuntimeError`](crate::SyncError::RuntimeError) if
        /// the dict changes size meanwhile.
        pub fn iter(&self) -> Result<IterProxy<K>> {
            Ok(self.raw.iter()?.into())
        }
    }

    impl<K, V> DictAsyncProxy<K, V> {
        /// `iter(d)`: a [`Stream`](futures_core::Stream) of the keys, read
        /// in the server; see [`DictProxy::iter`].
        pub async fn iter(&self) -> Result<IterAsyncProxy<K>> {
            Ok(self.raw.iter().await?.into())
        }
    }

    dual_proxy! {
        impl<K, V> DictProxy, DictAsyncProxy
        where [K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned]
        {
            /// `len(d)`.
            pub fn len(&self) -> Result<usize> {
                wait!(self.raw.len())
            }

            /// `not d`: whether it is empty.
            pub fn is_empty(&self) -> Result<bool> {
                wait!(self.raw.is_empty())
            }

            /// `key in d`.
            pub fn contains<Q>(&self, key: &Q) -> Result<bool>
            where [K: Borrow<Q>, Q: Serialize + ?Sized]
            {
                wait!(self.raw.contains(to_value(key)?))
            }

            /// `d[key]`; [`SyncError::KeyError`](crate::SyncError::KeyError) if
            /// absent.
            pub fn get<Q>(&self, key: &Q) -> Result<V>
            where [K: Borrow<Q>, Q: Serialize + ?Sized]
            {
                decode(self.raw.base(), flatten(wait!(self.raw.get(to_value(key)?)))?)
            }

            /// `d.get(key)`: the value, if present.
            pub fn get_opt<Q>(&self, key: &Q) -> Result<Option<V>>
            where [K: Borrow<Q>, Q: Serialize + ?Sized]
            {
                wait!(self.raw
                    .get_opt(to_value(key)?))?
                    .map(|value| decode(self.raw.base(), value))
                    .transpose()
            }

            /// `d.get(key, default)`.
            pub fn get_or<Q>(&self, key: &Q, default: V) -> Result<V>
            where [K: Borrow<Q>, Q: Serialize + ?Sized]
            {
                Ok(wait!(self.get_opt(key))?.unwrap_or(default))
            }

            /// `d[key] = value`.
            pub fn set(&self, key: K, value: V) -> Result<()> {
                flatten(wait!(self.raw.set(to_value(&key)?, to_value(&value)?)))
            }

            /// `del d[key]`; [`SyncError::KeyError`](crate::SyncError::KeyError)
            /// if absent.
            pub fn del<Q>(&self, key: &Q) -> Result<()>
            where [K: Borrow<Q>, Q: Serialize + ?Sized]
            {
                flatten(wait!(self.raw.del(to_value(key)?)))
            }

            /// `d.clear()`.
            pub fn clear(&self) -> Result<()> {
                wait!(self.raw.clear())
            }

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

            /// `list(d.items())`.
            pub fn items(&self) -> Result<Vec<(K, V)>> {
                decode_entries(self.raw.base(), wait!(self.raw.items())?)
            }

            /// `list(d.keys())`.
            pub fn keys(&self) -> Result<Vec<K>> {
                decode(self.raw.base(), Value::List(wait!(self.raw.keys())?))
            }

            /// `list(d.values())`.
            pub fn values(&self) -> Result<Vec<V>> {
                decode(self.raw.base(), Value::List(wait!(self.raw.values())?))
            }

            /// `d.pop(key)`: remove it and return its value;
            /// [`SyncError::KeyError`](crate::SyncError::KeyError) if absent.
            pub fn pop<Q>(&self, key: &Q) -> Result<V>
            where [K: Borrow<Q>, Q: Serialize + ?Sized]
            {
                decode(self.raw.base(), flatten(wait!(self.raw.pop(to_value(key)?)))?.into_value())
            }

            /// `d.pop(key, default)`.
            pub fn pop_or<Q>(&self, key: &Q, default: V) -> Result<V>
            where [K: Borrow<Q>, Q: Serialize + ?Sized]
            {
                match wait!(self.raw.pop_opt(to_value(key)?))? {
                    Some(value) => decode(self.raw.base(), value.into_value()),
                    None => Ok(default),
                }
            }

            /// `d.popitem()`: remove and return the last inserted entry;
            /// [`SyncError::KeyError`](crate::SyncError::KeyError) if empty.
            pub fn popitem(&self) -> Result<(K, V)> {
                let (key, value) = flatten(wait!(self.raw.popitem()))?;
                Ok((
                    decode(self.raw.base(), key.into_value())?,
                    decode(self.raw.base(), value.into_value())?,
                ))
            }

            /// `d.setdefault(key, default)`: the value of `key`, inserting
            /// `default` first if it is absent.
            pub fn setdefault(&self, key: K, default: V) -> Result<V> {
                decode(self.raw.base(), flatten(
                    wait!(self.raw.setdefault(to_value(&key)?, to_value(&default)?)),
                )?)
            }

            /// `d.update(other)`: from any collection of pairs (a `HashMap`, a
            /// `Vec<(K, V)>`, ...) or another dict proxy of this manager.
            pub fn update(&self, other: impl Elements<(K, V)>) -> Result<()> {
                send_operand!(other, |operand| wait!(self.raw.update(operand)))
            }

            /// `repr(d)`: the dict in Python's notation.
            pub fn repr(&self) -> Result<String> {
                wait!(self.raw.repr())
            }
        }
    }

    impl SyncManager {
        /// A new shared `dict`, empty.
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
