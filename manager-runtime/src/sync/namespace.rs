//! `Namespace`: a bag of named attributes shared between processes
//! (Python's `manager.Namespace()`).
#![forbid(unsafe_code)]

use super::SyncManager;
use crate::server::{Constructor, Registry};
use crate::{Result, SyncError};

/// Names starting with `_` belong to the proxy in Python, never to the
/// shared object: refused on both sides.
pub(in crate::sync) fn check_name(name: &str) -> std::result::Result<(), SyncError> {
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

        pub(in crate::sync) fn missing(name: &str) -> SyncError {
            SyncError::KeyError(format!("'Namespace' object has no attribute '{name}'"))
        }
    }

    impl Default for Namespace {
        fn default() -> Self {
            Namespace::new()
        }
    }

    #[crate::shared(typeid = "Namespace", typed, own_display)]
    impl Namespace {
        /// Python's `getattr(namespace, name)`; a missing attribute fails
        /// with `KeyError` (Python's `AttributeError`).
        #[py("__getattribute__", key_error = AttributeError)]
        pub fn getattr(&self, name: &str) -> Result<Value, SyncError> {
            lock(&self.attributes)
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, value)| value.clone())
                .ok_or_else(|| Self::missing(name))
        }

        /// Python's `setattr(namespace, name, value)`.
        #[py("__setattr__")]
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
        #[py("__delattr__", key_error = AttributeError)]
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
        #[py("__getattribute__", outgoing, back = false_on_attribute_error)]
        pub fn hasattr(&self, name: &str) -> bool {
            lock(&self.attributes).iter().any(|(n, _)| n == name)
        }

        /// The attribute names, in the order they were first set.
        #[py("#GETVALUE", outgoing, back = attribute_names)]
        pub fn attributes(&self) -> Vec<String> {
            lock(&self.attributes)
                .iter()
                .map(|(name, _)| name.clone())
                .collect()
        }

        /// Every attribute, as a map from name to value (Python's
        /// `vars(namespace)`).
        #[py("#GETVALUE", reply = namespace, back = namespace_map)]
        pub fn vars(&self) -> Value {
            Value::Map(
                lock(&self.attributes)
                    .iter()
                    .map(|(name, value)| (Value::from(name.as_str()), value.clone()))
                    .collect(),
            )
        }

        /// Python's `repr(namespace)`: `Namespace(name='Bob', x=10)`, the
        /// `name=value` items sorted as Python sorts them.
        #[py("__repr__", "__str__")]
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

/// Typed proxies of this family: generated with the server (the
/// attributes as dynamic values, `getattr`, `setattr`, ...), and each
/// attribute read and written with its own type.
pub mod typed {
    use std::fmt;

    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use super::check_name;
    pub use super::server::{NamespaceAsyncProxy, NamespaceProxy};
    use crate::sync::typed::{decode, dual_proxy};
    use crate::value::to_value;
    use crate::Proxy;
    use crate::Result;

    dual_proxy! {
        impl NamespaceProxy, NamespaceAsyncProxy {
            /// The attribute `name` as a `T` (Python's `namespace.name`); a
            /// missing attribute fails with
            /// [`SyncError::KeyError`](crate::SyncError::KeyError). Names
            /// starting with `_` belong to the proxy in Python, never to the
            /// shared object; here they are refused with
            /// [`SyncError::ValueError`](crate::SyncError::ValueError) before
            /// anything is sent.
            pub fn get<T>(&self, name: &str) -> Result<T> where [T: DeserializeOwned] {
                check_name(name)?;
                decode(self.base(), wait!(self.getattr(name))?)
            }

            /// Set the attribute `name` (Python's `namespace.name = value`).
            pub fn set<T>(&self, name: &str, value: &T) -> Result<()>
            where [T: Serialize + ?Sized]
            {
                check_name(name)?;
                let value = to_value(value)?;
                wait!(self.setattr(name, value))
            }

            /// Delete the attribute `name` (Python's `del namespace.name`); a
            /// missing attribute fails with
            /// [`SyncError::KeyError`](crate::SyncError::KeyError).
            pub fn delete(&self, name: &str) -> Result<()> {
                check_name(name)?;
                wait!(self.delattr(name))
            }

            /// Whether the attribute `name` is set (Python's `hasattr`).
            pub fn contains(&self, name: &str) -> Result<bool> {
                check_name(name)?;
                wait!(self.hasattr(name))
            }

            /// Every attribute at once, as a map from name to value or as a
            /// struct whose fields are the attributes (Python's `vars()`).
            pub fn to_map<M>(&self) -> Result<M> where [M: DeserializeOwned] {
                decode(self.base(), wait!(self.vars())?)
            }
        }
    }

    impl fmt::Display for NamespaceProxy {
        /// The namespace's printed form, fetched from the server (Python's
        /// `str(namespace)`); the proxy's own form if the server cannot be
        /// reached. (The async proxy prints its own form, since printing
        /// cannot wait: use its [`repr`](NamespaceAsyncProxy::repr).)
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.repr() {
                Ok(repr) => f.write_str(&repr),
                Err(_) => self.base().describe("NamespaceProxy", f),
            }
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
    /// A new shared `Namespace`, empty (Python's `manager.Namespace()`):
    /// each attribute is read and written with its own type. Its printed
    /// form is the namespace's, `Namespace(name='Bob')`.
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
    pub fn namespace(&self) -> Result<NamespaceProxy> {
        self.create("Namespace", &())
    }

    /// Async form of [`namespace`](Self::namespace).
    pub async fn namespace_async(&self) -> Result<typed::NamespaceAsyncProxy> {
        self.create_async("Namespace", &()).await
    }
}
