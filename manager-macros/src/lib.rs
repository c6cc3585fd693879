//! Macros of the `managers` crate (being written).
use proc_macro::TokenStream;
/// Placeholder.
#[proc_macro_attribute]
pub fn shared(_a: TokenStream, item: TokenStream) -> TokenStream { item }
/// Placeholder.
#[proc_macro]
pub fn manager(_i: TokenStream) -> TokenStream { TokenStream::new() }
