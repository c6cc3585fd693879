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

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(input: &str) -> String {
        expand(input.parse().unwrap()).to_string()
    }

    #[test]
    fn expands_to_parseable_items_without_errors() {
        let out = expand_str(
            "/// Docs.
            pub struct MyManager {
                Maths: MathsClass,
                Counter: Counter = |start: i64, _name: &str| Counter::new(start),
                #[singleton] get_queue: SharedQueue = SharedQueue::default,
                #[exposed(add)] Restricted: MathsClass,
                #[create_method = false] Child: Counter,
            }",
        );
        syn::parse_file(&out).expect("the expansion parses as items");
        assert!(!out.contains("compile_error"), "{out}");
        for method in [
            "fn maths (& self ,)",
            "fn maths_async (& self ,)",
            "fn counter (& self , start : i64 , name : & str)",
            "fn get_queue (& self ,)",
            "fn restricted (& self ,)",
        ] {
            assert!(out.contains(method), "{method} in {out}");
        }
        assert!(!out.contains("fn child"), "{out}");
        assert!(out.contains("Constructor :: singleton"), "{out}");
    }

    #[test]
    fn a_renamed_crate_is_the_only_runtime_path() {
        let out = expand_str(
            "#[manager(crate = \"mgr\")] #[derive(Clone)] pub struct M { Maths: MathsClass }",
        );
        assert!(!out.contains("compile_error"), "{out}");
        assert!(out.contains("mgr :: __private"), "{out}");
        assert!(!out.contains(":: managers"), "{out}");
        assert!(
            !out.contains("# [manager"),
            "the option is taken off: {out}"
        );
        assert!(
            out.contains("# [derive (Clone)]"),
            "other attributes stay: {out}"
        );
    }

    #[test]
    fn a_body_that_stops_parsing_keeps_the_entries_before() {
        let out = expand_str("pub struct M { Maths: MathsClass, Broken: = 3, Later: Later }");
        assert_eq!(out.matches("compile_error").count(), 1, "{out}");
        assert!(out.contains("pub struct M"), "{out}");
        assert!(out.contains("fn maths (& self ,)"), "{out}");
        assert!(!out.contains("fn later"), "{out}");
    }

    #[test]
    fn mistakes_drop_their_entry_and_keep_the_manager() {
        let out = expand_str(
            "struct M {
                Maths: MathsClass,
                Maths: MathsClass,
                #[singelton] Other: MathsClass,
                #[singleton] Once: Counter = |n: i64| Counter::new(n),
                Untyped: Counter = |n| Counter::new(n),
                new: MathsClass,
            }",
        );
        assert_eq!(out.matches("compile_error").count(), 5, "{out}");
        assert!(out.contains("struct M"), "{out}");
        assert!(out.contains("fn maths (& self ,)"), "{out}");
    }
}
