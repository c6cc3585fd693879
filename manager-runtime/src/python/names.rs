//! The Python face of the built-ins: which of our methods a CPython proxy's
//! call (`__getitem__`, `put(item, block, timeout)`, `acquire(blocking,
//! timeout)`, Namespace's `__getattribute__`, ...) becomes, with Python's
//! arguments and keywords bound to our parameters, and how the result
//! goes back (a tuple, a default on `KeyError`, `StopIteration`, ...).
//!
//! Faces are keyed by the served type's own typeid (`Shared::TYPEID`), so a
//! queue registered as `get_queue` has the queue's face. A type without a
//! face (a user's `#[shared]` type) is called by its method names with
//! positional arguments.
#![forbid(unsafe_code)]

use std::time::Duration;

use super::pickle::{Exception, Global, Object};
use super::value::to_value;
use crate::value::Value;

/// One call of one of our methods.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Our method's name.
    pub method: &'static str,
    /// Its positional arguments.
    pub args: Vec<Value>,
}

/// How our last call's result becomes Python's.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The value as it is.
    Plain,
    /// `None`, whatever the calls returned.
    Nothing,
    /// A list as a tuple.
    Tuple,
    /// A list of pairs as a list of tuples.
    Pairs,
    /// A list of pairs as a dict.
    Dict,
    /// A map of attributes as a `Namespace`.
    Namespace,
    /// This value instead of a `KeyError`.
    OrDefault(Value),
    /// `None` from an iterator is the end: `StopIteration`.
    Next,
}

/// What a Python call on a built-in does here.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Our calls, in order; the reply is the last one's (or the first
    /// failure's).
    pub calls: Vec<Call>,
    /// How the reply is shaped.
    pub reply: Reply,
    /// A `KeyError` carries this key (Python's `KeyError(key)`), not our
    /// text.
    pub key: Option<Value>,
    /// Our `RuntimeError` is this exception in Python (`task_done` raises
    /// `ValueError` there).
    pub runtime_error_as: Option<Global>,
    /// Our `KeyError` is this exception in Python (a Namespace's missing
    /// attribute is an `AttributeError`).
    pub key_error_as: Option<Global>,
}

impl Plan {
    fn one(method: &'static str, args: Vec<Value>) -> Plan {
        Plan {
            calls: vec![Call { method, args }],
            reply: Reply::Plain,
            key: None,
            runtime_error_as: None,
            key_error_as: None,
        }
    }

    fn reply(mut self, reply: Reply) -> Plan {
        self.reply = reply;
        self
    }

    fn key(mut self, key: &Value) -> Plan {
        self.key = Some(key.clone());
        self
    }
}

/// The Python proxy class CPython's `SyncManager` uses for objects of this
/// face, and the methods it exposes.
pub fn proxy_class(face: &str) -> Option<(Global, &'static [&'static str])> {
    Some(match face {
        "dict" => (Global::DictProxy, DICT),
        "list" => (Global::ListProxy, LIST),
        "Queue" => (Global::AutoProxy, QUEUE),
        "Event" => (Global::EventProxy, &["is_set", "set", "clear", "wait"]),
        "Lock" | "RLock" | "Semaphore" => (Global::AcquirerProxy, &["acquire", "release"]),
        "Condition" => (
            Global::ConditionProxy,
            &["acquire", "release", "wait", "notify", "notify_all"],
        ),
        "Barrier" => (
            Global::BarrierProxy,
            &["__getattribute__", "wait", "abort", "reset"],
        ),
        "Namespace" => (
            Global::NamespaceProxy,
            &["__getattribute__", "__setattr__", "__delattr__"],
        ),
        "Value" => (Global::ValueProxy, &["get", "set"]),
        "Array" => (
            Global::ArrayProxy,
            &["__len__", "__getitem__", "__setitem__"],
        ),
        "Iterator" => (
            Global::IteratorProxy,
            &["__next__", "send", "throw", "close"],
        ),
        _ => return None,
    })
}

