//! The only ways generated code names the runtime: absolute paths, so user
//! imports, renames and `#![no_implicit_prelude]` cannot change them.
//!
//! Each takes a span: code that can fail on a user's type is spanned at that
//! type, and a path interpolated with another span would pull the error
//! back to the macro call.

use proc_macro2::{Span, TokenStream};
use quote::{quote_spanned, ToTokens};

/// Where the `managers` crate is: `::managers` unless the user renamed the
/// dependency and said so with `crate = "..."` (as serde's and tokio's
/// macros take it).
#[derive(Clone, Default)]
pub(crate) struct Runtime {
    renamed: Option<syn::Path>,
}

impl Runtime {
    /// The crate at `path` (what `crate = "path"` names).
    pub(crate) fn renamed(path: syn::Path) -> Runtime {
        Runtime {
            renamed: Some(path),
        }
    }

    fn root(&self, span: Span) -> TokenStream {
        match &self.renamed {
            Some(path) => path.to_token_stream(),
            None => quote_spanned!(span=> ::managers),
        }
    }

    /// `::managers::__private`, the runtime's hidden API for generated code.
    pub(crate) fn private(&self, span: Span) -> TokenStream {
        let root = self.root(span);
        quote_spanned!(span=> #root::__private)
    }

    /// `::managers::__private::serde`, the serde the runtime was built with.
    pub(crate) fn serde(&self, span: Span) -> TokenStream {
        let root = self.root(span);
        quote_spanned!(span=> #root::__private::serde)
    }
}

/// Parse the value of a `crate = "path"` option.
pub(crate) fn parse_crate(value: &syn::Expr) -> syn::Result<syn::Path> {
    match value {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(lit),
            ..
        }) => lit.parse::<syn::Path>().map_err(|_| {
            syn::Error::new_spanned(
                lit,
                "expected a path to the `managers` crate: `crate = \"renamed\"`",
            )
        }),
        _ => Err(syn::Error::new_spanned(
            value,
            "expected the crate's path as a string: `crate = \"renamed\"`",
        )),
    }
}
