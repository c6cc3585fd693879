//! Client sessions: local reference counts, the blocking connection
//! pool, the multiplexed async connection.
//!
//! A [`Client`] is one session on one server. Its logic lives once, in the
//! sans-IO core (`session.rs`: request ids, frames, reply parsing, decref
//! batching, reconnect and cancellation), driven two ways: blocking calls
//! (`blocking.rs`) take an idle connection from a pool (opening one if
//! every connection is busy), do one request and response on the calling
//! thread, spinning briefly for the reply before they park, and put it
//! back: no runtime, no thread hop. Async calls (`multiplexed.rs`) share
//! one connection per session whose reader task routes replies by request
//! id, so many calls can be in flight; it is opened again if it fails, and
//! a dropped call is withdrawn on the server.

mod blocking;
mod ledger;
mod multiplexed;
mod python;
mod session;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::address::Address;
use crate::error::{Error, Result};
use crate::object::MethodRef;
use crate::object::RemoteRefs;
use crate::options::ManagerOptions;
use crate::token::Token;
use crate::wire::{self, DebugEntry, Request};
use blocking::Pool;
pub(crate) use multiplexed::start_undo;
use multiplexed::Link;
pub use multiplexed::Undoable;
pub(crate) use python::{read_reply, PickleSession};
use session::Session;

/// A client session on one server: proxies made through it share its
/// connections and its references.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    address: Address,
    authkey: Vec<u8>,
    call_timeout: Option<Duration>,
    backend: Backend,
}

/// The protocol a session speaks, and its connections.
enum Backend {
    /// Ours: blocking connections from a pool, one multiplexed async one.
    Native {
        session: Box<Session>,
        pool: Pool,
        link: Link,
    },
    /// CPython's manager protocol (`python/`).
    Pickle(PickleSession),
}

impl Backend {
    /// The references the session holds.
    fn ledger(&self) -> &ledger::Ledger {
        match self {
            Backend::Native { session, .. } => &session.ledger,
            Backend::Pickle(pickle) => &pickle.ledger,
        }
    }
}

impl Client {
    /// Open a session on the server at `address`: connects and
    /// authenticates once, so a wrong key or a missing server is reported
    /// here.
    pub(crate) fn connect(address: Address, options: &ManagerOptions) -> Result<Client> {
        let backend = if options.serializer == crate::options::Serializer::Pickle {
            Backend::Pickle(PickleSession::connect(address.clone(), options)?)
        } else {
            let session = Box::new(Session::new(address.clone(), options));
            let first = Pool::open(&session, false)?;
            let pool = Pool::default();
            pool.put(first);
            Backend::Native {
                session,
                pool,
                link: Link::default(),
            }
        };
        Ok(Client {
            inner: Arc::new(Inner {
                address,
                authkey: options.authkey.clone(),
                call_timeout: options.call_timeout,
                backend,
            }),
        })
    }

    /// The native session and its connections, or the error of a call
    /// CPython's protocol cannot make.
    fn native(&self, what: &str) -> Result<(&Session, &Pool, &Link)> {
        match &self.inner.backend {
            Backend::Native {
                session,
                pool,
                link,
            } => Ok((session, pool, link)),
            Backend::Pickle(_) => Err(Error::Remote(crate::error::RemoteError::BadRequest(
                format!("{what} are not available in pickle mode (use the blocking proxies)"),
            ))),
        }
    }

    /// The server's address.
    pub fn address(&self) -> &Address {
        &self.inner.address
    }

    /// The deadline calls of this session get unless their proxy sets one
    /// ([`ManagerOptions::call_timeout`]).
    pub fn call_timeout(&self) -> Option<Duration> {
        self.inner.call_timeout
    }

    /// This process's session on the server at `address`, for proxies that
    /// arrive nested in a value from another manager. Opened on first use
    /// with `authkey` (as Python rebuilds such proxies with the process's
    /// authkey) and kept for the life of the process.
    pub(crate) fn for_address(address: &Address, authkey: &[u8]) -> Result<Client> {
        Client::shared(address, || {
            Client::connect(address.clone(), &ManagerOptions::default().authkey(authkey))
        })
    }

    /// This process's session on `address`, opened by `open` if there is
    /// none yet, and kept for the life of the process.
    fn shared(address: &Address, open: impl FnOnce() -> Result<Client>) -> Result<Client> {
        static OTHERS: Mutex<Option<HashMap<Address, Client>>> = Mutex::new(None);
        let mut others = OTHERS.lock().unwrap_or_else(|e| e.into_inner());
        let others = others.get_or_insert_with(HashMap::new);
        if let Some(client) = others.get(address) {
            return Ok(client.clone());
        }
        let client = open()?;
        others.insert(address.clone(), client.clone());
        Ok(client)
    }

