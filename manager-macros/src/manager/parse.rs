//! Syntax of `manager! { struct Name { Typeid: Type = constructor, ... } }`.

use syn::parse::{Parse, ParseStream};
use syn::{braced, Attribute, Expr, Generics, Ident, Token, Type, Visibility};

/// The manager declaration as written.
pub(crate) struct Input {
    /// Outer attributes (docs, derives...), kept on the struct.
    pub(crate) attrs: Vec<Attribute>,
    /// The struct's visibility.
    pub(crate) vis: Visibility,
    /// The manager type's name.
    pub(crate) ident: Ident,
    /// Must be empty; parsed to report it.
    pub(crate) generics: Generics,
    /// The typeids, in order, up to the first one that does not parse.
    pub(crate) entries: Vec<EntryInput>,
    /// Why the body stopped parsing early, if it did: the manager is still
    /// generated with the entries before, so its uses compile.
    pub(crate) body_error: Option<syn::Error>,
}

/// One `#[attrs] Typeid: Type = constructor` line.
pub(crate) struct EntryInput {
    /// `#[exposed(..)]`, `#[singleton]`, `#[create_method = false]`, docs.
    pub(crate) attrs: Vec<Attribute>,
    /// The typeid, as an identifier.
    pub(crate) name: Ident,
    /// The served type.
    pub(crate) ty: Type,
    /// The constructor after `=`.
    pub(crate) constructor: Option<Expr>,
}

impl Parse for Input {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        input.parse::<Token![struct]>()?;
        let ident = input.parse()?;
        let mut generics: Generics = input.parse()?;
        generics.where_clause = input.parse()?;
        let content;
        braced!(content in input);
        let mut entries = Vec::new();
        let mut body_error = None;
        while !content.is_empty() {
            let entry = content.parse::<EntryInput>().and_then(|entry| {
                if !content.is_empty() {
                    content.parse::<Token![,]>()?;
                }
                Ok(entry)
            });
            match entry {
                Ok(entry) => entries.push(entry),
                Err(error) => {
                    body_error = Some(error);
                    // The rest is skipped, not reported again.
                    content.parse::<proc_macro2::TokenStream>()?;
                }
            }
        }
        Ok(Input {
            attrs,
            vis,
            ident,
            generics,
            entries,
            body_error,
        })
    }
}

impl Parse for EntryInput {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let name = input.parse()?;
        input.parse::<Token![:]>()?;
        let ty = input.parse()?;
        let constructor = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(EntryInput {
            attrs,
            name,
            ty,
            constructor,
        })
    }
}
