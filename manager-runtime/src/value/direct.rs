//! A user type written straight in [`Value`](super::Value)'s wire form:
//! the bytes postcard gives for `to_value(x)`, without building the
//! `Value` first (a large value set through a typed proxy is then copied
//! once on its way out, not twice).
//!
//! postcard writes a tuple as its elements one after another, with no
//! length, and an enum variant as its index (a varint, as a `u32` is)
//! followed by its payload (postcard's wire specification, version 1). So
//! the whole `Value` goes out as one tuple of *pieces*: each variant's tag
//! as a `u32`, each length as a `usize`, each scalar as what the variant
//! holds. What [`to_value`] maps (`Some(x)` to `x`, a struct to a `Map`
//! with `Str` keys, ...) is mapped the same way here, as a human-readable
//! format. Anything this cannot write as `to_value` would (a proxy token,
//! a sequence or map of unknown length, a `u128` beyond `i128`, a length
//! announced wrongly) makes the encoding fail, and the caller encodes
//! `to_value(x)` instead ([`AsValue::refused`]). The unit tests check the
//! bytes against `to_value`'s for every shape.
#![forbid(unsafe_code)]

use std::cell::Cell;

use serde::ser::{self, Error as _, Serialize, SerializeTuple, Serializer};

use super::codec::VALUE_MARKER;
use super::to_value;
use super::token::TOKEN_MARKER;

/// `Value` tags, as in `codec::VARIANTS`.
const NONE: u32 = 0;
const BOOL: u32 = 1;
const INT: u32 = 2;
const FLOAT: u32 = 3;
const STR: u32 = 4;
const BYTES: u32 = 5;
const LIST: u32 = 6;
const MAP: u32 = 7;

/// Serializes `value` as `to_value(value)` would serialize, without the
/// intermediate `Value` in a non-human-readable format (postcard: the
/// wire), through `to_value` in any other.
pub(crate) struct AsValue<'a, T: ?Sized> {
    value: &'a T,
    refused: Cell<bool>,
}

impl<'a, T: Serialize + ?Sized> AsValue<'a, T> {
    pub(crate) fn new(value: &'a T) -> Self {
        AsValue {
            value,
            refused: Cell::new(false),
        }
    }

    /// Whether encoding it failed. A call encodes its arguments before it
    /// sends anything, so nothing was sent, and the value must go as
    /// `to_value(value)` (which reports its error, if it has one).
    pub(crate) fn refused(&self) -> bool {
        self.refused.get()
    }
}

impl<T: Serialize + ?Sized> Serialize for AsValue<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            // Not the wire (a pickle-mode call's arguments): the value
            // itself.
            return match to_value(self.value) {
                Ok(value) => value.serialize(serializer),
                Err(e) => {
                    self.refused.set(true);
                    Err(S::Error::custom(e))
                }
            };
        }
        // postcard writes no length for a tuple.
        let mut pieces = serializer.serialize_tuple(0)?;
        match self.value.serialize(Pieces(&mut pieces)) {
            Ok(()) => pieces.end(),
            Err(e) => {
                self.refused.set(true);
                Err(e)
            }
        }
    }
}

fn refuse<E: ser::Error>(what: &str) -> E {
    E::custom(format_args!("{what} is not written directly as a value"))
}

/// The serializer that writes one value's pieces into the tuple.
struct Pieces<'a, P>(&'a mut P);

impl<'a, P: SerializeTuple> Pieces<'a, P> {
    fn piece<X: Serialize + ?Sized>(&mut self, x: &X) -> Result<(), P::Error> {
        self.0.serialize_element(x)
    }

    fn tag(&mut self, tag: u32) -> Result<(), P::Error> {
        self.piece(&tag)
    }

    fn int(mut self, i: i128) -> Result<(), P::Error> {
        self.tag(INT)?;
        self.piece(&i)
    }

    fn text(&mut self, s: &str) -> Result<(), P::Error> {
        self.tag(STR)?;
        self.piece(s)
    }