const DICT: &[&str] = &[
    "__contains__",
    "__delitem__",
    "__getitem__",
    "__iter__",
    "__len__",
    "__setitem__",
    "clear",
    "copy",
    "get",
    "items",
    "keys",
    "pop",
    "popitem",
    "setdefault",
    "update",
    "values",
];

const LIST: &[&str] = &[
    "__add__",
    "__contains__",
    "__delitem__",
    "__getitem__",
    "__len__",
    "__mul__",
    "__reversed__",
    "__rmul__",
    "__setitem__",
    "append",
    "count",
    "extend",
    "index",
    "insert",
    "pop",
    "remove",
    "reverse",
    "sort",
    "__imul__",
];

const QUEUE: &[&str] = &[
    "empty",
    "full",
    "get",
    "get_nowait",
    "join",
    "put",
    "put_nowait",
    "qsize",
    "task_done",
];

fn type_error(message: impl Into<String>) -> Exception {
    Exception::new(Global::TypeError, message)
}

/// Python's positional and keyword arguments bound to named parameters.
struct Args {
    method: &'static str,
    bound: Vec<Option<Object>>,
}

impl Args {
    fn bind(
        method: &'static str,
        params: &[&str],
        args: Vec<Object>,
        kwds: Vec<(String, Object)>,
    ) -> Result<Args, Exception> {
        if args.len() > params.len() {
            return Err(type_error(format!(
                "{method}() takes at most {} arguments ({} given)",
                params.len(),
                args.len()
            )));
        }
        let mut bound: Vec<Option<Object>> = args.into_iter().map(Some).collect();
        bound.resize(params.len(), None);
        for (name, value) in kwds {
            let at = params.iter().position(|p| *p == name).ok_or_else(|| {
                type_error(format!(
                    "{method}() got an unexpected keyword argument '{name}'"
                ))
            })?;
            if bound[at].replace(value).is_some() {
                return Err(type_error(format!(
                    "{method}() got multiple values for argument '{name}'"
                )));
            }
        }
        Ok(Args { method, bound })
    }

    fn take(&mut self, at: usize) -> Option<Object> {
        self.bound[at].take()
    }

    fn required(&mut self, at: usize) -> Result<Object, Exception> {
        let method = self.method;
        self.take(at)
            .ok_or_else(|| type_error(format!("{method}() missing a required argument")))
    }

    fn value(&mut self, at: usize) -> Result<Value, Exception> {
        to_value(self.required(at)?)
    }

    fn value_or(&mut self, at: usize, default: Value) -> Result<Value, Exception> {
        self.take(at).map_or(Ok(default), to_value)
    }

    fn truth(&mut self, at: usize, default: bool) -> Result<Value, Exception> {
        Ok(Value::Bool(match self.take(at) {
            None => default,
            Some(obj) => truthy(&obj),
        }))
    }

    fn int(&mut self, at: usize, default: i128) -> Result<i128, Exception> {
        match self.take(at) {
            None | Some(Object::None) => Ok(default),
            Some(Object::Int(i)) => Ok(i),
            Some(Object::Bool(b)) => Ok(b.into()),
            Some(other) => Err(type_error(format!(
                "'{}' object cannot be interpreted as an integer",
                other.type_name()
            ))),
        }
    }
}

fn truthy(obj: &Object) -> bool {
    match obj {
        Object::None => false,
        Object::Bool(b) => *b,
        Object::Int(i) => *i != 0,
        Object::Float(f) => *f != 0.0,
        Object::Str(s) => !s.is_empty(),
        Object::Bytes(b) | Object::ByteArray(b) => !b.is_empty(),
        Object::List(v) | Object::Tuple(v) | Object::Set(v) | Object::FrozenSet(v) => !v.is_empty(),
        Object::Dict(d) => !d.is_empty(),
        _ => true,
    }
}

/// A Python timeout in seconds (`None`: wait for ever) as ours. How a
/// negative one is read differs by method: `-1` means "for ever" for a
/// lock, other negatives are an error for locks and queues and zero for
/// events and conditions.
#[derive(Clone, Copy)]
enum Negative {
    LockForever,
    Refused,
    Zero,
}

