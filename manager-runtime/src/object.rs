//! Server-side view of a shared object: the trait `#[shared]` implements,
//! how a call's outcome is reported, and how results are encoded.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::address::Address;
use crate::error::RemoteError;
use crate::python::table::PyMethod;
use crate::token::{self, Token};
use crate::value::{from_value, to_shaped, to_value, Shaped, Value, ValueError};

/// The lock every served object lives in: `&self` methods take it shared,
/// `&mut self` methods exclusively, so the runtime serializes mutation.
pub type ObjectLock<T> = tokio::sync::RwLock<T>;

/// One entry of a type's exposed-method table.
#[derive(Debug, Clone, Copy)]
pub struct MethodInfo {
    /// The method's name, as sent on the wire.
    pub name: &'static str,
    /// Hash of the method's signature; client and server must agree.
    pub fingerprint: u64,
}

/// A boxed future that yields an encoded result.
pub type ReplyFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, RemoteError>> + Send>>;

/// What dispatching a call produced: a result now, or a future to await.
pub enum Outcome {
    /// The method ran on the connection's task.
    Ready(Result<Vec<u8>, RemoteError>),
    /// The method must be awaited (async method, or its lock was busy).
    Pending(ReplyFuture),
}

impl Outcome {
    /// A pending outcome from any future.
    pub fn pending<F>(future: F) -> Self
    where
        F: Future<Output = Result<Vec<u8>, RemoteError>> + Send + 'static,
    {
        Outcome::Pending(Box::pin(future))
    }
}

/// A type whose methods are served by a manager. Implemented by `#[shared]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be served by a manager: it has no `#[shared]` impl",
    label = "not a shared type",
    note = "add `#[managers::shared]` to an inherent `impl` block of `{Self}`"
)]
pub trait Shared: Sized + Send + Sync + 'static {
    /// The default typeid (the type's name unless `#[shared(typeid = "...")]`).
    const TYPEID: &'static str;
    /// The exposed methods, in dispatch order.
    const METHODS: &'static [MethodInfo];
    /// The blocking proxy type.
    type Proxy;
    /// The async proxy type.
    type AsyncProxy;
    /// How CPython's proxies call its methods (`#[py(..)]` on them), and
    /// how ours call a CPython server's object of this kind. Empty: by
    /// their own names, positional arguments.
    const PYTHON: &'static [crate::python::table::PyMethod] = &[];
    /// Run method number `method` (an index into [`Shared::METHODS`]) with
    /// postcard-encoded arguments.
    fn dispatch(
        this: Arc<ObjectLock<Self>>,
        method: usize,
        args: &[u8],
        cx: &CallContext,
    ) -> Outcome;
}

