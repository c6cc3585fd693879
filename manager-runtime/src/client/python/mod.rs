//! Pickle mode, client side: a session on a CPython manager server
//! (`BaseManager.get_server().serve_forever()`, or the process `Manager()`
//! starts), driven by our typed proxies.
//!
//! CPython's protocol, as its own client speaks it: every control request
//! (`create`, `incref`, `decref`, `number_of_objects`, ...) is one
//! connection with the handshake, one request and one reply; method calls
//! go over a connection per calling thread that starts with
//! `accept_connection` (the server then serves it from a thread of its
//! own, which owns the `RLock`s and `Condition`s it acquires, as the
//! calling thread does in Python). Requests are pickles of `(id, method,
//! args, kwds)`; replies `('#RETURN', value)`, `('#ERROR', exception)`,
//! `('#TRACEBACK', text)` or `('#PROXY', (exposed, token))`.
//!
//! `face.rs` turns our methods into Python's; `reply.rs` reads the
//! replies into the types the typed proxies ask for. References are
//! counted locally as in a native session: the first proxy of an object
//! holds one server reference (granted by `create`, a `#PROXY` reply, or
//! an `incref` for a proxy nested in a value), the last one to go sends
//! `decref`. Nothing in a reply is run: it is decoded by our allowlisting
//! pickle codec.

mod face;
mod reply;

use std::collections::HashMap;
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::Duration;

use serde::Serialize;

use crate::address::Address;
use crate::error::{Error, RemoteError, Result};
use crate::options::ManagerOptions;
use crate::python::pickle::{self, Exception, Global, Object, Proxy as PyProxy};
use crate::python::table::{PyBack as Back, PyMethod};
use crate::python::value::{from_py_id, from_py_token, py_token, to_object, ProxyOf};
use crate::python::{frame, handshake};
use crate::token::Token;
use crate::transport::Stream;
use crate::value::{Shaped, Value};
use crate::wire::DebugEntry;
use crate::SyncError;
use face::Face;

use super::ledger::Ledger;

/// What the server answered.
enum Answer {
    Return(Object),
    Raised(Exception),
    Proxy(Vec<String>, Token),
}

/// A session on a CPython manager server.
pub(crate) struct PickleSession {
    address: Address,
    authkey: Vec<u8>,
    max_frame: u64,
    call_timeout: Option<Duration>,
    /// The method-call connection of each calling thread, while idle.
    calls: Mutex<HashMap<ThreadId, Stream>>,
    /// The references this session holds.
    pub(super) ledger: Ledger,
    faces: Mutex<HashMap<u64, Face>>,
}

impl PickleSession {
    /// Connect to the CPython server at `address` and check that it knows
    /// the key (CPython's `BaseManager.connect` sends `dummy`).
    pub(crate) fn connect(address: Address, options: &ManagerOptions) -> Result<PickleSession> {
        let session = PickleSession {
            address,
            authkey: options.authkey.clone(),
            max_frame: u64::from(options.max_frame),
            call_timeout: options.call_timeout,
            calls: Mutex::new(HashMap::new()),
            ledger: Ledger::default(),
            faces: Mutex::new(HashMap::new()),
        };
        session.control("dummy", vec![])?;
        Ok(session)
    }

    /// A new authenticated connection.
    fn open(&self) -> Result<Stream> {
        let mut stream = crate::transport::connect(&self.address, &None)
            .map_err(|e| crate::transport::connect_error(e, &self.address, false))?;
        handshake::client_blocking(&mut stream, &self.authkey)?;
        Ok(stream)
    }

    /// Send `request` and read the answer.
    fn exchange(&self, stream: &mut Stream, request: &Object) -> Result<Answer> {
        frame::write(stream, &pickle::encode(request))?;
        let mut buf = Vec::new();
        frame::read(stream, &mut buf, self.max_frame)?;
        let reply = pickle::decode(&buf).map_err(|e| {
            Error::protocol(
                "the Python server's reply is not a pickle we accept",
                Some(Box::new(e)),
            )
        })?;
        self.answer(reply)
    }

