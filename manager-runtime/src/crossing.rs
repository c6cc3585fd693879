//! What crosses to another process, and how: one way for every route.
//!
//! A value crosses as its serde bytes plus what the bytes cannot hold:
//!
//! - **File descriptors** (a [`Connection`](super::Connection), a queue, a
//!   lock, shared memory): each is duplicated when it is serialized (so the
//!   value may be dropped at once, even a temporary made inside a user's
//!   `Serialize`) and written as its index in the message's list of
//!   descriptors, which the route passes with SCM_RIGHTS. The receiver
//!   takes each index once.
//! - **Proxies** (of any manager): the proxy layer attaches, through
//!   [`attach`], a clone that keeps the object alive until the receiver
//!   holds its own reference, and how to reach the proxy's server
//!   ([`ServerInfo`], opaque here). The receiver opens (or reuses) a
//!   session there when it decodes the token: [`receiving`].
//!
//! Which of these a route can carry is [`Route`]'s business: a queue in
//! shared memory cannot carry descriptors, and neither can a manager's
//! socket. Refusing names the type and the route
//! ([`ProcessError::CannotCross`]), and the error reaches the caller whole
//! instead of as serde's "custom error".
//!
//! Nothing here knows what a proxy or a session is: the proxy layer calls
//! down into [`attach`] and [`receiving`], so this module stays below it.
// The proxy layer's half of this interface (attach, receiving, the
// servers learnt) has no caller without the manager.
#![cfg_attr(not(feature = "manager"), allow(dead_code))]
use std::any::Any;
use std::cell::Cell;
use std::collections::HashMap;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::error::{Error, ProcessError, Result};

/// Where a value is going, which decides what it may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// A child's start message over its lifeline: a [`Process`]'s
    /// arguments, a pool's initializer arguments. Descriptors and proxies.
    ///
    /// [`Process`]: super::Process
    Lifeline,
    /// A message on a [`Connection`](super::Connection), a local pool's
    /// task: descriptors (SCM_RIGHTS) and proxies.
    Pipe,
    /// An item of a queue in shared memory: proxies only.
    Queue,
    /// A manager's socket (a task for a manager's pool): proxies only.
    Manager,
}

impl Route {
    fn carries_descriptors(self) -> bool {
        matches!(self, Route::Lifeline | Route::Pipe)
    }

    /// What the route is, for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Route::Lifeline => "a process's start",
            Route::Pipe => "a Pipe",
            Route::Queue => "a Queue",
            Route::Manager => "a manager's call",
        }
    }
}

/// How to reach a server whose proxies cross: its address and what the
/// proxy layer needs to open a session there (key, protocol, TLS), as
/// bytes only it reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ServerInfo {
    pub(crate) address: Address,
    pub(crate) settings: Vec<u8>,
}

/// What an encoded value carries beside its bytes.
#[derive(Default)]
pub(crate) struct Attachments {
    /// Duplicates of the descriptors, in the order the bytes name them.
    pub(crate) fds: Vec<OwnedFd>,
    /// Each server the value's proxies live on, once.
    pub(crate) servers: Vec<ServerInfo>,
    /// Clones of the proxies: their objects stay alive while these do.
    pub(crate) keep: Keep,
}

impl Attachments {
    /// The descriptors, borrowed for sending.
    pub(crate) fn borrowed_fds(&self) -> Vec<BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.fds.iter().map(AsFd::as_fd).collect()
    }
}

impl std::fmt::Debug for Attachments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachments")
            .field("fds", &self.fds.len())
            .field("servers", &self.servers)
            .field("keep", &self.keep.len())
            .finish()
    }
}

struct Outgoing {
    route: Route,
    attachments: Attachments,
    /// Why encoding was refused, whole (serde only passes a message on).
    refused: Option<Error>,
}

/// What a receiver decodes with.
pub(crate) struct Received {
    fds: Vec<Option<OwnedFd>>,
    servers: Vec<ServerInfo>,
    scope: Option<Box<dyn Any>>,
    scoped: bool,
}