/// Type-erased served object.
pub(crate) trait Object: Send + Sync + 'static {
    fn methods(&self) -> &'static [MethodInfo];
    /// The served type's own typeid ([`Shared::TYPEID`]), whatever typeid
    /// it was registered as.
    fn type_typeid(&self) -> &'static str;
    /// The served type's [`Shared::PYTHON`].
    fn python(&self) -> &'static [crate::python::table::PyMethod];
    fn call(self: Arc<Self>, method: usize, args: &[u8], cx: &CallContext) -> Outcome;
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<T: Shared> Object for ObjectLock<T> {
    fn methods(&self) -> &'static [MethodInfo] {
        T::METHODS
    }

    fn type_typeid(&self) -> &'static str {
        T::TYPEID
    }

    fn python(&self) -> &'static [crate::python::table::PyMethod] {
        T::PYTHON
    }

    fn call(self: Arc<Self>, method: usize, args: &[u8], cx: &CallContext) -> Outcome {
        T::dispatch(self, method, args, cx)
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// What served code may ask of the server that runs it. The server
/// implements it; this layer only knows the trait.
pub(crate) trait Host: Send + Sync + 'static {
    /// The address clients reach the server at.
    fn address(&self) -> &Address;
    /// The object with this id, if it is served here.
    fn object(&self, id: u64) -> Result<Arc<dyn Object>, RemoteError>;
    /// Serve `object` as a new id with one reference held by `session`.
    fn insert_for(&self, session: u128, object: Arc<dyn Object>, typeid: &'static str) -> Token;
    /// One more reference to `id` for `session`.
    fn incref(&self, session: u128, id: u64) -> Result<(), RemoteError>;
    /// One more reference owned by the server itself (a container holding
    /// a proxy), not by any session.
    fn retain_internal(&self, id: u64) -> Result<(), RemoteError>;
    /// Drop a reference taken with `retain_internal`.
    fn release_internal(&self, id: u64);
    /// References this server holds on objects of other servers.
    fn remote(&self) -> &dyn RemoteRefs;
    /// If `token` (of another server) names a built-in this server serves
    /// from the same Redis, one more reference to it for `session` here:
    /// whether it was taken. Only a gateway does.
    fn adopt(&self, session: u128, token: &Token) -> bool {
        let _ = (session, token);
        false
    }
}

/// References a server holds on objects of *other* servers (a dict here
/// holding a list there). The client layer implements it with this
/// process's sessions on those servers; the server is handed one when it is
/// built, so it never depends on the client.
pub(crate) trait RemoteRefs: Send + Sync + 'static {
    /// Take a reference to `token`'s object on its server.
    fn retain(&self, token: &Token) -> Result<(), String>;
    /// Give back a reference taken with `retain`.
    fn release(&self, token: &Token);
    /// The key this process's sessions on servers authenticate with (the
    /// serving manager's), for proxies that served objects receive as
    /// arguments and keep.
    fn authkey(&self) -> &[u8];
}

/// Where a call runs: the server and the calling client's session. Cheap to
/// clone into a pending future.
#[derive(Clone)]
pub struct CallContext {
    pub(crate) server: Arc<dyn Host>,
    pub(crate) session: u128,
    pub(crate) object: Option<u64>,
    /// The call's arguments are a postcard-encoded `Value::List` and its
    /// result goes back as a postcard-encoded [`Shaped`]: a dynamically
    /// typed client (Python) calls a typed method.
    pub(crate) dynamic: bool,
}

thread_local! {
    /// The call being dispatched or polled on this thread, if any.
    static CURRENT: std::cell::Cell<*const CallContext> = const { std::cell::Cell::new(std::ptr::null()) };
}

impl CallContext {
    /// Run `f` with `self` as [`CallContext::current`].
    pub(crate) fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(*const CallContext);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(CURRENT.with(|c| c.replace(self)));
        f()
    }

    /// The context of the call this thread is running, for server-side code
    /// that needs its server (built-in containers keeping nested proxies
    /// alive, a condition finding its lock). `None` outside a call.
    pub fn current() -> Option<CallContext> {
        CURRENT.with(|c| {
            let cx = c.get();
            // SAFETY: set only by `enter`, whose borrow of the context
            // outlives this read on this thread.
            (!cx.is_null()).then(|| unsafe { (*cx).clone() })
        })
    }

    /// The key a served object's own sessions authenticate with: a proxy it
    /// receives as an argument calls through one.
    pub(crate) fn authkey(&self) -> &[u8] {
        self.server.remote().authkey()
    }

    /// How a process of this server's (a worker of a pool it owns)
    /// reaches it: its address, with the manager's key.
    pub(crate) fn crossing_server(&self) -> crate::crossing::ServerInfo {
        crate::crossing::ServerInfo {
            address: self.server.address().clone(),
            settings: crate::options::ManagerOptions::default()
                .authkey(self.authkey())
                .connect_settings(),
        }
    }

    /// Whether the call running on this thread is a dynamic one (see
    /// `dynamic`), without cloning its context.
    fn current_is_dynamic() -> bool {
        CURRENT.with(|c| {
            let cx = c.get();
            // SAFETY: as in `current`.
            !cx.is_null() && unsafe { (*cx).dynamic }
        })
    }

    /// The id of the object whose method is running (`None` in a
    /// constructor). A container uses it to recognise a proxy to itself.
    pub fn object_id(&self) -> Option<u64> {
        self.object
    }

    /// The object a token names, if it is served here and is a `T` (for
    /// example the lock a condition is built on).
    pub fn resolve<T: Shared>(&self, token: &Token) -> Result<Arc<ObjectLock<T>>, RemoteError> {
        if token.address != *self.server.address() {
            return Err(RemoteError::BadRequest(format!(
                "{token} lives on another manager"
            )));
        }
        self.server
            .object(token.id)?
            .into_any()
            .downcast::<ObjectLock<T>>()
            .map_err(|_| RemoteError::BadRequest(format!("{token} is not a `{}`", T::TYPEID)))
    }

    /// A handle for objects that hold proxies to other objects of this
    /// server and must keep them alive.
    pub fn link(&self) -> ServerLink {
        ServerLink(Some(Arc::downgrade(&self.server)))
    }
}