    fn answer(&self, reply: Object) -> Result<Answer> {
        let bad = |what: &str| {
            Error::protocol(
                format!("unexpected reply from the Python server: {what}"),
                None,
            )
        };
        let Object::Tuple(mut parts) = reply else {
            return Err(bad("not a (kind, result) pair"));
        };
        if parts.len() != 2 {
            return Err(bad("not a (kind, result) pair"));
        }
        let result = parts.pop().expect("two");
        let kind = parts.pop().expect("two");
        match (kind.as_str(), result) {
            (Some("#RETURN"), result) => Ok(Answer::Return(result)),
            (Some("#ERROR"), Object::Exception(exception)) => Ok(Answer::Raised(*exception)),
            (Some("#ERROR"), other) => Err(bad(&format!("#ERROR with a {}", other.type_name()))),
            (Some("#TRACEBACK" | "#UNSERIALIZABLE"), text) => Err(Error::Remote(
                RemoteError::Python(text.as_str().unwrap_or("(no traceback)").to_string()),
            )),
            (Some("#PROXY"), Object::Tuple(pair)) => match <[Object; 2]>::try_from(pair) {
                Ok([exposed, Object::Token(token)]) => {
                    let token = from_py_token(&token).map_err(|e| bad(&e.message()))?;
                    Ok(Answer::Proxy(names(&exposed), token))
                }
                _ => Err(bad("#PROXY without (exposed, token)")),
            },
            _ => Err(bad("unknown kind")),
        }
    }

    /// One control request on a connection of its own.
    fn control(&self, method: &str, args: Vec<Object>) -> Result<Object> {
        let mut stream = self.open()?;
        let request = Object::Tuple(vec![
            Object::None,
            Object::str(method),
            Object::Tuple(args),
            Object::Dict(vec![]),
        ]);
        match self.exchange(&mut stream, &request)? {
            Answer::Return(result) => Ok(result),
            Answer::Raised(exception) => {
                Err(Error::Remote(RemoteError::Python(describe(&exception))))
            }
            Answer::Proxy(..) => Err(Error::protocol(
                "a proxy in reply to a control request",
                None,
            )),
        }
    }

    /// This thread's method-call connection.
    fn call_stream(&self) -> Result<Stream> {
        let me = std::thread::current().id();
        if let Some(stream) = self.calls.lock().unwrap().remove(&me) {
            return Ok(stream);
        }
        let mut stream = self.open()?;
        let name = Object::str(format!("{:?}", me));
        let request = Object::Tuple(vec![
            Object::None,
            Object::str("accept_connection"),
            Object::Tuple(vec![name]),
            Object::Dict(vec![]),
        ]);
        match self.exchange(&mut stream, &request)? {
            Answer::Return(_) => Ok(stream),
            _ => Err(Error::protocol("accept_connection was refused", None)),
        }
    }

    fn face(&self, token: &Token) -> Face {
        let known = self.faces.lock().unwrap().get(&token.id).copied();
        known.unwrap_or_else(|| face::face_of(&token.typeid, &[]))
    }

    /// A value as a Python object; proxies as CPython pickles them.
    fn object(&self, value: &Value) -> Object {
        to_object(value, &Proxies(self))
    }

