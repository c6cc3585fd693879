//! [`Value`] → user type: `Value` (owned) and `&Value` (borrowed) are serde
//! `Deserializer`s.
//!
//! Lenient where the mapping lost information: an `Int` reads as a float,
//! `Bytes` or a `List` of integers as `Vec<u8>`, a `List` as a tuple or a
//! struct, `None` as `()` or a unit struct, any other value as `Some`.
#![forbid(unsafe_code)]

use serde::de::value::{MapDeserializer, SeqDeserializer, U32Deserializer};
use serde::de::{
    self, Deserialize, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess,
    IntoDeserializer, Unexpected, VariantAccess, Visitor,
};

use super::codec::VALUE_MARKER;
use super::token::{token_fields, TOKEN_MARKER};
use super::{Value, ValueError};

/// Convert a [`Value`] into any deserializable type.
///
/// ```
/// use std::collections::HashMap;
/// use manager_runtime::value::{from_value, Value};
///
/// let v = Value::Map(vec![("a".into(), Value::List(vec![1.into(), 2.5.into()]))]);
/// let m: HashMap<String, Vec<f64>> = from_value(v).unwrap();
/// assert_eq!(m["a"], [1.0, 2.5]);
/// ```
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ValueError> {
    T::deserialize(value)
}

/// Convert a borrowed [`Value`] into a type, which may borrow strings and
/// bytes from it.
pub fn from_value_ref<'de, T: Deserialize<'de>>(value: &'de Value) -> Result<T, ValueError> {
    T::deserialize(value)
}

fn int_as<T: TryFrom<i128>>(value: &Value, target: &'static str) -> Result<T, ValueError> {
    match *value {
        Value::Int(i) => T::try_from(i).map_err(|_| ValueError::out_of_range(i, target)),
        _ => Err(ValueError::invalid_type("an integer", value)),
    }
}

/// Visit an integer as the narrowest of `u64`, `i64`, `u128`, `i128`, as
/// self-describing formats do.
fn visit_int<'de, V: Visitor<'de>>(i: i128, visitor: V) -> Result<V::Value, ValueError> {
    if let Ok(u) = u64::try_from(i) {
        visitor.visit_u64(u)
    } else if let Ok(s) = i64::try_from(i) {
        visitor.visit_i64(s)
    } else if let Ok(u) = u128::try_from(i) {
        visitor.visit_u128(u)
    } else {
        visitor.visit_i128(i)
    }
}

fn visit_seq<'de, I, V>(iter: I, visitor: V) -> Result<V::Value, ValueError>
where
    I: Iterator,
    I::Item: IntoDeserializer<'de, ValueError>,
    V: Visitor<'de>,
{
    let mut seq = SeqDeserializer::new(iter);
    let out = visitor.visit_seq(&mut seq)?;
    seq.end()?;
    Ok(out)
}

fn visit_map<'de, K, W, I, V>(iter: I, visitor: V) -> Result<V::Value, ValueError>
where
    I: Iterator<Item = (K, W)>,
    K: IntoDeserializer<'de, ValueError>,
    W: IntoDeserializer<'de, ValueError>,
    V: Visitor<'de>,
{
    let mut map = MapDeserializer::new(iter);
    let out = visitor.visit_map(&mut map)?;
    map.end()?;
    Ok(out)
}

/// `Bytes` read as a sequence of integers, for `Vec<u8>` and `[u8; N]`.
fn byte_values(bytes: &[u8]) -> impl Iterator<Item = Value> + '_ {
    bytes.iter().map(|&b| Value::Int(b.into()))
}

fn not_an_enum(value: &Value) -> ValueError {
    ValueError::invalid_type("an enum variant (a string or a single-entry map)", value)
}

