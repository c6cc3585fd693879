//! The server: object table, sessions, connection tasks and dispatch; and
//! what serving an object of your own by hand takes ([`Shared`],
//! [`Registry`], [`CallContext`], ...), which `#[shared]` and `manager!`
//! otherwise write.
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

pub use crate::object::{CallContext, MethodInfo, ObjectLock, Outcome, ServerLink, Shared};
pub use crate::registry::{Constructor, Registry};

mod connection;
mod core;
mod dedicated;
mod metrics;
mod python;
mod state;
mod table;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::Instrument;

use crate::address::Address;
use crate::error::Result;
use crate::object::RemoteRefs;
use crate::options::{ManagerOptions, Serializer};
use crate::transport::{self, Listener, PrivateDir, Socket};
use connection::serve_connection;
use core::Core;
use state::ServerState;
use table::Table;

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
    /// Bind the configured address for `registry`'s typeids. `remote`
    /// holds references on other servers' objects for objects served here
    /// (the client layer provides it; see [`RemoteRefs`]).
    pub(crate) fn bind(
        registry: Registry,
        options: &ManagerOptions,
        remote: Arc<dyn RemoteRefs>,
    ) -> Result<Server> {
        options.checked_address()?;
        #[cfg(feature = "tls")]
        if options.tls_server.is_some() && !matches!(options.address, Some(Address::Tcp(_))) {
            return Err(crate::error::Error::Tls(
                "applies to TCP managers: give a host:port address".into(),
            ));
        }
        #[cfg(feature = "tls")]
        if options.tls_server.is_some() && options.serializer == Serializer::Pickle {
            return Err(crate::error::Error::Protocol {
                reason: "CPython's protocol has no TLS: serve pickle without tls_server".into(),
                source: None,
            });
        }
        #[cfg(feature = "redis")]
        let backend = match &options.redis {
            Some(url) => Some(crate::backend::RedisStore::connect(
                url,
                options.lease,
                options.redis_wait,
                options.metrics,
            )?),
            None => None,
        };
        #[cfg(not(feature = "redis"))]
        if options.redis.is_some() {
            return Err(crate::error::Error::Redis(
                "this build has no Redis backend: enable the feature `redis`".into(),
            ));
        }
        #[cfg(feature = "redis")]
        let first_id = backend.as_ref().map_or(1, |b| b.first_id());
        #[cfg(not(feature = "redis"))]
        let first_id = 1;
        let (listener, address, dir) = transport::bind(options.address.as_ref())?;
        #[cfg(feature = "redis")]
        if let Some(backend) = &backend {
            backend.announce(&address)?;
        }
        let metrics = options
            .metrics
            .then(|| Arc::new(metrics::Metrics::new(&address.to_string())));
        let core = Arc::new(Core {
            registry,
            table: Mutex::new(Table::default()),
            next_id: AtomicU64::new(first_id),
            address,
            remote,
            #[cfg(feature = "redis")]
            backend,
            metrics,
        });
        let state = Arc::new(ServerState {
            core,
            authkey: options.authkey.clone(),
            max_frame: options.max_frame,
            handshake_timeout: options.handshake_timeout,
            max_connections: options.max_connections,
            spin: options.spin,
            shared_memory: options.shared_memory,
            rings: Default::default(),
            connections: AtomicUsize::new(0),
            #[cfg(feature = "tls")]
            tls: options.tls_server.as_ref().map(|t| t.acceptor()),
            stopping: AtomicBool::new(false),
            dedicated: Default::default(),
            stop: Notify::new(),
            serializer: options.serializer,
            python: Default::default(),
        });
        Ok(Server {
            state,
            listener,
            _dir: dir,
        })
    }

    /// The address clients connect to (the actual port if 0 was asked).
    pub fn address(&self) -> &Address {
        &self.state.core.address
    }

    /// A handle to stop this server from another thread.
    pub fn stopper(&self) -> ServerStopper {
        ServerStopper(Arc::clone(&self.state))
    }

    /// Serve until a client asks for shutdown or the stopper is used. On
    /// return every connection is closed and a private socket is removed.
    pub fn serve_forever(self) -> Result<()> {
        if tokio::runtime::Handle::try_current().is_ok() {
            // Inside a runtime a second one cannot block this thread: serve
            // from a thread of its own (use `serve().await` instead to run
            // on the caller's runtime).
            return std::thread::scope(|scope| {
                scope
                    .spawn(|| self.serve_forever())
                    .join()
                    .unwrap_or(Err(crate::error::Error::ServerThreadPanicked))
            });
        }
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("manager-server")
            .enable_all()
            .build()?;
        let result = runtime.block_on(self.serve());
        // Whatever is still running (pending calls' tasks) goes with the
        // runtime.
        runtime.shutdown_timeout(Duration::from_millis(100));
        result
    }

    /// Serve on the caller's tokio runtime (multi-threaded: served objects'
    /// blocking calls leave the worker they run on) until a client asks
    /// for shutdown or the stopper is used. On return every connection is
    /// closed and a private socket is removed.
    ///
    /// ```
    /// # extern crate manager_runtime as managers;
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> managers::Result<()> {
    /// let server = managers::sync::SyncManager::new().get_server()?;
    /// let address = server.address().clone();
    /// let stopper = server.stopper();
    /// let serving = tokio::spawn(server.serve());
    /// let client = managers::sync::SyncManager::with_options(
    ///     managers::ManagerOptions::new().address(address),
    /// );
    /// tokio::task::spawn_blocking(move || -> managers::Result<()> {
    ///     client.connect()?;
    ///     assert_eq!(client.number_of_objects()?, 0);
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap()?;
    /// stopper.stop();
    /// serving.await.unwrap()?;
    /// # Ok(()) }
    /// ```
    pub async fn serve(self) -> Result<()> {
        let Server {
            state,
            listener,
            _dir,
        } = self;
        tracing::info!(target: "managers::server", address = %state.core.address, "manager server started");
        let result = accept_loop(Arc::clone(&state), listener).await;
        // Connections on threads of their own end as the others did when
        // the accept loop dropped them.
        state.request_stop();
        state.dedicated.close_all(Duration::from_millis(100));
        tracing::info!(target: "managers::server", address = %state.core.address, "manager server stopped");
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

    /// Who the peer is, as far as the socket says (for pickle mode).
    fn peer(stream: &Self::Stream) -> python::Peer;

    /// Serve one accepted connection.
    fn serve(
        state: Arc<ServerState>,
        stream: Self::Stream,
    ) -> impl Future<Output = ()> + Send + 'static {
        serve_connection(state, stream)
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("address", &self.state.core.address)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ServerStopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStopper")
            .field("address", &self.0.core.address)
            .finish()
    }
}

