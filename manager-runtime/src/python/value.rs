//! Python values and the runtime's [`Value`], both ways.
//!
//! | Python                                   | `Value`                     |
//! |------------------------------------------|-----------------------------|
//! | `None`, `bool`, `float`, `str`, `bytes`  | `None`, `Bool`, `Float`, `Str`, `Bytes` |
//! | `int` (at most 128 bits)                 | `Int`; a bigger one is refused (`OverflowError`) |
//! | `bytearray`                              | `Bytes`                     |
//! | `list`, `tuple`, `set`, `frozenset`, `range`, `array.array` | `List` |
//! | `dict`, `collections.OrderedDict`        | `Map`, in order             |
//! | a proxy, a `Token`                       | `Token`                     |
//!
//! Going back, a `List` is a `list`, except as a dict key or set element,
//! where it is a `tuple` (the hashable sequence), and a `Token` is a
//! proxy that the receiving client rebuilds. A tuple stored in a shared
//! container therefore comes back as a list. Anything else (a slice, an
//! exception, a class) cannot be stored and is refused with `TypeError`.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::pickle::{Exception, Global, Object, Token as PyToken};
use crate::address::Address;
use crate::token::Token;
use crate::value::Value;

/// A Python value as a [`Value`]; what cannot be stored is a Python
/// exception for the caller.
pub fn to_value(obj: Object) -> Result<Value, Exception> {
    Ok(match obj {
        Object::None => Value::None,
        Object::Bool(b) => Value::Bool(b),
        Object::Int(i) => Value::Int(i),
        Object::Float(f) => Value::Float(f),
        Object::Str(s) => Value::Str(s),
        Object::Bytes(b) | Object::ByteArray(b) => Value::Bytes(b),
        Object::List(items)
        | Object::Tuple(items)
        | Object::Set(items)
        | Object::FrozenSet(items)
        | Object::Array { items, .. } => {
            Value::List(items.into_iter().map(to_value).collect::<Result<_, _>>()?)
        }
        Object::Range { start, stop, step } => {
            let mut items = Vec::new();
            let mut i = start;
            while (step > 0 && i < stop) || (step < 0 && i > stop) {
                items.push(Value::Int(i));
                i = match i.checked_add(step) {
                    Some(next) => next,
                    None => break,
                };
            }
            Value::List(items)
        }
        Object::Dict(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| Ok((to_value(k)?, to_value(v)?)))
                .collect::<Result<_, Exception>>()?,
        ),
        Object::Token(token) => Value::from(from_py_token(&token)?),
        Object::Proxy(proxy) => Value::from(from_py_token(&proxy.token)?),
        other => {
            return Err(Exception::new(
                Global::TypeError,
                format!(
                    "a {} cannot be stored in a shared object (plain data and proxies only)",
                    other.type_name()
                ),
            ))
        }
    })
}

/// How a token in a value becomes a Python object (a pickled proxy, with
/// the proxy class the receiver should rebuild).
pub trait ProxyOf {
    /// The Python object standing for `token`.
    fn proxy(&self, token: &Token) -> Object;
}

/// A [`Value`] as a Python value; tokens become what `proxies` says.
pub fn to_object(value: &Value, proxies: &dyn ProxyOf) -> Object {
    to_object_at(value, proxies, false)
}

fn to_object_at(value: &Value, proxies: &dyn ProxyOf, key: bool) -> Object {
    match value {
        Value::None => Object::None,
        Value::Bool(b) => Object::Bool(*b),
        Value::Int(i) => Object::Int(*i),
        Value::Float(f) => Object::Float(*f),
        Value::Str(s) => Object::Str(s.clone()),
        Value::Bytes(b) => Object::Bytes(b.clone()),
        Value::List(items) => {
            let items = items
                .iter()
                .map(|item| to_object_at(item, proxies, key))
                .collect();
            if key {
                Object::Tuple(items)
            } else {
                Object::List(items)
            }
        }
        Value::Map(entries) => Object::Dict(
            entries
                .iter()
                .map(|(k, v)| {
                    (
                        to_object_at(k, proxies, true),
                        to_object_at(v, proxies, false),
                    )
                })
                .collect(),
        ),
        Value::Token(token) => proxies.proxy(token),
    }
}

/// Our token as CPython's: the id in hexadecimal, the address as Python
/// writes it.
pub fn py_token(token: &Token) -> PyToken {
    PyToken {
        typeid: token.typeid.clone(),
        address: py_address(&token.address),
        id: Object::Str(format!("{:x}", token.id)),
    }
}

