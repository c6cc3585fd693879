//! Syntax of `manager! { struct Name { Typeid: Type = constructor, ... } }`.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
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
    /// The typeids, in order.
    pub(crate) entries: Punctuated<EntryInput, Token![,]>,
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
        let entries = content.parse_terminated(EntryInput::parse, Token![,])?;
        Ok(Input {
            attrs,
            vis,
            ident,
            generics,
            entries,
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