    /// A `List` or `Map` of `len` items, which the caller then writes.
    fn open(mut self, tag: u32, len: usize) -> Result<Items<'a, P>, P::Error> {
        self.tag(tag)?;
        self.piece(&len)?;
        Ok(Items {
            out: self.0,
            left: len,
        })
    }

    /// `{variant: ...}`: a `Map` of one entry whose value the caller writes.
    fn variant(&mut self, variant: &str) -> Result<(), P::Error> {
        self.tag(MAP)?;
        self.piece(&1_usize)?;
        self.text(variant)
    }
}

/// The items of an open `List` or `Map` (keys and values counted as one
/// item per entry): exactly as many as announced, or a refusal.
struct Items<'a, P> {
    out: &'a mut P,
    left: usize,
}

impl<P: SerializeTuple> Items<'_, P> {
    fn item<X: Serialize + ?Sized>(&mut self, x: &X) -> Result<(), P::Error> {
        self.left = self
            .left
            .checked_sub(1)
            .ok_or_else(|| refuse("a collection longer than announced"))?;
        x.serialize(Pieces(&mut *self.out))
    }

    fn key<X: Serialize + ?Sized>(&mut self, x: &X) -> Result<(), P::Error> {
        self.item(x)
    }

    fn value<X: Serialize + ?Sized>(&mut self, x: &X) -> Result<(), P::Error> {
        x.serialize(Pieces(&mut *self.out))
    }

    fn field<X: Serialize + ?Sized>(&mut self, key: &str, x: &X) -> Result<(), P::Error> {
        self.item(key)?;
        self.value(x)
    }

    fn end(self) -> Result<(), P::Error> {
        match self.left {
            0 => Ok(()),
            _ => Err(refuse("a collection shorter than announced")),
        }
    }
}

impl<'a, P: SerializeTuple> Serializer for Pieces<'a, P> {
    type Ok = ();
    type Error = P::Error;
    type SerializeSeq = Items<'a, P>;
    type SerializeTuple = Items<'a, P>;
    type SerializeTupleStruct = Items<'a, P>;
    type SerializeTupleVariant = Items<'a, P>;
    type SerializeMap = Items<'a, P>;
    type SerializeStruct = Items<'a, P>;
    type SerializeStructVariant = Items<'a, P>;

    /// As [`to_value`]'s serializer: a type that serializes differently
    /// for people (an address, a UUID) must map onto the same value.
    fn is_human_readable(&self) -> bool {
        true
    }

    fn serialize_bool(mut self, v: bool) -> Result<(), P::Error> {
        self.tag(BOOL)?;
        self.piece(&v)
    }

    fn serialize_i8(self, v: i8) -> Result<(), P::Error> {
        self.int(v.into())
    }

    fn serialize_i16(self, v: i16) -> Result<(), P::Error> {
        self.int(v.into())
    }

    fn serialize_i32(self, v: i32) -> Result<(), P::Error> {
        self.int(v.into())
    }

    fn serialize_i64(self, v: i64) -> Result<(), P::Error> {
        self.int(v.into())
    }

    fn serialize_i128(self, v: i128) -> Result<(), P::Error> {
        self.int(v)
    }

    fn serialize_u8(self, v: u8) -> Result<(), P::Error> {
        self.int(v.into())
    }

    fn serialize_u16(self, v: u16) -> Result<(), P::Error> {
        self.int(v.into())
    }

    fn serialize_u32(self, v: u32) -> Result<(), P::Error> {
        self.int(v.into())
    }

    fn serialize_u64(self, v: u64) -> Result<(), P::Error> {
        self.int(v.into())
    }

    fn serialize_u128(self, v: u128) -> Result<(), P::Error> {
        let v = i128::try_from(v).map_err(|_| refuse("a u128 beyond i128"))?;
        self.int(v)
    }

    fn serialize_f32(self, v: f32) -> Result<(), P::Error> {
        self.serialize_f64(v.into())
    }

    fn serialize_f64(mut self, v: f64) -> Result<(), P::Error> {
        self.tag(FLOAT)?;
        self.piece(&v)
    }