/// An address as Python writes it: `(host, port)` or a path.
pub fn py_address(address: &Address) -> Object {
    match address {
        Address::Tcp(addr) => Object::Tuple(vec![
            Object::Str(addr.ip().to_string()),
            Object::Int(addr.port().into()),
        ]),
        Address::Unix(path) => Object::Str(path.display().to_string()),
    }
}

fn type_error(message: impl Into<String>) -> Exception {
    Exception::new(Global::TypeError, message)
}

/// A Python address as ours. Hosts are IP addresses or `localhost`: a
/// token is never resolved through DNS.
pub fn from_py_address(address: &Object) -> Result<Address, Exception> {
    match address {
        Object::Str(path) => Ok(Address::Unix(path.into())),
        Object::Tuple(parts) | Object::List(parts) => match &parts[..] {
            [Object::Str(host), Object::Int(port)] => {
                let port = u16::try_from(*port)
                    .map_err(|_| type_error(format!("port {port} is out of range")))?;
                let ip = match host.as_str() {
                    "localhost" | "" => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    host => host.parse().map_err(|_| {
                        type_error(format!(
                            "the host {host:?} of a token must be an IP address or localhost"
                        ))
                    })?,
                };
                Ok(Address::Tcp(SocketAddr::new(ip, port)))
            }
            _ => Err(type_error("a token's address is (host, port) or a path")),
        },
        other => Err(type_error(format!(
            "a token's address cannot be a {}",
            other.type_name()
        ))),
    }
}

/// An object id as CPython writes it (hexadecimal text) or as a number.
pub fn from_py_id(id: &Object) -> Result<u64, Exception> {
    match id {
        Object::Str(hex) => u64::from_str_radix(hex, 16)
            .map_err(|_| type_error(format!("{hex:?} is not an object id"))),
        Object::Int(i) => u64::try_from(*i).map_err(|_| type_error("bad object id")),
        other => Err(type_error(format!(
            "an object id cannot be a {}",
            other.type_name()
        ))),
    }
}

/// CPython's token as ours.
pub fn from_py_token(token: &PyToken) -> Result<Token, Exception> {
    Ok(Token {
        typeid: token.typeid.clone(),
        address: from_py_address(&token.address)?,
        id: from_py_id(&token.id)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tokens;

    impl ProxyOf for Tokens {
        fn proxy(&self, token: &Token) -> Object {
            Object::Token(Box::new(py_token(token)))
        }
    }

    #[test]
    fn containers_map_both_ways() {
        let obj = Object::Dict(vec![
            (
                Object::Tuple(vec![Object::Int(1), Object::Int(2)]),
                Object::Set(vec![Object::str("a")]),
            ),
            (
                Object::str("r"),
                Object::Range {
                    start: 0,
                    stop: 3,
                    step: 1,
                },
            ),
        ]);
        let value = to_value(obj).unwrap();
        assert_eq!(
            value,
            Value::Map(vec![
                (
                    Value::List(vec![1.into(), 2.into()]),
                    Value::List(vec!["a".into()])
                ),
                ("r".into(), Value::List(vec![0.into(), 1.into(), 2.into()])),
            ])
        );
        let back = to_object(&value, &Tokens);
        let Object::Dict(entries) = back else {
            panic!("a dict")
        };
        assert!(matches!(entries[0].0, Object::Tuple(_)), "keys are tuples");
        assert!(matches!(entries[0].1, Object::List(_)), "values are lists");
    }

    #[test]
    fn tokens_round_trip_and_refusals() {
        let token = Token {
            typeid: "dict".into(),
            address: "127.0.0.1:50000".parse().unwrap(),
            id: 0x7f3a,
        };
        let py = py_token(&token);
        assert_eq!(py.id, Object::str("7f3a"));
        assert_eq!(from_py_token(&py).unwrap(), token);
        let local = PyToken {
            address: Object::Tuple(vec![Object::str("localhost"), Object::Int(50000)]),
            ..py.clone()
        };
        assert_eq!(from_py_token(&local).unwrap(), token);
        let named = PyToken {
            address: Object::Tuple(vec![Object::str("example.org"), Object::Int(1)]),
            ..py
        };
        assert!(from_py_token(&named).is_err());
        assert!(to_value(Object::Slice(Box::new([
            Object::None,
            Object::None,
            Object::None
        ])))
        .is_err());
    }
}
