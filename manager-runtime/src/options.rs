//! Settings both sides of a connection need: address, authkey, limits,
//! TLS. Servers, clients and the manager read them; nothing here knows
//! about any of those.
#![forbid(unsafe_code)]

use std::time::Duration;

use crate::address::{Address, ToAddress};
use crate::error::{Error, Result};

/// How objects are encoded on the wire: our postcard protocol, or
/// CPython's pickle protocol to talk to Python managers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Serializer {
    /// postcard, the compact serde format.
    #[default]
    Postcard,
    /// CPython's own manager protocol (`BaseManager(serializer='pickle')`):
    /// `multiprocessing.connection` frames and handshake, pickled
    /// requests and replies, so unchanged CPython clients use this server
    /// (or this client a CPython server). A pickle-mode server speaks only
    /// pickle. Pickles are decoded by a codec that turns a short allowlist
    /// of globals into data and calls nothing; see the README's "Talking
    /// to Python".
    Pickle,
}

/// Settings of a manager, as Python's `BaseManager(address, authkey,
/// serializer, shutdown_timeout)`.
///
/// A builder: each setter returns the options. An address that does not
/// parse is kept as an error and returned by whatever uses it (`start()`,
/// `connect()`, `get_server()`); use
/// [`try_address`](ManagerOptions::try_address) to see it at once.
/// `Debug` shows the authkey's length, never its bytes.
///
/// ```
/// # extern crate manager_runtime as managers;
/// use std::time::Duration;
/// use managers::{Error, ManagerOptions};
///
/// let options = ManagerOptions::new()
///     .address("127.0.0.1:0")
///     .authkey(b"secret")
///     .handshake_timeout(Duration::from_secs(2));
/// assert!(!format!("{options:?}").contains("secret"));
///
/// let bad = managers::sync::SyncManager::with_options(ManagerOptions::new().address("nonsense"));
/// assert!(matches!(bad.connect(), Err(Error::InvalidAddress { .. })));
/// assert!(ManagerOptions::new().try_address("nonsense").is_err());
/// ```
#[derive(Clone)]
pub struct ManagerOptions {
    pub(crate) address: Option<Address>,
    /// An address that did not parse: `(text, reason)`, reported on use.
    pub(crate) invalid_address: Option<(String, String)>,
    pub(crate) authkey: Vec<u8>,
    pub(crate) serializer: Serializer,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) max_frame: u32,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) spin: Duration,
    pub(crate) shared_memory: bool,
    /// The Redis that holds the built-ins' state, if not this server.
    pub(crate) redis: Option<String>,
    pub(crate) lease: Duration,
    /// `WAIT` after each write: replicas, and how long.
    pub(crate) redis_wait: Option<(u32, Duration)>,
    pub(crate) metrics: bool,
    /// Other gateways of the same Redis, for a client whose own dies.
    pub(crate) gateways: Vec<Address>,
    /// A gateway that did not parse: `(text, reason)`, reported on use.
    pub(crate) invalid_gateway: Option<(String, String)>,
    pub(crate) call_timeout: Option<Duration>,
    #[cfg(feature = "tls")]
    pub(crate) tls_server: Option<crate::tls::TlsServer>,
    pub(crate) tls_client: crate::transport::TlsConnect,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            address: None,
            invalid_address: None,
            authkey: default_authkey().to_vec(),
            serializer: Serializer::Postcard,
            shutdown_timeout: Duration::from_secs(1),
            max_frame: crate::wire::DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            spin: crate::wait::DEFAULT_SPIN,
            shared_memory: true,
            redis: None,
            lease: DEFAULT_LEASE,
            redis_wait: None,
            metrics: false,
            gateways: Vec::new(),
            invalid_gateway: None,
            call_timeout: None,
            #[cfg(feature = "tls")]
            tls_server: None,
            tls_client: None,
        }
    }
}

/// How long a lock held through a gateway outlives its holder's gateway.
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(5);