fn timeout(obj: Option<Object>, negative: Negative) -> Result<Value, Exception> {
    let seconds = match obj {
        None | Some(Object::None) => return Ok(Value::None),
        Some(Object::Int(i)) => i as f64,
        Some(Object::Bool(b)) => f64::from(u8::from(b)),
        Some(Object::Float(f)) => f,
        Some(other) => {
            return Err(type_error(format!(
                "a timeout is a number, not a {}",
                other.type_name()
            )))
        }
    };
    if seconds.is_nan() {
        return Err(Exception::new(
            Global::ValueError,
            "timeout must not be NaN",
        ));
    }
    let seconds = if seconds < 0.0 {
        match negative {
            Negative::LockForever if seconds == -1.0 => return Ok(Value::None),
            Negative::Zero => 0.0,
            _ => {
                return Err(Exception::new(
                    Global::ValueError,
                    "'timeout' must be a non-negative number",
                ))
            }
        }
    } else {
        seconds
    };
    let duration = Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX);
    crate::value::to_value(&Some(duration)).map_err(|e| type_error(e.to_string()))
}

fn index(obj: Object) -> Result<Value, Exception> {
    match obj {
        Object::Int(i) => Ok(Value::Int(i)),
        Object::Bool(b) => Ok(Value::Int(b.into())),
        other => Err(type_error(format!(
            "indices must be integers or slices, not {}",
            other.type_name()
        ))),
    }
}

/// A slice's start, stop and step as our optional integers.
fn slice_parts(parts: [Object; 3]) -> Result<Vec<Value>, Exception> {
    parts
        .into_iter()
        .map(|part| match part {
            Object::None => Ok(Value::None),
            other => index(other),
        })
        .collect()
}

fn owner_value(owner: u64) -> Value {
    Value::Int(owner.into())
}

/// The plan for a Python call of `method` on an object of face `face`, or
/// `None` if the face has no such method (the caller reports it as
/// CPython does, outside the exposed set). `owner` is the calling
/// connection, which owns an `RLock` or a `Condition`'s lock.
pub fn plan(
    face: &str,
    method: &str,
    args: Vec<Object>,
    kwds: Vec<(String, Object)>,
    owner: u64,
) -> Option<Result<Plan, Exception>> {
    let plan = match face {
        "dict" => dict(method, args, kwds),
        "list" => list(method, args, kwds),
        "Queue" => queue(method, args, kwds),
        "Event" => event(method, args, kwds),
        "Lock" | "Semaphore" | "RLock" | "Condition" => lock(face, method, args, kwds, owner),
        "Barrier" => barrier(method, args, kwds),
        "Namespace" => namespace(method, args, kwds),
        "Value" => shared_value(method, args, kwds),
        "Array" => array(method, args, kwds),
        "Iterator" => iterator(method, args, kwds),
        _ => return None,
    };
    plan.transpose()
}

type Planned = Result<Option<Plan>, Exception>;