/// Lets a served object keep the objects it holds proxies to alive: a
/// container that stores a proxy takes a reference with
/// [`retain`](Self::retain) and gives it back with
/// [`release`](Self::release) (at the latest in its `Drop`). A token of
/// another manager is retained there, through this process's session on it.
#[derive(Clone)]
pub struct ServerLink(Option<Weak<dyn Host>>);

impl Default for ServerLink {
    /// A link to no server: retains and releases do nothing.
    fn default() -> Self {
        ServerLink(None)
    }
}

impl std::fmt::Debug for ServerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.upgrade() {
            Some(server) => write!(f, "ServerLink({})", server.address()),
            None => f.write_str("ServerLink(none)"),
        }
    }
}

impl ServerLink {
    fn upgrade(&self) -> Option<Arc<dyn Host>> {
        self.0.as_ref().and_then(Weak::upgrade)
    }

    fn local(&self, token: &Token) -> Option<Arc<dyn Host>> {
        self.upgrade()
            .filter(|server| token.address == *server.address())
    }

    /// Take a reference to `token`'s object on behalf of the holder.
    pub fn retain(&self, token: &Token) -> Result<(), RemoteError> {
        if let Some(server) = self.local(token) {
            return server.retain_internal(token.id);
        }
        let Some(server) = self.upgrade() else {
            return Ok(());
        };
        server
            .remote()
            .retain(token)
            .map_err(|e| RemoteError::BadRequest(format!("cannot hold {token}: {e}")))
    }

    /// Give back a reference taken with [`retain`](Self::retain).
    pub fn release(&self, token: &Token) {
        if let Some(server) = self.local(token) {
            server.release_internal(token.id);
        } else if let Some(server) = self.upgrade() {
            server.remote().release(token);
        }
    }
}

/// A call's context grants its caller every token of this server that its
/// result carries: the caller's proxy adopts the reference on arrival.
impl token::Grant for CallContext {
    fn grant(&self, token: &Token) -> Option<Address> {
        if token.address == *self.server.address() {
            let _ = self.server.incref(self.session, token.id);
            return None;
        }
        // A gateway hands out a built-in kept in its Redis as its own: the
        // caller reaches it here, whichever gateway made it (that one may
        // be gone, and a CPython client does not move).
        self.server
            .adopt(self.session, token)
            .then(|| self.server.address().clone())
    }
}

/// Run `encode` with `cx` as the call whose caller receives any token
/// serialized meanwhile.
fn encoding_for<R>(cx: &CallContext, encode: impl FnOnce() -> R) -> R {
    token::granting(cx, encode)
}

/// Decode a method's argument tuple.
pub fn decode_args<A: DeserializeOwned>(method: &str, args: &[u8]) -> Result<A, RemoteError> {
    let bad = |reason: String| RemoteError::BadArguments {
        method: method.to_string(),
        reason,
    };
    if CallContext::current_is_dynamic() {
        // Positional arguments as one list value, converted to the
        // method's parameter types.
        let args: Value = crate::wire::decode(args).map_err(|e| bad(crate::error::chain(&e)))?;
        // No arguments is serde's unit, `()`, not an empty sequence.
        let args = match args {
            Value::List(items) if items.is_empty() => Value::None,
            args => args,
        };
        return from_value(args).map_err(|e| bad(crate::error::chain(&e)));
    }
    crate::wire::decode(args).map_err(|e| bad(crate::error::chain(&e)))
}