/// How a client connects, as another process is told it (see
/// [`ManagerOptions::connect_settings`]).
#[derive(serde::Serialize, serde::Deserialize)]
struct ConnectSettings {
    authkey: Vec<u8>,
    pickle: bool,
    /// The trusted certificates (PEM) and the server's name, for TLS.
    tls: Option<(Vec<u8>, String)>,
}

impl ManagerOptions {
    /// How another process connects the way these options do (key,
    /// protocol, TLS trust), as bytes only
    /// [`from_connect_settings`](Self::from_connect_settings) reads: what
    /// crosses with a proxy to a child, a pipe or a pool.
    pub(crate) fn connect_settings(&self) -> Vec<u8> {
        let settings = ConnectSettings {
            authkey: self.authkey.clone(),
            pickle: self.serializer == Serializer::Pickle,
            #[cfg(feature = "tls")]
            tls: self.tls_client.as_ref().map(|t| t.pem.clone()),
            #[cfg(not(feature = "tls"))]
            tls: None,
        };
        crate::wire::encode(&settings).expect("plain data encodes")
    }

    /// Options that connect as `settings` say, or with this process's
    /// authkey when nothing was said (as Python rebuilds a proxy).
    pub(crate) fn from_connect_settings(settings: Option<&[u8]>) -> Result<ManagerOptions> {
        let Some(bytes) = settings else {
            return Ok(ManagerOptions::default());
        };
        let settings: ConnectSettings = crate::wire::decode(bytes)?;
        let mut options = ManagerOptions::default().authkey(settings.authkey);
        if settings.pickle {
            options = options.serializer(Serializer::Pickle);
        }
        match settings.tls {
            #[cfg(feature = "tls")]
            Some((ca_pem, server_name)) => {
                options =
                    options.tls_client(crate::tls::TlsClient::from_ca_pem(&ca_pem, &server_name)?);
            }
            #[cfg(not(feature = "tls"))]
            Some(_) => {
                return Err(Error::Spawn(
                    "a proxy of a TLS manager arrived in a program built without the `tls` feature"
                        .into(),
                ))
            }
            None => {}
        }
        Ok(options)
    }

    /// Default options: a fresh Unix socket, this process's authkey.
    pub fn new() -> Self {
        Self::default()
    }

    /// Listen on / connect to this address (`"127.0.0.1:50000"`, a path...).
    ///
    /// Text that is not an address is kept as an error, which
    /// `start()`, `connect()` and `get_server()` return
    /// ([`Error::InvalidAddress`](crate::Error::InvalidAddress)).
    pub fn address(mut self, address: impl ToAddress) -> Self {
        match address.to_address() {
            Ok(address) => {
                self.address = Some(address);
                self.invalid_address = None;
            }
            Err(Error::InvalidAddress { text, reason }) => {
                self.invalid_address = Some((text, reason));
            }
            Err(other) => self.invalid_address = Some((String::new(), other.to_string())),
        }
        self
    }

    /// Like [`ManagerOptions::address`], returning the error for bad text
    /// now.
    pub fn try_address(mut self, address: impl ToAddress) -> Result<Self> {
        self.address = Some(address.to_address()?);
        self.invalid_address = None;
        Ok(self)
    }

    /// The configured address (`None`: a fresh private socket), or the
    /// error of an address that did not parse.
    pub(crate) fn checked_address(&self) -> Result<Option<Address>> {
        match self
            .invalid_address
            .as_ref()
            .or(self.invalid_gateway.as_ref())
        {
            Some((text, reason)) => Err(Error::InvalidAddress {
                text: text.clone(),
                reason: reason.clone(),
            }),
            None => Ok(self.address.clone()),
        }
    }

    /// The shared secret both sides prove they know. May be empty.
    pub fn authkey(mut self, key: impl AsRef<[u8]>) -> Self {
        self.authkey = key.as_ref().to_vec();
        self
    }

    /// The wire encoding.
    pub fn serializer(mut self, serializer: Serializer) -> Self {
        self.serializer = serializer;
        self
    }

