//! The sessions of CPython client processes: one per client process
//! (named by its pid, through the socket or the TCP connection table),
//! released when that process exits; a shared one for peers that cannot
//! be named; and the references a reply granted that the client takes
//! over with its `incref`.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::peer;
use crate::server::core::Core;

/// The sessions of Python client processes.
#[derive(Default)]
pub(in crate::server) struct Clients {
    inner: Arc<Mutex<ClientsInner>>,
}

#[derive(Default)]
struct ClientsInner {
    by_pid: HashMap<u32, u128>,
    /// The session of peers that cannot be named.
    shared: Option<u128>,
    /// References granted with a reply's nested proxies, which the client
    /// takes over with its `incref` when it rebuilds them.
    pending: HashMap<(u128, u64), u64>,
}

fn new_session() -> u128 {
    u128::from_le_bytes(crate::authkey::random_bytes())
}

impl Clients {
    /// The client processes known.
    pub(in crate::server) fn known(&self) -> Vec<u32> {
        self.inner.lock().unwrap().by_pid.keys().copied().collect()
    }

    /// The session of the peers that could not be named, if there is one.
    pub(in crate::server) fn shared(&self) -> Option<u128> {
        self.inner.lock().unwrap().shared
    }

    /// The session of process `pid` (the shared one for `None`), joined
    /// on first sight and left when the process exits.
    pub(in crate::server) fn session(&self, core: &Arc<Core>, pid: Option<u32>) -> u128 {
        let mut inner = self.inner.lock().unwrap();
        if let Some(pid) = pid {
            if let Some(&session) = inner.by_pid.get(&pid) {
                return session;
            }
            if let Some(fd) = peer::pidfd(pid) {
                let session = new_session();
                inner.by_pid.insert(pid, session);
                core.join(session);
                let (core, clients) = (Arc::clone(core), Arc::clone(&self.inner));
                tokio::spawn(async move {
                    peer::exited(fd).await;
                    {
                        let mut inner = clients.lock().unwrap();
                        inner.by_pid.remove(&pid);
                        inner.pending.retain(|(s, _), _| *s != session);
                    }
                    core.leave(session);
                });
                return session;
            }
        }
        if let Some(shared) = inner.shared {
            return shared;
        }
        let shared = new_session();
        core.join(shared);
        inner.shared = Some(shared);
        shared
    }

    /// A reply to `session` granted it a reference to each of `ids`.
    pub(in crate::server) fn granted(&self, session: u128, ids: impl Iterator<Item = u64>) {
        let mut inner = self.inner.lock().unwrap();
        for id in ids {
            *inner.pending.entry((session, id)).or_default() += 1;
        }
    }

    /// Whether `session`'s `incref` of `id` takes over a granted reference
    /// (which it then no longer is).
    pub(in crate::server) fn take_granted(&self, session: u128, id: u64) -> bool {
        let mut inner = self.inner.lock().unwrap();
        let Some(pending) = inner.pending.get_mut(&(session, id)) else {
            return false;
        };
        *pending -= 1;
        if *pending == 0 {
            inner.pending.remove(&(session, id));
        }
        true
    }
}