/// Encode a method's argument tuple as [`decode_args`] reads it in the
/// call running on this thread (a dynamic call's as one list value): a
/// form that rewrites an argument before handing the call on.
#[cfg(feature = "redis")]
pub fn encode_args<A: Serialize>(args: &A) -> Result<Vec<u8>, RemoteError> {
    if CallContext::current_is_dynamic() {
        let value = crate::value::to_value(args)
            .map_err(|e| RemoteError::Encode(crate::error::chain(&e)))?;
        return encode_plain(&value);
    }
    encode_plain(args)
}

/// A method's return value on its way to the wire.
pub trait Reply {
    /// Encode the value; objects become tokens registered for the caller.
    fn encode(self, cx: &CallContext) -> Result<Vec<u8>, RemoteError>;
}

fn encode_plain<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, RemoteError> {
    crate::wire::encode(value).map_err(|e| RemoteError::Encode(crate::error::chain(&e)))
}

/// A dynamic call's result: `shaped` gives its shape (run inside the
/// grant of tokens when the value may hold some), then it is encoded
/// outside it, so no token is granted twice.
fn encode_shaped(shaped: Result<Shaped, ValueError>) -> Result<Vec<u8>, RemoteError> {
    let shaped = shaped.map_err(|e| RemoteError::Encode(e.to_string()))?;
    encode_plain(&shaped)
}

/// A plain serializable result (including `Result<T, E>`, sent whole).
pub struct Plain<T>(pub T);

impl<T: Serialize> Reply for Plain<T> {
    fn encode(self, cx: &CallContext) -> Result<Vec<u8>, RemoteError> {
        if cx.dynamic {
            return encode_shaped(encoding_for(cx, || to_shaped(&self.0)));
        }
        encoding_for(cx, || encode_plain(&self.0))
    }
}

/// A shared object returned by a method: served as a new object, sent as a
/// token the caller's proxy adopts (the seed's `method_to_typeid`).
pub struct Returned<T>(pub T);

impl<T: Shared> Reply for Returned<T> {
    fn encode(self, cx: &CallContext) -> Result<Vec<u8>, RemoteError> {
        let token = register(self.0, cx);
        if cx.dynamic {
            return encode_plain(&Shaped::Object(token));
        }
        encode_plain(&token)
    }
}

/// `Result<T, E>` where `T` is a shared object.
pub struct ReturnedResult<T, E>(pub Result<T, E>);

impl<T: Shared, E: Serialize> Reply for ReturnedResult<T, E> {
    fn encode(self, cx: &CallContext) -> Result<Vec<u8>, RemoteError> {
        let result = self.0.map(|object| register(object, cx));
        if cx.dynamic {
            return encode_shaped(match result {
                Ok(token) => Ok(Shaped::Ok(Box::new(Shaped::Object(token)))),
                Err(e) => to_value(&e).map(Shaped::Err),
            });
        }
        encode_plain(&result)
    }
}

/// `Option<T>` where `T` is a shared object.
pub struct ReturnedOption<T>(pub Option<T>);

impl<T: Shared> Reply for ReturnedOption<T> {
    fn encode(self, cx: &CallContext) -> Result<Vec<u8>, RemoteError> {
        let option = self.0.map(|object| register(object, cx));
        if cx.dynamic {
            return encode_plain(&match option {
                Some(token) => Shaped::Some(Box::new(Shaped::Object(token))),
                None => Shaped::None,
            });
        }
        encode_plain(&option)
    }
}

fn register<T: Shared>(object: T, cx: &CallContext) -> Token {
    let cell: Arc<dyn Object> = Arc::new(ObjectLock::new(object));
    cx.server.insert_for(cx.session, cell, T::TYPEID)
}

/// Compile-time check used by generated code: `T` crosses the wire.
pub fn assert_serialize<T: Serialize + ?Sized>() {}

/// Compile-time check used by generated code: `T` comes off the wire.
pub fn assert_deserialize<T: DeserializeOwned>() {}

/// Compile-time check used by `manager!`: `T` has a `#[shared]` impl.
pub fn assert_shared<T: Shared>() {}