fn dict(method: &str, args: Vec<Object>, kwds: Vec<(String, Object)>) -> Planned {
    Ok(Some(match method {
        "__getitem__" => {
            let key = Args::bind("__getitem__", &["key"], args, kwds)?.value(0)?;
            Plan::one("get", vec![key.clone()]).key(&key)
        }
        "__setitem__" => {
            let mut a = Args::bind("__setitem__", &["key", "value"], args, kwds)?;
            Plan::one("set", vec![a.value(0)?, a.value(1)?])
        }
        "__delitem__" => {
            let key = Args::bind("__delitem__", &["key"], args, kwds)?.value(0)?;
            Plan::one("del", vec![key.clone()]).key(&key)
        }
        "__contains__" => Plan::one(
            "contains",
            vec![Args::bind("__contains__", &["key"], args, kwds)?.value(0)?],
        ),
        "__len__" => {
            Args::bind("__len__", &[], args, kwds)?;
            Plan::one("len", vec![])
        }
        "__iter__" => {
            Args::bind("__iter__", &[], args, kwds)?;
            Plan::one("iter", vec![])
        }
        "clear" | "keys" | "values" | "items" | "copy" | "popitem" | "__repr__" | "__str__"
        | "#GETVALUE" => {
            let name = match method {
                "clear" => "clear",
                "keys" => "keys",
                "values" => "values",
                "popitem" => "popitem",
                "__repr__" | "__str__" => "repr",
                _ => "items",
            };
            Args::bind(name, &[], args, kwds)?;
            let reply = match method {
                "items" => Reply::Pairs,
                "copy" | "#GETVALUE" => Reply::Dict,
                "popitem" => Reply::Tuple,
                _ => Reply::Plain,
            };
            Plan::one(name, vec![]).reply(reply)
        }
        "get" => {
            let mut a = Args::bind("get", &["key", "default"], args, kwds)?;
            let key = a.value(0)?;
            let default = a.value_or(1, Value::None)?;
            Plan::one("get", vec![key]).reply(Reply::OrDefault(default))
        }
        "pop" => {
            let mut a = Args::bind("pop", &["key", "default"], args, kwds)?;
            let key = a.value(0)?;
            let plan = Plan::one("pop", vec![key.clone()]).key(&key);
            match a.take(1) {
                Some(default) => plan.reply(Reply::OrDefault(to_value(default)?)),
                None => plan,
            }
        }
        "setdefault" => {
            let mut a = Args::bind("setdefault", &["key", "default"], args, kwds)?;
            Plan::one("setdefault", vec![a.value(0)?, a.value_or(1, Value::None)?])
        }
        "update" => {
            let other = match &args[..] {
                [] => None,
                [_] => Some(to_value(args.into_iter().next().expect("one"))?),
                _ => return Err(type_error("update expected at most 1 argument")),
            };
            let mut calls: Vec<Call> = other
                .into_iter()
                .map(|other| Call {
                    method: "update",
                    args: vec![other],
                })
                .collect();
            if !kwds.is_empty() {
                let map = kwds
                    .into_iter()
                    .map(|(k, v)| Ok((Value::Str(k), to_value(v)?)))
                    .collect::<Result<_, Exception>>()?;
                calls.push(Call {
                    method: "update",
                    args: vec![Value::Map(map)],
                });
            }
            Plan {
                calls,
                ..Plan::one("len", vec![]).reply(Reply::Nothing)
            }
        }
        _ => return Ok(None),
    }))
}

fn list(method: &str, args: Vec<Object>, kwds: Vec<(String, Object)>) -> Planned {
    Ok(Some(match method {
        "__getitem__" | "__delitem__" => {
            let at = Args::bind("__getitem__", &["index"], args, kwds)?.required(0)?;
            let (one, slice) = if method == "__getitem__" {
                ("get", "get_slice")
            } else {
                ("del", "del_slice")
            };
            match at {
                Object::Slice(parts) => Plan::one(slice, slice_parts(*parts)?),
                other => Plan::one(one, vec![index(other)?]),
            }
        }
        "__setitem__" => {
            let mut a = Args::bind("__setitem__", &["index", "value"], args, kwds)?;
            let at = a.required(0)?;
            let value = a.value(1)?;
            match at {
                Object::Slice(parts) => {
                    let mut args = slice_parts(*parts)?;
                    args.push(value);
                    Plan::one("set_slice", args)
                }
                other => Plan::one("set", vec![index(other)?, value]),
            }
        }
        "__len__" | "__reversed__" | "reverse" | "__repr__" | "__str__" | "#GETVALUE" => {
            let name = match method {
                "__len__" => "len",
                "__reversed__" => "reversed",
                "reverse" => "reverse",
                "__repr__" | "__str__" => "repr",
                _ => "to_vec",
            };
            Args::bind(name, &[], args, kwds)?;
            Plan::one(name, vec![])
        }
        "__contains__" | "count" | "append" | "remove" | "extend" | "__add__" => {
            let name = match method {
                "__contains__" => "contains",
                "__add__" => "concat",
                "count" => "count",
                "append" => "append",
                "remove" => "remove",
                _ => "extend",
            };
            Plan::one(
                name,
                vec![Args::bind(name, &["value"], args, kwds)?.value(0)?],
            )
        }
        "__mul__" | "__rmul__" | "__imul__" => {
            let n = Args::bind("__mul__", &["n"], args, kwds)?.int(0, 0)?.max(0);
            let name = if method == "__imul__" {
                "imul"
            } else {
                "repeat"
            };
            let plan = Plan::one(name, vec![Value::Int(n)]);
            if method == "__imul__" {
                plan.reply(Reply::Nothing)
            } else {
                plan
            }
        }
        "index" => {
            let mut a = Args::bind("index", &["value", "start", "stop"], args, kwds)?;
            let value = a.value(0)?;
            let start = a.take(1).map_or(Ok(Value::None), index)?;
            let stop = a.take(2).map_or(Ok(Value::None), index)?;
            Plan::one("index", vec![value, start, stop])
        }
        "insert" => {
            let mut a = Args::bind("insert", &["index", "value"], args, kwds)?;
            let at = index(a.required(0)?)?;
            Plan::one("insert", vec![at, a.value(1)?])
        }
        "pop" => {
            let at = Args::bind("pop", &["index"], args, kwds)?
                .take(0)
                .map_or(Ok(Value::None), index)?;
            Plan::one("pop", vec![at])
        }
        "sort" => {
            let mut a = Args::bind("sort", &["key", "reverse"], args, kwds)?;
            if !matches!(a.take(0), None | Some(Object::None)) {
                return Err(type_error(
                    "sort(key=...) is not supported: a key function cannot run in this server",
                ));
            }
            Plan::one("sort", vec![a.truth(1, false)?])
        }
        _ => return Ok(None),
    }))
}