impl Received {
    /// Descriptors and servers that came with a message. `scoped`: the
    /// proxy layer keeps the sessions it opens for this message in the
    /// [`Scope`] returned by [`decoding`] (a child's arguments, whose
    /// references must be released when its target ends); otherwise it
    /// uses the process's own sessions.
    pub(crate) fn new(fds: Vec<OwnedFd>, servers: Vec<ServerInfo>, scoped: bool) -> Received {
        Received {
            fds: if fds.is_empty() {
                Vec::new()
            } else {
                fds.into_iter().map(Some).collect()
            },
            servers,
            scope: None,
            scoped,
        }
    }

    /// Nothing came beside the bytes.
    pub(crate) fn bare() -> Received {
        Received::new(Vec::new(), Vec::new(), false)
    }
}

thread_local! {
    /// The value being encoded for another process on this thread: a
    /// pointer to `encoding`'s local, null outside it.
    static OUT: Cell<*mut Outgoing> = const { Cell::new(std::ptr::null_mut()) };
    /// The message being decoded on this thread: a pointer to
    /// `decoding`'s local, null outside it.
    static IN: Cell<*mut Received> = const { Cell::new(std::ptr::null_mut()) };
}

/// Run `f` on the value being encoded on this thread, if any.
#[inline]
fn with_outgoing<R>(f: impl FnOnce(Option<&mut Outgoing>) -> R) -> R {
    let outgoing = OUT.with(Cell::get);
    // SAFETY: the pointer is non-null only while `encoding` runs on this
    // thread, and then points at its local `Outgoing`, which outlives this
    // call; `encoding` does not touch it while its `encode` runs, and no
    // caller of this function calls back into it from `f` (they push or
    // read plain data), so this is the only reference meanwhile.
    f(unsafe { outgoing.as_mut() })
}

/// Run `f` on the message being decoded on this thread, if any.
#[inline]
fn with_received<R>(f: impl FnOnce(Option<&mut Received>) -> R) -> R {
    let received = IN.with(Cell::get);
    // SAFETY: as in `with_outgoing`, for `decoding`'s local `Received`.
    f(unsafe { received.as_mut() })
}

/// Puts a thread-local pointer back as it was, however the scope ends.
struct Restore<T: 'static> {
    key: &'static std::thread::LocalKey<Cell<*mut T>>,
    previous: *mut T,
}

impl<T> Drop for Restore<T> {
    fn drop(&mut self) {
        self.key.with(|cell| cell.set(self.previous));
    }
}

/// Run `encode` (of a value going `route`) and return its result with what
/// the value carries beside its bytes. A refusal of one of its parts is
/// the error, whole.
#[inline]
pub(crate) fn encoding<R>(
    route: Route,
    encode: impl FnOnce() -> Result<R>,
) -> Result<(R, Attachments)> {
    let mut ours = Outgoing {
        route,
        attachments: Attachments::default(),
        refused: None,
    };
    let result = {
        let restore = Restore {
            key: &OUT,
            previous: OUT.with(|o| o.replace(&mut ours)),
        };
        let result = encode();
        drop(restore);
        result
    };
    match (result, ours.refused) {
        (Ok(value), _) => Ok((value, ours.attachments)),
        (Err(_), Some(refused)) => Err(refused),
        (Err(e), None) => Err(e),
    }
}

/// Whether a value is being encoded for another process on this thread.
pub(crate) fn is_encoding() -> bool {
    !OUT.with(Cell::get).is_null()
}

/// Record a refusal for [`encoding`] to report, and give serde its error.
fn refuse<E: serde::ser::Error>(error: Error) -> E {
    let message = error.to_string();
    with_outgoing(|out| {
        if let Some(out) = out {
            out.refused.get_or_insert(error);
        }
    });
    crate::error::ser_error(message)
}