    /// How another process opens a session like this one (key, protocol,
    /// TLS trust), for proxies of this session that cross to it
    /// (`process/crossing.rs`).
    pub(crate) fn crossing_settings(&self) -> Vec<u8> {
        let mut options = ManagerOptions::default().authkey(self.authkey());
        if self.pickle().is_some() {
            options = options.serializer(crate::options::Serializer::Pickle);
        }
        if let Backend::Native { session, .. } = &self.inner.backend {
            #[allow(clippy::clone_on_copy)] // Copy only when TLS is compiled out
            {
                options.tls_client = session.tls.clone();
            }
        }
        options.connect_settings()
    }

    /// A new session on `address` opened with what
    /// [`crossing_settings`](Self::crossing_settings) wrote (this
    /// process's authkey when nothing was said).
    pub(crate) fn connect_crossed(address: &Address, settings: Option<&[u8]>) -> Result<Client> {
        Client::connect(
            address.clone(),
            &ManagerOptions::from_connect_settings(settings)?,
        )
    }

    /// This process's session on `address` for proxies that crossed from
    /// another process, opened as [`connect_crossed`](Self::connect_crossed)
    /// does on first use and kept for the life of the process.
    pub(crate) fn for_crossed(address: &Address, settings: Option<&[u8]>) -> Result<Client> {
        Client::shared(address, || Client::connect_crossed(address, settings))
    }

    pub(crate) fn authkey(&self) -> &[u8] {
        &self.inner.authkey
    }

    /// The CPython session, in pickle mode.
    pub(crate) fn pickle(&self) -> Option<&PickleSession> {
        match &self.inner.backend {
            Backend::Pickle(pickle) => Some(pickle),
            Backend::Native { .. } => None,
        }
    }

    /// Count one more local proxy of `id`, `server_refs` of which the
    /// server just granted this session.
    pub(crate) fn retain(&self, id: u64, server_refs: u64) {
        self.inner.backend.ledger().retain(id, server_refs);
    }

    /// One local proxy of `id` is gone; the last one releases the session's
    /// server references, in a message nobody waits for.
    pub(crate) fn release(&self, id: u64) {
        let count = self.inner.backend.ledger().release(id);
        if count == 0 {
            return;
        }
        match &self.inner.backend {
            Backend::Native { session, pool, .. } => {
                session.give_back(id, count);
                pool.flush_decrefs_idle(session);
            }
            Backend::Pickle(pickle) => pickle.decref(id, count),
        }
    }

    /// Make sure this session holds a server reference to `token`'s object
    /// and count one more local proxy.
    pub(crate) fn incref(&self, token: &Token) -> Result<()> {
        if self.inner.backend.ledger().retain_held(token.id) {
            return Ok(());
        }
        self.take_reference(token)?;
        self.retain(token.id, 1);
        Ok(())
    }

    /// Take one more server reference to `token`'s object for this
    /// session, without counting a local proxy (the caller adopts it).
    pub(crate) fn take_reference(&self, token: &Token) -> Result<()> {
        if token.address != self.inner.address {
            return Err(Error::ForeignToken {
                token: token.to_string(),
                server: self.inner.address.to_string(),
            });
        }
        match &self.inner.backend {
            Backend::Pickle(pickle) => pickle.take_reference(token),
            Backend::Native { session, pool, .. } => {
                let id = session.next_request();
                let request = Request::Incref {
                    id,
                    object: token.id,
                };
                pool.roundtrip(session, id, &request, None::<&()>, None, |_| Ok(()))
            }
        }
    }

    /// Blocking call; `decode` reads the result payload in place. Past
    /// `timeout` (or the session's default) it is withdrawn on the server
    /// and fails with [`Error::Timeout`].
    pub(crate) fn call<A: Serialize, R>(
        &self,
        object: u64,
        method: MethodRef<'_>,
        args: &A,
        timeout: Option<Duration>,
        decode: impl FnOnce(&[u8]) -> Result<R>,
    ) -> Result<R> {
        let (session, pool, _) = self.native("method calls of a typed proxy")?;
        let id = session.next_request();
        let request = method.request(id, object);
        let timeout = timeout.or(self.inner.call_timeout);
        pool.roundtrip(session, id, &request, Some(args), timeout, decode)
    }

    /// Async call; `decode` reads the result payload. Dropping the future
    /// before it is done abandons the call: withdrawn on the server if it
    /// still waits there, undone if it was done (the undo an
    /// [`Undoable`] offers). Past `timeout` (or the session's default) it
    /// is dropped so and fails with [`Error::Timeout`].
    pub(crate) async fn call_async<A: Serialize, R>(
        &self,
        object: u64,
        method: MethodRef<'_>,
        args: &A,
        timeout: Option<Duration>,
        decode: impl FnOnce(&[u8]) -> Result<R>,
    ) -> Result<R> {
        let (session, _, link) = self.native("async proxies")?;
        let call = link.request(session, |id| method.request(id, object), Some(args), decode);
        match timeout.or(self.inner.call_timeout) {
            None => call.await,
            Some(after) => {
                // The undo goes to the call inside the timeout.
                let undo = multiplexed::take_undo();
                let call = async move {
                    match undo {
                        Some(undo) => Undoable::new(undo, call).await,
                        None => call.await,
                    }
                };
                tokio::time::timeout(after, call)
                    .await
                    .unwrap_or(Err(Error::Timeout {
                        after,
                        withdrawn: false,
                    }))
            }
        }
    }

