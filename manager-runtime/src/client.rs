//! Client sessions: the blocking connection pool, the multiplexed async
//! connection, and local reference counts.
//!
//! A [`Client`] is one session on one server. Blocking calls take an idle
//! connection from a pool (opening one if every connection is busy), do one
//! request and response on the calling thread, and put it back: no runtime,
//! no thread hop. Async calls share one connection per session whose reader
//! task routes replies by request id, so many calls can be in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use crate::address::Address;
use crate::error::{Error, Result};
use crate::object::RemoteRefs;
use crate::options::ManagerOptions;
use crate::token::Token;
use crate::transport::{self, Socket, Stream};
use crate::wire::{self, DebugEntry, Request, Response};

/// A client session on one server: proxies made through it share its
/// connections and its references.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Held {
    proxies: u64,
    server_refs: u64,
}

struct Inner {
    address: Address,
    authkey: Vec<u8>,
    tls: transport::TlsConnect,
    max_frame: u32,
    session: u128,
    next_id: AtomicU64,
    pool: Mutex<Vec<Connection>>,
    refs: Mutex<HashMap<u64, Held>>,
    decrefs: Mutex<Vec<(u64, u64)>>,
    has_decrefs: AtomicBool,
    held_any: AtomicBool,
    multiplexed: tokio::sync::OnceCell<Arc<Multiplexed>>,
}

/// One blocking connection and its frame buffer.
struct Connection {
    stream: Stream,
    /// The request being written.
    buf: Vec<u8>,
    /// The reply being read.
    reply: Vec<u8>,
}

impl Client {
    /// Open a session on the server at `address`: connects and
    /// authenticates once, so a wrong key or a missing server is reported
    /// here.
    pub(crate) fn connect(address: Address, options: &ManagerOptions) -> Result<Client> {
        let inner = Arc::new(Inner {
            address,
            authkey: options.authkey.clone(),
            #[allow(clippy::clone_on_copy)] // Copy only when TLS is compiled out
            tls: options.tls_client.clone(),
            max_frame: options.max_frame,
            session: u128::from_le_bytes(crate::auth::random_bytes()),
            next_id: AtomicU64::new(1),
            pool: Mutex::new(Vec::new()),
            refs: Mutex::new(HashMap::new()),
            decrefs: Mutex::new(Vec::new()),
            has_decrefs: AtomicBool::new(false),
            held_any: AtomicBool::new(false),
            multiplexed: tokio::sync::OnceCell::new(),
        });
        let first = inner.open(false)?;
        inner.pool.lock().unwrap().push(first);
        Ok(Client { inner })
    }

    /// The server's address.
    pub fn address(&self) -> &Address {
        &self.inner.address
    }

    /// This process's session on the server at `address`, for proxies that
    /// arrive nested in a value from another manager. Opened on first use
    /// with `authkey` (as Python rebuilds such proxies with the process's
    /// authkey) and kept for the life of the process.
    pub(crate) fn for_address(address: &Address, authkey: &[u8]) -> Result<Client> {
        static OTHERS: Mutex<Option<HashMap<Address, Client>>> = Mutex::new(None);
        let mut others = OTHERS.lock().unwrap();
        let others = others.get_or_insert_with(HashMap::new);
        if let Some(client) = others.get(address) {
            return Ok(client.clone());
        }
        let options = ManagerOptions::default().authkey(authkey);
        let client = Client::connect(address.clone(), &options)?;
        others.insert(address.clone(), client.clone());
        Ok(client)
    }

    pub(crate) fn authkey(&self) -> &[u8] {
        &self.inner.authkey
    }

    /// Count one more local proxy of `id`, `server_refs` of which the
    /// server just granted this session.
    pub(crate) fn retain(&self, id: u64, server_refs: u64) {
        let mut refs = self.inner.refs.lock().unwrap();
        let held = refs.entry(id).or_insert(Held {
            proxies: 0,
            server_refs: 0,
        });
        held.proxies += 1;
        held.server_refs += server_refs;
        self.inner.held_any.store(true, Ordering::Relaxed);
    }

