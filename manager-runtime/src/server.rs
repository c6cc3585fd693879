//! The server: object table, sessions, connection tasks and dispatch.
//!
//! Each connection is one task. A call whose object lock is free runs right
//! there and its reply is written from the same task: no thread hop. Calls
//! that must wait (async methods, a busy lock) become their own task and
//! write their reply when done, so one connection carries many calls in
//! flight and replies may come back out of order.
//!
//! References belong to *sessions* (one per client process handle), not to
//! connections: when the last connection of a session closes, every
//! reference it held is released, so a client that dies leaks nothing.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use crate::address::Address;
use crate::error::{RemoteError, Result};
use crate::manager::ManagerOptions;
use crate::object::{CallContext, Object, Outcome, ReplyFuture};
use crate::proxy::Token;
use crate::registry::Registry;
use crate::transport::{self, Listener, PrivateDir, Socket};
use crate::wire::{self, Request, Response};

/// One object as `debug_info()` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebugEntry {
    /// Object id.
    pub id: u64,
    /// Typeid it was created or returned as.
    pub typeid: String,
    /// References held on it by all sessions.
    pub refcount: u64,
}

struct Entry {
    object: Arc<dyn Object>,
    typeid: &'static str,
    exposed: Option<&'static [&'static str]>,
    refcount: u64,
}

#[derive(Default)]
struct Session {
    connections: usize,
    refs: HashMap<u64, u64>,
}

#[derive(Default)]
struct Table {
    objects: HashMap<u64, Entry>,
    sessions: HashMap<u128, Session>,
}

impl Table {
    /// Drop `count` references to `id`; returns the object if that was its
    /// last reference (to be dropped outside the lock).
    fn unref(&mut self, id: u64, count: u64) -> Option<Arc<dyn Object>> {
        let entry = self.objects.get_mut(&id)?;
        entry.refcount = entry.refcount.saturating_sub(count);
        if entry.refcount == 0 {
            return self.objects.remove(&id).map(|e| e.object);
        }
        None
    }

    /// Drop every reference in `refs` (a session's, taken out of it); the
    /// objects freed, to be dropped outside the lock.
    fn unref_all(&mut self, refs: HashMap<u64, u64>) -> Vec<Arc<dyn Object>> {
        refs.into_iter()
            .filter_map(|(id, count)| self.unref(id, count))
            .collect()
    }

    /// Release up to `count` of the references `session` holds on `id`; a
    /// session can never release more than it took.
    fn release(&mut self, session: u128, id: u64, count: u64) -> Option<Arc<dyn Object>> {
        let refs = &mut self.sessions.get_mut(&session)?.refs;
        let held = refs.get_mut(&id)?;
        let released = count.min(*held);
        *held -= released;
        if *held == 0 {
            refs.remove(&id);
        }
        self.unref(id, released)
    }
}

/// State shared by every connection of one server.
pub(crate) struct ServerState {
    registry: Registry,
    table: Mutex<Table>,
    next_id: AtomicU64,
    address: Address,
    authkey: Vec<u8>,
    max_frame: u32,
    handshake_timeout: Duration,
    max_connections: usize,
    connections: AtomicUsize,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
    stopping: AtomicBool,
    stop: Notify,
}

impl ServerState {
    /// Serve `object` as a new id with one reference held by `session`.
    pub(crate) fn insert_for(
        &self,
        session: u128,
        object: Arc<dyn Object>,
        typeid: &'static str,
    ) -> Token {
        let exposed = self.registry.get(typeid).and_then(|e| e.exposed);
        self.insert(session, object, typeid, exposed)
    }

