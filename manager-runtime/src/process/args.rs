//! A child process's arguments: serde bytes, and what travels beside them.
//!
//! Arguments are one serde value, encoded when the process starts. Two
//! kinds of things in them need more than bytes:
//!
//! - Proxies travel as their tokens. The parent keeps a clone of each (and
//!   so its object alive) until the child has taken references of its own
//!   through sessions it opens on those servers, authenticated with the
//!   key of the parent's session (sent over the private lifeline, as Python
//!   pickles a proxy's authkey for a child it spawns).
//! - Connections, queues and shared memory are file descriptors: each is
//!   written as an index into a side table the lifeline sends with the
//!   bytes (SCM_RIGHTS), and the child takes it back out of the table.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::client::Client;
use crate::error::Result;
use crate::options::{ManagerOptions, Serializer};
use crate::proxy::ProxyBase;

thread_local! {
    /// Descriptors of the arguments being encoded on this thread.
    static OUTGOING: RefCell<Option<Vec<RawFd>>> = const { RefCell::new(None) };
    /// Descriptors that came with the arguments being decoded.
    static INCOMING: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
}

/// A server that proxies among a child's arguments live on: where, the key
/// of the parent's session there, and whether it is a CPython server
/// (pickle mode), so the child's session speaks what the parent's does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Server {
    pub(crate) address: Address,
    pub(crate) authkey: Vec<u8>,
    pub(crate) pickle: bool,
}

/// Encoded arguments and what must go (or stay alive) with them.
pub(crate) struct Encoded {
    pub(crate) bytes: Vec<u8>,
    /// Borrowed from the arguments, which outlive the sending.
    pub(crate) fds: Vec<RawFd>,
    /// Clones of the proxies among the arguments.
    pub(crate) proxies: Vec<ProxyBase>,
}

impl Encoded {
    /// How to reach each server the proxies among the arguments live on.
    pub(crate) fn sessions(&self) -> Vec<Server> {
        let mut servers: Vec<Server> = Vec::new();
        for proxy in &self.proxies {
            let client = proxy.client();
            if !servers.iter().any(|s| s.address == *client.address()) {
                servers.push(Server {
                    address: client.address().clone(),
                    authkey: client.authkey().to_vec(),
                    pickle: client.pickle().is_some(),
                });
            }
        }
        servers
    }

    /// The descriptors, borrowed for sending.
    ///
    /// The caller keeps the arguments they were taken from alive meanwhile.
    pub(crate) fn borrowed_fds(&self) -> Vec<BorrowedFd<'_>> {
        // SAFETY: each descriptor belongs to an object among the arguments,
        // which the caller keeps alive (and open) while the result is used.
        self.fds
            .iter()
            .map(|&fd| unsafe { BorrowedFd::borrow_raw(fd) })
            .collect()
    }
}

/// Encode `args`, collecting the descriptors and proxies in them.
pub(crate) fn encode<A: Serialize + ?Sized>(args: &A) -> Result<Encoded> {
    struct Restore(Option<Vec<RawFd>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OUTGOING.with(|o| *o.borrow_mut() = self.0.take());
        }
    }
    let restore = Restore(OUTGOING.with(|o| o.borrow_mut().replace(Vec::new())));
    let (bytes, proxies) = crate::proxy::sending_proxies(|| crate::wire::encode(args));
    let fds = OUTGOING.with(|o| o.borrow_mut().take()).unwrap_or_default();
    drop(restore);
    Ok(Encoded {
        bytes: bytes?,
        fds,
        proxies,
    })
}

/// The sessions a child opens for the proxies among its arguments.
pub(crate) struct ChildSessions {
    servers: HashMap<Address, Server>,
    open: RefCell<HashMap<Address, Client>>,
}

impl ChildSessions {
    pub(crate) fn new(servers: Vec<Server>) -> Rc<ChildSessions> {
        Rc::new(ChildSessions {
            servers: servers
                .into_iter()
                .map(|s| (s.address.clone(), s))
                .collect(),
            open: RefCell::new(HashMap::new()),
        })
    }

    fn session(&self, address: &Address) -> Result<Client> {
        if let Some(client) = self.open.borrow().get(address) {
            return Ok(client.clone());
        }
        let server = self.servers.get(address);
        let key = server.map_or_else(
            || crate::auth::process_authkey().to_vec(),
            |s| s.authkey.clone(),
        );
        let mut options = ManagerOptions::default().authkey(key);
        if server.is_some_and(|s| s.pickle) {
            options = options.serializer(Serializer::Pickle);
        }
        let client = Client::connect(address.clone(), &options)?;
        self.open
            .borrow_mut()
            .insert(address.clone(), client.clone());
        Ok(client)
    }
}

/// Run `decode` with `fds` as the descriptor table and `sessions` for the
/// proxies. Descriptors nobody took are closed afterwards.
pub(crate) fn decoding<R>(
    fds: Vec<OwnedFd>,
    sessions: &Rc<ChildSessions>,
    decode: impl FnOnce() -> R,
) -> R {
    struct Restore(Option<Vec<Option<OwnedFd>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            INCOMING.with(|i| *i.borrow_mut() = self.0.take());
        }
    }
    let table = fds.into_iter().map(Some).collect();
    let _restore = Restore(INCOMING.with(|i| i.borrow_mut().replace(table)));
    let sessions = Rc::clone(sessions);
    crate::proxy::receiving_proxies(Rc::new(move |a: &Address| sessions.session(a)), decode)
}

/// Serialize a file descriptor among a child process's arguments: its
/// index in the side table the lifeline sends. Anywhere else it cannot be
/// encoded (a descriptor means nothing in another process unless the
/// kernel passes it).
pub(crate) fn serialize_fd<S: serde::Serializer>(
    fd: BorrowedFd<'_>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    let index = OUTGOING.with(|o| {
        o.borrow_mut().as_mut().map(|fds| {
            fds.push(fd.as_raw_fd());
            fds.len() - 1
        })
    });
    match index {
        Some(index) => (index as u32).serialize(serializer),
        None => Err(crate::error::ser_error(
            "connections, queues, locks and shared memory can only be passed as a process's arguments",
        )),
    }
}

/// Take back a descriptor [`serialize_fd`] wrote, in the child.
pub(crate) fn deserialize_fd<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<OwnedFd, D::Error> {
    let index = u32::deserialize(deserializer)? as usize;
    INCOMING
        .with(|i| {
            i.borrow_mut()
                .as_mut()
                .and_then(|fds| fds.get_mut(index).and_then(Option::take))
        })
        .ok_or_else(|| {
            serde::de::Error::custom(
                "a file descriptor can only be decoded from a process's arguments, once",
            )
        })
}
