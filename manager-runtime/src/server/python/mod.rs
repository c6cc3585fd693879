//! A connection in pickle mode: CPython's manager protocol, served from
//! the same object table as our own clients.
//!
//! A CPython client opens one connection per request to the server itself
//! (`create`, `incref`, `decref`, `get_methods`, `debug_info`,
//! `number_of_objects`, `dummy`, `shutdown`), and one per thread that calls
//! methods (`accept_connection`, then `(id, method, args, kwds)` requests
//! answered `#RETURN`, `#ERROR`, `#TRACEBACK`, `#PROXY` or
//! `#UNSERIALIZABLE`). Calls go through the objects' generated dispatch in
//! dynamic mode (arguments and results as `Value`s); the built-ins'
//! Python names become ours through `python::names`. References belong to
//! the client process (`peer.rs`), so one that dies releases them.

pub(in crate::server) mod clients;
mod peer;

pub(in crate::server) use peer::unix_peer;

use std::sync::Arc;
use std::task::{Context, Poll};

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use super::core::Core;
use super::dedicated::{Own, Seat};
use super::state::{ServerState, Slot};
use crate::error::RemoteError;
use crate::object::MethodRef;
use crate::object::{Host, MethodInfo, Outcome};
use crate::python::names;
use crate::python::pickle::{self, Exception, Global, Object, Proxy};
use crate::python::table::{Call, Plan, PyMethod, PyReply as Reply};
use crate::python::value::{from_py_id, py_token, to_object, to_value, ProxyOf};
use crate::python::{frame, handshake};
use crate::token::Token;
use crate::transport::Socket;
use crate::value::{Shaped, Value};
use crate::wait::{Spin, Spun};

/// Who is at the other end of a connection, as far as the socket says.
#[derive(Debug)]
pub(in crate::server) enum Peer {
    /// A Unix socket's peer process, if the kernel named one.
    Unix(Option<u32>),
    /// A TCP connection's two ends.
    Tcp {
        local: std::net::SocketAddr,
        remote: std::net::SocketAddr,
    },
    /// Unknown (TLS, ...).
    Unknown,
}

/// Serve one connection in pickle mode until it ends.
pub(in crate::server) async fn serve<S: Socket>(
    state: Arc<ServerState>,
    mut stream: S,
    peer: Peer,
) {
    let (_slot, live) = Slot::take(&state);
    if live > state.max_connections {
        return;
    }
    // Name the peer while the handshake runs: its socket is alive now.
    let identify = match peer {
        Peer::Unix(pid) => tokio::task::spawn(async move { pid }),
        Peer::Tcp { local, remote } => {
            let known = state.python.known();
            tokio::task::spawn_blocking(move || peer::tcp_peer(local, remote, &known))
        }
        Peer::Unknown => tokio::task::spawn(async { None }),
    };
    let authenticated = tokio::time::timeout(
        state.handshake_timeout,
        handshake::server_async(&mut stream, &state.authkey),
    )
    .await;
    if !matches!(authenticated, Ok(Ok(true))) {
        return;
    }
    let pid = identify.await.unwrap_or(None);
    let session = state.python.session(&state.core, pid);
    // The first request: one to the server itself, read unbuffered (the
    // stream may yet move to another runtime, below).
    let max = u64::from(state.max_frame);
    let mut buf = Vec::new();
    if !matches!(
        frame::read_async(&mut stream, &mut buf, max).await,
        Ok(true)
    ) {
        return;
    }
    let (reply, serve) = match pickle::decode(&buf) {
        Ok(request) => Connection::new(&state, session).control(request),
        Err(e) => (error(unpickling(e)), false),
    };
    if stream.write_all(&reply).await.is_err() || !serve {
        return;
    }
    // `accept_connection`: a client thread's method calls, one at a time,
    // until it goes. Served on a thread (and a reactor) of its own, each
    // request and reply make no hop to another thread, as blocking native
    // clients' connections (`dedicated.rs`). The session stays on the
    // shared runtime, which watches the client process.
    if S::MOVABLE {
        if let Some(seat) = Seat::take(&state.dedicated) {
            if let Ok(socket) = stream.into_movable() {
                seat.run(socket, move |stream| async move {
                    match stream {
                        Own::Tcp(s) => calls(&state, s, session, _slot, true).await,
                        Own::Unix(s) => calls(&state, s, session, _slot, true).await,
                    }
                });
            }
            return;
        }
    }
    calls(&state, stream, session, _slot, false).await;
}