/// The methods whose behaviour does not depend on owning the value.
macro_rules! deserialize_scalars {
    ($($method:ident $visit:ident $t:ty,)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
                let value: &Value = &self;
                visitor.$visit(int_as::<$t>(value, stringify!($t))?)
            }
        )*

        fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
            let value: &Value = &self;
            match *value {
                Value::Bool(b) => visitor.visit_bool(b),
                _ => Err(ValueError::invalid_type("a boolean", value)),
            }
        }

        fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
            let value: &Value = &self;
            match *value {
                Value::Float(f) => visitor.visit_f32(f as f32),
                Value::Int(i) => visitor.visit_f32(i as f32),
                _ => Err(ValueError::invalid_type("a float", value)),
            }
        }

        fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
            let value: &Value = &self;
            match *value {
                Value::Float(f) => visitor.visit_f64(f),
                Value::Int(i) => visitor.visit_f64(i as f64),
                _ => Err(ValueError::invalid_type("a float", value)),
            }
        }

        fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
            let value: &Value = &self;
            if let Value::Str(s) = value {
                let mut chars = s.chars();
                if let (Some(c), None) = (chars.next(), chars.next()) {
                    return visitor.visit_char(c);
                }
            }
            Err(ValueError::invalid_type("a single character", value))
        }

        fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
            let value: &Value = &self;
            match value {
                Value::None => visitor.visit_unit(),
                _ => Err(ValueError::invalid_type("None", value)),
            }
        }

        fn deserialize_unit_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            visitor: V,
        ) -> Result<V::Value, ValueError> {
            self.deserialize_unit(visitor)
        }

        fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
            match &self {
                Value::None => visitor.visit_none(),
                _ => visitor.visit_some(self),
            }
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            visitor: V,
        ) -> Result<V::Value, ValueError> {
            if let (TOKEN_MARKER, Value::Token(token)) = (name, &self) {
                // The token's visitor reads the token's own (plain) form.
                return visitor.visit_newtype_struct(token_fields(token)?);
            }
            visitor.visit_newtype_struct(self)
        }

        fn deserialize_tuple<V: Visitor<'de>>(
            self,
            _len: usize,
            visitor: V,
        ) -> Result<V::Value, ValueError> {
            self.deserialize_seq(visitor)
        }

        fn deserialize_tuple_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            _len: usize,
            visitor: V,
        ) -> Result<V::Value, ValueError> {
            self.deserialize_seq(visitor)
        }

        fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
            self.deserialize_str(visitor)
        }

        fn deserialize_byte_buf<V: Visitor<'de>>(
            self,
            visitor: V,
        ) -> Result<V::Value, ValueError> {
            self.deserialize_bytes(visitor)
        }

        fn deserialize_identifier<V: Visitor<'de>>(
            self,
            visitor: V,
        ) -> Result<V::Value, ValueError> {
            self.deserialize_any(visitor)
        }

        fn deserialize_ignored_any<V: Visitor<'de>>(
            self,
            visitor: V,
        ) -> Result<V::Value, ValueError> {
            visitor.visit_unit()
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            name: &'static str,
            _variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, ValueError> {
            if name == VALUE_MARKER {
                // A `Value` in the target type: the variant is this value's
                // own, and its payload is the value itself.
                let tag = Value::tag(&self);
                return visitor.visit_enum(Enum {
                    variant: U32Deserializer::<ValueError>::new(tag),
                    payload: Some(self),
                });
            }
            self.visit_user_enum(visitor)
        }

        fn is_human_readable(&self) -> bool {
            true
        }
    };
}

macro_rules! integer_methods {
    () => {
        deserialize_scalars! {
            deserialize_i8 visit_i8 i8,
            deserialize_i16 visit_i16 i16,
            deserialize_i32 visit_i32 i32,
            deserialize_i64 visit_i64 i64,
            deserialize_i128 visit_i128 i128,
            deserialize_u8 visit_u8 u8,
            deserialize_u16 visit_u16 u16,
            deserialize_u32 visit_u32 u32,
            deserialize_u64 visit_u64 u64,
            deserialize_u128 visit_u128 u128,
        }
    };
}

impl<'de> Deserializer<'de> for Value {
    type Error = ValueError;

    integer_methods!();

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::None => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Int(i) => visit_int(i, visitor),
            Value::Float(f) => visitor.visit_f64(f),
            Value::Str(s) => visitor.visit_string(s),
            Value::Bytes(b) => visitor.visit_byte_buf(b),
            Value::List(items) => visit_seq(items.into_iter(), visitor),
            Value::Map(entries) => visit_map(entries.into_iter(), visitor),
            // Untyped readers (untagged enums, `serde_json::Value`) see the
            // token as the struct it is.
            Value::Token(token) => token_fields(&token)?.deserialize_any(visitor),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Str(s) => visitor.visit_string(s),
            Value::Bytes(b) => visitor.visit_byte_buf(b),
            other => Err(ValueError::invalid_type("a string", &other)),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Bytes(b) => visitor.visit_byte_buf(b),
            Value::Str(s) => visitor.visit_string(s),
            Value::List(items) => visit_seq(items.into_iter(), visitor),
            other => Err(ValueError::invalid_type("bytes", &other)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::List(items) => visit_seq(items.into_iter(), visitor),
            Value::Bytes(b) => visit_seq(byte_values(&b), visitor),
            other => Err(ValueError::invalid_type("a list", &other)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Map(entries) => visit_map(entries.into_iter(), visitor),
            other => Err(ValueError::invalid_type("a map", &other)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        match self {
            Value::Map(entries) => visit_map(entries.into_iter(), visitor),
            Value::List(items) => visit_seq(items.into_iter(), visitor),
            // A token read as the struct it is (a `Token` itself).
            Value::Token(token) => {
                token_fields(&token)?.deserialize_struct(_name, _fields, visitor)
            }
            other => Err(ValueError::invalid_type("a map", &other)),
        }
    }
}

/// Reads an externally tagged enum: `Str(variant)` or `{variant: payload}`.
trait VisitUserEnum<'de> {
    fn visit_user_enum<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError>;
}

impl<'de> VisitUserEnum<'de> for Value {
    fn visit_user_enum<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Str(_) => visitor.visit_enum(Enum::<Value, Value> {
                variant: self,
                payload: None,
            }),
            Value::Map(entries) if entries.len() == 1 => {
                let (variant, payload) = entries.into_iter().next().expect("one entry");
                visitor.visit_enum(Enum {
                    variant,
                    payload: Some(payload),
                })
            }
            other => Err(not_an_enum(&other)),
        }
    }
}