fn queue(method: &str, args: Vec<Object>, kwds: Vec<(String, Object)>) -> Planned {
    Ok(Some(match method {
        "put" => {
            let mut a = Args::bind("put", &["item", "block", "timeout"], args, kwds)?;
            let item = a.value(0)?;
            let block = a.truth(1, true)?;
            Plan::one(
                "put",
                vec![item, block, timeout(a.take(2), Negative::Refused)?],
            )
        }
        "get" => {
            let mut a = Args::bind("get", &["block", "timeout"], args, kwds)?;
            let block = a.truth(0, true)?;
            Plan::one("get", vec![block, timeout(a.take(1), Negative::Refused)?])
        }
        "put_nowait" => Plan::one(
            "put_nowait",
            vec![Args::bind("put_nowait", &["item"], args, kwds)?.value(0)?],
        ),
        "get_nowait" | "qsize" | "empty" | "full" | "join" | "task_done" => {
            let name = match method {
                "get_nowait" => "get_nowait",
                "qsize" => "qsize",
                "empty" => "empty",
                "full" => "full",
                "join" => "join",
                _ => "task_done",
            };
            Args::bind(name, &[], args, kwds)?;
            Plan {
                runtime_error_as: Some(Global::ValueError),
                ..Plan::one(name, vec![])
            }
        }
        _ => return Ok(None),
    }))
}

fn event(method: &str, args: Vec<Object>, kwds: Vec<(String, Object)>) -> Planned {
    Ok(Some(match method {
        "is_set" | "set" | "clear" => {
            let name = match method {
                "is_set" => "is_set",
                "set" => "set",
                _ => "clear",
            };
            Args::bind(name, &[], args, kwds)?;
            Plan::one(name, vec![])
        }
        "wait" => {
            let mut a = Args::bind("wait", &["timeout"], args, kwds)?;
            Plan::one("wait", vec![timeout(a.take(0), Negative::Zero)?])
        }
        _ => return Ok(None),
    }))
}

