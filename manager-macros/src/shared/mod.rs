//! `#[shared]`: parse the options and the impl block, build the model,
//! generate the `Shared` impl and the proxies.

mod expand;
mod model;
mod parse;

use proc_macro2::TokenStream;
use quote::quote;

use crate::errors::Errors;

pub(crate) use model::arg_name;

/// Expand `#[shared(args)] item`. Always emits the user's item (without our
/// `#[proxy]` markers), so one mistake does not hide the type from the rest
/// of the crate; errors come as `compile_error!`s at their tokens.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = parse::options(args, &mut errors);
    let input = match parse::item(item, &mut errors) {
        Ok(input) => input,
        Err(original) => return quote!(#original #errors),
    };
    let generated = model::build(options, &input, &mut errors)
        .map(|model| expand::Generator::new(&model).generate());
    let item = &input.item;
    quote!(#item #generated #errors)
}