    /// Create an object of `typeid`; the session holds one reference to
    /// it, for the proxy that adopts the token.
    pub(crate) fn create_token<A: Serialize>(&self, typeid: &str, args: &A) -> Result<Token> {
        match &self.inner.backend {
            Backend::Pickle(pickle) => pickle.create(typeid, args),
            Backend::Native { session, pool, .. } => {
                let id = session.next_request();
                let request = Request::Create { id, typeid };
                pool.roundtrip(session, id, &request, Some(args), None, |b| wire::decode(b))
            }
        }
    }

    /// Async form of [`create_token`](Self::create_token).
    pub(crate) async fn create_token_async<A: Serialize>(
        &self,
        typeid: &str,
        args: &A,
    ) -> Result<Token> {
        let (session, _, link) = self.native("async proxies")?;
        link.request(
            session,
            |id| Request::Create { id, typeid },
            Some(args),
            |b| wire::decode(b),
        )
        .await
    }

    /// How many objects the server holds. Releases this session's dropped
    /// proxies first, so the count reflects them.
    pub fn number_of_objects(&self) -> Result<usize> {
        match &self.inner.backend {
            Backend::Pickle(pickle) => pickle.number_of_objects(),
            Backend::Native { .. } => {
                let count: u64 =
                    self.control(|id| Request::NumberOfObjects { id }, |b| wire::decode(b))?;
                Ok(count as usize)
            }
        }
    }

    /// Every object the server holds, with typeid and refcount.
    pub fn debug_info(&self) -> Result<Vec<DebugEntry>> {
        match &self.inner.backend {
            Backend::Pickle(pickle) => pickle.debug_info(),
            Backend::Native { .. } => {
                self.control(|id| Request::DebugInfo { id }, |b| wire::decode(b))
            }
        }
    }

    /// Ask the server to stop serving.
    pub fn shutdown_server(&self) -> Result<()> {
        match &self.inner.backend {
            Backend::Pickle(pickle) => pickle.shutdown(),
            Backend::Native { .. } => self.control(|id| Request::Shutdown { id }, |_| Ok(())),
        }
    }

    /// A request to the server itself, on the native protocol.
    fn control<R>(
        &self,
        request: impl FnOnce(u64) -> Request<'static>,
        decode: impl FnOnce(&[u8]) -> Result<R>,
    ) -> Result<R> {
        let (session, pool, _) = self.native("requests to the server")?;
        let id = session.next_request();
        pool.roundtrip(session, id, &request(id), None::<&()>, None, decode)
    }
}

/// References a server holds on objects of other servers, taken through
/// this process's sessions on those servers ([`Client::for_address`]).
pub(crate) struct OtherServers {
    /// The key those sessions authenticate with: the serving manager's.
    authkey: Vec<u8>,
}

impl OtherServers {
    pub(crate) fn new(authkey: &[u8]) -> Self {
        OtherServers {
            authkey: authkey.to_vec(),
        }
    }
}

impl RemoteRefs for OtherServers {
    fn retain(&self, token: &Token) -> std::result::Result<(), String> {
        Client::for_address(&token.address, &self.authkey)
            .and_then(|other| other.incref(token))
            .map_err(|e| crate::error::chain(&e))
    }

    fn authkey(&self) -> &[u8] {
        &self.authkey
    }

    fn release(&self, token: &Token) {
        if let Ok(other) = Client::for_address(&token.address, &self.authkey) {
            other.release(token.id);
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.inner.address)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    /// The session's last handle is gone: release its references now and
    /// wait (briefly) for the server to confirm, so anyone counting objects
    /// next sees them gone. Closing the connections would release them too,
    /// but only whenever the server notices.
    fn drop(&mut self) {
        let (session, pool) = match &self.backend {
            Backend::Pickle(pickle) => return pickle.release_all(),
            Backend::Native { session, pool, .. } => (session, pool),
        };
        // Releases already sent may still be in flight: confirm them too.
        if !session.ledger.held_any() {
            return;
        }
        if !pool.with_read_timeout(Duration::from_secs(1)) {
            return;
        }
        let id = session.next_request();
        let request = Request::Release { id };
        let _ = pool.roundtrip(session, id, &request, None::<&()>, None, |_| Ok(()));
    }
}

/// Identity of the calling thread, distinct across threads and processes.
/// Ownership of an RLock or a Condition's lock belongs to it, as Python's
/// belongs to the calling thread, even when threads share a connection.
pub fn caller_id() -> u64 {
    static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    let base = *BASE.get_or_init(|| u64::from_le_bytes(crate::authkey::random_bytes()));
    // An odd multiplier keeps per-thread ids distinct within the process.
    ID.with(|id| base.wrapping_add(id.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}