    /// How long `shutdown()` waits for a started server to exit before it
    /// terminates, then kills, the process. Default 1 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Largest frame either side accepts. Default 64 MiB.
    pub fn max_frame_size(mut self, bytes: u32) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Most connections a server keeps at once; one more is refused with
    /// [`Error::LimitReached`] on the client. Default 10,000 (mind the
    /// process's open-file limit).
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }

    /// Serve TCP connections in TLS with this identity (feature `tls`).
    #[cfg(feature = "tls")]
    pub fn tls_server(mut self, tls: crate::tls::TlsServer) -> Self {
        self.tls_server = Some(tls);
        self
    }

    /// Connect over TCP in TLS, verifying the server with this (feature
    /// `tls`).
    #[cfg(feature = "tls")]
    pub fn tls_client(mut self, tls: crate::tls::TlsClient) -> Self {
        self.tls_client = Some(tls);
        self
    }

    /// How long a server waits for a new connection to authenticate.
    /// Default 10 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long a side that expects bytes soon spins for them before it
    /// parks in a blocking wait: a blocking call waiting for its reply, a
    /// server connection waiting for the next request after a reply. Each
    /// turn is a non-blocking read and a yield of the CPU; spinning is
    /// adaptive (a connection that is idle, or whose calls take long, stops
    /// spinning after a few misses) and at most half the process's CPUs
    /// spin at once. It saves the wake-up of a sleeping thread, twice per
    /// round trip. `Duration::ZERO` never spins (always park at once).
    /// Default 50 us (measured: BENCHMARKS.md). A started server takes the
    /// manager's setting; a client, its own manager's.
    pub fn spin(mut self, window: Duration) -> Self {
        self.spin = window;
        self
    }

    /// Whether calls to a server on this host (a Unix socket address) go
    /// through shared memory instead of the socket, for blocking and async
    /// proxies alike: each connection gets a ring of 64 KiB each way in a
    /// memfd the server offers, and the socket only tells either side the
    /// other's end. Default on. A server with it off refuses every
    /// client's request for a ring, and one with 512 rings open refuses
    /// more (the socket is then used, as over TCP); a client with it off
    /// never asks.
    pub fn shared_memory(mut self, on: bool) -> Self {
        self.shared_memory = on;
        self
    }

    /// Keep the built-ins' state in the Redis (or Valkey) at `url` instead
    /// of this server's memory: `redis://[[user]:password@]host[:port][/db]`,
    /// or a primary that Sentinels name,
    /// `redis+sentinel://host:port[,host:port...]/service[/db]`. The server
    /// becomes a gateway: several servers given the same Redis and authkey
    /// serve the same objects, so a token made through one works through
    /// any (see the README's "Past one machine" for what changes: leases
    /// instead of reference counts, a dead holder's lock free after its
    /// lease, writes just before a failover may be lost).
    ///
    /// Served from Redis: every built-in but a manager's `Pool` (`Lock`
    /// with a fencing token), and singletons registered with
    /// [`Constructor::singleton`](crate::server::Constructor::singleton) of
    /// those types (one object per typeid for every gateway). A `Pool` is
    /// refused with an error naming what is served; a type of your own
    /// (`#[shared]`) runs code, so it stays on the gateway that made it.
    /// A URL that does not parse, or a Redis that cannot be reached, is an
    /// error when the server starts.
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.redis = Some(url.into());
        self
    }

    /// Report the server's calls (count, errors, latency), objects and
    /// sessions, and a gateway's Redis errors and reconnects, through the
    /// [`metrics`](https://docs.rs/metrics) facade, labelled with the
    /// server's address (names: `managers_calls_total`,
    /// `managers_call_errors_total`, `managers_call_seconds`,
    /// `managers_objects`, `managers_sessions`,
    /// `managers_backend_errors_total`, `managers_backend_reconnects_total`).
    /// Install the recorder (an exporter) in the server's process before
    /// the server starts: a server in a thread of yours, or an initializer
    /// of [`start_with_initializer`](crate::BaseManager::start_with_initializer).
    /// Off by default: then nothing is measured.
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// For a client of a gateway (a server with [`redis`](Self::redis)):
    /// other gateways of the same Redis and authkey. When the connection
    /// to its gateway is lost, the session goes on through the first of
    /// the others that answers, takes its references again there (so the
    /// objects' leases go on being renewed), and every later call goes
    /// there. A call in flight when the gateway was lost is
    /// [`Error::OutcomeUnknown`](crate::Error::OutcomeUnknown), never
    /// repeated behind the caller's back; a lock the session held through
    /// the lost gateway frees after its lease (check `fence()`). Blocking
    /// proxies of this process's own session move; the async proxies and
    /// tokens handed to other processes still name the gateway they were
    /// made through. An address that does not parse is reported on use.
    pub fn gateways<A: ToAddress>(mut self, others: impl IntoIterator<Item = A>) -> Self {
        for other in others {
            match other.to_address() {
                Ok(address) => self.gateways.push(address),
                Err(e) => {
                    if self.invalid_gateway.is_none() {
                        self.invalid_gateway = Some(("a gateway".into(), e.to_string()));
                    }
                }
            }
        }
        self
    }

    /// With [`redis`](Self::redis): after each write, `WAIT` until
    /// `replicas` replicas have it, at most `timeout`, before the call is
    /// answered, so a write acknowledged to its caller survives the loss
    /// of the primary (a queue item put, a `get`'s removal). A write fewer
    /// replicas confirmed in time is `RemoteError::Backend`: it happened on
    /// the primary and may or may not survive a failover. Redis's `WAIT`
    /// narrows the window of loss but is not consensus: see Redis's
    /// documentation. Off by default (Redis's own asynchronous
    /// replication).
    pub fn redis_wait(mut self, replicas: u32, timeout: Duration) -> Self {
        self.redis_wait = Some((replicas, timeout));
        self
    }

    /// With [`redis`](Self::redis): how long a lock stays taken after its
    /// holder's gateway stopped renewing it (its holder's process is gone
    /// with its gateway, or cut off), default 5 s. An object no gateway
    /// holds a reference to any more is removed from Redis after six
    /// leases. Gateways renew both every third of a lease.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(300));
        self
    }

    /// The deadline of every call through this manager's proxies, unless a
    /// proxy sets its own ([`Proxy::with_timeout`](crate::Proxy::with_timeout)).
    /// Past it the call fails with [`Error::Timeout`] and the server
    /// withdraws what it was waiting for on the caller's behalf (a `get()`
    /// takes no item, an `acquire()` no lock). Default: none.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = Some(timeout);
        self
    }
}