/// Serialize `fd`, the descriptor of a `what` ("a Lock"), as its index in
/// the message's descriptors; refused where the route cannot pass it.
pub(crate) fn serialize_fd<S: serde::Serializer>(
    fd: BorrowedFd<'_>,
    what: &'static str,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    let route = with_outgoing(|out| out.map(|out| out.route));
    match route {
        Some(route) if route.carries_descriptors() => {}
        Some(route) => {
            return Err(refuse(
                ProcessError::CannotCross {
                    what,
                    route: route.name(),
                }
                .into(),
            ))
        }
        None => {
            return Err(crate::error::ser_error(
                ProcessError::CannotCross {
                    what,
                    route: "a plain serde encoding",
                }
                .to_string(),
            ))
        }
    }
    let owned = match fd.try_clone_to_owned() {
        Ok(owned) => owned,
        Err(e) => return Err(refuse(e.into())),
    };
    let index = with_outgoing(|out| {
        let fds = &mut out.expect("checked above").attachments.fds;
        fds.push(owned);
        fds.len() - 1
    });
    (index as u32).serialize(serializer)
}

/// Take back, in the receiver, a descriptor [`serialize_fd`] wrote for a
/// `what`. Each index is taken once.
pub(crate) fn deserialize_fd<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    what: &'static str,
) -> std::result::Result<OwnedFd, D::Error> {
    let index = u32::deserialize(deserializer)? as usize;
    let taken = with_received(|received| {
        received.map(|received| received.fds.get_mut(index).and_then(Option::take))
    });
    match taken {
        Some(Some(fd)) => Ok(fd),
        Some(None) => Err(crate::error::de_error(format!(
            "{what}'s file descriptor (number {index} of the message) did not come with it, \
             or was taken already"
        ))),
        None => Err(crate::error::de_error(format!(
            "{what} can only be decoded from what another process sent"
        ))),
    }
}

/// For the proxy layer: while a value is encoded for another process,
/// keep `keep` alive with it and note how to reach `server`. `false` when
/// no such value is being encoded on this thread.
pub(crate) fn attach(server: ServerInfo, keep: Box<dyn Any + Send + Sync>) -> bool {
    with_outgoing(|out| match out {
        Some(out) => {
            if !out.attachments.servers.contains(&server) {
                out.attachments.servers.push(server);
            }
            out.attachments.keep.push(keep);
            true
        }
        None => false,
    })
}

/// What the proxy layer gets of the message being decoded for a proxy of
/// the server at an address: how to reach it, and the sessions this
/// message keeps, if it keeps its own (see [`Received::new`]), taken out
/// of the message until [`Receiving::give_back`].
pub(crate) struct Receiving {
    /// The settings that came with the message for the address, else those
    /// this process learnt ([`learn`]).
    pub(crate) settings: Option<Vec<u8>>,
    /// The message's sessions (`Some` when it keeps its own; the inner
    /// `None` until the proxy layer puts some there); `None`: use the
    /// process's own.
    pub(crate) scope: Option<Option<Box<dyn Any>>>,
}

impl Receiving {
    /// Put the message's sessions back, for its next proxy.
    pub(crate) fn give_back(self) {
        if let Some(scope) = self.scope {
            with_received(|received| {
                if let Some(received) = received {
                    received.scope = scope;
                }
            });
        }
    }
}

/// The message being decoded on this thread, as a proxy to a server at
/// `address` sees it; `None` if no such message is being decoded.
pub(crate) fn receiving(address: &Address) -> Option<Receiving> {
    with_received(|received| {
        let received = received?;
        let settings = received
            .servers
            .iter()
            .find(|s| s.address == *address)
            .map(|s| s.settings.clone())
            .or_else(|| known(address));
        let scope = received.scoped.then(|| received.scope.take());
        Some(Receiving { settings, scope })
    })
}

