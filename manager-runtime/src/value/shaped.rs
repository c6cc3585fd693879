//! A method's result as a [`Value`] that keeps its outer `Result` and
//! `Option` layers: [`to_value`](super::to_value) maps `Some(None)` and
//! `None` alike, and a `Result` to a one-entry map, which is right for data
//! but loses what a dynamically typed caller (a Python client) needs to
//! know: whether the call failed, and whether "nothing" came back.
#![forbid(unsafe_code)]

use serde::ser::{self, Serialize};
use serde::{Deserialize, Serialize as SerializeDerive};

use super::{Value, ValueError, ValueSerializer};
use crate::token::Token;

/// A result with its shape: the outer `Result`/`Option` layers of the
/// method's return type around the value, or the token of an object the
/// method returned to be served (`#[proxy]`).
#[derive(Debug, Clone, PartialEq, SerializeDerive, Deserialize)]
pub enum Shaped {
    /// A plain value.
    Value(Value),
    /// `Some(..)`.
    Some(Box<Shaped>),
    /// `None`.
    None,
    /// `Ok(..)`.
    Ok(Box<Shaped>),
    /// `Err(e)`, with the error as a value.
    Err(Value),
    /// An object the method returned, now served under this token.
    Object(Token),
}

/// `value` as a [`Shaped`].
pub fn to_shaped<T: Serialize + ?Sized>(value: &T) -> Result<Shaped, ValueError> {
    value.serialize(Capture)
}

/// Serializes the outer layers itself and everything inside with
/// [`ValueSerializer`].
struct Capture;

/// A compound value being written by [`ValueSerializer`], delivered as
/// [`Shaped::Value`].
struct Inner<S>(S);

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method(self, $($arg: $ty),*) -> Result<Shaped, ValueError> {
            ValueSerializer.$method($($arg),*).map(Shaped::Value)
        }
    )*};
}

impl ser::Serializer for Capture {
    type Ok = Shaped;
    type Error = ValueError;
    type SerializeSeq = Inner<<ValueSerializer as ser::Serializer>::SerializeSeq>;
    type SerializeTuple = Inner<<ValueSerializer as ser::Serializer>::SerializeTuple>;
    type SerializeTupleStruct = Inner<<ValueSerializer as ser::Serializer>::SerializeTupleStruct>;
    type SerializeTupleVariant = Inner<<ValueSerializer as ser::Serializer>::SerializeTupleVariant>;
    type SerializeMap = Inner<<ValueSerializer as ser::Serializer>::SerializeMap>;
    type SerializeStruct = Inner<<ValueSerializer as ser::Serializer>::SerializeStruct>;
    type SerializeStructVariant =
        Inner<<ValueSerializer as ser::Serializer>::SerializeStructVariant>;

    fn is_human_readable(&self) -> bool {
        true
    }

    forward! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_f32(v: f32);
        serialize_f64(v: f64);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_none(self) -> Result<Shaped, ValueError> {
        Ok(Shaped::None)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Shaped, ValueError> {
        Ok(Shaped::Some(Box::new(value.serialize(Capture)?)))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Shaped, ValueError> {
        if name == super::TOKEN_MARKER {
            return ValueSerializer
                .serialize_newtype_struct(name, value)
                .map(Shaped::Value);
        }
        // Transparent, as for `to_value`; the generated result wrapper is one.
        value.serialize(Capture)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Shaped, ValueError> {
        match (name, variant) {
            ("Result", "Ok") => Ok(Shaped::Ok(Box::new(value.serialize(Capture)?))),
            ("Result", "Err") => Ok(Shaped::Err(super::to_value(value)?)),
            _ => ValueSerializer
                .serialize_newtype_variant(name, index, variant, value)
                .map(Shaped::Value),
        }
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, ValueError> {
        ValueSerializer.serialize_seq(len).map(Inner)
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, ValueError> {
        ValueSerializer.serialize_tuple(len).map(Inner)
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, ValueError> {
        ValueSerializer.serialize_tuple_struct(name, len).map(Inner)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, ValueError> {
        ValueSerializer
            .serialize_tuple_variant(name, index, variant, len)
            .map(Inner)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, ValueError> {
        ValueSerializer.serialize_map(len).map(Inner)
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, ValueError> {
        ValueSerializer.serialize_struct(name, len).map(Inner)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, ValueError> {
        ValueSerializer
            .serialize_struct_variant(name, index, variant, len)
            .map(Inner)
    }
}

macro_rules! inner {
    ($trait:ident, $($method:ident),*) => {
        impl<S: ser::$trait<Ok = Value, Error = ValueError>> ser::$trait for Inner<S> {
            type Ok = Shaped;
            type Error = ValueError;

            $(fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
                self.0.$method(value)
            })*

            fn end(self) -> Result<Shaped, ValueError> {
                self.0.end().map(Shaped::Value)
            }
        }
    };
}

inner!(SerializeSeq, serialize_element);
inner!(SerializeTuple, serialize_element);
inner!(SerializeTupleStruct, serialize_field);
inner!(SerializeTupleVariant, serialize_field);

impl<S: ser::SerializeMap<Ok = Value, Error = ValueError>> ser::SerializeMap for Inner<S> {
    type Ok = Shaped;
    type Error = ValueError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), ValueError> {
        self.0.serialize_key(key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.0.serialize_value(value)
    }

    fn end(self) -> Result<Shaped, ValueError> {
        self.0.end().map(Shaped::Value)
    }
}

macro_rules! inner_fields {
    ($trait:ident) => {
        impl<S: ser::$trait<Ok = Value, Error = ValueError>> ser::$trait for Inner<S> {
            type Ok = Shaped;
            type Error = ValueError;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), ValueError> {
                self.0.serialize_field(key, value)
            }

            fn end(self) -> Result<Shaped, ValueError> {
                self.0.end().map(Shaped::Value)
            }
        }
    };
}

inner_fields!(SerializeStruct);
inner_fields!(SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outer_layers_are_kept() {
        let ok: Result<Option<i64>, String> = Ok(None);
        assert_eq!(to_shaped(&ok).unwrap(), Shaped::Ok(Box::new(Shaped::None)));
        let some: Result<Option<Value>, String> = Ok(Some(Value::None));
        assert_eq!(
            to_shaped(&some).unwrap(),
            Shaped::Ok(Box::new(Shaped::Some(Box::new(Shaped::Value(Value::None)))))
        );
        let err: Result<i64, String> = Err("bad".into());
        assert_eq!(to_shaped(&err).unwrap(), Shaped::Err("bad".into()));
        assert_eq!(
            to_shaped(&vec![1, 2]).unwrap(),
            Shaped::Value(Value::List(vec![1.into(), 2.into()]))
        );
        // Inside data, `Option` and `Result` are plain values again.
        assert_eq!(
            to_shaped(&vec![Some(1)]).unwrap(),
            Shaped::Value(Value::List(vec![1.into()]))
        );
    }
}