    /// One local proxy of `id` is gone; the last one releases the session's
    /// server references, in a message nobody waits for.
    pub(crate) fn release(&self, id: u64) {
        let released = {
            let mut refs = self.inner.refs.lock().unwrap();
            let Some(held) = refs.get_mut(&id) else {
                return;
            };
            held.proxies -= 1;
            if held.proxies > 0 {
                return;
            }
            refs.remove(&id).map_or(0, |h| h.server_refs)
        };
        if released > 0 {
            self.inner.decrefs.lock().unwrap().push((id, released));
            self.inner.has_decrefs.store(true, Ordering::Release);
            self.inner.flush_decrefs_idle();
        }
    }

    /// Make sure this session holds a server reference to `token`'s object
    /// and count one more local proxy.
    pub(crate) fn incref(&self, token: &Token) -> Result<()> {
        {
            let mut refs = self.inner.refs.lock().unwrap();
            if let Some(held) = refs.get_mut(&token.id) {
                if held.server_refs > 0 {
                    held.proxies += 1;
                    return Ok(());
                }
            }
        }
        let id = self.inner.next_request();
        let request = Request::Incref {
            id,
            object: token.id,
        };
        self.inner
            .roundtrip(id, &request, None::<&()>, |_| Ok(()))?;
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
        let id = self.inner.next_request();
        let request = Request::Incref {
            id,
            object: token.id,
        };
        self.inner.roundtrip(id, &request, None::<&()>, |_| Ok(()))
    }

    /// Blocking call; `decode` reads the result payload in place.
    pub(crate) fn call<A: Serialize, R>(
        &self,
        object: u64,
        method: &str,
        fingerprint: u64,
        args: &A,
        decode: impl FnOnce(&[u8]) -> Result<R>,
    ) -> Result<R> {
        let id = self.inner.next_request();
        let request = Request::Call {
            id,
            object,
            method,
            fingerprint,
        };
        self.inner.roundtrip(id, &request, Some(args), decode)
    }

    /// Async call; returns the result payload.
    pub(crate) async fn call_async<A: Serialize>(
        &self,
        object: u64,
        method: &str,
        fingerprint: u64,
        args: &A,
    ) -> Result<Vec<u8>> {
        let id = self.inner.next_request();
        let request = Request::Call {
            id,
            object,
            method,
            fingerprint,
        };
        self.request_async(id, &request, Some(args)).await
    }

    async fn request_async<A: Serialize>(
        &self,
        id: u64,
        request: &Request<'_>,
        args: Option<&A>,
    ) -> Result<Vec<u8>> {
        let mut frame = Vec::new();
        wire::begin_frame(&mut frame, request)?;
        if let Some(args) = args {
            wire::append(&mut frame, args)?;
        }
        wire::finish_frame(&mut frame, self.inner.max_frame)?;
        let connection = self
            .inner
            .multiplexed
            .get_or_try_init(|| Multiplexed::open(&self.inner))
            .await?;
        connection.request(id, frame).await
    }

    /// Create an object of `typeid`; the session holds one reference to
    /// it, for the proxy that adopts the token.
    pub(crate) fn create_token<A: Serialize>(&self, typeid: &str, args: &A) -> Result<Token> {
        let id = self.inner.next_request();
        let request = Request::Create { id, typeid };
        self.inner
            .roundtrip(id, &request, Some(args), |b| wire::decode(b))
    }

    /// Async form of [`create_token`](Self::create_token).
    pub(crate) async fn create_token_async<A: Serialize>(
        &self,
        typeid: &str,
        args: &A,
    ) -> Result<Token> {
        let id = self.inner.next_request();
        let request = Request::Create { id, typeid };
        let bytes = self.request_async(id, &request, Some(args)).await?;
        wire::decode(&bytes)
    }

    /// How many objects the server holds. Releases this session's dropped
    /// proxies first, so the count reflects them.
    pub fn number_of_objects(&self) -> Result<usize> {
        let id = self.inner.next_request();
        let count: u64 =
            self.inner
                .roundtrip(id, &Request::NumberOfObjects { id }, None::<&()>, |b| {
                    wire::decode(b)
                })?;
        Ok(count as usize)
    }

    /// Every object the server holds, with typeid and refcount.
    pub fn debug_info(&self) -> Result<Vec<DebugEntry>> {
        let id = self.inner.next_request();
        self.inner
            .roundtrip(id, &Request::DebugInfo { id }, None::<&()>, |b| {
                wire::decode(b)
            })
    }