/// FNV-1a hash used for signature fingerprints (the macro computes the same
/// at expansion time; this one exists for tests and hand-written types).
pub const fn fingerprint(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// Run a synchronous `&self` method: on the connection's task when the
/// object's lock is free (the fast path), otherwise once it is.
pub fn run_ref<T, R, F>(this: Arc<ObjectLock<T>>, cx: &CallContext, f: F) -> Outcome
where
    T: Shared,
    R: Reply,
    F: FnOnce(&T) -> R + Send + 'static,
{
    run_ref_encoded(this, cx, move |object, cx| f(object).encode(cx))
}

/// [`run_ref`] for a method whose result borrows from the object: `f`
/// encodes it while the object's lock is held, so it is never cloned.
pub fn run_ref_encoded<T, F>(this: Arc<ObjectLock<T>>, cx: &CallContext, f: F) -> Outcome
where
    T: Shared,
    F: FnOnce(&T, &CallContext) -> Result<Vec<u8>, RemoteError> + Send + 'static,
{
    if let Ok(guard) = this.try_read() {
        return Outcome::Ready(f(&guard, cx));
    }
    let cx = cx.clone();
    Outcome::pending(async move {
        let guard = this.read().await;
        f(&guard, &cx)
    })
}

/// Run a synchronous `&mut self` method, serialized with every other
/// method of the object.
pub fn run_mut<T, R, F>(this: Arc<ObjectLock<T>>, cx: &CallContext, f: F) -> Outcome
where
    T: Shared,
    R: Reply,
    F: FnOnce(&mut T) -> R + Send + 'static,
{
    run_mut_encoded(this, cx, move |object, cx| f(object).encode(cx))
}

/// [`run_mut`] for a method whose result borrows from the object; see
/// [`run_ref_encoded`].
pub fn run_mut_encoded<T, F>(this: Arc<ObjectLock<T>>, cx: &CallContext, f: F) -> Outcome
where
    T: Shared,
    F: FnOnce(&mut T, &CallContext) -> Result<Vec<u8>, RemoteError> + Send + 'static,
{
    if let Ok(mut guard) = this.try_write() {
        return Outcome::Ready(f(&mut guard, cx));
    }
    let cx = cx.clone();
    Outcome::pending(async move {
        let mut guard = this.write().await;
        f(&mut guard, &cx)
    })
}

/// A method as a call names it: the wire name and signature fingerprint
/// (what the server checks), and, from a typed proxy, the method's index
/// in its type's [`Shared::METHODS`](crate::server::Shared::METHODS), resolved when the proxy was
/// compiled. The server tries that index first and looks the name up only
/// when the entry there is another method (a server built from another
/// version of the type), so a call costs no search of the table.
#[derive(Debug, Clone, Copy)]
pub struct MethodRef<'a> {
    /// The method's name, as sent on the wire.
    pub name: &'a str,
    /// Hash of the method's signature; client and server must agree.
    pub fingerprint: u64,
    /// Where the method is in the served type's table, if the caller knows.
    pub index: Option<u32>,
    /// The served type's Python table, for a call in pickle mode (empty:
    /// the method by its own name, positional arguments).
    pub python: &'static [PyMethod],
}

impl<'a> MethodRef<'a> {
    /// A method known by name only: the server looks it up.
    pub const fn named(name: &'a str, fingerprint: u64) -> Self {
        MethodRef {
            name,
            fingerprint,
            index: None,
            python: &[],
        }
    }

    /// Method number `index` of a type's [`Shared::METHODS`](crate::server::Shared::METHODS) table.
    pub const fn at(index: u32, name: &'a str, fingerprint: u64) -> Self {
        MethodRef {
            name,
            fingerprint,
            index: Some(index),
            python: &[],
        }
    }

    /// The same method, of a type whose Python table is `python`.
    pub const fn with_python(self, python: &'static [PyMethod]) -> Self {
        MethodRef { python, ..self }
    }
}

impl<'a> MethodRef<'a> {
    /// The request calling this method on object `object`.
    pub(crate) fn request(self, id: u64, object: u64) -> crate::wire::Request<'a> {
        crate::wire::Request::Call {
            id,
            object,
            method: self.name,
            index: self.index,
            fingerprint: self.fingerprint,
        }
    }
}
