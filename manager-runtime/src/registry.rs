//! The typeids a manager serves and how each is created.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;

use crate::error::RemoteError;
use crate::object::{decode_args, MethodInfo, Object, ObjectLock, Shared};

type Maker = Box<dyn Fn(&[u8]) -> Result<Arc<dyn Object>, RemoteError> + Send + Sync>;

/// How the server makes an object of a typeid when a client asks for one.
pub struct Constructor<T> {
    make: Maker,
    singleton: bool,
    _type: PhantomData<fn() -> T>,
}

impl<T: Shared> Constructor<T> {
    /// A fresh object per request, built from the create method's arguments
    /// (a tuple, decoded from the wire).
    pub fn new<A, F>(f: F) -> Self
    where
        A: DeserializeOwned,
        F: Fn(A) -> T + Send + Sync + 'static,
    {
        Constructor {
            make: Box::new(move |args| {
                let args = decode_args("<constructor>", args)?;
                Ok(Arc::new(ObjectLock::new(f(args))) as Arc<dyn Object>)
            }),
            singleton: false,
            _type: PhantomData,
        }
    }

    /// A fresh object per request from a constructor that can refuse its
    /// arguments: its error reaches the caller as the error of the create
    /// call (a built-in's `SyncError` as [`Error::Sync`](crate::Error::Sync)),
    /// and no object is made.
    pub fn try_new<A, E, F>(f: F) -> Self
    where
        A: DeserializeOwned,
        E: Into<RemoteError>,
        F: Fn(A) -> Result<T, E> + Send + Sync + 'static,
    {
        Constructor {
            make: Box::new(move |args| {
                let args = decode_args("<constructor>", args)?;
                let object = f(args).map_err(Into::into)?;
                Ok(Arc::new(ObjectLock::new(object)) as Arc<dyn Object>)
            }),
            singleton: false,
            _type: PhantomData,
        }
    }

    /// One object, built on first request and handed out on every later one
    /// (the seed's `callable=lambda: queue`).
    pub fn singleton<F>(f: F) -> Self
    where
        F: Fn() -> T + Send + Sync + 'static,
    {
        let slot: OnceLock<Arc<ObjectLock<T>>> = OnceLock::new();
        Constructor {
            make: Box::new(move |args| {
                decode_args::<()>("<constructor>", args)?;
                Ok(
                    Arc::clone(slot.get_or_init(|| Arc::new(ObjectLock::new(f()))))
                        as Arc<dyn Object>,
                )
            }),
            singleton: true,
            _type: PhantomData,
        }
    }
}

/// A new object and how it is registered.
pub(crate) struct Created {
    pub(crate) object: Arc<dyn Object>,
    pub(crate) typeid: &'static str,
    pub(crate) exposed: Option<&'static [&'static str]>,
}

pub(crate) struct TypeEntry {
    pub(crate) exposed: Option<&'static [&'static str]>,
    /// The served type's own typeid (`Shared::TYPEID`) and methods.
    pub(crate) type_typeid: &'static str,
    pub(crate) methods: &'static [MethodInfo],
    /// The served type's Python table ([`Shared::PYTHON`]).
    pub(crate) python: &'static [crate::python::table::PyMethod],
    /// Made with [`Constructor::singleton`]: one object for every request
    /// (with the state in Redis, one for every gateway).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) singleton: bool,
    make: Option<Maker>,
}

