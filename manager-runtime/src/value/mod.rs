//! The dynamic value the server stores in its built-in containers.
//!
//! A `SyncManager` serves `Dict<String, i64>` and `List<Vec<f64>>` from one
//! binary with no registration because it never sees the user's types: the
//! typed client proxies turn every element into a [`Value`] with
//! [`to_value`] before sending, and back with [`from_value`] on receipt. The
//! server compares, hashes, sorts and prints values as Python does (see
//! [`Value::py_cmp`], [`Value::repr`]).
//!
//! Two different encodings are involved, and they must not be confused:
//!
//! - **User type ⇄ `Value`** ([`to_value`], [`from_value`]): the serde data
//!   model mapped onto the variants, like `serde_json::Value` (table below).
//! - **`Value` ⇄ bytes**: `Value` implements `Serialize`/`Deserialize` itself
//!   as a tagged enum, so it travels in postcard, which is not
//!   self-describing.
//!
//! | serde data model                                | `Value`                           |
//! |-------------------------------------------------|-----------------------------------|
//! | `()`, `None`, unit struct                       | `None`                            |
//! | `bool`                                          | `Bool`                            |
//! | every integer type                              | `Int` (a `u128` above `i128::MAX` is an error) |
//! | `f32`, `f64`                                    | `Float`                           |
//! | `char`, `str`                                   | `Str`                             |
//! | bytes (`serde_bytes`)                           | `Bytes`                           |
//! | `Some(x)`, newtype struct                       | the value of `x`                  |
//! | seq, tuple, tuple struct                        | `List`                            |
//! | map, struct (field names as `Str` keys)         | `Map`, insertion order kept       |
//! | unit variant `V`                                | `Str("V")`                        |
//! | newtype, tuple, struct variant `V(x)`           | `Map([(Str("V"), x)])`            |
//! | a proxy, through [`TokenValue`]                 | `Token`                           |
//!
//! The mapping is that of a human-readable format (`SocketAddr`, `Uuid` and
//! the like become strings, which compare and print as a Python user
//! expects). As in JSON, `Some(None)` and `Some(())` come back as `None`.
//!
//! ```
//! # extern crate manager_runtime as managers;
//! use managers::value::{from_value, to_value, Value};
//!
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct Point { x: i64, y: f64 }
//!
//! let value = to_value(&Point { x: 1, y: 2.5 }).unwrap();
//! assert_eq!(value.repr(), "{'x': 1, 'y': 2.5}");
//! assert_eq!(from_value::<Point>(value.clone()).unwrap(), Point { x: 1, y: 2.5 });
//! // Python's equality: 1 == 1.0 == True.
//! assert_eq!(Value::from(1), Value::Float(1.0));
//! assert!(from_value::<String>(value).is_err());
//! ```

mod cmp;
mod codec;
mod de;
#[cfg(feature = "manager")]
mod direct;
mod error;
mod repr;
mod ser;
mod shaped;
mod token;

#[cfg(test)]
mod tests;

pub use de::{from_value, from_value_ref};
#[cfg(feature = "manager")]
pub(crate) use direct::AsValue;
pub use error::ValueError;
pub use ser::{to_value, ValueSerializer};
pub use shaped::{to_shaped, Shaped};
pub use token::{token_serde, TokenValue, TOKEN_MARKER};

use crate::token::Token;

/// A dynamically typed value: the serde data model plus proxy tokens.
///
/// Equality, hashing and ordering follow Python, so `Int(1)`, `Float(1.0)`
/// and `Bool(true)` are equal and hash alike; see [`Value::py_cmp`] for
/// ordering as Python's `<` does it and the [`Ord`] impl for the total order
/// used internally.
#[derive(Debug, Clone, Default)]
pub enum Value {
    /// Python's `None`: `()`, `Option::None`, a unit struct.
    #[default]
    None,
    /// `True` / `False`.
    Bool(bool),
    /// Any integer; `u64` and `i64` both fit.
    Int(i128),
    /// A float.
    Float(f64),
    /// A string (also a `char`).
    Str(String),
    /// A byte string, from `serialize_bytes`.
    Bytes(Vec<u8>),
    /// A sequence: seq, tuple, tuple struct, tuple variant payload.
    List(Vec<Value>),
    /// A map or a struct, in insertion order. Equality ignores the order, as
    /// for Python dicts.
    Map(Vec<(Value, Value)>),
    /// A proxy to a shared object, held inside a container.
    Token(Box<Token>),
}

impl Value {
    /// The integer, if this is an `Int` or a `Bool` (Python's `bool` is an
    /// `int`).
    pub fn as_int(&self) -> Option<i128> {
        match *self {
            Value::Bool(b) => Some(i128::from(b)),
            Value::Int(i) => Some(i),
            _ => None,
        }
    }

    /// The number as a float, if this is a `Float`, an `Int` or a `Bool`.
    pub fn as_float(&self) -> Option<f64> {
        match *self {
            Value::Float(f) => Some(f),
            _ => self.as_int().map(|i| i as f64),
        }
    }

    /// The string, if this is a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Every token held in this value, however deeply nested, in depth-first
    /// order: what the server must keep a reference to while it stores it.
    pub fn tokens(&self) -> Tokens<'_> {
        Tokens { stack: vec![self] }
    }
}

/// Iterator over the tokens nested in a [`Value`]; see [`Value::tokens`].
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    stack: Vec<&'a Value>,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a Token;

    fn next(&mut self) -> Option<&'a Token> {
        while let Some(value) = self.stack.pop() {
            match value {
                Value::Token(token) => return Some(token),
                // Pushed in reverse so that tokens come out in document order.
                Value::List(items) => self.stack.extend(items.iter().rev()),
                Value::Map(entries) => self
                    .stack
                    .extend(entries.iter().rev().flat_map(|(k, v)| [v, k])),
                _ => {}
            }
        }
        None
    }
}

macro_rules! from_int {
    ($($t:ty)*) => {$(
        impl From<$t> for Value {
            fn from(i: $t) -> Value {
                Value::Int(i128::from(i))
            }
        }
    )*};
}

from_int!(i8 i16 i32 i64 i128 u8 u16 u32 u64);

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Value {
        Value::List(items)
    }
}

impl From<Token> for Value {
    fn from(token: Token) -> Value {
        Value::Token(Box::new(token))
    }
}