    fn serialize_char(mut self, v: char) -> Result<(), P::Error> {
        self.text(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(mut self, v: &str) -> Result<(), P::Error> {
        self.text(v)
    }

    fn serialize_bytes(mut self, v: &[u8]) -> Result<(), P::Error> {
        /// Bytes as bytes (a length, then the bytes as they are).
        struct Bytes<'b>(&'b [u8]);
        impl Serialize for Bytes<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_bytes(self.0)
            }
        }
        self.tag(BYTES)?;
        self.piece(&Bytes(v))
    }

    fn serialize_none(mut self) -> Result<(), P::Error> {
        self.tag(NONE)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), P::Error> {
        value.serialize(self)
    }

    fn serialize_unit(mut self) -> Result<(), P::Error> {
        self.tag(NONE)
    }

    fn serialize_unit_struct(mut self, _name: &'static str) -> Result<(), P::Error> {
        self.tag(NONE)
    }

    fn serialize_unit_variant(
        mut self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), P::Error> {
        if name == VALUE_MARKER {
            // `Value::None` itself.
            return self.tag(NONE);
        }
        self.text(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), P::Error> {
        if name == TOKEN_MARKER {
            return Err(refuse("a proxy"));
        }
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), P::Error> {
        if name == VALUE_MARKER {
            // A `Value` inside the user's type: its payload maps onto the
            // same variant.
            return value.serialize(self);
        }
        self.variant(variant)?;
        value.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Items<'a, P>, P::Error> {
        let len = len.ok_or_else(|| refuse("a sequence of unknown length"))?;
        self.open(LIST, len)
    }

    fn serialize_tuple(self, len: usize) -> Result<Items<'a, P>, P::Error> {
        self.open(LIST, len)
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Items<'a, P>, P::Error> {
        self.open(LIST, len)
    }

    fn serialize_tuple_variant(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Items<'a, P>, P::Error> {
        self.variant(variant)?;
        self.open(LIST, len)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Items<'a, P>, P::Error> {
        let len = len.ok_or_else(|| refuse("a map of unknown length"))?;
        self.open(MAP, len)
    }

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Items<'a, P>, P::Error> {
        self.open(MAP, len)
    }

    fn serialize_struct_variant(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Items<'a, P>, P::Error> {
        self.variant(variant)?;
        self.open(MAP, len)
    }
}

/// serde's sequence-like compound traits, all one thing here: each element
/// is an item of the open `List`.
macro_rules! items_of_a_list {
    ($($compound:ident :: $element:ident),* $(,)?) => {$(
        impl<P: SerializeTuple> ser::$compound for Items<'_, P> {
            type Ok = ();
            type Error = P::Error;

            fn $element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), P::Error> {
                self.item(value)
            }

            fn end(self) -> Result<(), P::Error> {
                Items::end(self)
            }
        }
    )*};
}

items_of_a_list!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl<P: SerializeTuple> ser::SerializeMap for Items<'_, P> {
    type Ok = ();
    type Error = P::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), P::Error> {
        self.key(key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), P::Error> {
        self.value(value)
    }

    fn end(self) -> Result<(), P::Error> {
        Items::end(self)
    }
}

/// serde's struct-like compound traits: each field is an entry of the open
/// `Map`, its name a `Str` key.
macro_rules! fields_of_a_map {
    ($($compound:ident),* $(,)?) => {$(
        impl<P: SerializeTuple> ser::$compound for Items<'_, P> {
            type Ok = ();
            type Error = P::Error;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), P::Error> {
                self.field(key, value)
            }

            fn end(self) -> Result<(), P::Error> {
                Items::end(self)
            }
        }
    )*};
}