fn lock(
    face: &str,
    method: &str,
    args: Vec<Object>,
    kwds: Vec<(String, Object)>,
    owner: u64,
) -> Planned {
    let owned = matches!(face, "RLock" | "Condition");
    let with_owner = |mut rest: Vec<Value>| {
        if owned {
            rest.insert(0, owner_value(owner));
        }
        rest
    };
    Ok(Some(match method {
        "acquire" => {
            let mut a = Args::bind("acquire", &["blocking", "timeout"], args, kwds)?;
            let blocking = a.truth(0, true)?;
            let negative = if face == "Semaphore" {
                Negative::Refused
            } else {
                Negative::LockForever
            };
            let wait = timeout(a.take(1), negative)?;
            if blocking == Value::Bool(false) && wait != Value::None {
                return Err(Exception::new(
                    Global::ValueError,
                    "can't specify a timeout for a non-blocking call",
                ));
            }
            Plan::one("acquire", with_owner(vec![blocking, wait]))
        }
        "release" if face == "Semaphore" => {
            let n = Args::bind("release", &["n"], args, kwds)?.int(0, 1)?;
            if n < 1 {
                return Err(Exception::new(Global::ValueError, "n must be one or more"));
            }
            let calls = (0..n.min(1 << 16))
                .map(|_| Call {
                    method: "release",
                    args: vec![],
                })
                .collect();
            Plan {
                calls,
                ..Plan::one("release", vec![]).reply(Reply::Nothing)
            }
        }
        "release" => {
            Args::bind("release", &[], args, kwds)?;
            Plan::one("release", with_owner(vec![]))
        }
        "wait" if face == "Condition" => {
            let mut a = Args::bind("wait", &["timeout"], args, kwds)?;
            Plan::one(
                "wait",
                with_owner(vec![timeout(a.take(0), Negative::Zero)?]),
            )
        }
        "notify" if face == "Condition" => {
            let n = Args::bind("notify", &["n"], args, kwds)?.int(0, 1)?.max(0);
            Plan::one("notify", with_owner(vec![Value::Int(n)]))
        }
        "notify_all" if face == "Condition" => {
            Args::bind("notify_all", &[], args, kwds)?;
            Plan::one("notify_all", with_owner(vec![]))
        }
        _ => return Ok(None),
    }))
}

fn barrier(method: &str, args: Vec<Object>, kwds: Vec<(String, Object)>) -> Planned {
    Ok(Some(match method {
        "wait" => {
            let mut a = Args::bind("wait", &["timeout"], args, kwds)?;
            Plan::one("wait", vec![timeout(a.take(0), Negative::Zero)?])
        }
        "abort" | "reset" => {
            let name = if method == "abort" { "abort" } else { "reset" };
            Args::bind(name, &[], args, kwds)?;
            Plan::one(name, vec![])
        }
        "__getattribute__" => {
            let name = match Args::bind("__getattribute__", &["name"], args, kwds)?.required(0)? {
                Object::Str(name) => name,
                _ => return Err(type_error("attribute name must be string")),
            };
            let ours = match name.as_str() {
                "parties" => "parties",
                "n_waiting" => "n_waiting",
                "broken" => "broken",
                _ => {
                    return Err(Exception::new(
                        Global::AttributeError,
                        format!("'Barrier' object has no attribute '{name}'"),
                    ))
                }
            };
            Plan::one(ours, vec![])
        }
        _ => return Ok(None),
    }))
}

fn namespace(method: &str, args: Vec<Object>, kwds: Vec<(String, Object)>) -> Planned {
    let attribute = |plan: Plan| Plan {
        key_error_as: Some(Global::AttributeError),
        ..plan
    };
    Ok(Some(match method {
        "__getattribute__" | "__delattr__" => {
            let name = Args::bind("__getattribute__", &["name"], args, kwds)?.value(0)?;
            let ours = if method == "__delattr__" {
                "delattr"
            } else {
                "getattr"
            };
            attribute(Plan::one(ours, vec![name]))
        }
        "__setattr__" => {
            let mut a = Args::bind("__setattr__", &["name", "value"], args, kwds)?;
            Plan::one("setattr", vec![a.value(0)?, a.value(1)?])
        }
        "__repr__" | "__str__" => {
            Args::bind("__repr__", &[], args, kwds)?;
            Plan::one("repr", vec![])
        }
        "#GETVALUE" => {
            Args::bind("_getvalue", &[], args, kwds)?;
            Plan::one("to_map", vec![]).reply(Reply::Namespace)
        }
        _ => return Ok(None),
    }))
}