impl<'de> Deserializer<'de> for &'de Value {
    type Error = ValueError;

    integer_methods!();

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::None => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visit_int(*i, visitor),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_borrowed_str(s),
            Value::Bytes(b) => visitor.visit_borrowed_bytes(b),
            Value::List(items) => visit_seq(items.iter(), visitor),
            Value::Map(entries) => visit_map(entries.iter().map(|(k, v)| (k, v)), visitor),
            Value::Token(token) => token_fields(token)?.deserialize_any(visitor),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Str(s) => visitor.visit_borrowed_str(s),
            Value::Bytes(b) => visitor.visit_borrowed_bytes(b),
            other => Err(ValueError::invalid_type("a string", other)),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Bytes(b) => visitor.visit_borrowed_bytes(b),
            Value::Str(s) => visitor.visit_borrowed_str(s),
            Value::List(items) => visit_seq(items.iter(), visitor),
            other => Err(ValueError::invalid_type("bytes", other)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::List(items) => visit_seq(items.iter(), visitor),
            Value::Bytes(b) => visit_seq(byte_values(b), visitor),
            other => Err(ValueError::invalid_type("a list", other)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Map(entries) => visit_map(entries.iter().map(|(k, v)| (k, v)), visitor),
            other => Err(ValueError::invalid_type("a map", other)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        match self {
            Value::Map(entries) => visit_map(entries.iter().map(|(k, v)| (k, v)), visitor),
            Value::List(items) => visit_seq(items.iter(), visitor),
            other => Err(ValueError::invalid_type("a map", other)),
        }
    }
}

impl<'de> VisitUserEnum<'de> for &'de Value {
    fn visit_user_enum<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Str(_) => visitor.visit_enum(Enum::<&Value, &Value> {
                variant: self,
                payload: None,
            }),
            Value::Map(entries) if entries.len() == 1 => {
                let (variant, payload) = &entries[0];
                visitor.visit_enum(Enum {
                    variant,
                    payload: Some(payload),
                })
            }
            other => Err(not_an_enum(other)),
        }
    }
}

impl<'de> IntoDeserializer<'de, ValueError> for Value {
    type Deserializer = Value;

    fn into_deserializer(self) -> Value {
        self
    }
}

impl<'de> IntoDeserializer<'de, ValueError> for &'de Value {
    type Deserializer = &'de Value;

    fn into_deserializer(self) -> &'de Value {
        self
    }
}

/// An enum being read: the variant's identifier, and its payload unless it
/// is a unit variant written as a bare string.
struct Enum<I, P> {
    variant: I,
    payload: Option<P>,
}

impl<'de, I, P> EnumAccess<'de> for Enum<I, P>
where
    I: Deserializer<'de, Error = ValueError>,
    P: Deserializer<'de, Error = ValueError>,
{
    type Error = ValueError;
    type Variant = Payload<P>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Payload<P>), ValueError> {
        let variant = seed.deserialize(self.variant)?;
        Ok((variant, Payload(self.payload)))
    }
}

/// The payload of an enum variant; `None` for a unit variant.
struct Payload<P>(Option<P>);

impl<P> Payload<P> {
    fn required(self, kind: &'static str) -> Result<P, ValueError> {
        self.0
            .ok_or_else(|| <ValueError as de::Error>::invalid_type(Unexpected::UnitVariant, &kind))
    }
}

impl<'de, P> VariantAccess<'de> for Payload<P>
where
    P: Deserializer<'de, Error = ValueError>,
{
    type Error = ValueError;

    fn unit_variant(self) -> Result<(), ValueError> {
        match self.0 {
            None => Ok(()),
            Some(payload) => <()>::deserialize(payload),
        }
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<S::Value, ValueError> {
        seed.deserialize(self.required("a newtype variant")?)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.required("a tuple variant")?
            .deserialize_tuple(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.required("a struct variant")?
            .deserialize_struct("", fields, visitor)
    }
}