fields_of_a_map!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::AsValue;
    use crate::value::{to_value, Value};

    /// The bytes `AsValue` writes as a call's one argument, or `None` if it
    /// refused (and then says so).
    fn direct<T: Serialize + ?Sized>(x: &T) -> Option<Vec<u8>> {
        let as_value = AsValue::new(x);
        let encoded = postcard::to_stdvec(&(&as_value,));
        assert_eq!(encoded.is_err(), as_value.refused());
        encoded.ok()
    }

    /// `x` written directly is `to_value(x)` written, byte for byte.
    fn same<T: Serialize + ?Sized + std::fmt::Debug>(x: &T) {
        let via_value = postcard::to_stdvec(&(to_value(x).unwrap(),)).unwrap();
        assert_eq!(direct(x), Some(via_value), "{x:?}");
    }

    #[derive(Debug, Serialize)]
    struct Unit;

    #[derive(Debug, Serialize)]
    struct Newtype(u16);

    #[derive(Debug, Serialize)]
    struct Pair(i8, String);

    #[derive(Debug, Serialize)]
    struct Point {
        x: i32,
        y: f32,
        #[serde(skip_serializing_if = "Option::is_none")]
        label: Option<String>,
        #[serde(skip)]
        _hidden: u8,
        nested: Value,
    }

    #[derive(Debug, Serialize)]
    enum Shape {
        Empty,
        Circle(f64),
        Line(i64, i64),
        Rect { w: u32, h: u32 },
    }

    /// Bytes that serialize as bytes.
    #[derive(Debug)]
    struct Blob(Vec<u8>);

    impl Serialize for Blob {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    #[test]
    fn every_shape_is_written_as_its_value() {
        same(&());
        same(&true);
        same(&-5_i8);
        same(&i16::MIN);
        same(&i32::MAX);
        same(&i64::MIN);
        same(&i128::MIN);
        same(&u8::MAX);
        same(&u16::MAX);
        same(&u32::MAX);
        same(&u64::MAX);
        same(&(i128::MAX as u128));
        same(&1.5_f32);
        same(&-0.0_f64);
        same(&f64::NAN);
        same(&'é');
        same("text");
        same(&String::from("ünïcode"));
        same(&Blob((0..=255).collect()));
        same(&Blob(vec![7; 70_000]));
        same(&None::<u8>);
        same(&Some(Some(3_u8)));
        same(&Unit);
        same(&Newtype(9));
        same(&Pair(-1, "one".into()));
        same(&(1_u8, "two", [3.0_f64, 4.0]));
        same(&vec![vec![1_i64, 2], vec![]]);
        same(&vec![0_u8; 300]);
        same(&BTreeMap::from([("a", 1), ("b", 2)]));
        same(&BTreeMap::from([(vec![1], Shape::Empty)]));
        for label in [None, Some("here".to_string())] {
            same(&Point {
                x: -3,
                y: 2.5,
                label,
                _hidden: 1,
                nested: Value::List(vec![Value::None, Value::Bytes(vec![1, 2])]),
            });
        }
        same(&[
            Shape::Empty,
            Shape::Circle(1.0),
            Shape::Line(1, -1),
            Shape::Rect { w: 2, h: 3 },
        ]);
        same(&Value::Map(vec![(Value::from("k"), Value::Float(1.0))]));
        // Human-readable forms, as `to_value` gives them.
        same(&"127.0.0.1:80".parse::<std::net::SocketAddr>().unwrap());
        same(&std::time::Duration::from_millis(1500));
    }

    #[test]
    fn what_it_cannot_write_is_refused() {
        assert_eq!(direct(&u128::MAX), None);
        // A sequence or map whose length is not known in advance.
        struct Unsized;
        impl Serialize for Unsized {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq((0..4).filter(|i| i % 2 == 0))
            }
        }
        assert_eq!(direct(&Unsized), None);
        // A length announced wrongly, either way.
        struct Liar(usize);
        impl Serialize for Liar {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeSeq;
                let mut seq = s.serialize_seq(Some(2))?;
                for i in 0..self.0 {
                    seq.serialize_element(&i)?;
                }
                seq.end()
            }
        }
        assert_eq!(direct(&Liar(1)), None);
        assert_eq!(direct(&Liar(3)), None);
        assert!(direct(&Liar(2)).is_some());
        // A proxy's token.
        let token = crate::token::Token {
            typeid: "Value".into(),
            address: crate::address::Address::Tcp("127.0.0.1:1".parse().unwrap()),
            id: 1,
        };
        assert_eq!(direct(&crate::value::TokenValue(token)), None);
    }

    #[test]
    fn a_human_readable_format_gets_the_value_itself() {
        let value = to_value(&AsValue::new(&Shape::Line(1, 2))).unwrap();
        assert_eq!(value, to_value(&Shape::Line(1, 2)).unwrap());
        let refused = AsValue::new(&u128::MAX);
        assert!(to_value(&refused).is_err());
        assert!(refused.refused());
    }
}