fn shared_value(method: &str, args: Vec<Object>, kwds: Vec<(String, Object)>) -> Planned {
    Ok(Some(match method {
        "get" | "#GETVALUE" => {
            Args::bind("get", &[], args, kwds)?;
            Plan::one("get", vec![])
        }
        "set" => Plan::one(
            "set",
            vec![Args::bind("set", &["value"], args, kwds)?.value(0)?],
        ),
        _ => return Ok(None),
    }))
}

fn array(method: &str, args: Vec<Object>, kwds: Vec<(String, Object)>) -> Planned {
    let no_step = |parts: [Object; 3]| -> Result<Vec<Value>, Exception> {
        let [start, stop, step] = parts;
        if !matches!(step, Object::None | Object::Int(1)) {
            return Err(type_error("an array slice with a step is not supported"));
        }
        let mut bounds = slice_parts([start, stop, Object::None])?;
        bounds.pop();
        Ok(bounds)
    };
    Ok(Some(match method {
        "__len__" => {
            Args::bind("__len__", &[], args, kwds)?;
            Plan::one("len", vec![])
        }
        "#GETVALUE" => {
            Args::bind("_getvalue", &[], args, kwds)?;
            Plan::one("to_vec", vec![])
        }
        "__getitem__" => match Args::bind("__getitem__", &["index"], args, kwds)?.required(0)? {
            Object::Slice(parts) => Plan::one("get_slice", no_step(*parts)?),
            other => Plan::one("get", vec![index(other)?]),
        },
        "__setitem__" => {
            let mut a = Args::bind("__setitem__", &["index", "value"], args, kwds)?;
            let at = a.required(0)?;
            let value = a.value(1)?;
            match at {
                Object::Slice(parts) => {
                    let mut args = no_step(*parts)?;
                    args.push(value);
                    Plan::one("set_slice", args)
                }
                other => Plan::one("set", vec![index(other)?, value]),
            }
        }
        _ => return Ok(None),
    }))
}

fn iterator(method: &str, args: Vec<Object>, kwds: Vec<(String, Object)>) -> Planned {
    Ok(Some(match method {
        "__next__" => {
            Args::bind("__next__", &[], args, kwds)?;
            Plan::one("next", vec![]).reply(Reply::Next)
        }
        "close" => {
            Args::bind("close", &[], args, kwds)?;
            // Nothing to release early: the iterator goes with its proxy.
            Plan {
                calls: vec![],
                ..Plan::one("next", vec![]).reply(Reply::Nothing)
            }
        }
        "send" | "throw" => {
            return Err(type_error(format!(
                "{method}() is not supported by a served iterator"
            )))
        }
        _ => return Ok(None),
    }))
}

