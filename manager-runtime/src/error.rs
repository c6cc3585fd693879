//! The one error type of the crate boundary.

use serde::{Deserialize, Serialize};

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong between a proxy and the object it stands for.
///
/// Errors returned *by a method* (`Result<T, E>` methods) are not this type:
/// the proxy hands them back typed, inside the `Ok` of this result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server closed the connection or cannot be reached any more.
    #[error("the manager's server is gone: {0}")]
    ServerGone(String),
    /// Any other I/O failure (connecting, binding, spawning).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The handshake failed: wrong authkey on either side, or a peer that is
    /// not a manager.
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// The peer broke the protocol (bad frame, unknown message, bad version).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A frame larger than the configured maximum was announced.
    #[error("frame of {size} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The announced size.
        size: u64,
        /// The configured maximum.
        max: u32,
    },
    /// A configured limit was reached (connections, ...).
    #[error("limit reached: {0}")]
    LimitReached(String),
    /// Encoding or decoding arguments or results failed.
    #[error("codec error: {0}")]
    Codec(String),
    /// The server refused or failed the call; see [`RemoteError`].
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// A lifecycle rule was broken (start twice, use before start, ...).
    #[error("{0}")]
    State(String),
    /// The server process could not be started.
    #[error("could not start the server process: {0}")]
    Spawn(String),
    /// A built-in object raised what Python would raise (Empty, Full,
    /// KeyError, ...).
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// Python's exceptions from the built-in shared types, typed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// `queue.Empty`: nothing to get.
    #[error("the queue is empty")]
    Empty,
    /// `queue.Full`: no room to put.
    #[error("the queue is full")]
    Full,
    /// `KeyError`, with the key's repr.
    #[error("key not found: {0}")]
    KeyError(String),
    /// `IndexError`.
    #[error("index out of range: {0}")]
    IndexError(String),
    /// `threading.BrokenBarrierError`.
    #[error("the barrier is broken")]
    BrokenBarrier,
    /// `RuntimeError`: releasing an unlocked lock, too many `task_done()`,
    /// a container changed during iteration.
    #[error("{0}")]
    RuntimeError(String),
    /// `ValueError`: an item not in a list, a bounded semaphore released too
    /// many times.
    #[error("{0}")]
    ValueError(String),
    /// `TypeError`: values that cannot be compared or hashed together.
    #[error("{0}")]
    TypeError(String),
}

/// A failure reported by the server for one request. It travels on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// No object with this id lives on the server (never did, or was freed).
    #[error("no object with id {0} on the server")]
    NoSuchObject(u64),
    /// The method is not in the object's exposed set.
    #[error("method `{method}` is not exposed by typeid `{typeid}`")]
    NotExposed {
        /// The typeid of the object.
        typeid: String,
        /// The refused method.
        method: String,
    },
    /// Client and server were built from different signatures of a method.
    #[error("signature mismatch for `{typeid}.{method}`: client and server were built from different versions of the type")]
    SignatureMismatch {
        /// The typeid of the object.
        typeid: String,
        /// The method called.
        method: String,
    },
    /// The manager has no typeid of this name, or it has no constructor.
    #[error("typeid `{0}` cannot be created on this manager")]
    UnknownTypeid(String),
    /// The arguments could not be decoded as the method's parameters.
    #[error("bad arguments for `{method}`: {reason}")]
    BadArguments {
        /// The method called.
        method: String,
        /// The decoder's message.
        reason: String,
    },
    /// The result could not be encoded.
    #[error("could not encode the result: {0}")]
    Encode(String),
    /// The method panicked; the server went on.
    #[error("method panicked: {0}")]
    Panic(String),
    /// The server is shutting down and cancelled the call.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The server did not understand the request.
    #[error("bad request: {0}")]
    BadRequest(String),
}