/// The typeids a manager type serves. Built by `manager!` in the server;
/// by hand for a [`BaseManager`](crate::BaseManager) of your own:
///
/// ```
/// # extern crate manager_runtime as managers;
/// use managers::server::{Constructor, Registry};
/// use managers::{BaseManager, ManagerOptions};
///
/// #[derive(Default)]
/// pub struct Tally(std::sync::atomic::AtomicU64);
///
/// #[managers::shared]
/// impl Tally {
///     pub fn add(&self, n: u64) -> u64 {
///         self.0.fetch_add(n, std::sync::atomic::Ordering::SeqCst) + n
///     }
/// }
///
/// fn registry() -> Registry {
///     let mut registry = Registry::new();
///     // A constructor may refuse its arguments: the create call fails.
///     registry.register::<Tally>(
///         "Tally",
///         None,
///         Some(Constructor::try_new(|(start,): (u64,)| {
///             if start > 100 {
///                 return Err(managers::RemoteError::BadRequest("too large".into()));
///             }
///             Ok(Tally(start.into()))
///         })),
///     );
///     registry
/// }
///
/// # fn main() -> managers::Result<()> {
/// let manager = BaseManager::new(registry, ManagerOptions::new());
/// manager.start_in_thread()?;
/// let tally: TallyProxy = manager.create("Tally", &(5u64,))?;
/// assert_eq!(tally.add(1)?, 6);
/// assert!(manager.create::<TallyProxy, _>("Tally", &(500u64,)).is_err());
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct Registry {
    entries: HashMap<&'static str, TypeEntry>,
    /// How each built-in (by its type's own typeid) keeps its state in
    /// Redis; `None` for a built-in that cannot.
    #[cfg(feature = "redis")]
    forms: HashMap<&'static str, Option<crate::backend::RedisForm>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Register `T` as `typeid`. `exposed` restricts the methods callable
    /// on objects of this typeid (every name must be one of `T`'s exposed
    /// methods); `constructor` is `None` for typeids only ever returned by
    /// other methods (`create_method = false`).
    ///
    /// # Panics
    /// If `typeid` is registered twice or `exposed` names a method `T` does
    /// not expose; `manager!` rejects both at compile time.
    pub fn register<T: Shared>(
        &mut self,
        typeid: &'static str,
        exposed: Option<&'static [&'static str]>,
        constructor: Option<Constructor<T>>,
    ) {
        if let Some(names) = exposed {
            for name in names {
                assert!(
                    has_method(T::METHODS, name),
                    "typeid `{typeid}`: `{name}` is not an exposed method of `{}`",
                    T::TYPEID
                );
            }
        }
        let singleton = constructor.as_ref().is_some_and(|c| c.singleton);
        let make = constructor.map(|c| c.make);
        let entry = TypeEntry {
            exposed,
            type_typeid: T::TYPEID,
            methods: T::METHODS,
            python: T::PYTHON,
            singleton,
            make,
        };
        let previous = self.entries.insert(typeid, entry);
        assert!(previous.is_none(), "typeid `{typeid}` registered twice");
    }

    pub(crate) fn get(&self, typeid: &str) -> Option<&TypeEntry> {
        self.entries.get(typeid)
    }

    /// The entry of `typeid` with the registry's own copy of the name.
    #[cfg(feature = "redis")]
    pub(crate) fn get_key_value(&self, typeid: &str) -> Option<(&'static str, &TypeEntry)> {
        self.entries.get_key_value(typeid).map(|(k, v)| (*k, v))
    }

    /// Declare how objects of the built-in whose type's own typeid is
    /// `face` keep their state in Redis; `None`: they cannot, and a
    /// gateway refuses to make them (a type nobody declared is made in the
    /// gateway's memory, as a type of the user's own). Called by the
    /// built-ins' registration.
    #[cfg(feature = "redis")]
    #[doc(hidden)]
    pub fn redis_form(&mut self, face: &'static str, form: Option<crate::backend::RedisForm>) {
        self.forms.insert(face, form);
    }

    /// How a gateway makes objects of `typeid`: `None` in its own memory
    /// (a type of the user's own, or an unknown typeid, which `create`
    /// reports), an error if it is a built-in without a Redis form.
    #[cfg(feature = "redis")]
    pub(crate) fn redis_target(
        &self,
        typeid: &str,
    ) -> Option<Result<crate::backend::Target, RemoteError>> {
        let (name, entry) = self.get_key_value(typeid)?;
        let form = match self.forms.get(entry.type_typeid)? {
            Some(form) => *form,
            None => {
                let served: Vec<&str> = {
                    let mut served: Vec<&str> = self
                        .forms
                        .iter()
                        .filter(|(_, form)| form.is_some())
                        .map(|(face, _)| *face)
                        .collect();
                    served.sort_unstable();
                    served
                };
                return Some(Err(RemoteError::BadRequest(format!(
                    "`{typeid}` is not served from Redis (its state would live in one \
                     gateway only): the Redis backend serves {}",
                    served.join(", ")
                ))));
            }
        };
        Some(Ok(crate::backend::Target {
            typeid: name,
            exposed: entry.exposed,
            methods: entry.methods,
            python: entry.python,
            face: entry.type_typeid,
            singleton: entry.singleton,
            form,
        }))
    }

    /// Build a new object of `typeid` from encoded constructor arguments.
    pub(crate) fn create(&self, typeid: &str, args: &[u8]) -> Result<Created, RemoteError> {
        let (name, entry) = self
            .entries
            .get_key_value(typeid)
            .ok_or_else(|| RemoteError::UnknownTypeid(typeid.to_string()))?;
        let make = entry
            .make
            .as_ref()
            .ok_or_else(|| RemoteError::UnknownTypeid(typeid.to_string()))?;
        Ok(Created {
            object: make(args)?,
            typeid: name,
            exposed: entry.exposed,
        })
    }
}

/// Whether `methods` has one named `name` (usable in constant evaluation,
/// so `manager!` can check `exposed(...)` at compile time).
pub const fn has_method(methods: &[MethodInfo], name: &str) -> bool {
    let mut i = 0;
    while i < methods.len() {
        if str_eq(methods[i].name, name) {
            return true;
        }
        i += 1;
    }
    false
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
