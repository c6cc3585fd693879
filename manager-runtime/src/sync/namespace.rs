//! `Namespace`: a bag of named attributes shared between processes
//! (Python's `manager.Namespace()`).
#![forbid(unsafe_code)]

use super::SyncManager;
use crate::{Constructor, Registry};
use crate::{Result, SyncError};

/// Names starting with `_` belong to the proxy in Python, never to the
/// shared object: refused on both sides.
fn check_name(name: &str) -> std::result::Result<(), SyncError> {
    if name.starts_with('_') {
        return Err(SyncError::ValueError(format!(
            "`{name}`: attribute names starting with `_` belong to the proxy, \
             not to the shared namespace"
        )));
    }
    Ok(())
}

/// Server-side objects of this family.
pub mod server {
    use std::sync::Mutex;

    use super::check_name;
    use crate::sync::held::HeldTokens;
    use crate::sync::lock;
    use crate::value::Value;
    use crate::SyncError;

    /// Python's `multiprocessing.managers.Namespace`, served: attributes by
    /// name, in the order they were first set.
    pub struct Namespace {
        attributes: Mutex<Vec<(String, Value)>>,
        held: HeldTokens,
    }

    impl Namespace {
        /// An empty namespace.
        pub fn new() -> Self {
            Namespace {
                attributes: Mutex::default(),
                held: HeldTokens::new(),
            }
        }

        fn missing(name: &str) -> SyncError {
            SyncError::KeyError(format!("'Namespace' object has no attribute '{name}'"))
        }
    }

    impl Default for Namespace {
        fn default() -> Self {
            Namespace::new()
        }
    }

    #[crate::shared(typeid = "Namespace")]
    impl Namespace {
        /// Python's `getattr(namespace, name)`; a missing attribute fails
        /// with `KeyError` (Python's `AttributeError`).
        pub fn getattr(&self, name: &str) -> Result<Value, SyncError> {
            lock(&self.attributes)
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, value)| value.clone())
                .ok_or_else(|| Self::missing(name))
        }

        /// Python's `setattr(namespace, name, value)`.
        pub fn setattr(&self, name: &str, value: Value) -> Result<(), SyncError> {
            check_name(name)?;
            self.held.retain(&value)?;
            let old = {
                let mut attributes = lock(&self.attributes);
                match attributes.iter_mut().find(|(n, _)| n == name) {
                    Some((_, slot)) => Some(std::mem::replace(slot, value)),
                    None => {
                        attributes.push((name.to_owned(), value));
                        None
                    }
                }
            };
            if let Some(old) = old {
                self.held.release(&old);
            }
            Ok(())
        }

        /// Python's `delattr(namespace, name)`; a missing attribute fails
        /// with `KeyError` (Python's `AttributeError`).
        pub fn delattr(&self, name: &str) -> Result<(), SyncError> {
            let old = {
                let mut attributes = lock(&self.attributes);
                let index = attributes
                    .iter()
                    .position(|(n, _)| n == name)
                    .ok_or_else(|| Self::missing(name))?;
                attributes.remove(index).1
            };
            self.held.release(&old);
            Ok(())
        }

        /// Python's `hasattr(namespace, name)`.
        pub fn hasattr(&self, name: &str) -> bool {
            lock(&self.attributes).iter().any(|(n, _)| n == name)
        }

        /// The attribute names, in the order they were first set.
        pub fn attributes(&self) -> Vec<String> {
            lock(&self.attributes)
                .iter()
                .map(|(name, _)| name.clone())
                .collect()
        }

        /// Every attribute, as a map from name to value (Python's
        /// `vars(namespace)`).
        pub fn to_map(&self) -> Value {
            Value::Map(
                lock(&self.attributes)
                    .iter()
                    .map(|(name, value)| (Value::from(name.as_str()), value.clone()))
                    .collect(),
            )
        }

        /// Python's `repr(namespace)`: `Namespace(name='Bob', x=10)`, the
        /// `name=value` items sorted as Python sorts them.
        pub fn repr(&self) -> String {
            let mut items: Vec<String> = lock(&self.attributes)
                .iter()
                .map(|(name, value)| format!("{name}={}", value.repr()))
                .collect();
            items.sort();
            format!("Namespace({})", items.join(", "))
        }
    }
}

/// Typed proxies of this family.
pub mod typed {
    use std::fmt;
    use std::future::Future;

    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use super::check_name;
    use super::server::{
        NamespaceAsyncProxy as RawNamespaceAsyncProxy, NamespaceProxy as RawNamespaceProxy,
    };
    use crate::sync::typed::{decode, flatten, typed_proxy};
    use crate::value::to_value;
    use crate::Proxy;
    use crate::{Error, Result};

    /// A typed proxy of a shared [`Namespace`](super::server::Namespace)
    /// (Python's `NamespaceProxy`): each attribute is read and written with
    /// its own type. Names starting with `_` belong to the proxy in
    /// Python, never to the shared object; here they are refused with
    /// [`SyncError::ValueError`](crate::SyncError::ValueError) before
    /// anything is sent. Its printed form is the namespace's,
    /// `Namespace(name='Bob')`.
    ///
    /// ```
    /// # fn main() -> manager_runtime::Result<()> {
    /// let manager = manager_runtime::sync::SyncManager::new();
    /// manager.start_in_thread()?;
    /// let ns = manager.namespace()?;
    /// ns.set("name", "Bob")?;
    /// ns.set("age", &42)?;
    /// assert_eq!(ns.get::<String>("name")?, "Bob");
    /// assert_eq!(ns.to_string(), "Namespace(age=42, name='Bob')");
    /// # Ok(()) }
    /// ```
    pub struct NamespaceProxy {
        raw: RawNamespaceProxy,
    }

