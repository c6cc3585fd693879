//! `manager!`: parse the declaration, build the model, generate the
//! manager type, its registry and its create methods.

mod expand;
mod model;
mod parse;

use proc_macro2::TokenStream;
use quote::quote;

use crate::errors::Errors;

/// Expand `manager! { ... }`. When entries have mistakes the manager is
/// still generated without them, so its other uses compile and each mistake
/// gives one message.
pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let input: parse::Input = match syn::parse2(input) {
        Ok(input) => input,
        Err(error) => return error.to_compile_error(),
    };
    let mut errors = Errors::default();
    let model = model::build(input, &mut errors);
    let generated = expand::Generator::new(&model).generate();
    quote!(#generated #errors)
}