    fn insert(
        &self,
        session: u128,
        object: Arc<dyn Object>,
        typeid: &'static str,
        exposed: Option<&'static [&'static str]>,
    ) -> Token {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut table = self.table.lock().unwrap();
        table.objects.insert(
            id,
            Entry {
                object,
                typeid,
                exposed,
                refcount: 1,
            },
        );
        *table
            .sessions
            .entry(session)
            .or_default()
            .refs
            .entry(id)
            .or_default() += 1;
        Token {
            typeid: typeid.to_string(),
            address: self.address.clone(),
            id,
        }
    }

    fn lookup(
        &self,
        id: u64,
        method: &str,
        fingerprint: u64,
    ) -> Result<(Arc<dyn Object>, usize), RemoteError> {
        let table = self.table.lock().unwrap();
        let entry = table
            .objects
            .get(&id)
            .ok_or(RemoteError::NoSuchObject(id))?;
        let not_exposed = || RemoteError::NotExposed {
            typeid: entry.typeid.to_string(),
            method: method.to_string(),
        };
        let methods = entry.object.methods();
        let index = methods
            .iter()
            .position(|m| m.name == method)
            .ok_or_else(not_exposed)?;
        if let Some(exposed) = entry.exposed {
            if !exposed.contains(&method) {
                return Err(not_exposed());
            }
        }
        if methods[index].fingerprint != fingerprint {
            return Err(RemoteError::SignatureMismatch {
                typeid: entry.typeid.to_string(),
                method: method.to_string(),
            });
        }
        Ok((Arc::clone(&entry.object), index))
    }

    fn call(
        self: &Arc<Self>,
        session: u128,
        id: u64,
        method: &str,
        fingerprint: u64,
        args: &[u8],
    ) -> Outcome {
        let (object, index) = match self.lookup(id, method, fingerprint) {
            Ok(found) => found,
            Err(e) => return Outcome::Ready(Err(e)),
        };
        let cx = CallContext {
            server: Arc::clone(self),
            session,
            object: Some(id),
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| {
            cx.enter(|| object.call(index, args, &cx))
        })) {
            Ok(Outcome::Pending(future)) => Outcome::Pending(Box::pin(CatchUnwind(future, cx))),
            Ok(ready) => ready,
            Err(panic) => Outcome::Ready(Err(RemoteError::Panic(panic_message(&*panic)))),
        }
    }

    fn create(
        self: &Arc<Self>,
        session: u128,
        typeid: &str,
        args: &[u8],
    ) -> Result<Vec<u8>, RemoteError> {
        // Constructors run in a call context too, so a built object can take
        // its server link or resolve a token it was given.
        let cx = CallContext {
            server: Arc::clone(self),
            session,
            object: None,
        };
        let made = std::panic::catch_unwind(AssertUnwindSafe(|| {
            cx.enter(|| self.registry.create(typeid, args))
        }))
        .map_err(|panic| RemoteError::Panic(panic_message(&*panic)))?;
        let made = made?;
        let token = self.insert(session, made.object, made.typeid, made.exposed);
        wire::encode(&token).map_err(|e| RemoteError::Encode(e.to_string()))
    }

    pub(crate) fn address(&self) -> &Address {
        &self.address
    }

    pub(crate) fn authkey(&self) -> &[u8] {
        &self.authkey
    }

    /// The object with this id, if it is served here.
    pub(crate) fn object(&self, id: u64) -> Result<Arc<dyn Object>, RemoteError> {
        let table = self.table.lock().unwrap();
        let entry = table
            .objects
            .get(&id)
            .ok_or(RemoteError::NoSuchObject(id))?;
        Ok(Arc::clone(&entry.object))
    }

    /// One more reference owned by the server itself (a container holding
    /// a proxy), not by any session.
    pub(crate) fn retain_internal(&self, id: u64) -> Result<(), RemoteError> {
        let mut table = self.table.lock().unwrap();
        let entry = table
            .objects
            .get_mut(&id)
            .ok_or(RemoteError::NoSuchObject(id))?;
        entry.refcount += 1;
        Ok(())
    }

    /// Drop a reference taken with `retain_internal`.
    pub(crate) fn release_internal(&self, id: u64) {
        let dead = self.table.lock().unwrap().unref(id, 1);
        drop(dead);
    }

    pub(crate) fn incref(&self, session: u128, id: u64) -> Result<(), RemoteError> {
        let mut table = self.table.lock().unwrap();
        let entry = table
            .objects
            .get_mut(&id)
            .ok_or(RemoteError::NoSuchObject(id))?;
        entry.refcount += 1;
        *table
            .sessions
            .entry(session)
            .or_default()
            .refs
            .entry(id)
            .or_default() += 1;
        Ok(())
    }

    fn decref(&self, session: u128, id: u64, count: u64) {
        let dead = self.table.lock().unwrap().release(session, id, count);
        drop(dead);
    }

    fn join(&self, session: u128) {
        self.table
            .lock()
            .unwrap()
            .sessions
            .entry(session)
            .or_default()
            .connections += 1;
    }

    fn leave(&self, session: u128) {
        let dead = {
            let mut table = self.table.lock().unwrap();
            let Some(state) = table.sessions.get_mut(&session) else {
                return;
            };
            state.connections -= 1;
            if state.connections > 0 {
                return;
            }
            let refs = table.sessions.remove(&session).unwrap_or_default().refs;
            table.unref_all(refs)
        };
        drop(dead);
    }

    /// Release every reference `session` holds; its connections stay.
    fn release_all(&self, session: u128) {
        let dead = {
            let mut table = self.table.lock().unwrap();
            let Some(state) = table.sessions.get_mut(&session) else {
                return;
            };
            let refs = std::mem::take(&mut state.refs);
            table.unref_all(refs)
        };
        drop(dead);
    }

    fn number_of_objects(&self) -> usize {
        self.table.lock().unwrap().objects.len()
    }

    fn debug_info(&self) -> Vec<DebugEntry> {
        let table = self.table.lock().unwrap();
        let mut entries: Vec<_> = table
            .objects
            .iter()
            .map(|(&id, e)| DebugEntry {
                id,
                typeid: e.typeid.to_string(),
                refcount: e.refcount,
            })
            .collect();
        entries.sort_by_key(|e| e.id);
        entries
    }

    fn request_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.notify_one();
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_string()
    }
}