    /// Ask the server to stop serving.
    pub fn shutdown_server(&self) -> Result<()> {
        let id = self.inner.next_request();
        self.inner
            .roundtrip(id, &Request::Shutdown { id }, None::<&()>, |_| Ok(()))
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
        // Releases already sent may still be in flight: confirm them too.
        if !self.held_any.load(Ordering::Relaxed) {
            return;
        }
        let Some(connection) = self.pool.lock().unwrap().pop() else {
            return;
        };
        let _ = connection
            .stream
            .set_read_timeout(Some(std::time::Duration::from_secs(1)));
        self.pool.lock().unwrap().push(connection);
        let id = self.next_request();
        let _ = self.roundtrip(id, &Request::Release { id }, None::<&()>, |_| Ok(()));
    }
}

impl Inner {
    fn next_request(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn hello(&self) -> Result<Vec<u8>> {
        let mut frame = Vec::new();
        wire::begin_frame(
            &mut frame,
            &Request::Hello {
                session: self.session,
            },
        )?;
        wire::finish_frame(&mut frame, self.max_frame)?;
        Ok(frame)
    }

    /// Open, authenticate and introduce a new blocking connection.
    fn open(&self, established: bool) -> Result<Connection> {
        let mut stream = transport::connect(&self.address, &self.tls)
            .map_err(|e| transport::connect_error(e, &self.address, established))?;
        crate::auth::client_blocking(&mut stream, &self.authkey)
            .map_err(|e| Self::handshake_error(e, established))?;
        wire::write_frame(&mut stream, &self.hello()?)?;
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(256),
            reply: Vec::new(),
        })
    }

    /// A session that already authenticated with this server and fails to
    /// again (a reset mid-handshake while the server dies, or another
    /// server now at the address) has lost the server it knew.
    fn handshake_error(e: Error, established: bool) -> Error {
        match e {
            Error::Authentication(reason) if established => {
                Error::gone(format!("reconnecting failed: {reason}"), None)
            }
            other => other,
        }
    }

    fn take_connection(&self) -> Result<Connection> {
        if let Some(connection) = self.pool.lock().unwrap().pop() {
            return Ok(connection);
        }
        self.open(true)
    }

    /// Write pending decrefs on `connection` (one write for all of them).
    fn flush_decrefs(&self, connection: &mut Connection) -> Result<()> {
        if !self.has_decrefs.swap(false, Ordering::Acquire) {
            return Ok(());
        }
        let pending = std::mem::take(&mut *self.decrefs.lock().unwrap());
        let mut frames = Vec::new();
        let mut one = Vec::new();
        for (object, count) in pending {
            wire::begin_frame(&mut one, &Request::Decref { object, count })?;
            wire::finish_frame(&mut one, self.max_frame)?;
            frames.extend_from_slice(&one);
        }
        wire::write_frame(&mut connection.stream, &frames)
    }

    /// Send pending decrefs now if a connection is idle; otherwise the next
    /// request carries them.
    fn flush_decrefs_idle(&self) {
        let Some(mut connection) = self.pool.lock().unwrap().pop() else {
            return;
        };
        if self.flush_decrefs(&mut connection).is_ok() {
            self.pool.lock().unwrap().push(connection);
        }
    }

    /// One blocking request and its response on a pooled connection.
    fn roundtrip<A: Serialize + ?Sized, R>(
        &self,
        id: u64,
        request: &Request<'_>,
        args: Option<&A>,
        decode: impl FnOnce(&[u8]) -> Result<R>,
    ) -> Result<R> {
        let mut connection = self.take_connection()?;
        let buf = &mut connection.buf;
        let encoded = wire::begin_frame(buf, request)
            .and_then(|()| args.map_or(Ok(()), |a| wire::append(buf, a)))
            .and_then(|()| wire::finish_frame(buf, self.max_frame));
        if let Err(e) = encoded {
            self.pool.lock().unwrap().push(connection);
            return Err(e);
        }
        let exchanged = self.flush_decrefs(&mut connection).and_then(|()| {
            let Connection { stream, buf, reply } = &mut connection;
            wire::write_frame(stream, buf)?;
            // One request in flight: the reply is all the server sends.
            wire::read_reply(stream, reply, self.max_frame)
        });
        // On failure the connection is unusable: `?` drops (closes) it.
        let end = exchanged?;
        let result =
            Self::parse_response(id, &connection.reply[wire::PREFIX..end]).and_then(decode);
        self.pool.lock().unwrap().push(connection);
        result
    }

    fn parse_response(id: u64, frame: &[u8]) -> Result<&[u8]> {
        let (response, payload): (Response, &[u8]) = wire::decode_header(frame)?;
        if response.id != id {
            return Err(Error::protocol(
                format!(
                    "reply to request {} received while waiting for {id}",
                    response.id
                ),
                None,
            ));
        }
        response.result?;
        Ok(payload)
    }
}