/// How Python's `create(typeid, *args, **kwds)` builds an object of this
/// face: the constructor's arguments, then calls that fill it in.
pub fn construct(
    face: &str,
    args: Vec<Object>,
    kwds: Vec<(String, Object)>,
) -> Result<(Vec<Value>, Vec<Call>), Exception> {
    Ok(match face {
        // Our dict and list take their first contents as the constructor's
        // argument (`Option<Value>`), so bad contents fail the creation.
        "dict" => {
            let mut args = args.into_iter();
            let first = args.next().map_or(Ok(Value::None), to_value)?;
            if args.next().is_some() {
                return Err(type_error("dict expected at most 1 argument"));
            }
            let mut calls = Vec::new();
            if !kwds.is_empty() {
                let map = kwds
                    .into_iter()
                    .map(|(k, v)| Ok((Value::Str(k), to_value(v)?)))
                    .collect::<Result<_, Exception>>()?;
                calls.push(Call {
                    method: "update",
                    args: vec![Value::Map(map)],
                });
            }
            (vec![first], calls)
        }
        "list" => {
            let items = Args::bind("list", &["iterable"], args, kwds)?.value_or(0, Value::None)?;
            (vec![items], vec![])
        }
        "Namespace" => {
            if !args.is_empty() {
                return Err(type_error("Namespace() takes keyword arguments only"));
            }
            let calls = kwds
                .into_iter()
                .map(|(name, value)| {
                    Ok(Call {
                        method: "setattr",
                        args: vec![Value::Str(name), to_value(value)?],
                    })
                })
                .collect::<Result<_, Exception>>()?;
            (vec![], calls)
        }
        "Queue" => {
            let maxsize = Args::bind("Queue", &["maxsize"], args, kwds)?
                .int(0, 0)?
                .max(0);
            (vec![Value::Int(maxsize)], vec![])
        }
        "Semaphore" => {
            let value = Args::bind("Semaphore", &["value"], args, kwds)?.int(0, 1)?;
            if value < 0 {
                return Err(Exception::new(
                    Global::ValueError,
                    "semaphore initial value must be >= 0",
                ));
            }
            (vec![Value::Int(value)], vec![])
        }
        "Condition" => {
            let lock = Args::bind("Condition", &["lock"], args, kwds)?.value_or(0, Value::None)?;
            (vec![lock], vec![])
        }
        "Barrier" => {
            let mut a = Args::bind("Barrier", &["parties", "action", "timeout"], args, kwds)?;
            let parties = a.int(0, 0)?;
            if parties < 1 {
                return Err(Exception::new(Global::ValueError, "parties must be > 0"));
            }
            if !matches!(a.take(1), None | Some(Object::None)) {
                return Err(type_error(
                    "Barrier(action=...) is not supported: an action cannot run in this server",
                ));
            }
            (
                vec![Value::Int(parties), timeout(a.take(2), Negative::Zero)?],
                vec![],
            )
        }
        "Value" => {
            let mut a = Args::bind("Value", &["typecode", "value", "lock"], args, kwds)?;
            a.required(0)?;
            (vec![a.value(1)?], vec![])
        }
        "Array" => {
            let mut a = Args::bind("Array", &["typecode", "sequence", "lock"], args, kwds)?;
            a.required(0)?;
            (vec![a.value(1)?], vec![])
        }
        _ => (
            args.into_iter().map(to_value).collect::<Result<_, _>>()?,
            if kwds.is_empty() {
                vec![]
            } else {
                return Err(type_error(
                    "keyword arguments are not supported by this constructor",
                ));
            },
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(face: &str, method: &str, args: Vec<Object>) -> Plan {
        plan(face, method, args, vec![], 7).unwrap().unwrap()
    }

    #[test]
    fn python_calls_become_ours() {
        let p = plan_of("dict", "__getitem__", vec![Object::str("k")]);
        assert_eq!(p.calls[0].method, "get");
        assert_eq!(p.key, Some(Value::from("k")));
        let p = plan_of(
            "list",
            "__getitem__",
            vec![Object::Slice(Box::new([
                Object::Int(2),
                Object::Int(5),
                Object::None,
            ]))],
        );
        assert_eq!(p.calls[0].method, "get_slice");
        assert_eq!(p.calls[0].args, [Value::Int(2), Value::Int(5), Value::None]);
        let p = plan(
            "Queue",
            "put",
            vec![Object::Int(1)],
            vec![("timeout".into(), Object::Float(0.5))],
            0,
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.calls[0].args[1], Value::Bool(true));
        assert_ne!(p.calls[0].args[2], Value::None);
        let p = plan_of("RLock", "acquire", vec![]);
        assert_eq!(
            p.calls[0].args,
            [Value::Int(7), Value::Bool(true), Value::None]
        );
        assert!(plan("dict", "nonexistent", vec![], vec![], 0).is_none());
        assert!(plan("Maths", "add", vec![], vec![], 0).is_none());
    }

    #[test]
    fn bad_arguments_are_python_errors() {
        let err = plan(
            "Queue",
            "get",
            vec![],
            vec![("bogus".into(), Object::None)],
            0,
        )
        .unwrap()
        .unwrap_err();
        assert_eq!(err.class, Global::TypeError);
        let err = plan(
            "Lock",
            "acquire",
            vec![Object::Bool(false), Object::Float(1.0)],
            vec![],
            0,
        )
        .unwrap()
        .unwrap_err();
        assert_eq!(err.class, Global::ValueError);
        let err = plan(
            "Queue",
            "get",
            vec![Object::Bool(true), Object::Int(-1)],
            vec![],
            0,
        )
        .unwrap()
        .unwrap_err();
        assert_eq!(err.class, Global::ValueError);
    }
}
