//! The one error type of the crate boundary.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed error kept as the [`source`](std::error::Error::source) of one
/// of ours: the underlying failure travels whole instead of as its text.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong between a proxy and the object it stands for.
///
/// Errors returned *by a method* (`Result<T, E>` methods) are not this type:
/// the proxy hands them back typed, inside the `Ok` of this result.
///
/// Where a failure has an underlying cause (an I/O error, a decoder's
/// message), it is the error's [`source`](std::error::Error::source), not
/// part of its `Display`: print the chain to see everything.
///
/// ```
/// # extern crate manager_runtime as managers;
/// use std::error::Error as _;
/// # fn main() {
/// let manager = managers::sync::SyncManager::with_options(
///     managers::ManagerOptions::new().address("/nonexistent/dir/manager.sock"),
/// );
/// let err = manager.connect().unwrap_err();
/// assert!(matches!(err, managers::Error::Connect { .. }));
/// let mut chain = err.to_string();
/// let mut source = err.source();
/// while let Some(cause) = source {
///     chain.push_str(&format!(": {cause}"));
///     source = cause.source();
/// }
/// assert!(chain.starts_with("cannot connect to unix:/nonexistent/dir/manager.sock: "));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server closed the connection or cannot be reached any more.
    #[error("the manager's server is gone: {reason}")]
    ServerGone {
        /// What the client saw.
        reason: String,
        /// The I/O error that showed it, if there was one.
        #[source]
        source: Option<std::io::Error>,
    },
    /// No connection could be made to a server (nothing listens there, or
    /// the socket cannot be reached).
    #[error("cannot connect to {address}")]
    Connect {
        /// The address tried.
        address: String,
        /// Why connecting failed.
        #[source]
        source: std::io::Error,
    },
    /// A server could not listen on its address.
    #[error("cannot listen on {address}")]
    Bind {
        /// The address asked for.
        address: String,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
    /// Any other I/O failure (spawning, reading the lifeline, ...).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The handshake failed: wrong authkey on either side, or a peer that is
    /// not a manager.
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// The peer broke the protocol (bad frame, unknown message, bad version).
    #[error("protocol error: {reason}")]
    Protocol {
        /// What was wrong.
        reason: String,
        /// The decoder's error, if one saw it.
        #[source]
        source: Option<BoxError>,
    },
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
    /// Encoding or decoding arguments or results failed: a value that does
    /// not fit the type asked for, or bytes that are not a value.
    #[error("codec error: {context}")]
    Codec {
        /// What was being encoded or decoded.
        context: String,
        /// The codec's error, if there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// No reply came within the call's deadline
    /// ([`ManagerOptions::call_timeout`](crate::ManagerOptions::call_timeout),
    /// [`Proxy::with_timeout`](crate::Proxy::with_timeout)). If `withdrawn`,
    /// the server confirmed it stopped waiting on the caller's behalf: a
    /// `get()` took no item, an `acquire()` no lock. Otherwise the call was
    /// abandoned without that confirmation (an async call's dropped future,
    /// a server that did not answer the withdrawal in time and whose
    /// connection was closed, which withdraws what was still waiting).
    #[error("no reply within {after:?}{}", if *withdrawn { " (the call was withdrawn)" } else { "" })]
    Timeout {
        /// The deadline that passed.
        after: std::time::Duration,
        /// Whether the server confirmed the call was withdrawn.
        withdrawn: bool,
    },
    /// The server refused or failed the call; see [`RemoteError`].
    #[error(transparent)]
    Remote(RemoteError),
    /// The connection to a gateway was lost after the call was sent
    /// ([`ManagerOptions::gateways`](crate::ManagerOptions::gateways)):
    /// whether it took effect is unknown, and it was not repeated. The
    /// session's next call goes to another gateway.
    #[error("the gateway was lost during the call, whose outcome is unknown: {reason}")]
    OutcomeUnknown {
        /// What failed.
        reason: String,
    },
    /// `start()` on a manager that already started.
    #[error("manager already started")]
    AlreadyStarted,
    /// `start()` on a manager connected to a server: it cannot also start
    /// one.
    #[error("manager is connected to a server; it cannot also start one")]
    AlreadyConnected,
    /// `start()` or `connect()` on a manager that was shut down: build a
    /// new one.
    #[error("manager was shut down; build a new one to start again")]
    ShutDown,
    /// A manager used before `start()` or `connect()`.
    #[error("manager is not started or connected (call start() or connect())")]
    NotStarted,
    /// `connect()` on a manager whose options name no address.
    #[error("connect() needs an address: set ManagerOptions::address")]
    NoAddress,
    /// Text that is not an address (`host:port` or a socket path).
    #[error("`{text}` is not an address (want host:port or a socket path): {reason}")]
    InvalidAddress {
        /// The text given.
        text: String,
        /// Why it is not one.
        reason: String,
    },
    /// A token handed to a session of another server (a token is only
    /// adopted by a session on the server that owns its object).
    #[error("{token} does not live on the server at {server}")]
    ForeignToken {
        /// The token's text form.
        token: String,
        /// The session's server.
        server: String,
    },
    /// TLS could not be set up (bad PEM, a non-TCP address, ...).
    #[error("TLS {0}")]
    Tls(String),
    /// The server process could not be started.
    #[error("could not start the server process: {0}")]
    Spawn(String),
    /// A server running on a thread of this process panicked.
    #[error("the server thread panicked")]
    ServerThreadPanicked,
    /// A built-in object raised what Python would raise (Empty, Full,
    /// KeyError, ...).
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The other end of a connection or a lifeline is closed (Python's
    /// `EOFError`).
    #[error("end of file: the other end is closed")]
    Eof,
    /// A process-shared lock was held by a process that died. The lock is
    /// free again; the data it guarded may be half-updated: check it, then
    /// acquire again.
    #[error("the lock's owner died while holding it: the lock is free again, the data it guarded may be half-updated")]
    OwnerDied,
    /// A message longer than the buffer given to receive it (Python's
    /// `BufferTooShort`); the whole message is here, nothing is lost.
    #[error("the buffer is too short for the message of {} bytes", .0.len())]
    BufferTooShort(Vec<u8>),
    /// A child process (a `Process`, a pool's worker) could not start, or
    /// refused what it was sent (another executable image, arguments that
    /// do not decode, an initializer that failed).
    #[error("could not start a child process: {0}")]
    ProcessStart(String),
    /// A process, pipe, queue or pool used against its rules.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// A pool's worker died (killed, aborted, out of memory) while it held
    /// the task; the pool replaced it and goes on.
    #[error("pool worker {pid} died ({}) while running the task", exit_description(*.exitcode))]
    WorkerDied {
        /// The worker's process id.
        pid: u32,
        /// Its exit code, or minus the signal that killed it (Python's
        /// `exitcode`); [`EXIT_UNKNOWN`] for a distributed pool's worker,
        /// seen only to stop answering.
        exitcode: i32,
    },
    /// A pool task panicked; the message is the panic's.
    #[error("the task panicked: {0}")]
    TaskPanicked(String),
    /// A Redis (a distributed pool's engine) could not be reached, refused
    /// a command, or answered something unexpected.
    #[error("redis: {0}")]
    Redis(String),
}

/// Uses of processes, pipes, queues and pools that break their rules
/// (Python raises `AssertionError` or `ValueError` for these).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// `start()` on a process that was started already.
    #[error("cannot start a process twice")]
    StartedTwice,
    /// `join()`, `terminate()`, ... on a process never started.
    #[error("can only join, signal or detach a started process")]
    NotStarted,
    /// `close()` on a process that still runs.
    #[error("cannot close a process while it is still running")]
    StillRunning,
    /// A process handle used after `close()`.
    #[error("the process object is closed")]
    Closed,
    /// `put` or `get` on a queue this process closed.
    #[error("the queue is closed")]
    QueueClosed,
    /// `join_thread()` on a queue not closed first (as Python asserts).
    #[error("join_thread() needs the queue closed first")]
    QueueNotClosed,
    /// Work given to a pool that was closed or terminated (Python's
    /// ValueError "Pool not running").
    #[error("the pool is not running (closed or terminated)")]
    PoolNotRunning,
    /// `join()` on a pool neither closed nor terminated.
    #[error("the pool is still running: close() or terminate() it before join()")]
    PoolStillRunning,
    /// The pool was terminated before the task's result came.
    #[error("the pool was terminated before the result came")]
    PoolTerminated,
    /// A pool of no processes.
    #[error("a pool needs at least one process")]
    NoProcesses,
    /// `maxtasksperchild` of 0 (Python's ValueError).
    #[error("maxtasksperchild must be at least 1")]
    NoTasksPerChild,
    /// `successful()` before the result is ready (Python's ValueError).
    #[error("the result is not ready")]
    ResultNotReady,
    /// A result taken already by an earlier `get`.
    #[error("the result was taken by an earlier get")]
    ResultTaken,
    /// A pool task's function sent by a process running another executable
    /// image than the pool's (a manager's Pool refuses other programs'
    /// clients: a function is an offset in the image it was taken in).
    #[error(
        "the task's function comes from another executable image: only a client \
         running the same program as the pool's server can send it functions"
    )]
    ForeignImage,
    /// A closure given where a function must cross to another process
    /// (a process target, a pool task, an initializer, a registry): only
    /// `fn` items cross, since the other process makes its own value of
    /// the function's type and a closure's may hold captured values.
    #[error(
        "`{0}` is a closure: only a fn item can run in another process (a closure may \
         capture values, even zero-sized ones, that cannot be made again there); \
         write it as a fn"
    )]
    Closure(String),
    /// A value holding a file descriptor (a `Connection`, a queue, a lock,
    /// shared memory) sent where descriptors cannot go: a queue's item, a
    /// manager's call, or a plain serde encoding.
    #[error(
        "{what} cannot cross {route}: it holds a file descriptor, which only a Process's \
         arguments, a Pool's initializer arguments and tasks, and a Pipe's messages carry"
    )]
    CannotCross {
        /// The type refused, as "a Lock".
        what: &'static str,
        /// Where it was going.
        route: &'static str,
    },
    /// A function that is not in its kind's table of entries (see
    /// `process/image.rs`): it cannot be named to another process.
    #[error("the function at {addr:#x} is not {kind} of the main executable")]
    NotAnEntry {
        /// The function's address.
        addr: usize,
        /// The kind of function expected.
        kind: &'static str,
    },
}