    typed_proxy!(NamespaceProxy, RawNamespaceProxy, own Display);

    impl NamespaceProxy {
        /// The async proxy of the same namespace (another reference).
        pub fn to_async(&self) -> NamespaceAsyncProxy {
            self.raw.to_async().into()
        }

        /// The attribute `name` as a `T` (Python's `namespace.name`); a
        /// missing attribute fails with
        /// [`SyncError::KeyError`](crate::SyncError::KeyError).
        pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
            check_name(name)?;
            decode(self.raw.base(), flatten(self.raw.getattr(name))?)
        }

        /// Set the attribute `name` (Python's `namespace.name = value`).
        pub fn set<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<()> {
            check_name(name)?;
            flatten(self.raw.setattr(name, to_value(value)?))
        }

        /// Delete the attribute `name` (Python's `del namespace.name`); a
        /// missing attribute fails with
        /// [`SyncError::KeyError`](crate::SyncError::KeyError).
        pub fn delete(&self, name: &str) -> Result<()> {
            check_name(name)?;
            flatten(self.raw.delattr(name))
        }

        /// Whether the attribute `name` is set (Python's `hasattr`).
        pub fn contains(&self, name: &str) -> Result<bool> {
            check_name(name)?;
            self.raw.hasattr(name)
        }

        /// The attribute names, in the order they were first set.
        pub fn attributes(&self) -> Result<Vec<String>> {
            self.raw.attributes()
        }

        /// Every attribute at once, as a map from name to value or as a
        /// struct whose fields are the attributes (Python's `vars()`).
        pub fn to_map<M: DeserializeOwned>(&self) -> Result<M> {
            decode(self.raw.base(), self.raw.to_map()?)
        }

        /// The namespace's printed form, `Namespace(name='Bob')`.
        pub fn repr(&self) -> Result<String> {
            self.raw.repr()
        }
    }

    impl fmt::Display for NamespaceProxy {
        /// The namespace's printed form, fetched from the server (Python's
        /// `str(namespace)`); the proxy's own form if the server cannot be
        /// reached.
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.repr() {
                Ok(repr) => f.write_str(&repr),
                Err(_) => fmt::Display::fmt(&self.raw, f),
            }
        }
    }

    /// The async form of [`NamespaceProxy`]. Its `Display` is the proxy's
    /// own form, since printing cannot wait for the server: use
    /// [`repr`](Self::repr) for the namespace's.
    pub struct NamespaceAsyncProxy {
        raw: RawNamespaceAsyncProxy,
    }

    typed_proxy!(NamespaceAsyncProxy, RawNamespaceAsyncProxy);

    impl NamespaceAsyncProxy {
        /// The blocking proxy of the same namespace (another reference).
        pub fn to_blocking(&self) -> NamespaceProxy {
            self.raw.to_blocking().into()
        }

        /// The attribute `name`; see [`NamespaceProxy::get`].
        pub async fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
            check_name(name)?;
            decode(self.raw.base(), flatten(self.raw.getattr(name).await)?)
        }

        /// Set the attribute `name`; see [`NamespaceProxy::set`].
        pub fn set<'a, T: Serialize + ?Sized>(
            &'a self,
            name: &'a str,
            value: &T,
        ) -> impl Future<Output = Result<()>> + Send + 'a {
            let value = match check_name(name) {
                Ok(()) => to_value(value).map_err(Error::from),
                Err(e) => Err(Error::Sync(e)),
            };
            async move { flatten(self.raw.setattr(name, value?).await) }
        }

        /// Delete the attribute `name`; see [`NamespaceProxy::delete`].
        pub async fn delete(&self, name: &str) -> Result<()> {
            check_name(name)?;
            flatten(self.raw.delattr(name).await)
        }

        /// Whether the attribute `name` is set.
        pub async fn contains(&self, name: &str) -> Result<bool> {
            check_name(name)?;
            self.raw.hasattr(name).await
        }

        /// The attribute names, in the order they were first set.
        pub async fn attributes(&self) -> Result<Vec<String>> {
            self.raw.attributes().await
        }

        /// Every attribute at once; see [`NamespaceProxy::to_map`].
        pub async fn to_map<M: DeserializeOwned>(&self) -> Result<M> {
            decode(self.raw.base(), self.raw.to_map().await?)
        }

        /// The namespace's printed form, `Namespace(name='Bob')`.
        pub async fn repr(&self) -> Result<String> {
            self.raw.repr().await
        }
    }
}

use typed::NamespaceProxy;

pub(crate) fn register(registry: &mut Registry) {
    registry.register::<server::Namespace>(
        "Namespace",
        None,
        Some(Constructor::new(|(): ()| server::Namespace::new())),
    );
}

impl SyncManager {
    /// A new shared `Namespace`, empty (Python's `manager.Namespace()`).
    pub fn namespace(&self) -> Result<NamespaceProxy> {
        let raw: server::NamespaceProxy = self.create("Namespace", &())?;
        Ok(raw.into())
    }

    /// Async form of [`namespace`](Self::namespace).
    pub async fn namespace_async(&self) -> Result<typed::NamespaceAsyncProxy> {
        self.create_async("Namespace", &()).await
    }
}