/// Polls a method's future inside its call context, and turns a panic into
/// that call's error.
struct CatchUnwind(ReplyFuture, CallContext);

impl Future for CatchUnwind {
    type Output = Result<Vec<u8>, RemoteError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let (future, call) = (&mut this.0, &this.1);
        match std::panic::catch_unwind(AssertUnwindSafe(|| call.enter(|| future.as_mut().poll(cx))))
        {
            Ok(poll) => poll,
            Err(panic) => Poll::Ready(Err(RemoteError::Panic(panic_message(&*panic)))),
        }
    }
}

/// A handle that stops a server from any thread.
#[derive(Clone)]
pub struct ServerStopper(Arc<ServerState>);

impl ServerStopper {
    /// Ask the server to stop: it closes every connection and
    /// `serve_forever` returns.
    pub fn stop(&self) {
        self.0.request_stop();
    }
}

/// A bound server, ready to [`serve_forever`](Server::serve_forever).
pub struct Server {
    state: Arc<ServerState>,
    listener: Listener,
    _dir: Option<PrivateDir>,
}

impl Server {
    pub(crate) fn bind(registry: Registry, options: &ManagerOptions) -> Result<Server> {
        #[cfg(feature = "tls")]
        if options.tls_server.is_some() && !matches!(options.address, Some(Address::Tcp(_))) {
            return Err(crate::error::Error::State(
                "TLS applies to TCP managers: give a host:port address".into(),
            ));
        }
        let (listener, address, dir) = transport::bind(options.address.as_ref())?;
        let state = Arc::new(ServerState {
            registry,
            table: Mutex::new(Table::default()),
            next_id: AtomicU64::new(1),
            address,
            authkey: options.authkey.clone(),
            max_frame: options.max_frame,
            handshake_timeout: options.handshake_timeout,
            max_connections: options.max_connections,
            connections: AtomicUsize::new(0),
            #[cfg(feature = "tls")]
            tls: options.tls_server.as_ref().map(|t| t.acceptor()),
            stopping: AtomicBool::new(false),
            stop: Notify::new(),
        });
        Ok(Server {
            state,
            listener,
            _dir: dir,
        })
    }

