//! `#[shared]`: parse the options and the impl block, build the model,
//! generate the `Shared` impl and the proxies.

mod expand;
mod model;
mod parse;
mod py;

use proc_macro2::TokenStream;
use quote::quote;

use crate::errors::Errors;

pub(crate) use model::arg_name;

/// Expand `#[shared(args)] item`. Always emits the user's item (without our
/// `#[proxy]` markers), so one mistake does not hide the type from the rest
/// of the crate; errors come as `compile_error!`s at their tokens. A block
/// refused whole (a trait impl, a generic impl) still gets stub proxies and
/// a stub `Shared` impl, so its uses (`manager!`, the proxy's name) add no
/// errors of their own: one mistake, one message.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = parse::options(args, &mut errors);
    let runtime = options
        .krate
        .clone()
        .map(crate::paths::Runtime::renamed)
        .unwrap_or_default();
    let input = match parse::item(item, &mut errors) {
        Ok(input) => input,
        Err(refused) => {
            let original = refused.tokens;
            let stub = refused
                .block
                .map(|block| expand::stub(&block, &runtime))
                .unwrap_or_default();
            return quote!(#original #stub #errors);
        }
    };
    let generated = match model::build(options, &input, &mut errors) {
        Some(model) => expand::Generator::new(&model).generate(),
        None => expand::stub(&input.item, &runtime),
    };
    let item = &input.item;
    quote!(#item #generated #errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(args: &str, item: &str) -> String {
        expand(args.parse().unwrap(), item.parse().unwrap()).to_string()
    }

    const MATHS: &str = "impl MathsClass {
        pub fn add(&self, x: i64, y: i64) -> i64 { x + y }
        pub fn new() -> Self { MathsClass }
        fn private(&self) {}
        #[proxy] pub fn me(&self) -> Self { MathsClass }
    }";

    #[test]
    fn expands_to_parseable_items_without_errors() {
        let out = expand_str("typeid = \"Maths\"", MATHS);
        syn::parse_file(&out).expect("the expansion parses as items");
        assert!(!out.contains("compile_error"), "{out}");
        assert!(out.contains("pub struct MathsClassProxy"), "{out}");
        assert!(out.contains("pub struct MathsClassAsyncProxy"), "{out}");
        assert!(out.contains("\"Maths\""), "{out}");
        assert!(!out.contains("# [proxy]"), "the marker is stripped: {out}");
        assert!(
            !out.contains("name : \"new\""),
            "no receiver, not exposed: {out}"
        );
        assert!(
            !out.contains("name : \"private\""),
            "not pub, not exposed: {out}"
        );
    }

    #[test]
    fn exposed_option_selects_private_methods() {
        let out = expand_str("exposed(private)", MATHS);
        assert!(out.contains("name : \"private\""), "{out}");
        assert!(!out.contains("name : \"add\""), "{out}");
    }

    #[test]
    fn a_bad_method_is_reported_and_the_rest_still_expands() {
        let out = expand_str(
            "",
            "impl S { pub fn ok(&self) {} pub fn bad<T>(&self, t: T) {} pub fn gone(self) {} }",
        );
        assert_eq!(out.matches("compile_error").count(), 2, "{out}");
        assert!(out.contains("name : \"ok\""), "{out}");
        assert!(out.contains("pub struct SProxy"), "{out}");
    }

    #[test]
    fn non_impl_items_are_emitted_unchanged_with_one_error() {
        let out = expand_str("", "pub struct S { x: i64 }");
        assert_eq!(out.matches("compile_error").count(), 1, "{out}");
        assert!(out.contains("pub struct S"), "{out}");
        assert!(!out.contains("Proxy"), "{out}");
    }

    #[test]
    fn a_renamed_crate_is_the_only_runtime_path() {
        let out = expand_str("crate = \"mgr\"", MATHS);
        assert!(!out.contains("compile_error"), "{out}");
        assert!(out.contains("mgr :: __private"), "{out}");
        assert!(!out.contains(":: managers"), "{out}");
        let default = expand_str("", MATHS);
        assert!(default.contains(":: managers :: __private"), "{default}");
    }

    #[test]
    fn a_refused_block_still_gets_stub_proxies() {
        for block in [
            "impl Greet for Greeter { fn greet(&self) {} }",
            "impl<T: Send> Greeter<T> { pub fn greet(&self) {} }",
        ] {
            let out = expand_str("", block);
            assert_eq!(out.matches("compile_error").count(), 1, "{out}");
            assert!(out.contains("pub struct GreeterProxy"), "{out}");
            assert!(out.contains("pub struct GreeterAsyncProxy"), "{out}");
            assert!(out.contains("Shared for Greeter"), "{out}");
        }
    }

    #[test]
    fn every_option_mistake_is_reported() {
        let out = expand_str(
            "typeid = \"A\", typeid = \"B\", expose(x), exposed(nope)",
            "impl S { pub fn a(&self) {} }",
        );
        assert_eq!(out.matches("compile_error").count(), 3, "{out}");
    }
}
