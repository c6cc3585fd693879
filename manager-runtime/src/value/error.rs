//! Why a conversion between a user type and a [`Value`](super::Value)
//! failed.
#![forbid(unsafe_code)]

use std::fmt;

/// A conversion to or from a [`Value`](super::Value) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The value has the wrong kind for the requested type.
    #[error("expected {expected}, found {found}")]
    InvalidType {
        /// What the type wanted: "an integer", "a string", "i64", ...
        expected: String,
        /// What the value is: "a string", "integer `300`", ...
        found: String,
    },
    /// An integer does not fit the requested integer type.
    #[error("integer {value} is out of range for {target}")]
    OutOfRange {
        /// The integer, in decimal.
        value: String,
        /// The requested type.
        target: &'static str,
    },
    /// A sequence has the wrong number of elements.
    #[error("invalid length {len}, expected {expected}")]
    InvalidLength {
        /// How many elements there are.
        len: usize,
        /// What the type wanted.
        expected: String,
    },
    /// Anything else, in serde's or the type's own words.
    #[error("{0}")]
    Custom(String),
}

impl ValueError {
    pub(crate) fn invalid_type(expected: &str, found: &super::Value) -> Self {
        ValueError::InvalidType {
            expected: expected.to_owned(),
            found: found.kind().to_owned(),
        }
    }

    pub(crate) fn out_of_range(value: impl fmt::Display, target: &'static str) -> Self {
        ValueError::OutOfRange {
            value: value.to_string(),
            target,
        }
    }
}

impl serde::ser::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ValueError::Custom(msg.to_string())
    }
}

impl serde::de::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ValueError::Custom(msg.to_string())
    }

    fn invalid_type(unexp: serde::de::Unexpected<'_>, exp: &dyn serde::de::Expected) -> Self {
        ValueError::InvalidType {
            expected: exp.to_string(),
            found: unexp.to_string(),
        }
    }

    fn invalid_length(len: usize, exp: &dyn serde::de::Expected) -> Self {
        ValueError::InvalidLength {
            len,
            expected: exp.to_string(),
        }
    }
}

impl From<ValueError> for crate::error::Error {
    fn from(e: ValueError) -> Self {
        crate::error::Error::codec("converting a value", e)
    }
}