/// The sessions a message's proxies were adopted through, when they
/// belong to the message: dropping it lets them go.
pub(crate) struct Scope(#[allow(dead_code)] Option<Box<dyn Any>>);

/// Run `decode` on a message that came with `received`. Descriptors
/// nobody took are closed afterwards.
#[inline]
pub(crate) fn decoding<R>(mut received: Received, decode: impl FnOnce() -> R) -> (R, Scope) {
    let result = {
        let restore = Restore {
            key: &IN,
            previous: IN.with(|i| i.replace(&mut received)),
        };
        let result = decode();
        drop(restore);
        result
    };
    (result, Scope(received.scope))
}

/// A value encoded for another process together with what it carries,
/// as one value that crosses inside another message (a pool's initializer
/// arguments inside each worker's start, a task's arguments inside its
/// message): serialized, its descriptors cross by the outer route again.
/// The proxies' clones are not in it: whoever encoded it keeps them.
#[derive(Default)]
pub(crate) struct Carried {
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
    servers: Vec<ServerInfo>,
}

/// A [`Carried`] value that several messages carry (a pool's initializer
/// arguments, in the start of every worker it starts).
#[derive(Clone, Debug)]
pub(crate) struct SharedCarried(std::sync::Arc<Carried>);

impl SharedCarried {
    pub(crate) fn new(carried: Carried) -> SharedCarried {
        SharedCarried(std::sync::Arc::new(carried))
    }

    /// The value, once it has crossed (where it is the only copy).
    pub(crate) fn into_inner(self) -> Carried {
        std::sync::Arc::try_unwrap(self.0).unwrap_or_else(|shared| Carried {
            bytes: shared.bytes.clone(),
            fds: Vec::new(),
            servers: shared.servers.clone(),
        })
    }
}

impl Serialize for SharedCarried {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SharedCarried {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        Carried::deserialize(deserializer).map(SharedCarried::new)
    }
}

/// Clones of proxies that must outlive a value's crossing.
pub(crate) type Keep = Vec<Box<dyn Any + Send + Sync>>;

impl Carried {
    /// `value` encoded for `route`, and the clones to keep meanwhile.
    pub(crate) fn encode<T: Serialize + ?Sized>(
        route: Route,
        value: &T,
    ) -> Result<(Carried, Keep)> {
        Carried::encode_with(route, || crate::codec::encode(value))
    }

    /// What `encode` (of one value, into bytes) gives, as `route` carries it.
    pub(crate) fn encode_with(
        route: Route,
        encode: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<(Carried, Keep)> {
        let (bytes, attachments) = encoding(route, encode)?;
        let carried = Carried {
            bytes,
            fds: attachments.fds,
            servers: attachments.servers,
        };
        Ok((carried, attachments.keep))
    }

    /// Bytes that carry nothing beside them.
    pub(crate) fn bare(bytes: Vec<u8>) -> Carried {
        Carried {
            bytes,
            ..Carried::default()
        }
    }

    /// The encoded value.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Run `decode` on the bytes with what came with them (see
    /// [`Received::new`] for `scoped`).
    pub(crate) fn decode<R>(self, scoped: bool, decode: impl FnOnce(&[u8]) -> R) -> (R, Scope) {
        let received = Received::new(self.fds, self.servers, scoped);
        decoding(received, || decode(&self.bytes))
    }
}

impl Serialize for Carried {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        struct Bytes<'a>(&'a [u8]);
        impl Serialize for Bytes<'_> {
            fn serialize<S: serde::Serializer>(
                &self,
                serializer: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                serializer.serialize_bytes(self.0)
            }
        }
        struct Fds<'a>(&'a [OwnedFd]);
        impl Serialize for Fds<'_> {
            fn serialize<S: serde::Serializer>(
                &self,
                serializer: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                use std::os::fd::AsFd;
                serializer.collect_seq(self.0.iter().map(|fd| Fd(fd.as_fd())))
            }
        }
        struct Fd<'a>(BorrowedFd<'a>);
        impl Serialize for Fd<'_> {
            fn serialize<S: serde::Serializer>(
                &self,
                serializer: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                serialize_fd(self.0, "an argument's file descriptor", serializer)
            }
        }
        let mut tuple = serializer.serialize_tuple(3)?;
        tuple.serialize_element(&Bytes(&self.bytes))?;
        tuple.serialize_element(&Fds(&self.fds))?;
        tuple.serialize_element(&self.servers)?;
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Carried {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct Bytes(Vec<u8>);
        impl<'de> Deserialize<'de> for Bytes {
            fn deserialize<D: serde::Deserializer<'de>>(
                deserializer: D,
            ) -> std::result::Result<Self, D::Error> {
                struct Visit;
                impl serde::de::Visitor<'_> for Visit {
                    type Value = Bytes;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("an encoded value")
                    }
                    fn visit_bytes<E: serde::de::Error>(
                        self,
                        v: &[u8],
                    ) -> std::result::Result<Bytes, E> {
                        Ok(Bytes(v.to_vec()))
                    }
                    fn visit_byte_buf<E: serde::de::Error>(
                        self,
                        v: Vec<u8>,
                    ) -> std::result::Result<Bytes, E> {
                        Ok(Bytes(v))
                    }
                }
                deserializer.deserialize_byte_buf(Visit)
            }
        }
        struct Fd(OwnedFd);
        impl<'de> Deserialize<'de> for Fd {
            fn deserialize<D: serde::Deserializer<'de>>(
                deserializer: D,
            ) -> std::result::Result<Self, D::Error> {
                deserialize_fd(deserializer, "an argument's file descriptor").map(Fd)
            }
        }
        let (bytes, fds, servers): (Bytes, Vec<Fd>, Vec<ServerInfo>) =
            Deserialize::deserialize(deserializer)?;
        Ok(Carried {
            bytes: bytes.0,
            fds: fds.into_iter().map(|fd| fd.0).collect(),
            servers,
        })
    }
}

