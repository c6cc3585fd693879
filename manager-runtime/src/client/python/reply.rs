//! A reply of a CPython server, as [`Shaped`], read into the type the
//! typed proxy asked for: `Shaped::Err` is the `Err` of a `Result`, any
//! other shape its `Ok` (so `usize` and `Result<usize, SyncError>` read
//! the same reply), `Shaped::None`/`Some` an `Option`'s, and everything
//! inside is read as [`Value`] is by [`from_value`](crate::value::from_value).
#![forbid(unsafe_code)]

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer,
    VariantAccess, Visitor,
};

use crate::value::{Shaped, Value, ValueError};

/// `shaped` as an `R`.
pub(crate) fn from_shaped<R: DeserializeOwned>(shaped: Shaped) -> Result<R, ValueError> {
    R::deserialize(De(shaped))
}

struct De(Shaped);

impl De {
    /// The value inside the outer layers; a failure has none.
    fn into_value(self) -> Result<Value, ValueError> {
        match self.0 {
            Shaped::Value(value) => Ok(value),
            Shaped::Some(inner) | Shaped::Ok(inner) => De(*inner).into_value(),
            Shaped::None => Ok(Value::None),
            Shaped::Object(token) => Ok(Value::from(token)),
            Shaped::Err(error) => Err(de::Error::custom(format!(
                "the Python server raised {}",
                error.repr()
            ))),
        }
    }
}

macro_rules! forward {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
            self.into_value()?.$method(visitor)
        }
    )*};
}

impl<'de> Deserializer<'de> for De {
    type Error = ValueError;

    forward! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_unit deserialize_seq deserialize_map deserialize_identifier
        deserialize_ignored_any
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.0 {
            Shaped::None => visitor.visit_none(),
            Shaped::Some(inner) => visitor.visit_some(De(*inner)),
            Shaped::Ok(inner) => De(*inner).deserialize_option(visitor),
            other => De(other).into_value()?.deserialize_option(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        if name != "Result" {
            return self.into_value()?.deserialize_enum(name, variants, visitor);
        }
        match self.0 {
            Shaped::Err(error) => visitor.visit_enum(Variant {
                name: "Err",
                content: De(Shaped::Value(error)),
            }),
            Shaped::Ok(inner) => visitor.visit_enum(Variant {
                name: "Ok",
                content: De(*inner),
            }),
            other => visitor.visit_enum(Variant {
                name: "Ok",
                content: De(other),
            }),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.into_value()?.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.into_value()?.deserialize_newtype_struct(name, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.into_value()?.deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.into_value()?
            .deserialize_tuple_struct(name, len, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.into_value()?.deserialize_struct(name, fields, visitor)
    }

    fn is_human_readable(&self) -> bool {
        true
    }
}

/// `Ok(content)` or `Err(content)`.
struct Variant {
    name: &'static str,
    content: De,
}

impl<'de> EnumAccess<'de> for Variant {
    type Error = ValueError;
    type Variant = De;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, De), ValueError> {
        let tag = seed.deserialize(self.name.into_deserializer())?;
        Ok((tag, self.content))
    }
}

impl<'de> VariantAccess<'de> for De {
    type Error = ValueError;

    fn unit_variant(self) -> Result<(), ValueError> {
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<S::Value, ValueError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_tuple(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_struct("", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SyncError;

    #[test]
    fn layers_read_as_the_asked_type() {
        let plain = || Shaped::Value(Value::Int(3));
        assert_eq!(from_shaped::<usize>(plain()).unwrap(), 3);
        assert_eq!(
            from_shaped::<Result<usize, SyncError>>(plain()).unwrap(),
            Ok(3)
        );
        let err = Shaped::Err(crate::value::to_value(&SyncError::Empty).unwrap());
        assert_eq!(
            from_shaped::<Result<usize, SyncError>>(err.clone()).unwrap(),
            Err(SyncError::Empty)
        );
        assert!(from_shaped::<usize>(err).is_err());
        assert_eq!(from_shaped::<Option<Value>>(Shaped::None).unwrap(), None);
        assert_eq!(
            from_shaped::<Result<Option<Value>, SyncError>>(Shaped::Some(Box::new(Shaped::Value(
                Value::None
            ))))
            .unwrap(),
            Ok(Some(Value::None))
        );
        assert_eq!(
            from_shaped::<(Value, Value)>(Shaped::Value(Value::List(vec![
                Value::from("k"),
                Value::Int(1)
            ])))
            .unwrap(),
            (Value::from("k"), Value::Int(1))
        );
    }
}