/// "exit code 3", "killed by signal 9".
/// [`Error::WorkerDied`]'s exit code when it is not known: a distributed
/// pool's worker on another machine is seen to die only by its tasks going
/// unanswered.
pub const EXIT_UNKNOWN: i32 = i32::MIN;

fn exit_description(exitcode: i32) -> String {
    if exitcode == EXIT_UNKNOWN {
        "its exit unknown: it stopped answering".into()
    } else if exitcode < 0 {
        format!("killed by signal {}", -exitcode)
    } else {
        format!("exit code {exitcode}")
    }
}

/// `error` and its causes as one line, `a: b: c`, for messages that travel
/// as text (a [`RemoteError`]'s reason).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

thread_local! {
    /// The message of the last custom serde error one of our impls made on
    /// this thread, for [`Error::codec`] to report.
    static REFUSAL: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// A deserialization error saying `message`, kept so that the codec's
/// error (which postcard reduces to "a custom error") still says it.
pub(crate) fn de_error<E: serde::de::Error>(message: impl std::fmt::Display) -> E {
    let message = message.to_string();
    let error = E::custom(&message);
    REFUSAL.with(|r| *r.borrow_mut() = Some(message));
    error
}

/// The serialization twin of [`de_error`].
pub(crate) fn ser_error<E: serde::ser::Error>(message: impl std::fmt::Display) -> E {
    let message = message.to_string();
    let error = E::custom(&message);
    REFUSAL.with(|r| *r.borrow_mut() = Some(message));
    error
}

impl Error {
    /// The server went away (`reason`), seen through `source`.
    #[cfg(feature = "manager")]
    pub(crate) fn gone(reason: impl Into<String>, source: Option<std::io::Error>) -> Self {
        Error::ServerGone {
            reason: reason.into(),
            source,
        }
    }

    /// An error like this one, for an outcome read more than once (a pool's
    /// result, got again): the same variant and fields; an underlying
    /// cause that cannot be copied travels as its text.
    pub(crate) fn duplicate(&self) -> Error {
        fn io(e: &std::io::Error) -> std::io::Error {
            std::io::Error::new(e.kind(), e.to_string())
        }
        fn boxed(e: &BoxError) -> BoxError {
            chain(&**e).into()
        }
        match self {
            Error::ServerGone { reason, source } => Error::ServerGone {
                reason: reason.clone(),
                source: source.as_ref().map(io),
            },
            Error::Connect { address, source } => Error::Connect {
                address: address.clone(),
                source: io(source),
            },
            Error::Bind { address, source } => Error::Bind {
                address: address.clone(),
                source: io(source),
            },
            Error::Io(e) => Error::Io(io(e)),
            Error::Authentication(s) => Error::Authentication(s.clone()),
            Error::Protocol { reason, source } => Error::Protocol {
                reason: reason.clone(),
                source: source.as_ref().map(boxed),
            },
            Error::FrameTooLarge { size, max } => Error::FrameTooLarge {
                size: *size,
                max: *max,
            },
            Error::LimitReached(s) => Error::LimitReached(s.clone()),
            Error::Codec { context, source } => Error::Codec {
                context: context.clone(),
                source: source.as_ref().map(boxed),
            },
            Error::Timeout { after, withdrawn } => Error::Timeout {
                after: *after,
                withdrawn: *withdrawn,
            },
            Error::Remote(e) => Error::Remote(e.clone()),
            Error::OutcomeUnknown { reason } => Error::OutcomeUnknown {
                reason: reason.clone(),
            },
            Error::AlreadyStarted => Error::AlreadyStarted,
            Error::AlreadyConnected => Error::AlreadyConnected,
            Error::ShutDown => Error::ShutDown,
            Error::NotStarted => Error::NotStarted,
            Error::NoAddress => Error::NoAddress,
            Error::InvalidAddress { text, reason } => Error::InvalidAddress {
                text: text.clone(),
                reason: reason.clone(),
            },
            Error::ForeignToken { token, server } => Error::ForeignToken {
                token: token.clone(),
                server: server.clone(),
            },
            Error::Tls(s) => Error::Tls(s.clone()),
            Error::Spawn(s) => Error::Spawn(s.clone()),
            Error::ServerThreadPanicked => Error::ServerThreadPanicked,
            Error::Sync(e) => Error::Sync(e.clone()),
            Error::Eof => Error::Eof,
            Error::OwnerDied => Error::OwnerDied,
            Error::BufferTooShort(b) => Error::BufferTooShort(b.clone()),
            Error::ProcessStart(s) => Error::ProcessStart(s.clone()),
            Error::Process(e) => Error::Process(e.clone()),
            Error::WorkerDied { pid, exitcode } => Error::WorkerDied {
                pid: *pid,
                exitcode: *exitcode,
            },
            Error::TaskPanicked(s) => Error::TaskPanicked(s.clone()),
            Error::Redis(s) => Error::Redis(s.clone()),
        }
    }

    /// A codec failure while doing `context`. A postcard error that only
    /// says "a custom error" (postcard drops serde's custom messages) is
    /// replaced by the message one of our own `Serialize`/`Deserialize`
    /// impls gave through [`de_error`]/[`ser_error`] on this thread.
    pub(crate) fn codec(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        let mut source = source.into();
        let custom = matches!(
            source.downcast_ref::<postcard::Error>(),
            Some(postcard::Error::SerdeDeCustom | postcard::Error::SerdeSerCustom)
        );
        if custom {
            if let Some(message) = REFUSAL.with(|r| r.borrow_mut().take()) {
                source = message.into();
            }
        }
        Error::Codec {
            context: context.into(),
            source: Some(source),
        }
    }

    /// A protocol failure (`reason`), seen by a decoder.
    pub(crate) fn protocol(reason: impl Into<String>, source: Option<BoxError>) -> Self {
        Error::Protocol {
            reason: reason.into(),
            source,
        }
    }
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
    /// A built-in's constructor raised what Python would raise (a
    /// `ValueError` for an element that cannot be stored, ...). The client
    /// sees it as [`Error::Sync`].
    #[error(transparent)]
    Sync(SyncError),
    /// The caller withdrew the call before it was done (its deadline
    /// passed, or its future was dropped): it had no effect.
    #[error("the call was withdrawn by its caller")]
    Cancelled,
    /// A CPython server (pickle mode) failed the request with this
    /// traceback, or raised an exception no [`SyncError`] stands for.
    #[error("the Python server failed: {0}")]
    Python(String),
    /// The engine holding the built-ins' state (Redis, see
    /// [`ManagerOptions::redis`](crate::ManagerOptions::redis)) failed the
    /// call: unreachable, or its reply lost. Whether a write took effect
    /// is then unknown; the call was not repeated.
    #[error("the state backend failed (the outcome is unknown): {0}")]
    Backend(String),
}

impl From<SyncError> for RemoteError {
    fn from(e: SyncError) -> Self {
        RemoteError::Sync(e)
    }
}

impl From<RemoteError> for Error {
    /// The server's refusal; Python's exception raised by a constructor
    /// comes out as [`Error::Sync`], as it does from any other call.
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::Sync(e) => Error::Sync(e),
            other => Error::Remote(other),
        }
    }
}
