//! The only ways generated code names the runtime: absolute paths, so user
//! imports, renames and `#![no_implicit_prelude]` cannot change them.
//!
//! Each takes a span: code that can fail on a user's type is spanned at that
//! type, and a path interpolated with another span would pull the error
//! back to the macro call.

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;

/// `::managers::__private`, the runtime's hidden API for generated code.
pub(crate) fn private(span: Span) -> TokenStream {
    quote_spanned!(span=> ::managers::__private)
}

/// `::managers::__private::serde`, the serde the runtime was built with.
pub(crate) fn serde(span: Span) -> TokenStream {
    quote_spanned!(span=> ::managers::__private::serde)
}