impl Acceptor for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_one(&self) -> std::io::Result<Self::Stream> {
        let (stream, _) = self.accept().await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    fn peer(stream: &Self::Stream) -> python::Peer {
        match (stream.local_addr(), stream.peer_addr()) {
            (Ok(local), Ok(remote)) => python::Peer::Tcp { local, remote },
            _ => python::Peer::Unknown,
        }
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

    fn peer(stream: &Self::Stream) -> python::Peer {
        python::Peer::Unix(python::unix_peer(stream))
    }
}

async fn accept_from<A: Acceptor>(state: Arc<ServerState>, listener: A) -> Result<()> {
    // Every connection's task: they end (closing their sockets, cancelling
    // their pending calls) when this returns, on whatever runtime it runs.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        tokio::select! {
            accepted = listener.accept_one() => match accepted {
                Ok(stream) if state.serializer == Serializer::Pickle => {
                    let peer = A::peer(&stream);
                    tracing::debug!(target: "managers::server", peer = ?peer, "connection accepted (pickle)");
                    connections.spawn(python::serve(Arc::clone(&state), stream, peer));
                }
                Ok(stream) => {
                    let span = tracing::debug_span!(target: "managers::server", "connection", peer = ?A::peer(&stream));
                    span.in_scope(|| tracing::debug!(target: "managers::server", "connection accepted"));
                    connections.spawn(A::serve(Arc::clone(&state), stream).instrument(span));
                }
                // Out of descriptors or memory: back off instead of spinning.
                Err(e) => {
                    tracing::warn!(target: "managers::server", error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
            },
            _ = state.stop.notified() => return Ok(()),
        }
    }
}