    /// Call `method` of `token`'s object with `args` (our method's
    /// arguments, as a tuple).
    pub(crate) fn call<A: Serialize + ?Sized>(
        &self,
        token: &Token,
        method: &str,
        table: &[PyMethod],
        args: &A,
        timeout: Option<Duration>,
    ) -> Result<Shaped> {
        let args = match crate::value::to_value(args)? {
            Value::List(items) => items,
            Value::None => Vec::new(),
            one => vec![one],
        };
        let out = face::outgoing(table, method, &args, &|v| self.object(v))?;
        let request = Object::Tuple(vec![
            Object::str(format!("{:x}", token.id)),
            Object::str(out.method.as_str()),
            Object::Tuple(out.args),
            Object::Dict(
                out.kwds
                    .into_iter()
                    .map(|(k, v)| (Object::str(k), v))
                    .collect(),
            ),
        ]);
        let timeout = timeout.or(self.call_timeout);
        let mut stream = self.call_stream()?;
        stream.set_read_timeout(timeout)?;
        let answer = match self.exchange(&mut stream, &request) {
            Ok(answer) => answer,
            // The connection is left mid-call: it is dropped, not reused.
            Err(Error::Io(e)) if is_timeout(&e) => {
                return Err(Error::Timeout {
                    after: timeout.unwrap_or_default(),
                    withdrawn: false,
                })
            }
            Err(Error::ServerGone {
                source: Some(e), ..
            }) if is_timeout(&e) => {
                return Err(Error::Timeout {
                    after: timeout.unwrap_or_default(),
                    withdrawn: false,
                })
            }
            Err(e) => return Err(e),
        };
        let _ = stream.set_read_timeout(None);
        self.calls
            .lock()
            .unwrap()
            .insert(std::thread::current().id(), stream);
        match answer {
            Answer::Return(result) => self.shape(out.back, Ok(result)),
            Answer::Raised(exception) => self.shape(out.back, Err(exception)),
            Answer::Proxy(exposed, token) => {
                // CPython's server holds one reference for us, which the
                // proxy built from this token adopts.
                self.faces
                    .lock()
                    .unwrap()
                    .insert(token.id, face::face_of(&token.typeid, &exposed));
                Ok(Shaped::Object(token))
            }
        }
    }

    /// A reply as our method's result.
    fn shape(&self, back: Back, result: std::result::Result<Object, Exception>) -> Result<Shaped> {
        let value = |obj: Object| -> Result<Value> { self.value(obj) };
        Ok(match (back, result) {
            (Back::Nothing, Ok(_)) => Shaped::Value(Value::None),
            (Back::IsZero, Ok(obj)) => Shaped::Value(Value::Bool(matches!(obj, Object::Int(0)))),
            (Back::NoneOnKeyError | Back::Next, Ok(obj)) => {
                Shaped::Some(Box::new(Shaped::Value(value(obj)?)))
            }
            (Back::FalseOnAttributeError, Ok(_)) => Shaped::Value(Value::Bool(true)),
            (Back::NamespaceMap | Back::AttributeNames, Ok(Object::Namespace(attributes))) => {
                let names_only = back == Back::AttributeNames;
                let mut out = Vec::new();
                for (name, obj) in attributes {
                    if names_only {
                        out.push(Value::Str(name));
                    } else {
                        out.push(Value::List(vec![Value::Str(name), value(obj)?]));
                    }
                }
                if names_only {
                    Shaped::Value(Value::List(out))
                } else {
                    Shaped::Value(Value::Map(
                        out.into_iter()
                            .map(|pair| match pair {
                                Value::List(mut kv) => {
                                    let v = kv.pop().expect("pair");
                                    (kv.pop().expect("pair"), v)
                                }
                                _ => unreachable!("pairs"),
                            })
                            .collect(),
                    ))
                }
            }
            (Back::Reversed, Ok(obj)) => match value(obj)? {
                Value::List(mut items) => {
                    items.reverse();
                    Shaped::Value(Value::List(items))
                }
                other => Shaped::Value(other),
            },
            (Back::NoneOnKeyError, Err(e)) if e.class == Global::KeyError => Shaped::None,
            (Back::Next, Err(e)) if e.class == Global::StopIteration => Shaped::None,
            (Back::FalseOnAttributeError, Err(e)) if e.class == Global::AttributeError => {
                Shaped::Value(Value::Bool(false))
            }
            (_, Err(exception)) => Shaped::Err(crate::value::to_value(&sync_error(&exception))?),
            (_, Ok(obj)) => Shaped::Value(value(obj)?),
        })
    }

    /// A Python value of a reply as ours. Each proxy nested in it gets a
    /// server reference of this session (CPython's server grants none for
    /// them: its client increfs when it rebuilds them).
    fn value(&self, obj: Object) -> Result<Value> {
        self.take_nested(&obj)?;
        crate::python::value::to_value(obj)
            .map_err(|e| Error::codec("a value from the Python server", describe(&e)))
    }

