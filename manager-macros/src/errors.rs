//! Errors collected across a macro's stages and reported all at once.

use std::fmt::Display;

use proc_macro2::TokenStream;
use quote::ToTokens;

/// Every error found so far, each at the span of the offending tokens.
#[derive(Default)]
pub(crate) struct Errors {
    combined: Option<syn::Error>,
    count: usize,
}

impl Errors {
    /// Record an error spanning `tokens`.
    pub(crate) fn error(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Record an error built elsewhere (a parser's, say).
    pub(crate) fn push(&mut self, error: syn::Error) {
        self.count += 1;
        match &mut self.combined {
            Some(combined) => combined.combine(error),
            None => self.combined = Some(error),
        }
    }

    /// How many errors were recorded so far.
    pub(crate) fn count(&self) -> usize {
        self.count
    }
}

impl ToTokens for Errors {
    /// One `compile_error!` per recorded error.
    fn to_tokens(&self, tokens: &mut TokenStream) {
        if let Some(combined) = &self.combined {
            tokens.extend(combined.to_compile_error());
        }
    }
}
