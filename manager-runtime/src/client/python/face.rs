//! Our typed proxies' calls as a CPython server's objects take them: the
//! inverse of `python::names` (which serves CPython's calls on our
//! built-ins). A call of one of our methods (`get`, `set`, `put(item,
//! block, timeout)`, ...) becomes a `_callmethod` of a Python method
//! (`__getitem__`, `__setitem__`, `put`, ...) with Python's arguments, and
//! its reply is shaped as our method's result would be.
#![forbid(unsafe_code)]

use std::time::Duration;

use crate::error::{Error, Result};
use crate::python::pickle::{Global, Object};
use crate::value::Value;

/// How the objects of a CPython typeid are driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Face {
    Dict,
    List,
    Queue,
    Lock,
    /// `RLock` and `Condition`: our methods take an owner first, which a
    /// CPython server knows as the calling connection instead.
    Owned,
    Semaphore,
    Event,
    Barrier,
    Namespace,
    SharedValue,
    /// `Array(typecode, sequence)`: an `array.array` (`ArrayProxy`).
    Array,
    Iterator,
    /// A typeid of the user's: our method names, positional arguments.
    Plain,
}

/// The face of a typeid whose exposed methods are `exposed`: SyncManager's
/// typeids by name, others (the seed's `get_queue`, a `get_dict` served
/// with `DictProxy`) by the methods they expose.
pub(super) fn face_of(typeid: &str, exposed: &[String]) -> Face {
    let has = |name: &str| exposed.iter().any(|e| e == name);
    match typeid {
        "dict" => Face::Dict,
        "list" => Face::List,
        "Queue" | "JoinableQueue" => Face::Queue,
        "Lock" => Face::Lock,
        "RLock" | "Condition" => Face::Owned,
        "Semaphore" | "BoundedSemaphore" => Face::Semaphore,
        "Event" => Face::Event,
        "Barrier" => Face::Barrier,
        "Namespace" => Face::Namespace,
        "Value" => Face::SharedValue,
        "Array" => Face::Array,
        "Iterator" => Face::Iterator,
        _ if has("put_nowait") && has("get_nowait") => Face::Queue,
        _ if has("popitem") && has("setdefault") => Face::Dict,
        _ if has("append") && has("__getitem__") => Face::List,
        _ if has("is_set") && has("wait") => Face::Event,
        _ if has("__next__") => Face::Iterator,
        _ if has("__getattribute__") && has("__setattr__") => Face::Namespace,
        _ => Face::Plain,
    }
}

/// The face of a proxy class CPython pickles nested in a value.
pub(super) fn face_of_class(class: Global, typeid: &str, exposed: &[String]) -> Face {
    match class {
        Global::DictProxy => Face::Dict,
        Global::ListProxy => Face::List,
        Global::EventProxy => Face::Event,
        Global::NamespaceProxy => Face::Namespace,
        Global::ValueProxy => Face::SharedValue,
        Global::ArrayProxy => Face::Array,
        Global::IteratorProxy => Face::Iterator,
        Global::BarrierProxy => Face::Barrier,
        _ => face_of(typeid, exposed),
    }
}

/// How the Python result becomes ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Back {
    /// The value as it is.
    Plain,
    /// Nothing (`()`), whatever came back.
    Nothing,
    /// `__len__() == 0`.
    IsZero,
    /// `Some(value)`, or `None` on `KeyError`.
    OptionOnKeyError,
    /// `true`, or `false` on `AttributeError`.
    FalseOnAttributeError,
    /// A `Namespace`'s attributes as a map.
    NamespaceMap,
    /// A `Namespace`'s attribute names.
    AttributeNames,
    /// A list, reversed.
    Reversed,
    /// `Some(item)`, or `None` on `StopIteration`.
    Next,
}

/// One `_callmethod` to send.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Outgoing {
    pub method: String,
    pub args: Vec<Object>,
    pub kwds: Vec<(String, Object)>,
    pub back: Back,
}

fn call(method: &str, args: Vec<Object>) -> Outgoing {
    Outgoing {
        method: method.into(),
        args,
        kwds: Vec::new(),
        back: Back::Plain,
    }
}

impl Outgoing {
    fn back(mut self, back: Back) -> Outgoing {
        self.back = back;
        self
    }
}

fn unsupported(face: Face, method: &str) -> Error {
    Error::Remote(crate::error::RemoteError::BadRequest(format!(
        "`{method}` has no equivalent on a CPython server's {face:?} object (pickle mode)"
    )))
}

/// A timeout of ours (`None`, or a `Duration` as a value) in seconds.
fn seconds(value: &Value) -> Result<Option<f64>> {
    if let Value::None = value {
        return Ok(None);
    }
    let duration: Duration = crate::value::from_value(value.clone())?;
    Ok(Some(duration.as_secs_f64()))
}

