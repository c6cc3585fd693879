//! What every connection of one server shares: its limits, its TLS
//! acceptor, the stop signal, the connections served on threads of their
//! own, the sessions of CPython clients, and the dispatch core.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::core::Core;
use super::dedicated::Dedicated;
use super::python::clients::Clients;

/// State shared by every connection of one server.
pub(crate) struct ServerState {
    pub(super) core: Arc<Core>,
    pub(super) authkey: Vec<u8>,
    pub(super) max_frame: u32,
    pub(super) handshake_timeout: Duration,
    pub(super) max_connections: usize,
    /// How long a connection spins for the next request before parking.
    pub(super) spin: Duration,
    /// Whether clients on this host may have a shared-memory ring.
    pub(super) shared_memory: bool,
    /// Connections served through a ring now.
    pub(super) rings: AtomicUsize,
    pub(super) connections: AtomicUsize,
    #[cfg(feature = "tls")]
    pub(super) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(super) stopping: AtomicBool,
    /// Connections served on threads of their own.
    pub(super) dedicated: Arc<Dedicated>,
    pub(super) stop: Notify,
    /// Which protocol this server speaks (a pickle-mode server speaks
    /// only CPython's).
    pub(super) serializer: crate::options::Serializer,
    /// The sessions of CPython client processes (pickle mode).
    pub(super) python: Clients,
}

impl ServerState {
    pub(super) fn request_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.notify_one();
    }
}

/// Counts a live connection for as long as it exists.
pub(super) struct Slot(Arc<ServerState>);

impl Slot {
    /// Count one more connection; how many are live with it.
    pub(super) fn take(state: &Arc<ServerState>) -> (Slot, usize) {
        let live = state.connections.fetch_add(1, Ordering::Relaxed) + 1;
        (Slot(Arc::clone(state)), live)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Most connections served through shared-memory rings at once: each holds
/// 132 KiB of shared memory (and four eventfds) while it is open. The
/// connections past it are served on their sockets.
pub(super) const MAX_RINGS: usize = 512;

/// A place among the connections served through a ring, held while one is.
pub(super) struct RingSlot(Arc<ServerState>);

impl RingSlot {
    /// A place, if this server offers rings and has one free.
    pub(super) fn take(state: &Arc<ServerState>) -> Option<RingSlot> {
        if !state.shared_memory {
            return None;
        }
        if state.rings.fetch_add(1, Ordering::Relaxed) >= MAX_RINGS {
            state.rings.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(RingSlot(Arc::clone(state)))
    }
}

impl Drop for RingSlot {
    fn drop(&mut self) {
        self.0.rings.fetch_sub(1, Ordering::Relaxed);
    }
}
