#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub use manager_runtime::*;

#[doc(hidden)]
pub mod __private {
    pub use manager_runtime::__private::*;
}
