//! Proxies: the [`Proxy`] trait every proxy implements, the base every
//! generated proxy wraps, the [`Token`] naming an object, the client
//! session that holds references ([`Client`]), and what a proxy's calls are
//! made of ([`MethodRef`], [`Undoable`], [`caller_id`]).
//!
//! A proxy holds one [`Token`] and a handle on the client session that owns
//! its reference. Reference counting is local first: cloning a proxy only
//! bumps a counter in the session; when the last local proxy of an object
//! drops, the session tells the server, in one message that is not waited
//! for, to release the references it held.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use crate::client::{caller_id, Client, Undoable};
pub use crate::object::MethodRef;
pub use crate::token::Token;
pub use crate::wire::DebugEntry;

use crate::address::Address;
use crate::crossing::{self, ServerInfo};
use crate::error::Result;
use crate::object::CallContext;
use crate::wire;

thread_local! {
    /// The session whose reply is being decoded on this thread, if any.
    static DECODING_FOR: std::cell::RefCell<Option<Client>> = const { std::cell::RefCell::new(None) };
}

/// Run `decode` with `client` as the session that adopts any proxy decoded
/// meanwhile.
pub(crate) fn decoding_for<R>(client: &Client, decode: impl FnOnce() -> R) -> R {
    struct Restore(Option<Client>);
    impl Drop for Restore {
        fn drop(&mut self) {
            DECODING_FOR.with(|c| *c.borrow_mut() = self.0.take());
        }
    }
    let previous = DECODING_FOR.with(|c| c.borrow_mut().replace(client.clone()));
    let _restore = Restore(previous);
    decode()
}

impl<'de> Deserialize<'de> for ProxyBase {
    /// A proxy inside a reply: the server granted this session a reference,
    /// which the new proxy adopts. Elsewhere, one of its own.
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let token = crate::value::token_serde::deserialize(deserializer)?;
        let adopted = match crossing::receiving(&token.address) {
            Some(mut receiving) => {
                let adopted = adopt_crossed(&mut receiving, token);
                receiving.give_back();
                adopted
            }
            None => adopt_token(token),
        };
        adopted.map_err(crate::error::de_error)
    }
}

/// A token outside what another process sent: in a reply (the session
/// decoding it was granted a reference) or in the arguments of a call this
/// process serves.
fn adopt_token(token: Token) -> Result<ProxyBase> {
    let Some(client) = DECODING_FOR.with(|c| c.borrow().clone()) else {
        // An argument of a call this process serves: the receiving
        // object's own reference.
        return match CallContext::current() {
            Some(call) => adopt_argument(&call, token),
            None => Err(crate::error::Error::Codec {
                context: "a proxy can only be decoded from a manager's reply, a call's \
                          arguments, or what another process sent"
                    .into(),
                source: None,
            }),
        };
    };
    if token.address == *client.address() {
        return Ok(ProxyBase::adopt(client, token));
    }
    // A proxy to an object of another manager: the server that sent it
    // holds a reference there, not us; take our own.
    Client::for_address(&token.address, client.authkey())
        .and_then(|other| ProxyBase::from_token(&other, token))
}

/// A proxy another process sent, adopted through the sessions the message
/// keeps (a child's arguments: released when its target ends) or this
/// process's own, opened with the settings that came with the message or
/// that this process learnt (else its authkey, as Python does).
fn adopt_crossed(receiving: &mut crossing::Receiving, token: Token) -> Result<ProxyBase> {
    let settings = receiving.settings.as_deref();
    let session = match &mut receiving.scope {
        Some(scope) => {
            let sessions = scope
                .get_or_insert_with(|| Box::new(HashMap::<Address, Client>::new()))
                .downcast_mut::<HashMap<Address, Client>>()
                .expect("a message's sessions are ours");
            match sessions.get(&token.address) {
                Some(session) => session.clone(),
                None => {
                    let session = Client::connect_crossed(&token.address, settings)?;
                    sessions.insert(token.address.clone(), session.clone());
                    session
                }
            }
        }
        None => Client::for_crossed(&token.address, settings)?,
    };
    ProxyBase::from_token(&session, token)
}

