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
        let make = constructor.map(|c| c.make);
        let entry = TypeEntry {
            exposed,
            type_typeid: T::TYPEID,
            methods: T::METHODS,
            python: T::PYTHON,
            make,
        };
        let previous = self.entries.insert(typeid, entry);
        assert!(previous.is_none(), "typeid `{typeid}` registered twice");
    }

    pub(crate) fn get(&self, typeid: &str) -> Option<&TypeEntry> {
        self.entries.get(typeid)
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