fn timeout_object(value: &Value) -> Result<Object> {
    Ok(seconds(value)?.map_or(Object::None, Object::Float))
}

fn slice(start: &Value, stop: &Value, step: &Value, to: &dyn Fn(&Value) -> Object) -> Object {
    Object::Slice(Box::new([to(start), to(stop), to(step)]))
}

/// Our call of `method` with `args` on an object of face `face`, as the
/// Python call that does it; `to` turns a value into a Python object.
pub(super) fn outgoing(
    face: Face,
    method: &str,
    args: &[Value],
    to: &dyn Fn(&Value) -> Object,
) -> Result<Outgoing> {
    let arg = |at: usize| -> Result<&Value> {
        args.get(at).ok_or_else(|| {
            Error::codec(
                format!("the arguments of `{method}`"),
                format!("argument {at} is missing"),
            )
        })
    };
    let obj = |at: usize| -> Result<Object> { arg(at).map(to) };
    let all = || args.iter().map(to).collect::<Vec<_>>();
    Ok(match (face, method) {
        (Face::Plain, _) => call(method, all()),
        (Face::Dict | Face::List, "len") => call("__len__", vec![]),
        (Face::Dict | Face::List, "is_empty") => call("__len__", vec![]).back(Back::IsZero),
        (Face::Dict | Face::List, "contains") => call("__contains__", vec![obj(0)?]),
        (Face::Dict | Face::List, "repr") => call("__repr__", vec![]),
        (Face::Dict, "get") => call("__getitem__", vec![obj(0)?]),
        (Face::Dict, "get_opt") => call("__getitem__", vec![obj(0)?]).back(Back::OptionOnKeyError),
        (Face::Dict, "set") => call("__setitem__", vec![obj(0)?, obj(1)?]).back(Back::Nothing),
        (Face::Dict, "del") => call("__delitem__", vec![obj(0)?]).back(Back::Nothing),
        (Face::Dict, "clear" | "items" | "keys" | "values" | "popitem") => call(method, vec![]),
        (Face::Dict, "pop") => call("pop", vec![obj(0)?]),
        (Face::Dict, "pop_opt") => call("pop", vec![obj(0)?]).back(Back::OptionOnKeyError),
        (Face::Dict, "setdefault") => call("setdefault", vec![obj(0)?, obj(1)?]),
        (Face::Dict, "update") => call("update", vec![obj(0)?]).back(Back::Nothing),
        (Face::Dict, "iter") => call("__iter__", vec![]),
        (Face::List, "get") => call("__getitem__", vec![obj(0)?]),
        (Face::List, "set") => call("__setitem__", vec![obj(0)?, obj(1)?]).back(Back::Nothing),
        (Face::List, "del") => call("__delitem__", vec![obj(0)?]).back(Back::Nothing),
        (Face::List, "get_slice") => {
            call("__getitem__", vec![slice(arg(0)?, arg(1)?, arg(2)?, to)])
        }
        (Face::List, "set_slice") => call(
            "__setitem__",
            vec![slice(arg(0)?, arg(1)?, arg(2)?, to), obj(3)?],
        )
        .back(Back::Nothing),
        (Face::List, "del_slice") => {
            call("__delitem__", vec![slice(arg(0)?, arg(1)?, arg(2)?, to)]).back(Back::Nothing)
        }
        (Face::List, "clear") => call(
            "__delitem__",
            vec![slice(&Value::None, &Value::None, &Value::None, to)],
        )
        .back(Back::Nothing),
        (Face::List, "concat") => call("__add__", vec![obj(0)?]),
        (Face::List, "repeat") => call("__mul__", vec![obj(0)?]),
        (Face::List, "imul") => call("__imul__", vec![obj(0)?]).back(Back::Nothing),
        (Face::List, "extend" | "append" | "remove") => {
            call(method, vec![obj(0)?]).back(Back::Nothing)
        }
        (Face::List, "count") => call("count", vec![obj(0)?]),
        (Face::List, "insert") => call("insert", vec![obj(0)?, obj(1)?]).back(Back::Nothing),
        (Face::List, "index") => {
            // list.index takes no None bounds: leave them out.
            let mut python = vec![obj(0)?];
            match (arg(1)?, arg(2)?) {
                (Value::None, Value::None) => {}
                (start, Value::None) => python.push(to(start)),
                (start, stop) => {
                    python.push(match start {
                        Value::None => Object::Int(0),
                        start => to(start),
                    });
                    python.push(to(stop));
                }
            }
            call("index", python)
        }
        (Face::List, "pop") => match arg(0)? {
            Value::None => call("pop", vec![]),
            at => call("pop", vec![to(at)]),
        },
        (Face::List, "reverse") => call("reverse", vec![]).back(Back::Nothing),
        (Face::List, "reversed") => call("#GETVALUE", vec![]).back(Back::Reversed),
        (Face::List, "to_vec") => call("#GETVALUE", vec![]),
        (Face::List, "sort") => Outgoing {
            kwds: vec![("reverse".into(), obj(0)?)],
            ..call("sort", vec![]).back(Back::Nothing)
        },
        (Face::Queue, "put") => {
            call("put", vec![obj(0)?, obj(1)?, timeout_object(arg(2)?)?]).back(Back::Nothing)
        }
        (Face::Queue, "put_nowait") => call("put_nowait", vec![obj(0)?]).back(Back::Nothing),
        (Face::Queue, "get") => call("get", vec![obj(0)?, timeout_object(arg(1)?)?]),
        (Face::Queue, "get_nowait" | "qsize" | "empty" | "full") => call(method, vec![]),
        (Face::Queue, "task_done" | "join") => call(method, vec![]).back(Back::Nothing),
        // Python's lock.acquire(blocking, timeout): -1 waits for ever, and
        // a non-blocking call takes no timeout.
        (Face::Lock | Face::Semaphore | Face::Owned, "acquire") => {
            let skip = usize::from(face == Face::Owned);
            let blocking = obj(skip)?;
            let mut python = vec![blocking.clone()];
            if blocking != Object::Bool(false) {
                let wait = seconds(arg(skip + 1)?)?;
                python.push(match (face, wait) {
                    (Face::Semaphore, None) => Object::None,
                    (_, None) => Object::Int(-1),
                    (_, Some(s)) => Object::Float(s),
                });
            }
            call("acquire", python)
        }
        (Face::Lock | Face::Semaphore | Face::Owned, "release") => {
            call("release", vec![]).back(Back::Nothing)
        }
        (Face::Owned, "wait") => call("wait", vec![timeout_object(arg(1)?)?]),
        (Face::Owned, "notify") => call("notify", vec![obj(1)?]).back(Back::Nothing),
        (Face::Owned, "notify_all") => call("notify_all", vec![]).back(Back::Nothing),
        (Face::Event, "is_set") => call("is_set", vec![]),
        (Face::Event, "set" | "clear") => call(method, vec![]).back(Back::Nothing),
        (Face::Event, "wait") => call("wait", vec![timeout_object(arg(0)?)?]),
        (Face::Barrier, "wait") => call("wait", vec![timeout_object(arg(0)?)?]),
        (Face::Barrier, "abort" | "reset") => call(method, vec![]).back(Back::Nothing),
        (Face::Barrier, "parties" | "n_waiting" | "broken") => {
            call("__getattribute__", vec![Object::str(method)])
        }
        (Face::Namespace, "getattr") => call("__getattribute__", vec![obj(0)?]),
        (Face::Namespace, "hasattr") => {
            call("__getattribute__", vec![obj(0)?]).back(Back::FalseOnAttributeError)
        }
        (Face::Namespace, "setattr") => {
            call("__setattr__", vec![obj(0)?, obj(1)?]).back(Back::Nothing)
        }
        (Face::Namespace, "delattr") => call("__delattr__", vec![obj(0)?]).back(Back::Nothing),
        (Face::Namespace, "attributes") => call("#GETVALUE", vec![]).back(Back::AttributeNames),
        (Face::Namespace, "to_map") => call("#GETVALUE", vec![]).back(Back::NamespaceMap),
        (Face::Namespace, "repr") => call("__repr__", vec![]),
        (Face::SharedValue, "get") => call("get", vec![]),
        (Face::SharedValue, "set") => call("set", vec![obj(0)?]).back(Back::Nothing),
        // ArrayProxy exposes only __len__, __getitem__ and __setitem__;
        // an array.array's slice is assigned only from another array, so
        // set_slice has no equivalent.
        (Face::Array, "len") => call("__len__", vec![]),
        (Face::Array, "is_empty") => call("__len__", vec![]).back(Back::IsZero),
        (Face::Array, "get") => call("__getitem__", vec![obj(0)?]),
        (Face::Array, "set") => call("__setitem__", vec![obj(0)?, obj(1)?]).back(Back::Nothing),
        (Face::Array, "get_slice") => call(
            "__getitem__",
            vec![slice(arg(0)?, arg(1)?, &Value::None, to)],
        ),
        (Face::Array, "to_vec") => call(
            "__getitem__",
            vec![slice(&Value::None, &Value::None, &Value::None, to)],
        ),
        (Face::Iterator, "next") => call("__next__", vec![]).back(Back::Next),
        _ => return Err(unsupported(face, method)),
    })
}