impl std::fmt::Debug for Carried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Carried")
            .field("bytes", &self.bytes.len())
            .field("fds", &self.fds.len())
            .field("servers", &self.servers)
            .finish()
    }
}

/// Servers this process was told how to reach (by its parent, by the pool
/// it works for), for proxies that arrive without settings of their own.
static KNOWN: Mutex<Option<HashMap<Address, Vec<u8>>>> = Mutex::new(None);

/// Remember how to reach `servers`.
pub(crate) fn learn(servers: &[ServerInfo]) {
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    let known = known.get_or_insert_with(HashMap::new);
    for server in servers {
        known.insert(server.address.clone(), server.settings.clone());
    }
}

/// How to reach the server at `address`, if this process was told.
pub(crate) fn known(address: &Address) -> Option<Vec<u8>> {
    let known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    known.as_ref()?.get(address).cloned()
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    /// A stand-in for a type that holds a descriptor.
    struct Holder(OwnedFd);

    impl Serialize for Holder {
        fn serialize<S: serde::Serializer>(
            &self,
            serializer: S,
        ) -> std::result::Result<S::Ok, S::Error> {
            serialize_fd(self.0.as_fd(), "a Holder", serializer)
        }
    }

    impl<'de> Deserialize<'de> for Holder {
        fn deserialize<D: serde::Deserializer<'de>>(
            deserializer: D,
        ) -> std::result::Result<Self, D::Error> {
            deserialize_fd(deserializer, "a Holder").map(Holder)
        }
    }

    fn holder() -> Holder {
        Holder(std::fs::File::open("/dev/null").unwrap().into())
    }

    #[test]
    fn descriptors_are_duplicated_and_taken_once() {
        let ((bytes, temporary_dropped), attachments) = encoding(Route::Pipe, || {
            // A temporary: its descriptor closes right after it is
            // serialized, and the duplicate still crosses.
            let bytes = crate::codec::encode(&(holder(), holder()))?;
            Ok((bytes, true))
        })
        .unwrap();
        assert!(temporary_dropped);
        assert_eq!(attachments.fds.len(), 2);
        let received = Received::new(attachments.fds, Vec::new(), false);
        let (decoded, _) = decoding(received, || {
            crate::codec::decode::<(Holder, Holder)>(&bytes)
        });
        decoded.unwrap();
        let received = Received::new(Vec::new(), Vec::new(), false);
        let (missing, _) = decoding(received, || {
            crate::codec::decode::<(Holder, Holder)>(&bytes)
        });
        let text = crate::error::chain(&missing.err().expect("no descriptors came"));
        assert!(text.contains("a Holder's file descriptor"), "{text}");
    }

    #[test]
    fn a_route_without_descriptors_refuses_naming_the_type() {
        for route in [Route::Queue, Route::Manager] {
            let err =
                encoding(route, || crate::codec::encode(&vec![holder()])).expect_err("refused");
            assert!(
                matches!(
                    err,
                    Error::Process(ProcessError::CannotCross { what: "a Holder", route: r }) if r == route.name()
                ),
                "{err}"
            );
        }
        let text = crate::error::chain(&crate::codec::encode(&holder()).expect_err("refused"));
        assert!(text.contains("a Holder cannot cross"), "{text}");
    }
}