/// A proxy that arrives as an argument of a call this process serves: the
/// object receiving it may keep it, so it takes a reference of its own,
/// through this process's session on the token's server (this server, or
/// another), while the caller's proxy still holds the object. It is
/// released when the object drops the proxy.
fn adopt_argument(call: &CallContext, token: Token) -> Result<ProxyBase> {
    off_the_runtime(|| {
        let session = Client::for_address(&token.address, call.authkey())?;
        ProxyBase::from_token(&session, token)
    })
}

/// Run a blocking round trip. On a worker of a multi-threaded tokio runtime
/// (a served object calling through a proxy it holds, maybe to its own
/// server), the worker's other tasks move to another thread first, so the
/// call cannot starve the very tasks that must answer it. Elsewhere (plain
/// threads, the usual client) it just runs.
fn off_the_runtime<R>(call: impl FnOnce() -> R) -> R {
    let on_worker = tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
        runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
    });
    if on_worker {
        tokio::task::block_in_place(call)
    } else {
        call()
    }
}

impl Serialize for ProxyBase {
    /// A proxy travels as its token, marked so that a shared container keeps
    /// it as a proxy.
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        // Going to another process: its object stays alive until the
        // receiver holds its own reference, which it takes through a
        // session opened the way this one was.
        if crossing::is_encoding() {
            let server = ServerInfo {
                address: self.client.address().clone(),
                settings: self.client.crossing_settings(),
            };
            crossing::attach(server, Box::new(self.clone()));
        }
        crate::value::token_serde::serialize(&self.token, serializer)
    }
}

/// Making proxies through a session: the client layer deals in tokens, this
/// one wraps them.
impl Client {
    /// Create an object of `typeid` and return its proxy.
    pub fn create<P: Proxy, A: Serialize>(&self, typeid: &str, args: &A) -> Result<P> {
        let token = self.create_token(typeid, args)?;
        Ok(P::from_base(ProxyBase::adopt(self.clone(), token)))
    }

    /// Async form of [`create`](Self::create).
    pub async fn create_async<P: Proxy, A: Serialize>(&self, typeid: &str, args: &A) -> Result<P> {
        let token = self.create_token_async(typeid, args).await?;
        Ok(P::from_base(ProxyBase::adopt(self.clone(), token)))
    }

    /// A proxy of type `P` (any proxy: typed, generated) to the object
    /// `token` names on this session's server, taking a new reference.
    pub fn proxy_from_token<P: DeserializeOwned>(&self, token: &Token) -> Result<P> {
        self.take_reference(token)?;
        // Outside a reply the token's fields encode without granting
        // anything; the proxy adopts the reference just taken.
        let bytes = wire::encode(token)?;
        decoding_for(self, || wire::decode::<P>(&bytes))
    }
}

/// Implemented by every generated proxy (blocking and async), and by the
/// typed proxies of the built-ins: code generic over proxies reaches the
/// object's token and session through it.
///
/// ```
/// # extern crate manager_runtime as managers;
/// use managers::Proxy;
///
/// /// Where any proxy's object lives.
/// fn describe(proxy: &impl Proxy) -> String {
///     let token = proxy.token();
///     format!("{} #{} at {}", token.typeid, token.id, token.address)
/// }
///
/// # fn main() -> managers::Result<()> {
/// let manager = managers::sync::SyncManager::new();
/// manager.start_in_thread()?;
/// assert!(describe(&manager.lock()?).starts_with("Lock #"));
/// assert!(describe(&manager.list::<u8>()?).starts_with("list #"));
/// # Ok(()) }
/// ```
pub trait Proxy: Sized {
    /// Wrap a base that already owns a reference.
    fn from_base(base: ProxyBase) -> Self;
    /// The base this proxy wraps.
    fn base(&self) -> &ProxyBase;
    /// The token of the object.
    fn token(&self) -> &Token {
        self.base().token()
    }

    /// Another proxy of the same object whose calls have this deadline
    /// (instead of the manager's
    /// [`call_timeout`](crate::ManagerOptions::call_timeout)). Past it a
    /// call fails with [`Error::Timeout`](crate::Error::Timeout) and the
    /// server withdraws what it waits for on the caller's behalf: a timed
    /// out `get()` takes no item, a timed out `acquire()` no lock.
    fn with_timeout(&self, timeout: std::time::Duration) -> Self {
        let mut base = self.base().clone();
        base.timeout = Some(timeout);
        Self::from_base(base)
    }
}