/// A typecode for `multiprocessing.managers.Value(typecode, value)` (the
/// server stores it and never uses it).
fn typecode(value: &Value) -> &'static str {
    match value {
        Value::Bool(_) => "?",
        Value::Int(_) => "q",
        Value::Float(_) => "d",
        Value::Str(_) => "u",
        _ => "O",
    }
}

/// The typecode of `array.array(typecode, items)` for our elements: `q`
/// (i64) for integers, `d` for floats, `u` for one-character strings;
/// anything else has no array typecode.
fn array_typecode(items: &[Value]) -> Result<&'static str> {
    let all = |f: fn(&Value) -> bool| items.iter().all(f);
    if all(|v| matches!(v, Value::Int(_) | Value::Bool(_))) {
        Ok("q")
    } else if all(|v| matches!(v, Value::Float(_) | Value::Int(_))) {
        Ok("d")
    } else if all(|v| matches!(v, Value::Str(s) if s.chars().count() == 1)) {
        Ok("u")
    } else {
        Err(Error::codec(
            "the elements of an Array",
            "a CPython array.array holds integers, floats or characters only",
        ))
    }
}

/// The arguments of CPython's constructor for `typeid`, from ours.
pub(super) fn construct(
    typeid: &str,
    args: &[Value],
    to: &dyn Fn(&Value) -> Object,
) -> Result<Vec<Object>> {
    Ok(match (typeid, args) {
        // Our "empty" argument is None; Python's is no argument.
        ("dict" | "list" | "Condition", [Value::None]) => vec![],
        ("Value", [value]) => vec![Object::str(typecode(value)), to(value)],
        ("Array", [Value::List(items)]) => {
            vec![
                Object::str(array_typecode(items)?),
                to(&Value::List(items.clone())),
            ]
        }
        ("Barrier", [parties, timeout]) => {
            vec![to(parties), Object::None, timeout_object(timeout)?]
        }
        _ => args.iter().map(to).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(value: &Value) -> Object {
        crate::python::value::to_object(value, &NoTokens)
    }

    struct NoTokens;
    impl crate::python::value::ProxyOf for NoTokens {
        fn proxy(&self, _: &crate::token::Token) -> Object {
            Object::None
        }
    }

    #[test]
    fn our_calls_become_pythons() {
        let out = outgoing(Face::Dict, "get_opt", &[Value::from("k")], &to).unwrap();
        assert_eq!(out.method, "__getitem__");
        assert_eq!(out.back, Back::OptionOnKeyError);
        let out = outgoing(
            Face::List,
            "index",
            &[Value::Int(3), Value::None, Value::Int(5)],
            &to,
        )
        .unwrap();
        assert_eq!(out.args, [Object::Int(3), Object::Int(0), Object::Int(5)]);
        let half = crate::value::to_value(&Some(Duration::from_millis(500))).unwrap();
        let out = outgoing(
            Face::Owned,
            "acquire",
            &[Value::Int(9), Value::Bool(true), half],
            &to,
        )
        .unwrap();
        assert_eq!(out.args, [Object::Bool(true), Object::Float(0.5)]);
        let out = outgoing(
            Face::Lock,
            "acquire",
            &[Value::Bool(true), Value::None],
            &to,
        )
        .unwrap();
        assert_eq!(out.args, [Object::Bool(true), Object::Int(-1)]);
        assert!(outgoing(Face::Lock, "locked", &[], &to).is_err());
        assert_eq!(
            face_of("get_queue", &["get_nowait".into(), "put_nowait".into()]),
            Face::Queue
        );
        assert_eq!(face_of("Maths", &["add".into()]), Face::Plain);
        assert_eq!(
            construct("Value", &[Value::Int(3)], &to).unwrap(),
            [Object::str("q"), Object::Int(3)]
        );
    }

    #[test]
    fn arrays_get_the_typecode_of_their_elements() {
        let floats = Value::List(vec![Value::Float(0.5), Value::Int(2)]);
        assert_eq!(
            construct("Array", std::slice::from_ref(&floats), &to).unwrap()[0],
            Object::str("d")
        );
        let chars = Value::List(vec![Value::from("a"), Value::from("b")]);
        assert_eq!(
            construct("Array", &[chars], &to).unwrap()[0],
            Object::str("u")
        );
        let mixed = Value::List(vec![Value::Int(1), Value::from("two")]);
        assert!(construct("Array", &[mixed], &to).is_err());
        let out = outgoing(Face::Array, "to_vec", &[], &to).unwrap();
        assert_eq!(out.method, "__getitem__");
        assert!(outgoing(Face::Array, "set_slice", &[], &to).is_err());
    }
}
