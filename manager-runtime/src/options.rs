//! Settings both sides of a connection need: address, authkey, limits,
//! TLS. Servers, clients and the manager read them; nothing here knows
//! about any of those.

use std::time::Duration;

use crate::address::{Address, ToAddress};
use crate::error::Result;

/// How objects are encoded on the wire. Only postcard today; the slot is
/// kept so a Python-compatible encoding can be added without an API break.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Serializer {
    /// postcard, the compact serde format.
    #[default]
    Postcard,
}

/// Settings of a manager, as Python's `BaseManager(address, authkey,
/// serializer, shutdown_timeout)`.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    pub(crate) address: Option<Address>,
    pub(crate) authkey: Vec<u8>,
    pub(crate) serializer: Serializer,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) max_frame: u32,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_connections: usize,
    #[cfg(feature = "tls")]
    pub(crate) tls_server: Option<crate::tls::TlsServer>,
    pub(crate) tls_client: crate::transport::TlsConnect,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            address: None,
            authkey: default_authkey().to_vec(),
            serializer: Serializer::Postcard,
            shutdown_timeout: Duration::from_secs(1),
            max_frame: crate::wire::DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            #[cfg(feature = "tls")]
            tls_server: None,
            tls_client: None,
        }
    }
}

impl ManagerOptions {
    /// Default options: a fresh Unix socket, this process's authkey.
    pub fn new() -> Self {
        Self::default()
    }

    /// Listen on / connect to this address (`"127.0.0.1:50000"`, a path...).
    ///
    /// # Panics
    /// If the text is not an address; use [`ManagerOptions::try_address`] to
    /// handle that as an error.
    pub fn address(self, address: impl ToAddress) -> Self {
        self.try_address(address).expect("invalid manager address")
    }

    /// Like [`ManagerOptions::address`], returning an error for bad text.
    pub fn try_address(mut self, address: impl ToAddress) -> Result<Self> {
        self.address = Some(address.to_address()?);
        Ok(self)
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
}

/// This process's default authkey: random, made once, and handed to every
/// server process it starts (Python's `current_process().authkey`).
pub fn default_authkey() -> &'static [u8] {
    crate::auth::process_authkey()
}