    /// The address clients connect to (the actual port if 0 was asked).
    pub fn address(&self) -> &Address {
        &self.state.address
    }

    /// A handle to stop this server from another thread.
    pub fn stopper(&self) -> ServerStopper {
        ServerStopper(Arc::clone(&self.state))
    }

    /// Serve until a client asks for shutdown or the stopper is used. On
    /// return every connection is closed and a private socket is removed.
    pub fn serve_forever(self) -> Result<()> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("manager-server")
            .enable_all()
            .build()?;
        let Server {
            state,
            listener,
            _dir,
        } = self;
        let result = runtime.block_on(accept_loop(Arc::clone(&state), listener));
        // Dropping the runtime cancels every connection and pending call,
        // which closes their sockets: clients see the server gone.
        runtime.shutdown_timeout(Duration::from_millis(100));
        result
    }
}

async fn accept_loop(state: Arc<ServerState>, listener: Listener) -> Result<()> {
    match listener {
        Listener::Tcp(l) => {
            l.set_nonblocking(true)?;
            accept_from(state, tokio::net::TcpListener::from_std(l)?).await
        }
        Listener::Unix(l) => {
            l.set_nonblocking(true)?;
            accept_from(state, tokio::net::UnixListener::from_std(l)?).await
        }
    }
}

/// A listening socket of either kind.
trait Acceptor {
    type Stream: Socket;
    async fn accept_one(&self) -> std::io::Result<Self::Stream>;

    /// Serve one accepted connection.
    fn serve(
        state: Arc<ServerState>,
        stream: Self::Stream,
    ) -> impl Future<Output = ()> + Send + 'static {
        serve_connection(state, stream)
    }
}

impl Acceptor for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_one(&self) -> std::io::Result<Self::Stream> {
        let (stream, _) = self.accept().await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    #[cfg(feature = "tls")]
    #[allow(clippy::manual_async_fn)] // `async fn` cannot promise Send + 'static
    fn serve(
        state: Arc<ServerState>,
        stream: Self::Stream,
    ) -> impl Future<Output = ()> + Send + 'static {
        async move {
            let Some(acceptor) = state.tls.clone() else {
                return serve_connection(state, stream).await;
            };
            // The TLS handshake counts against the handshake timeout too.
            let accepted =
                tokio::time::timeout(state.handshake_timeout, acceptor.accept(stream)).await;
            if let Ok(Ok(stream)) = accepted {
                serve_connection(state, stream).await;
            }
        }
    }
}

impl Acceptor for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_one(&self) -> std::io::Result<Self::Stream> {
        Ok(self.accept().await?.0)
    }
}

