//! The only ways generated code names the runtime: absolute paths, so user
//! imports, renames and `#![no_implicit_prelude]` cannot change them.

use proc_macro2::TokenStream;
use quote::quote;

/// `::managers::__private`, the runtime's hidden API for generated code.
pub(crate) fn private() -> TokenStream {
    quote!(::managers::__private)
}

/// `::managers::__private::serde`, the serde the runtime was built with.
pub(crate) fn serde() -> TokenStream {
    quote!(::managers::__private::serde)
}