/// A counted reference to a remote object, through one client session.
pub struct ProxyBase {
    client: Client,
    token: Token,
    /// Deadline of each call; `None`: the session's default.
    timeout: Option<std::time::Duration>,
}

impl ProxyBase {
    /// Adopt a token whose server-side reference the session already holds.
    pub(crate) fn adopt(client: Client, token: Token) -> Self {
        client.retain(token.id, 1);
        ProxyBase {
            client,
            token,
            timeout: None,
        }
    }

    /// Build a base for a token that came from elsewhere (another process, a
    /// container): takes a new reference on the server if this session holds
    /// none yet.
    pub fn from_token(client: &Client, token: Token) -> Result<Self> {
        client.incref(&token)?;
        Ok(ProxyBase {
            client: client.clone(),
            token,
            timeout: None,
        })
    }

    /// The object's token.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The session this proxy calls through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Call a method (blocking) and decode a plain result.
    pub fn call<A: Serialize, R: DeserializeOwned>(
        &self,
        method: MethodRef<'_>,
        args: &A,
    ) -> Result<R> {
        if let Some(pickle) = self.client.pickle() {
            let reply = off_the_runtime(|| {
                pickle.call(&self.token, method.name, method.python, args, self.timeout)
            })?;
            return decoding_for(&self.client, || crate::client::read_reply(reply));
        }
        off_the_runtime(|| {
            self.client
                .call(self.token.id, method, args, self.timeout, |bytes| {
                    decoding_for(&self.client, || crate::wire::decode(bytes))
                })
        })
    }

    /// Call a method (blocking) whose result holds shared objects.
    pub fn call_adopt<A: Serialize, W: Adopt>(
        &self,
        method: MethodRef<'_>,
        args: &A,
    ) -> Result<W::Output> {
        if let Some(pickle) = self.client.pickle() {
            let reply = off_the_runtime(|| {
                pickle.call(&self.token, method.name, method.python, args, self.timeout)
            })?;
            let wire: W::Wire = crate::client::read_reply(reply)?;
            return Ok(W::adopt(wire, &self.client));
        }
        off_the_runtime(|| {
            self.client
                .call(self.token.id, method, args, self.timeout, |bytes| {
                    self.adopt_reply::<W>(bytes)
                })
        })
    }

    /// A result payload holding shared objects, adopted through this
    /// proxy's session.
    fn adopt_reply<W: Adopt>(&self, bytes: &[u8]) -> Result<W::Output> {
        let wire: W::Wire = crate::wire::decode(bytes)?;
        Ok(W::adopt(wire, &self.client))
    }

    /// Call a method (async) and decode a plain result.
    pub async fn call_async<A: Serialize, R: DeserializeOwned>(
        &self,
        method: MethodRef<'_>,
        args: &A,
    ) -> Result<R> {
        self.client
            .call_async(self.token.id, method, args, self.timeout, |bytes| {
                decoding_for(&self.client, || crate::wire::decode(bytes))
            })
            .await
    }

    /// Call a method (async) whose result holds shared objects.
    pub async fn call_adopt_async<A: Serialize, W: Adopt>(
        &self,
        method: MethodRef<'_>,
        args: &A,
    ) -> Result<W::Output> {
        self.client
            .call_async(self.token.id, method, args, self.timeout, |bytes| {
                self.adopt_reply::<W>(bytes)
            })
            .await
    }

