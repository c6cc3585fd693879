//! Our proxies' calls as a CPython server's objects take them: the inverse
//! of `python::names` (which serves CPython's calls on our objects), read
//! from the same table (the proxy's type's [`PyMethod`]s, which each call
//! carries). A call of one of our methods (`get`, `set`, `put_with(item,
//! block, timeout)`, ...) becomes a `_callmethod` of a Python method
//! (`__getitem__`, `__setitem__`, `put`, ...) with Python's arguments, and
//! its reply is shaped as our method's result would be. The face of a
//! typeid ([`Face`]) says only which CPython proxy class its objects are.
#![forbid(unsafe_code)]

use std::time::Duration;

use crate::error::{Error, Result};
use crate::python::pickle::{Global, Object};
use crate::python::table::{PyBack, PyKind, PyMethod, PyTimeout};
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

/// One `_callmethod` to send.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Outgoing {
    pub method: String,
    pub args: Vec<Object>,
    pub kwds: Vec<(String, Object)>,
    pub back: PyBack,
}

fn unsupported(method: &str) -> Error {
    Error::Remote(crate::error::RemoteError::BadRequest(format!(
        "`{method}` has no equivalent on a CPython server's object (pickle mode)"
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

/// Our call of `method` with `args` on an object whose type's Python table
/// is `table` (empty: the method by its own name, positional arguments),
/// as the Python call that does it; `to` turns a value into a Python
/// object.
pub(super) fn outgoing(
    table: &[PyMethod],
    method: &str,
    args: &[Value],
    to: &dyn Fn(&Value) -> Object,
) -> Result<Outgoing> {
    if table.is_empty() {
        return Ok(Outgoing {
            method: method.into(),
            args: args.iter().map(to).collect(),
            kwds: Vec::new(),
            back: PyBack::Plain,
        });
    }
    let mut ours = table
        .iter()
        .filter(|e| e.method == method && !e.options.incoming);
    let entry = {
        let all: Vec<&PyMethod> = ours.by_ref().collect();
        all.iter()
            .find(|e| e.options.outgoing)
            .or(all.first())
            .copied()
            .ok_or_else(|| unsupported(method))?
    };
    if args.len() != entry.params.len() {
        return Err(Error::codec(
            format!("the arguments of `{method}`"),
            format!(
                "{} arguments for {} parameters",
                args.len(),
                entry.params.len()
            ),
        ));
    }
    let options = &entry.options;
    if options.attr {
        return Ok(Outgoing {
            method: "__getattribute__".into(),
            args: vec![Object::str(method)],
            kwds: Vec::new(),
            back: options.back,
        });
    }
    let mut python = Vec::new();
    let mut kwds = Vec::new();
    let mut params = entry.params.iter().zip(args).peekable();
    if options.slice {
        let mut parts = [Object::None, Object::None, Object::None];
        for part in &mut parts {
            match params.next_if(|(p, _)| p.kind == PyKind::OptionalIndex) {
                Some((_, value)) => *part = to(value),
                None => break,
            }
        }
        python.push(Object::Slice(Box::new(parts)));
    }
    // Optional indices left out at the end (`pop()`, `index(x)`), and one
    // left out before a given one as 0 (`index(x, 0, stop)`).
    let mut indices: Vec<Object> = Vec::new();
    let mut blocking = true;
    for (param, value) in params {
        let obj = match param.kind {
            PyKind::Owner => continue,
            PyKind::OptionalIndex => {
                indices.push(to(value));
                continue;
            }
            PyKind::Truth => {
                blocking = *value != Value::Bool(false);
                to(value)
            }
            PyKind::Timeout => {
                let locked = matches!(options.timeout, PyTimeout::Lock | PyTimeout::Semaphore);
                if locked && !blocking {
                    // Python's acquire takes no timeout when not blocking.
                    continue;
                }
                match (seconds(value)?, options.timeout) {
                    (None, PyTimeout::Lock) => Object::Int(-1),
                    (None, _) => Object::None,
                    (Some(s), _) => Object::Float(s),
                }
            }
            _ => to(value),
        };
        if param.keyword {
            kwds.push((param.name.to_string(), obj));
        } else {
            python.push(obj);
        }
    }
    while indices.last() == Some(&Object::None) {
        indices.pop();
    }
    python.extend(indices.into_iter().map(|i| match i {
        Object::None => Object::Int(0),
        other => other,
    }));
    let back = match options.back {
        PyBack::Plain if options.unit => PyBack::Nothing,
        back => back,
    };
    Ok(Outgoing {
        method: entry.names.first().copied().unwrap_or(method).into(),
        args: python,
        kwds,
        back,
    })
}

fn timeout_object(value: &Value) -> Result<Object> {
    Ok(seconds(value)?.map_or(Object::None, Object::Float))
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
    use crate::python::table::{PyDefault, PyOptions, PyParam};

    fn to(value: &Value) -> Object {
        crate::python::value::to_object(value, &NoTokens)
    }

    struct NoTokens;
    impl crate::python::value::ProxyOf for NoTokens {
        fn proxy(&self, _: &crate::token::Token) -> Object {
            Object::None
        }
    }

    const fn param(name: &'static str, kind: PyKind) -> PyParam {
        PyParam {
            name,
            kind,
            default: PyDefault::Required,
            keyword: false,
        }
    }

    static TABLE: &[PyMethod] = &[
        PyMethod {
            names: &["__getitem__"],
            method: "get_opt",
            index: 0,
            params: &[param("key", PyKind::Value)],
            options: PyOptions {
                outgoing: true,
                back: PyBack::NoneOnKeyError,
                ..PyOptions::DEFAULT
            },
            plan: None,
        },
        PyMethod {
            names: &["index"],
            method: "index",
            index: 1,
            params: &[
                param("value", PyKind::Value),
                param("start", PyKind::OptionalIndex),
                param("stop", PyKind::OptionalIndex),
            ],
            options: PyOptions::DEFAULT,
            plan: None,
        },
        PyMethod {
            names: &["acquire"],
            method: "acquire_with",
            index: 2,
            params: &[
                param("owner", PyKind::Owner),
                param("blocking", PyKind::Truth),
                param("timeout", PyKind::Timeout),
            ],
            options: PyOptions {
                timeout: PyTimeout::Lock,
                ..PyOptions::DEFAULT
            },
            plan: None,
        },
        PyMethod {
            names: &["__getitem__"],
            method: "to_vec",
            index: 3,
            params: &[],
            options: PyOptions {
                slice: true,
                outgoing: true,
                ..PyOptions::DEFAULT
            },
            plan: None,
        },
    ];

    #[test]
    fn our_calls_become_pythons() {
        let out = outgoing(TABLE, "get_opt", &[Value::from("k")], &to).unwrap();
        assert_eq!(out.method, "__getitem__");
        assert_eq!(out.back, PyBack::NoneOnKeyError);
        let out = outgoing(
            TABLE,
            "index",
            &[Value::Int(3), Value::None, Value::Int(5)],
            &to,
        )
        .unwrap();
        assert_eq!(out.args, [Object::Int(3), Object::Int(0), Object::Int(5)]);
        let out = outgoing(
            TABLE,
            "index",
            &[Value::Int(3), Value::None, Value::None],
            &to,
        )
        .unwrap();
        assert_eq!(out.args, [Object::Int(3)]);
        let half = crate::value::to_value(&Some(Duration::from_millis(500))).unwrap();
        let out = outgoing(
            TABLE,
            "acquire_with",
            &[Value::Int(9), Value::Bool(true), half],
            &to,
        )
        .unwrap();
        assert_eq!(out.args, [Object::Bool(true), Object::Float(0.5)]);
        let out = outgoing(
            TABLE,
            "acquire_with",
            &[Value::Int(9), Value::Bool(true), Value::None],
            &to,
        )
        .unwrap();
        assert_eq!(out.args, [Object::Bool(true), Object::Int(-1)]);
        let out = outgoing(
            TABLE,
            "acquire_with",
            &[Value::Int(9), Value::Bool(false), Value::None],
            &to,
        )
        .unwrap();
        assert_eq!(out.args, [Object::Bool(false)]);
        let out = outgoing(TABLE, "to_vec", &[], &to).unwrap();
        assert_eq!(
            (out.method.as_str(), out.args),
            (
                "__getitem__",
                vec![Object::Slice(Box::new([
                    Object::None,
                    Object::None,
                    Object::None
                ]))]
            )
        );
        assert!(outgoing(TABLE, "locked", &[], &to).is_err());
        let plain = outgoing(&[], "add", &[Value::Int(1)], &to).unwrap();
        assert_eq!(
            (plain.method.as_str(), plain.args),
            ("add", vec![Object::Int(1)])
        );
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
    }
}