    fn take_nested(&self, obj: &Object) -> Result<()> {
        match obj {
            Object::Proxy(proxy) => {
                let token = from_py_token(&proxy.token)
                    .map_err(|e| Error::codec("a proxy from the Python server", describe(&e)))?;
                let exposed = proxy
                    .kwds
                    .iter()
                    .find(|(k, _)| k.as_str() == Some("exposed"))
                    .map(|(_, v)| names(v))
                    .unwrap_or_default();
                self.faces.lock().unwrap().insert(
                    token.id,
                    face::face_of_class(proxy.class, &token.typeid, &exposed),
                );
                self.incref_request(&token)?;
            }
            Object::List(items)
            | Object::Tuple(items)
            | Object::Set(items)
            | Object::FrozenSet(items) => {
                for item in items {
                    self.take_nested(item)?;
                }
            }
            Object::Dict(entries) => {
                for (k, v) in entries {
                    self.take_nested(k)?;
                    self.take_nested(v)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Create an object of `typeid` with our constructor arguments.
    pub(crate) fn create<A: Serialize + ?Sized>(&self, typeid: &str, args: &A) -> Result<Token> {
        let args = match crate::value::to_value(args)? {
            Value::List(items) => items,
            Value::None => Vec::new(),
            one => vec![one],
        };
        let mut python = vec![Object::str(typeid)];
        python.extend(face::construct(typeid, &args, &|v| self.object(v))?);
        let reply = self.control("create", python)?;
        let (ident, exposed) = match reply {
            Object::Tuple(pair) if pair.len() == 2 => {
                let mut pair = pair.into_iter();
                (pair.next().expect("two"), pair.next().expect("two"))
            }
            _ => return Err(Error::protocol("create's reply is not (id, exposed)", None)),
        };
        let id = from_py_id(&ident)
            .map_err(|e| Error::protocol(format!("create's reply: {}", e.message()), None))?;
        self.faces
            .lock()
            .unwrap()
            .insert(id, face::face_of(typeid, &names(&exposed)));
        Ok(Token {
            typeid: typeid.to_string(),
            address: self.address.clone(),
            id,
        })
    }

    fn incref_request(&self, token: &Token) -> Result<()> {
        self.control("incref", vec![Object::str(format!("{:x}", token.id))])?;
        self.learn_face(token);
        Ok(())
    }

    /// A token that came from elsewhere (a parent process's proxy): its
    /// face from the methods the server exposes for it (`get_methods`), so
    /// a registered typeid served with `DictProxy` is driven as a dict here
    /// too. Without an answer, the face goes by the typeid alone.
    fn learn_face(&self, token: &Token) {
        if self.faces.lock().unwrap().contains_key(&token.id) {
            return;
        }
        let Ok(exposed) = self.control(
            "get_methods",
            vec![Object::Token(Box::new(py_token(token)))],
        ) else {
            return;
        };
        self.faces
            .lock()
            .unwrap()
            .entry(token.id)
            .or_insert_with(|| face::face_of(&token.typeid, &names(&exposed)));
    }

    /// One more server reference, adopted by the caller.
    pub(crate) fn take_reference(&self, token: &Token) -> Result<()> {
        self.incref_request(token)
    }

    /// Give `count` server references to `id` back.
    pub(crate) fn decref(&self, id: u64, count: u64) {
        for _ in 0..count {
            // As CPython's finalizer: a server that is gone has nothing
            // left to release.
            if self
                .control("decref", vec![Object::str(format!("{id:x}"))])
                .is_err()
            {
                break;
            }
        }
        self.faces.lock().unwrap().remove(&id);
    }

    /// How many objects the server holds.
    pub(crate) fn number_of_objects(&self) -> Result<usize> {
        match self.control("number_of_objects", vec![])? {
            Object::Int(n) => usize::try_from(n)
                .map_err(|_| Error::protocol("a negative number of objects", None)),
            _ => Err(Error::protocol("number_of_objects is not an int", None)),
        }
    }

    /// The objects the server holds, from CPython's `debug_info` text
    /// (`  <id>:       refcount=<n>` lines; the typeid is the one this
    /// session knows, else `?`).
    pub(crate) fn debug_info(&self) -> Result<Vec<DebugEntry>> {
        let text = match self.control("debug_info", vec![])? {
            Object::Str(text) => text,
            _ => return Err(Error::protocol("debug_info is not text", None)),
        };
        let faces = self.faces.lock().unwrap();
        Ok(text
            .lines()
            .filter_map(|line| {
                let (id, rest) = line.trim().split_once(':')?;
                let refcount = rest.trim().strip_prefix("refcount=")?.parse().ok()?;
                let id = u64::from_str_radix(id, 16).ok()?;
                let typeid = faces
                    .get(&id)
                    .map_or_else(|| "?".to_string(), |face| format!("{face:?}"));
                Some(DebugEntry {
                    id,
                    typeid,
                    refcount,
                })
            })
            .collect())
    }

    /// Ask the server to stop.
    pub(crate) fn shutdown(&self) -> Result<()> {
        self.control("shutdown", vec![]).map(drop)
    }

    /// Release every reference the session holds (its last handle is
    /// gone).
    pub(crate) fn release_all(&self) {
        for (id, count) in self.ledger.drain() {
            self.decref(id, count);
        }
    }
}

/// A reply read into the type the typed proxy asked for. A Python
/// exception is the `Err` of a `Result`; for a method whose result is no
/// `Result`, it is the call's error.
pub(crate) fn read_reply<R: serde::de::DeserializeOwned>(shaped: Shaped) -> Result<R> {
    let failure = match &shaped {
        Shaped::Err(e) => Some(e.clone()),
        _ => None,
    };
    reply::from_shaped(shaped).map_err(|e| {
        match failure.and_then(|f| crate::value::from_value::<SyncError>(f).ok()) {
            Some(raised) => Error::Sync(raised),
            None => e.into(),
        }
    })
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A tuple/list of method names.
fn names(obj: &Object) -> Vec<String> {
    match obj {
        Object::Tuple(items) | Object::List(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn describe(exception: &Exception) -> String {
    format!("{:?}: {}", exception.class, exception.message())
}

/// A Python exception as the `SyncError` our built-ins raise for it.
fn sync_error(exception: &Exception) -> SyncError {
    let text = exception.message();
    match exception.class {
        Global::QueueEmpty => SyncError::Empty,
        Global::QueueFull => SyncError::Full,
        Global::BrokenBarrierError => SyncError::BrokenBarrier,
        Global::KeyError => SyncError::KeyError(match exception.args.first() {
            Some(key) => crate::python::value::to_value(key.clone())
                .map(|v| v.repr())
                .unwrap_or(text),
            None => text,
        }),
        // A Namespace's missing attribute: our getattr's KeyError.
        Global::AttributeError => SyncError::KeyError(text),
        Global::IndexError => SyncError::IndexError(text),
        Global::ValueError => SyncError::ValueError(text),
        Global::TypeError => SyncError::TypeError(text),
        Global::RuntimeError => SyncError::RuntimeError(text),
        other => SyncError::RuntimeError(format!("{other:?}: {text}")),
    }
}

/// Tokens in our arguments as the proxies CPython pickles.
struct Proxies<'a>(&'a PickleSession);

impl ProxyOf for Proxies<'_> {
    fn proxy(&self, token: &Token) -> Object {
        let class = match self.0.face(token) {
            Face::Dict => Global::DictProxy,
            Face::List => Global::ListProxy,
            Face::Event => Global::EventProxy,
            Face::Namespace => Global::NamespaceProxy,
            Face::SharedValue => Global::ValueProxy,
            Face::Array => Global::ArrayProxy,
            Face::Barrier => Global::BarrierProxy,
            Face::Iterator => Global::IteratorProxy,
            _ => Global::AutoProxy,
        };
        Object::Proxy(Box::new(PyProxy {
            class,
            token: py_token(token),
            serializer: "pickle".into(),
            kwds: Vec::new(),
        }))
    }
}