    /// Make `call`, an async call through this proxy's session whose
    /// result is an `R`, safe to drop: if its future is dropped after the
    /// server did the call (the reply on its way, or arrived and not yet
    /// taken), `undo` gets the result instead of the caller, and the
    /// future it returns runs on the tokio runtime of the session's async
    /// connection. That future is polled once at once, so the requests it
    /// makes before its first wait go out ahead of any call made after the
    /// drop. If the call was still waiting on the server it is withdrawn
    /// there and `undo` is not called. The built-ins use it so that a
    /// dropped `acquire()` releases what it took and a dropped `get()` puts
    /// its item back at the head of the queue; a type of your own whose
    /// method takes something can do the same. Only the first call `call`
    /// makes is covered.
    ///
    /// ```
    /// # extern crate manager_runtime as managers;
    /// # fn main() -> managers::Result<()> {
    /// use managers::Proxy;
    /// # let manager = managers::sync::SyncManager::new();
    /// # manager.start_in_thread()?;
    /// # let runtime = tokio::runtime::Runtime::new()?;
    /// runtime.block_on(async {
    ///     let queue = manager.queue_async::<u32>(0).await?;
    ///     queue.put(7).await?;
    ///     // `R` is what the served method returns (`qsize`'s `usize`): the
    ///     // undo gets it if this future is dropped after the server did
    ///     // the call. (`#[undo(..)]` on a `#[shared(typed)]` method wires
    ///     // this up, as the built-ins' `get` and `acquire` do.)
    ///     let got = queue.base().undo_if_dropped(queue.qsize(), |seen: usize| async move {
    ///         eprintln!("dropped after the server counted {seen} items");
    ///     });
    ///     assert_eq!(got.await?, 1);
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub fn undo_if_dropped<F, R, U>(
        &self,
        call: F,
        undo: impl FnOnce(R) -> U + Send + 'static,
    ) -> crate::client::Undoable<F>
    where
        F: std::future::Future,
        R: DeserializeOwned,
        U: std::future::Future<Output = ()> + Send + 'static,
    {
        let client = self.client.clone();
        crate::client::Undoable::new(
            Box::new(move |payload: &[u8]| {
                if let Ok(result) = decoding_for(&client, || crate::wire::decode::<R>(payload)) {
                    crate::client::start_undo(undo(result));
                }
            }),
            call,
        )
    }

    /// Turn a dynamic value from a reply into `T`; proxies inside it are
    /// adopted by this proxy's session.
    pub fn decode_value<T: DeserializeOwned>(&self, value: crate::value::Value) -> Result<T> {
        decoding_for(&self.client, || crate::value::from_value(value)).map_err(Into::into)
    }

    /// Write `<Name typeid 'T' id N at ADDRESS>`; used by generated proxies'
    /// `Debug` and `Display`.
    pub fn describe(&self, proxy: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{proxy} {}>", self.token)
    }
}

impl Clone for ProxyBase {
    /// Another local reference; the server is not contacted.
    fn clone(&self) -> Self {
        self.client.retain(self.token.id, 0);
        ProxyBase {
            client: self.client.clone(),
            token: self.token.clone(),
            timeout: self.timeout,
        }
    }
}

impl Drop for ProxyBase {
    fn drop(&mut self) {
        self.client.release(self.token.id);
    }
}

impl fmt::Debug for ProxyBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.describe("Proxy", f)
    }
}

/// How a result that holds shared objects becomes proxies on the client.
pub trait Adopt {
    /// What travels: the same shape with tokens for objects.
    type Wire: DeserializeOwned;
    /// What the caller gets: the same shape with proxies.
    type Output;
    /// Turn tokens into proxies of `client`'s session.
    fn adopt(wire: Self::Wire, client: &Client) -> Self::Output;
}

/// A method returning a shared object `P` stands for.
pub struct AdoptProxy<P>(std::marker::PhantomData<P>);

impl<P: Proxy> Adopt for AdoptProxy<P> {
    type Wire = Token;
    type Output = P;
    fn adopt(token: Token, client: &Client) -> P {
        P::from_base(ProxyBase::adopt(client.clone(), token))
    }
}

/// A method returning `Result<object, E>`.
pub struct AdoptResult<P, E>(std::marker::PhantomData<(P, E)>);

impl<P: Proxy, E: DeserializeOwned> Adopt for AdoptResult<P, E> {
    type Wire = std::result::Result<Token, E>;
    type Output = std::result::Result<P, E>;
    fn adopt(wire: Self::Wire, client: &Client) -> Self::Output {
        wire.map(|token| AdoptProxy::<P>::adopt(token, client))
    }
}

/// A method returning `Option<object>`.
pub struct AdoptOption<P>(std::marker::PhantomData<P>);

impl<P: Proxy> Adopt for AdoptOption<P> {
    type Wire = Option<Token>;
    type Output = Option<P>;
    fn adopt(wire: Self::Wire, client: &Client) -> Self::Output {
        wire.map(|token| AdoptProxy::<P>::adopt(token, client))
    }
}