type Waiters = Mutex<Option<HashMap<u64, oneshot::Sender<Result<Vec<u8>>>>>>;

/// The session's async connection: one writer, one reader task routing
/// replies to their callers by request id.
struct Multiplexed {
    /// Whole frames for the writer task, which writes everything queued in
    /// one go: calls in flight together leave together.
    outgoing: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    waiters: Arc<Waiters>,
}

impl Multiplexed {
    async fn open(inner: &Inner) -> Result<Arc<Multiplexed>> {
        let established = true;
        let address = &inner.address;
        match address {
            Address::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| transport::connect_error(e, address, established))?;
                stream.set_nodelay(true)?;
                match &inner.tls {
                    #[cfg(feature = "tls")]
                    Some(tls) => {
                        let stream = tls
                            .connector()
                            .connect(tls.server_name.clone(), stream)
                            .await?;
                        Self::start(inner, stream).await
                    }
                    _ => Self::start(inner, stream).await,
                }
            }
            Address::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| transport::connect_error(e, address, established))?;
                Self::start(inner, stream).await
            }
        }
    }

    async fn start<S: Socket>(inner: &Inner, mut stream: S) -> Result<Arc<Multiplexed>> {
        // Opened lazily, after the session's first connection succeeded.
        crate::auth::client_async(&mut stream, &inner.authkey)
            .await
            .map_err(|e| Inner::handshake_error(e, true))?;
        stream.write_all(&inner.hello()?).await?;
        let (reader, mut writer) = stream.split_owned();
        let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, reader);
        let (outgoing, mut queued) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while let Some(frame) = queued.recv().await {
                batch.extend_from_slice(&frame);
                while let Ok(frame) = queued.try_recv() {
                    batch.extend_from_slice(&frame);
                }
                if writer.write_all(&batch).await.is_err() {
                    // The reader sees the connection fail and tells waiters.
                    break;
                }
                batch.clear();
            }
        });
        let waiters: Arc<Waiters> = Arc::new(Mutex::new(Some(HashMap::new())));
        let routes = Arc::clone(&waiters);
        let max = inner.max_frame;
        tokio::spawn(async move {
            let mut frame = Vec::new();
            let failure = loop {
                match wire::read_frame_async(&mut reader, &mut frame, max).await {
                    Ok(true) => {}
                    Ok(false) => break "the server closed the connection".to_string(),
                    Err(e) => break e.to_string(),
                }
                let Ok((response, payload)) = wire::decode_header::<Response>(&frame) else {
                    break "the server sent a malformed reply".to_string();
                };
                let result = response
                    .result
                    .map(|()| payload.to_vec())
                    .map_err(Error::from);
                let waiter = routes
                    .lock()
                    .unwrap()
                    .as_mut()
                    .and_then(|w| w.remove(&response.id));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(result);
                }
            };
            let orphans = routes.lock().unwrap().take().unwrap_or_default();
            for (_, waiter) in orphans {
                let _ = waiter.send(Err(Error::gone(failure.clone(), None)));
            }
        });
        Ok(Arc::new(Multiplexed { outgoing, waiters }))
    }

    async fn request(&self, id: u64, frame: Vec<u8>) -> Result<Vec<u8>> {
        let (tx, rx) = oneshot::channel();
        match self.waiters.lock().unwrap().as_mut() {
            Some(waiters) => waiters.insert(id, tx),
            None => return Err(Error::gone("the connection is closed", None)),
        };
        if self.outgoing.send(frame).is_err() {
            if let Some(w) = self.waiters.lock().unwrap().as_mut() {
                w.remove(&id);
            }
            return Err(Error::gone("the connection is closed", None));
        }
        rx.await
            .unwrap_or_else(|_| Err(Error::gone("the connection is closed", None)))
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
    let base = *BASE.get_or_init(|| u64::from_le_bytes(crate::auth::random_bytes()));
    // An odd multiplier keeps per-thread ids distinct within the process.
    ID.with(|id| base.wrapping_add(id.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}