impl std::fmt::Debug for ManagerOptions {
    /// Every setting, the authkey as its length only: options end up in
    /// logs, the key must not.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("ManagerOptions");
        out.field("address", &self.address);
        if let Some((text, _)) = &self.invalid_address {
            out.field("invalid_address", text);
        }
        out.field(
            "authkey",
            &format_args!("<redacted, {} bytes>", self.authkey.len()),
        )
        .field("serializer", &self.serializer)
        .field("shutdown_timeout", &self.shutdown_timeout)
        .field("max_frame_size", &self.max_frame)
        .field("handshake_timeout", &self.handshake_timeout)
        .field("max_connections", &self.max_connections)
        .field("spin", &self.spin)
        .field("shared_memory", &self.shared_memory)
        // A Redis URL may hold a password: whether there is one only.
        .field("redis", &self.redis.is_some())
        .field("lease", &self.lease)
        .field("redis_wait", &self.redis_wait)
        .field("gateways", &self.gateways)
        .field("metrics", &self.metrics)
        .field("call_timeout", &self.call_timeout);
        #[cfg(feature = "tls")]
        out.field("tls_server", &self.tls_server.is_some());
        out.field("tls_client", &self.tls_client.is_some());
        out.finish()
    }
}

/// This process's default authkey: random, made once, and handed to every
/// server process it starts (Python's `current_process().authkey`).
pub fn default_authkey() -> &'static [u8] {
    crate::authkey::process_authkey()
}