async fn accept_from<A: Acceptor>(state: Arc<ServerState>, listener: A) -> Result<()> {
    loop {
        tokio::select! {
            accepted = listener.accept_one() => match accepted {
                Ok(stream) => {
                    tokio::spawn(A::serve(Arc::clone(&state), stream));
                }
                // Out of descriptors or memory: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            _ = state.stop.notified() => return Ok(()),
        }
    }
}

/// Counts a live connection for as long as it exists.
struct Slot(Arc<ServerState>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

type Writer<S> = Arc<tokio::sync::Mutex<<S as Socket>::Write>>;

/// Leaves the session when the connection ends, however it ends.
struct Membership {
    state: Arc<ServerState>,
    session: u128,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.state.leave(self.session);
    }
}

async fn serve_connection<S: Socket>(state: Arc<ServerState>, mut stream: S) {
    let live = state.connections.fetch_add(1, Ordering::Relaxed) + 1;
    let _slot = Slot(Arc::clone(&state));
    if live > state.max_connections {
        let _ = tokio::time::timeout(
            state.handshake_timeout,
            crate::auth::refuse_busy_async(&mut stream),
        )
        .await;
        return;
    }
    let authenticated = tokio::time::timeout(
        state.handshake_timeout,
        crate::auth::server_async(&mut stream, &state.authkey),
    )
    .await;
    if !matches!(authenticated, Ok(Ok(true))) {
        return;
    }
    let (reader, writer) = stream.split_owned();
    // One read brings every request that has arrived, not one per frame.
    let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, reader);
    let writer: Writer<S> = Arc::new(tokio::sync::Mutex::new(writer));
    let mut frame = Vec::new();
    let max = state.max_frame;
    let session = match wire::read_frame_async(&mut reader, &mut frame, max).await {
        Ok(true) => match wire::decode_header::<Request>(&frame) {
            Ok((Request::Hello { session }, _)) => session,
            _ => return,
        },
        _ => return,
    };
    state.join(session);
    let _membership = Membership {
        state: Arc::clone(&state),
        session,
    };
    let mut out = Vec::new();
    // Calls still waiting when the connection ends are cancelled with it
    // (dropping the set aborts them): a dead client's pending `acquire()`
    // must not take the lock, nor its `get()` an item, after it is gone.
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        while in_flight.try_join_next().is_some() {}
        // Replies to requests that arrived together leave in one write, as
        // soon as no whole request is left to read without waiting.
        if !out.is_empty() && !wire::holds_frame(reader.buffer()) {
            if writer.lock().await.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
        if !matches!(
            wire::read_frame_async(&mut reader, &mut frame, max).await,
            Ok(true)
        ) {
            break;
        }
        let Ok((request, payload)) = wire::decode_header::<Request>(&frame) else {
            break;
        };
        let (id, result) = match request {
            Request::Call {
                id,
                object,
                method,
                fingerprint,
            } => match state.call(session, object, method, fingerprint, payload) {
                Outcome::Ready(result) => (id, result),
                Outcome::Pending(mut future) => {
                    // Most waits are already over (a free lock, a non-empty
                    // queue): one poll here answers them without a task.
                    let mut poll_cx = Context::from_waker(std::task::Waker::noop());
                    match future.as_mut().poll(&mut poll_cx) {
                        Poll::Ready(result) => (id, result),
                        Poll::Pending => {
                            let writer = Arc::clone(&writer);
                            in_flight.spawn(async move {
                                let result = future.await;
                                let mut out = Vec::new();
                                push_reply(&mut out, id, result, max);
                                let _ = writer.lock().await.write_all(&out).await;
                            });
                            continue;
                        }
                    }
                }
            },
            Request::Create { id, typeid } => (id, state.create(session, typeid, payload)),
            Request::Incref { id, object } => {
                (id, state.incref(session, object).map(|()| Vec::new()))
            }
            Request::Decref { object, count } => {
                state.decref(session, object, count);
                continue;
            }
            Request::Release { id } => {
                state.release_all(session);
                (id, Ok(Vec::new()))
            }
            Request::NumberOfObjects { id } => {
                (id, encode_reply(&(state.number_of_objects() as u64)))
            }
            Request::DebugInfo { id } => (id, encode_reply(&state.debug_info())),
            Request::Shutdown { id } => {
                push_reply(&mut out, id, Ok(Vec::new()), max);
                let _ = writer.lock().await.write_all(&out).await;
                state.request_stop();
                break;
            }
            Request::Hello { .. } => break,
        };
        push_reply(&mut out, id, result, max);
    }
}

fn encode_reply<T: Serialize>(value: &T) -> Result<Vec<u8>, RemoteError> {
    wire::encode(value).map_err(|e| RemoteError::Encode(e.to_string()))
}

/// Append the reply frame for request `id` to `out`; a result too large
/// for a frame becomes an error reply.
fn push_reply(out: &mut Vec<u8>, id: u64, result: Result<Vec<u8>, RemoteError>, max: u32) {
    let pushed = match result {
        Ok(payload) => wire::push_frame(out, &Response { id, result: Ok(()) }, &payload, max)
            .map_err(|e| RemoteError::Encode(format!("the result does not fit in a frame: {e}"))),
        Err(e) => Err(e),
    };
    if let Err(e) = pushed {
        let refusal = Response { id, result: Err(e) };
        wire::push_frame(out, &refusal, &[], u32::MAX).expect("an error reply always encodes");
    }
}
