//! How a proxy's token passes through serde so that it becomes
//! [`Value::Token`](super::Value::Token) rather than a plain struct.
//!
//! A token is wrapped in a newtype struct named [`TOKEN_MARKER`]. Formats
//! that do not know the name (postcard) see the token's own fields, since a
//! newtype struct is transparent there; the [`Value`](super::Value)
//! serializer recognises the name and keeps the token whole.
#![forbid(unsafe_code)]

use std::fmt;

use serde::de::{Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use super::{to_value, Value, ValueError};
use crate::token::Token;

/// The newtype-struct name that marks a proxy token in the serde data model.
pub const TOKEN_MARKER: &str = "$managers::proxy::Token";

/// A token that serializes as a proxy: [`Value::Token`](super::Value::Token)
/// through [`to_value`](super::to_value), the token's fields in postcard.
///
/// Proxies implement `Serialize`/`Deserialize` through this type (or through
/// [`token_serde`]) so that a proxy stored in a shared container stays a
/// proxy on the server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenValue(pub Token);

impl Serialize for TokenValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        token_serde::serialize(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for TokenValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        token_serde::deserialize(deserializer).map(TokenValue)
    }
}

/// The token as the plain struct its `Deserialize` reads, built by hand:
/// `Token`'s `Serialize` grants the caller a reference when it runs inside a
/// reply, which reading a value must not do.
pub(crate) fn token_fields(token: &Token) -> Result<Value, ValueError> {
    Ok(Value::Map(vec![
        (Value::from("typeid"), Value::from(token.typeid.as_str())),
        (Value::from("address"), to_value(&token.address)?),
        (Value::from("id"), Value::from(token.id)),
    ]))
}

/// `#[serde(with = "manager_runtime::value::token_serde")]` for a [`Token`]
/// field: the same encoding as [`TokenValue`].
pub mod token_serde {
    use super::*;

    /// Serialize `token` as a marked proxy token.
    pub fn serialize<S: Serializer>(token: &Token, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct(TOKEN_MARKER, token)
    }

    /// Deserialize a token written by [`serialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Token, D::Error> {
        deserializer.deserialize_newtype_struct(TOKEN_MARKER, TokenVisitor)
    }

    struct TokenVisitor;

    impl<'de> Visitor<'de> for TokenVisitor {
        type Value = Token;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a proxy token")
        }

        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Token, D::Error> {
            Token::deserialize(d)
        }
    }
}