/// The method calls of a connection of `session` that was accepted, until
/// the client goes. `_slot` counts the connection meanwhile. After a reply
/// the client's next call usually follows within microseconds: on a
/// thread of its own (`spin`), the connection spins for it before parking
/// (adaptive; see `wait`).
async fn calls<S: Socket>(
    state: &Arc<ServerState>,
    stream: S,
    session: u128,
    _slot: Slot,
    spin: bool,
) {
    let (reader, mut writer) = stream.split_owned();
    let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, reader);
    let mut spin = Spin::new(if spin { state.spin } else { Duration::ZERO });
    // Bytes a spinning wait read, ahead of the reader's.
    let mut early = Vec::new();
    let mut spare = vec![0; 64 * 1024];
    let max = u64::from(state.max_frame);
    let mut buf = Vec::new();
    let connection = Connection::new(state, session);
    loop {
        let fd = S::read_fd(reader.get_ref());
        if let (Some(fd), true, true) = (fd, early.is_empty(), reader.buffer().is_empty()) {
            match spin.read(fd, &mut spare) {
                Ok(Spun::Read(0)) | Err(_) => return,
                Ok(Spun::Read(n)) => early.extend_from_slice(&spare[..n]),
                Ok(Spun::Park) => {}
            }
        }
        let parked = Instant::now();
        let mut source = (&early[..]).chain(&mut reader);
        let read = frame::read_async(&mut source, &mut buf, max).await;
        let left = source.into_inner().0.len();
        if early.is_empty() {
            spin.parked(parked.elapsed());
        }
        early.drain(..early.len() - left);
        match read {
            Ok(true) => {}
            _ => return,
        }
        let reply = match pickle::decode(&buf) {
            Ok(request) => {
                let call = connection.method_call(request);
                // A client waits for each reply; anything it sends meanwhile
                // is its end (or garbage): a dead client's pending call is
                // cancelled, never completed for nobody.
                tokio::select! {
                    reply = call => reply,
                    _ = reader.fill_buf() => return,
                }
            }
            Err(e) => error(unpickling(e)),
        };
        if writer.write_all(&reply).await.is_err() {
            return;
        }
    }
}

fn unpickling(e: pickle::PickleError) -> Exception {
    Exception::new(Global::UnpicklingError, e.0)
}

/// A framed pickle of `('#KIND', value)`.
fn message(kind: &str, value: Object) -> Vec<u8> {
    let body = pickle::encode(&Object::Tuple(vec![Object::str(kind), value]));
    frame::frame(&body)
}

fn returned(value: Object) -> Vec<u8> {
    message("#RETURN", value)
}

fn error(exception: Exception) -> Vec<u8> {
    message("#ERROR", Object::Exception(Box::new(exception)))
}

/// `#TRACEBACK`: the client raises `RemoteError` with this text.
fn traceback(class: &str, text: &str) -> Vec<u8> {
    message(
        "#TRACEBACK",
        Object::Str(format!(
            "Traceback (most recent call last):\n  (in the manager server)\n{class}: {text}\n"
        )),
    )
}

fn remote_error(e: RemoteError) -> Vec<u8> {
    match e {
        RemoteError::BadArguments { method, reason } => error(Exception::new(
            Global::TypeError,
            format!("{method}(): {reason}"),
        )),
        RemoteError::NoSuchObject(id) => traceback("KeyError", &format!("'{id:x}'")),
        RemoteError::NotExposed { typeid, method } => traceback(
            "AttributeError",
            &format!("method '{method}' of '{typeid}' object is not in exposed"),
        ),
        RemoteError::Encode(text) => message("#UNSERIALIZABLE", Object::Str(text)),
        RemoteError::UnknownTypeid(typeid) => traceback("KeyError", &format!("'{typeid}'")),
        other => traceback("RuntimeError", &other.to_string()),
    }
}

/// A request's `(ident, name, args, kwds)`.
type Request = (Object, String, Vec<Object>, Vec<(String, Object)>);

