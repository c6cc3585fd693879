//! How a [`Value`] itself travels: a tagged enum, which postcard (not
//! self-describing) can encode.
//!
//! The enum is named [`VALUE_MARKER`] so that the `Value` serializer and
//! deserializer recognise a `Value` nested in a user's type and pass it
//! through unchanged, instead of tagging it a second time.
#![forbid(unsafe_code)]

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::{token_serde, TokenValue, Value};
use crate::token::Token;

/// The enum name of `Value`'s own serde form.
pub(crate) const VALUE_MARKER: &str = "$managers::Value";

/// The variant names, in tag order; the tags are part of the wire format.
pub(crate) const VARIANTS: &[&str] = &[
    "None", "Bool", "Int", "Float", "Str", "Bytes", "List", "Map", "Token",
];

impl Value {
    /// The tag of this value's variant, an index into [`VARIANTS`].
    pub(crate) fn tag(&self) -> u32 {
        match self {
            Value::None => 0,
            Value::Bool(_) => 1,
            Value::Int(_) => 2,
            Value::Float(_) => 3,
            Value::Str(_) => 4,
            Value::Bytes(_) => 5,
            Value::List(_) => 6,
            Value::Map(_) => 7,
            Value::Token(_) => 8,
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let tag = self.tag();
        let name = VARIANTS[tag as usize];
        match self {
            Value::None => serializer.serialize_unit_variant(VALUE_MARKER, tag, name),
            Value::Bool(b) => serializer.serialize_newtype_variant(VALUE_MARKER, tag, name, b),
            Value::Int(i) => serializer.serialize_newtype_variant(VALUE_MARKER, tag, name, i),
            Value::Float(f) => serializer.serialize_newtype_variant(VALUE_MARKER, tag, name, f),
            Value::Str(s) => serializer.serialize_newtype_variant(VALUE_MARKER, tag, name, s),
            Value::Bytes(b) => {
                serializer.serialize_newtype_variant(VALUE_MARKER, tag, name, &BytesRef(b))
            }
            Value::List(items) => {
                serializer.serialize_newtype_variant(VALUE_MARKER, tag, name, items)
            }
            Value::Map(entries) => {
                serializer.serialize_newtype_variant(VALUE_MARKER, tag, name, &MapRef(entries))
            }
            Value::Token(token) => {
                serializer.serialize_newtype_variant(VALUE_MARKER, tag, name, &TokenRef(token))
            }
        }
    }
}

/// Bytes serialized as bytes, not as a sequence of `u8`.
struct BytesRef<'a>(&'a [u8]);

impl Serialize for BytesRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// A token serialized as [`TokenValue`] does, without cloning it.
struct TokenRef<'a>(&'a Token);

impl Serialize for TokenRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        token_serde::serialize(self.0, serializer)
    }
}

/// Entries serialized as a map, keeping their order and any duplicates.
struct MapRef<'a>(&'a [(Value, Value)]);

impl Serialize for MapRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// How deeply values may nest when read from the wire. Deeper input is
/// refused rather than risking the server's stack, here and in the
/// recursive comparisons, hashing and drops of what was read.
pub(crate) const MAX_DEPTH: usize = 128;

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ValueSeed { depth: 0 }.deserialize(deserializer)
    }
}

/// Reads one value at nesting `depth`.
#[derive(Clone, Copy)]
struct ValueSeed {
    depth: usize,
}

impl ValueSeed {
    fn nested<E: de::Error>(self) -> Result<ValueSeed, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format_args!(
                "value nested more than {MAX_DEPTH} levels deep"
            )));
        }
        Ok(ValueSeed {
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_enum(VALUE_MARKER, VARIANTS, self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tagged value")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (tag, payload) = data.variant::<Tag>()?;
        match tag.0 {
            0 => payload.unit_variant().map(|()| Value::None),
            1 => payload.newtype_variant().map(Value::Bool),
            2 => payload.newtype_variant().map(Value::Int),
            3 => payload.newtype_variant().map(Value::Float),
            4 => payload.newtype_variant().map(Value::Str),
            5 => payload
                .newtype_variant::<ByteBuf>()
                .map(|b| Value::Bytes(b.0)),
            6 => payload
                .newtype_variant_seed(ListSeed(self.nested()?))
                .map(Value::List),
            7 => payload
                .newtype_variant_seed(MapSeed(self.nested()?))
                .map(Value::Map),
            _ => payload
                .newtype_variant::<TokenValue>()
                .map(|t| Value::from(t.0)),
        }
    }
}

/// Reads the elements of a `List`, each at the given nesting.
struct ListSeed(ValueSeed);

impl<'de> DeserializeSeed<'de> for ListSeed {
    type Value = Vec<Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<Value>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ListSeed {
    type Value = Vec<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
        // The length comes from the peer: do not trust it for allocation.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(PREALLOCATE));
        while let Some(item) = seq.next_element_seed(self.0)? {
            items.push(item);
        }
        Ok(items)
    }
}

/// Reads the entries of a `Map`, keys and values at the given nesting.
struct MapSeed(ValueSeed);

impl<'de> DeserializeSeed<'de> for MapSeed {
    type Value = Vec<(Value, Value)>;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Vec<(Value, Value)>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MapSeed {
    type Value = Vec<(Value, Value)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<(Value, Value)>, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(PREALLOCATE));
        while let Some(entry) = map.next_entry_seed(self.0, self.0)? {
            entries.push(entry);
        }
        Ok(entries)
    }
}

/// At most this many elements are allocated ahead on a peer's say-so.
const PREALLOCATE: usize = 4096;

/// A variant of `Value`, by tag or by name.
struct Tag(u32);

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(TagVisitor)
    }
}

struct TagVisitor;

impl<'de> Visitor<'de> for TagVisitor {
    type Value = Tag;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value variant")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Tag, E> {
        match u32::try_from(v) {
            Ok(tag) if (tag as usize) < VARIANTS.len() => Ok(Tag(tag)),
            _ => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Tag, E> {
        match VARIANTS.iter().position(|name| *name == v) {
            Some(tag) => Ok(Tag(tag as u32)),
            None => Err(E::unknown_variant(v, VARIANTS)),
        }
    }
}

struct ByteBuf(Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_byte_buf(ByteBufVisitor)
    }
}

struct ByteBufVisitor;

impl<'de> Visitor<'de> for ByteBufVisitor {
    type Value = ByteBuf;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
        Ok(ByteBuf(v.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
        Ok(ByteBuf(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(PREALLOCATE));
        while let Some(b) = seq.next_element()? {
            bytes.push(b);
        }
        Ok(ByteBuf(bytes))
    }
}