/// The request tuple `(ident, name, args, kwds)`.
fn parse(request: Object) -> Result<Request, Exception> {
    let bad = || Exception::new(Global::TypeError, "a request is (id, method, args, kwds)");
    let Object::Tuple(parts) = request else {
        return Err(bad());
    };
    let [ident, name, args, kwds]: [Object; 4] = parts.try_into().map_err(|_| bad())?;
    let Object::Str(name) = name else {
        return Err(bad());
    };
    let args = match args {
        Object::Tuple(items) | Object::List(items) => items,
        _ => return Err(bad()),
    };
    let kwds = match kwds {
        Object::Dict(entries) => entries
            .into_iter()
            .map(|(k, v)| match k {
                Object::Str(k) => Ok((k, v)),
                _ => Err(Exception::new(
                    Global::TypeError,
                    "keywords must be strings",
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(bad()),
    };
    Ok((ident, name, args, kwds))
}

struct Connection<'a> {
    state: &'a Arc<ServerState>,
    session: u128,
    /// Owns an `RLock` or a `Condition` taken through this connection
    /// (CPython's server serves each client thread on a thread of its own).
    owner: u64,
}

/// What an object is, for Python.
struct Described {
    face: &'static str,
    typeid: &'static str,
    methods: &'static [crate::object::MethodInfo],
    python: &'static [PyMethod],
    exposed: Vec<String>,
}

impl<'a> Connection<'a> {
    fn new(state: &'a Arc<ServerState>, session: u128) -> Connection<'a> {
        Connection {
            state,
            session,
            owner: u64::from_le_bytes(crate::authkey::random_bytes()),
        }
    }

    /// One request to the server itself; `true` if the connection goes on
    /// serving method calls.
    fn control(&self, request: Object) -> (Vec<u8>, bool) {
        let (_, name, mut args, kwds) = match parse(request) {
            Ok(parts) => parts,
            Err(e) => return (error(e), false),
        };
        let state = self.state;
        let reply = match name.as_str() {
            "accept_connection" => return (returned(Object::None), true),
            "dummy" => returned(Object::None),
            "number_of_objects" => returned(Object::Int(state.core.number_of_objects() as i128)),
            "debug_info" => returned(Object::Str(self.debug_info())),
            "shutdown" => {
                state.request_stop();
                returned(Object::None)
            }
            "create" => {
                if args.is_empty() {
                    return (
                        error(Exception::new(Global::TypeError, "create() needs a typeid")),
                        false,
                    );
                }
                let typeid = args.remove(0);
                match typeid {
                    Object::Str(typeid) => self.create(&typeid, args, kwds),
                    _ => error(Exception::new(Global::TypeError, "a typeid is a str")),
                }
            }
            "incref" | "decref" | "get_methods" => {
                let id = match args.first() {
                    Some(Object::Token(token)) => from_py_id(&token.id),
                    Some(other) => from_py_id(other),
                    None => Err(Exception::new(Global::TypeError, "an object id is needed")),
                };
                match (name.as_str(), id) {
                    (_, Err(e)) => error(e),
                    ("incref", Ok(id)) => self.incref(id),
                    ("decref", Ok(id)) => {
                        self.decref(id);
                        returned(Object::None)
                    }
                    (_, Ok(id)) => match self.describe(id) {
                        Some(described) => returned(names_tuple(&described.exposed)),
                        None => remote_error(RemoteError::NoSuchObject(id)),
                    },
                }
            }
            other => traceback("AssertionError", &format!("'{other}' unrecognized")),
        };
        (reply, false)
    }

    fn debug_info(&self) -> String {
        self.state
            .core
            .debug_info()
            .iter()
            .map(|e| {
                format!(
                    "  {:x}:       refcount={}\n    <{} object>",
                    e.id, e.refcount, e.typeid
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn describe(&self, id: u64) -> Option<Described> {
        let (object, typeid, exposed) = self.state.core.served(id)?;
        let methods = object.methods();
        let face = object.type_typeid();
        Some(Described {
            face,
            typeid,
            methods,
            python: object.python(),
            exposed: exposed_names(face, exposed, methods),
        })
    }

    fn incref(&self, id: u64) -> Vec<u8> {
        if self.state.python.take_granted(self.session, id) {
            return returned(Object::None);
        }
        match self.state.core.incref(self.session, id) {
            Ok(()) => returned(Object::None),
            Err(e) => remote_error(e),
        }
    }

    /// Release one reference: this process's if it holds one, else one of
    /// the peers that could not be named.
    fn decref(&self, id: u64) {
        let mut holders = vec![self.session];
        holders.extend(self.state.python.shared());
        self.state.core.release_one(&holders, id);
    }

    fn create(&self, typeid: &str, args: Vec<Object>, kwds: Vec<(String, Object)>) -> Vec<u8> {
        let Some(entry) = self.state.core.registry.get(typeid) else {
            return remote_error(RemoteError::UnknownTypeid(typeid.to_string()));
        };
        let face = entry.type_typeid;
        // The built-ins' Python constructors apply to their own typeids; a
        // typeid registered with another constructor (`get_queue`) takes
        // its arguments as they come.
        let builtin = typeid == face
            || matches!(
                (face, typeid),
                ("Semaphore", "BoundedSemaphore") | ("Queue", "JoinableQueue")
            );
        let (ctor, fill) =
            match names::construct(if builtin { face } else { "" }, entry.python, args, kwds) {
                Ok(planned) => planned,
                Err(e) => return error(e),
            };
        let encoded = match crate::wire::encode(&Value::List(ctor)) {
            Ok(bytes) => bytes,
            Err(e) => return remote_error(RemoteError::Encode(e.to_string())),
        };
        let token = match self
            .state
            .core
            .create_as(self.session, typeid, &encoded, true)
        {
            Ok(token) => token,
            Err(RemoteError::BadArguments { reason, .. }) => {
                return error(Exception::new(
                    Global::TypeError,
                    format!("{typeid}(): {reason}"),
                ))
            }
            Err(e) => return remote_error(e),
        };
        for call in fill {
            if let Err(reply) = self.run_now(token.id, call.method, call.args) {
                self.decref(token.id);
                return reply;
            }
        }
        let exposed = exposed_names(face, entry.exposed, entry.methods);
        returned(Object::Tuple(vec![
            Object::Str(format!("{:x}", token.id)),
            names_tuple(&exposed),
        ]))
    }

    /// Run one of our methods that cannot wait (filling in a new object).
    fn run_now(&self, id: u64, method: &str, args: Vec<Value>) -> Result<Shaped, Vec<u8>> {
        let method = self
            .describe(id)
            .and_then(|d| method_at(d.methods, method))
            .ok_or_else(|| remote_error(RemoteError::NoSuchObject(id)))?;
        let args = crate::wire::encode(&Value::List(args))
            .map_err(|e| remote_error(RemoteError::Encode(e.to_string())))?;
        let outcome = self
            .state
            .core
            .call_as(self.session, id, method, &args, true);
        let result = match outcome {
            Outcome::Ready(result) => result,
            Outcome::Pending(mut future) => {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                match future.as_mut().poll(&mut cx) {
                    Poll::Ready(result) => result,
                    Poll::Pending => Err(RemoteError::BadRequest("the object is busy".into())),
                }
            }
        };
        let shaped = decode_result(result).map_err(remote_error)?;
        match shaped {
            Shaped::Err(e) => Err(error(exception_of(&e, None))),
            other => Ok(other),
        }
    }

    /// One `(id, method, args, kwds)` request on an accepted connection.
    async fn method_call(&self, request: Object) -> Vec<u8> {
        let (ident, name, args, kwds) = match parse(request) {
            Ok(parts) => parts,
            Err(e) => return error(e),
        };
        let id = match from_py_id(&ident) {
            Ok(id) => id,
            Err(_) => return traceback("KeyError", &format!("{ident:?}")),
        };
        let Some(described) = self.describe(id) else {
            return remote_error(RemoteError::NoSuchObject(id));
        };
        let plan = match names::plan(
            described.python,
            described.face,
            &name,
            args.clone(),
            kwds.clone(),
            self.owner,
        ) {
            Some(Ok(plan)) => plan,
            Some(Err(e)) => return error(e),
            None => match self.plain_plan(&described, &name, args, kwds) {
                Ok(plan) => plan,
                Err(reply) => return reply,
            },
        };
        let mut last = Shaped::Value(Value::None);
        for call in &plan.calls {
            let Some(method) = method_at(described.methods, call.method) else {
                return remote_error(RemoteError::NotExposed {
                    typeid: described.typeid.into(),
                    method: call.method.into(),
                });
            };
            let args = match crate::wire::encode(&Value::List(call.args.clone())) {
                Ok(bytes) => bytes,
                Err(e) => return remote_error(RemoteError::Encode(e.to_string())),
            };
            let result = match self
                .state
                .core
                .call_as(self.session, id, method, &args, true)
            {
                Outcome::Ready(result) => result,
                Outcome::Pending(future) => future.await,
            };
            last = match decode_result(result) {
                Ok(Shaped::Err(e)) => return error(exception_of(&e, Some(&plan))),
                Ok(shaped) => shaped,
                Err(e) => return remote_error(e),
            };
        }
        self.reply(last, &plan)
    }

    /// A method of a type without a Python face: its own name, positional
    /// arguments; `__repr__`, `__str__` and `#GETVALUE` as CPython's
    /// server falls back to them.
    fn plain_plan(
        &self,
        described: &Described,
        name: &str,
        args: Vec<Object>,
        kwds: Vec<(String, Object)>,
    ) -> Result<Plan, Vec<u8>> {
        if matches!(name, "__repr__" | "__str__") && !described.exposed.iter().any(|e| e == name) {
            return Err(returned(Object::Str(format!(
                "<{} object>",
                described.typeid
            ))));
        }
        let method = described
            .methods
            .iter()
            .find(|m| m.name == name && described.exposed.iter().any(|e| e == name))
            .ok_or_else(|| {
                remote_error(RemoteError::NotExposed {
                    typeid: described.typeid.into(),
                    method: name.into(),
                })
            })?;
        if !kwds.is_empty() {
            return Err(error(Exception::new(
                Global::TypeError,
                format!("{name}() takes positional arguments only"),
            )));
        }
        let args = args
            .into_iter()
            .map(to_value)
            .collect::<Result<Vec<_>, _>>()
            .map_err(error)?;
        Ok(Plan {
            calls: vec![Call {
                method: method.name,
                args,
            }],
            reply: Reply::Plain,
            key: None,
            runtime_error_as: None,
            key_error_as: None,
        })
    }

    /// The reply for a successful plan.
    fn reply(&self, result: Shaped, plan: &Plan) -> Vec<u8> {
        let mut inner = result;
        // `Ok` and `Some` around the value are the method's return type.
        loop {
            inner = match inner {
                Shaped::Ok(x) => *x,
                Shaped::Some(x) if plan.reply != Reply::Next => *x,
                other => break inner = other,
            };
        }
        let value = match (&plan.reply, inner) {
            (Reply::Nothing, _) => return returned(Object::None),
            (Reply::Next, Shaped::None) => {
                return error(Exception {
                    class: Global::StopIteration,
                    args: vec![],
                })
            }
            (Reply::Next, Shaped::Some(x)) => match *x {
                Shaped::Value(v) => v,
                _ => Value::None,
            },
            (_, Shaped::Object(token)) => return self.proxy_reply(token),
            (_, Shaped::Value(v)) => v,
            (_, _) => Value::None,
        };
        self.note_grants(&value);
        let proxies = Nested(&self.state.core);
        let obj = to_object(&value, &proxies);
        returned(match (&plan.reply, obj) {
            (Reply::Tuple, Object::List(items)) => Object::Tuple(items),
            (Reply::Pairs, Object::List(items)) => {
                Object::List(items.into_iter().map(pair).collect())
            }
            (Reply::Dict, Object::List(items)) => Object::Dict(
                items
                    .into_iter()
                    .filter_map(|item| match pair(item) {
                        Object::Tuple(kv) => {
                            let [k, v]: [Object; 2] = kv.try_into().ok()?;
                            Some((key_form(k), v))
                        }
                        _ => None,
                    })
                    .collect(),
            ),
            (Reply::Namespace, Object::Dict(entries)) => Object::Namespace(
                entries
                    .into_iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v)))
                    .collect(),
            ),
            (_, obj) => obj,
        })
    }

    /// A served object returned by a method (`#[proxy]`): `#PROXY`, which
    /// the client turns into a proxy (its reference is this session's).
    fn proxy_reply(&self, token: Token) -> Vec<u8> {
        let exposed = self
            .describe(token.id)
            .map(|d| d.exposed)
            .unwrap_or_default();
        message(
            "#PROXY",
            Object::Tuple(vec![
                names_tuple(&exposed),
                Object::Token(Box::new(py_token(&token))),
            ]),
        )
    }

    /// Every token of this server in a reply was granted to this session;
    /// the client's `incref` for each proxy it rebuilds takes it over.
    fn note_grants(&self, value: &Value) {
        let address = self.state.core.address();
        let ids = value
            .tokens()
            .filter(|t| t.address == *address)
            .map(|t| t.id);
        self.state.python.granted(self.session, ids);
    }
}

/// A dict key keeps the hashable (tuple) form of a sequence.
fn key_form(obj: Object) -> Object {
    match obj {
        Object::List(items) => Object::Tuple(items.into_iter().map(key_form).collect()),
        other => other,
    }
}

fn pair(item: Object) -> Object {
    match item {
        Object::List(kv) if kv.len() == 2 => Object::Tuple(kv),
        other => other,
    }
}

fn decode_result(result: Result<Vec<u8>, RemoteError>) -> Result<Shaped, RemoteError> {
    let bytes = result?;
    crate::wire::decode::<Shaped>(&bytes).map_err(|e| RemoteError::Encode(e.to_string()))
}

fn names_tuple(names: &[String]) -> Object {
    Object::Tuple(names.iter().map(|n| Object::str(n.as_str())).collect())
}

/// What a Python client may call on an object: the face's names, or the
/// registration's exposed set, or the type's methods not starting with `_`.
fn exposed_names(
    face: &str,
    exposed: Option<&'static [&'static str]>,
    methods: &[crate::object::MethodInfo],
) -> Vec<String> {
    if let Some((_, names)) = names::proxy_class(face) {
        return names.iter().map(|n| n.to_string()).collect();
    }
    match exposed {
        Some(names) => names.iter().map(|n| n.to_string()).collect(),
        None => methods
            .iter()
            .filter(|m| !m.name.starts_with('_'))
            .map(|m| m.name.to_string())
            .collect(),
    }
}

/// The variant name and payload of an error value (a `SyncError` or a
/// user's error enum, as `to_value` writes it).
fn variant(err: &Value) -> (Option<&str>, Option<&Value>) {
    match err {
        Value::Str(name) => (Some(name), None),
        Value::Map(entries) if entries.len() == 1 => (entries[0].0.as_str(), Some(&entries[0].1)),
        _ => (None, None),
    }
}

/// A method's error as the exception CPython raises: our built-ins'
/// `SyncError`s by name (`Empty` is `queue.Empty`, ...), a user's error
/// whose variant is named after a Python exception as that exception, any
/// other as `RuntimeError` with the error's text.
fn exception_of(err: &Value, plan: Option<&Plan>) -> Exception {
    let (name, payload) = variant(err);
    let text = match payload {
        Some(Value::Str(s)) => s.clone(),
        Some(other) => other.repr(),
        None => String::new(),
    };
    let bare = |class| Exception {
        class,
        args: vec![],
    };
    match name {
        Some("Empty") => bare(Global::QueueEmpty),
        Some("Full") => bare(Global::QueueFull),
        Some("BrokenBarrier") => bare(Global::BrokenBarrierError),
        Some("KeyError") => match plan {
            Some(Plan {
                key_error_as: Some(class),
                ..
            }) => Exception::new(*class, text),
            Some(Plan { key: Some(key), .. }) => Exception {
                class: Global::KeyError,
                args: vec![to_object(key, &BareTokens)],
            },
            _ => Exception::new(Global::KeyError, text),
        },
        Some("RuntimeError") => Exception::new(
            plan.and_then(|p| p.runtime_error_as)
                .unwrap_or(Global::RuntimeError),
            text,
        ),
        Some(name) => match Global::lookup("builtins", name).filter(|g| g.is_exception()) {
            Some(class) => Exception::new(class, text),
            None => Exception::new(Global::RuntimeError, err.repr()),
        },
        None => Exception::new(Global::RuntimeError, err.repr()),
    }
}

/// Tokens nested in a reply, as the proxies CPython's server would send.
struct Nested<'a>(&'a Arc<Core>);

impl ProxyOf for Nested<'_> {
    fn proxy(&self, token: &Token) -> Object {
        let face = if token.address == *self.0.address() {
            self.0
                .served(token.id)
                .map_or("", |(object, _, _)| object.type_typeid())
        } else {
            ""
        };
        let face = if face.is_empty() {
            token.typeid.as_str()
        } else {
            face
        };
        let (class, exposed) = names::proxy_class(face).unwrap_or((Global::AutoProxy, &[]));
        let kwds = if class == Global::AutoProxy && !exposed.is_empty() {
            vec![(
                Object::str("exposed"),
                Object::Tuple(exposed.iter().map(|n| Object::str(*n)).collect()),
            )]
        } else {
            vec![]
        };
        Object::Proxy(Box::new(Proxy {
            class,
            token: py_token(token),
            serializer: "pickle".into(),
            kwds,
        }))
    }
}

/// Tokens inside an exception's arguments: bare tokens (never granted).
struct BareTokens;

impl ProxyOf for BareTokens {
    fn proxy(&self, token: &Token) -> Object {
        Object::Token(Box::new(py_token(token)))
    }
}

/// `name` in a type's method table, with its index there (so the call
/// needs no second search).
fn method_at<'a>(methods: &[MethodInfo], name: &'a str) -> Option<MethodRef<'a>> {
    let index = methods.iter().position(|m| m.name == name)?;
    Some(MethodRef::at(
        index as u32,
        name,
        methods[index].fingerprint,
    ))
}
