//! Type rewriting and checks shared by both macros: `Self` substitution,
//! the owned form a borrowed argument is decoded as, and the syntactic
//! limits of what can cross the wire.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::Type;

/// `ty` with every `Self` replaced by `self_ty`, for generated items outside
/// the user's `impl` block.
pub(crate) fn replace_self(ty: &Type, self_ty: &Type) -> Type {
    let replaced = replace_self_tokens(ty.to_token_stream(), &self_ty.to_token_stream());
    syn::parse2(replaced).unwrap_or_else(|_| ty.clone())
}

fn replace_self_tokens(tokens: TokenStream, with: &TokenStream) -> TokenStream {
    tokens
        .into_iter()
        .flat_map(|token| match token {
            TokenTree::Ident(ident) if ident == "Self" => with.clone(),
            TokenTree::Group(group) => {
                let mut replaced =
                    Group::new(group.delimiter(), replace_self_tokens(group.stream(), with));
                replaced.set_span(group.span());
                TokenTree::Group(replaced).into()
            }
            other => other.into(),
        })
        .collect()
}

/// `'_` replaced by `'static`: a decoded value borrows nothing, and the
/// generated impls that name it may not elide lifetimes.
pub(crate) fn static_lifetimes(ty: &Type) -> Type {
    fn rewrite(tokens: TokenStream) -> TokenStream {
        let mut out = Vec::new();
        let mut after_quote = false;
        for token in tokens {
            match token {
                TokenTree::Ident(ident) if after_quote && ident == "_" => {
                    out.push(TokenTree::Ident(proc_macro2::Ident::new(
                        "static",
                        ident.span(),
                    )));
                }
                TokenTree::Group(group) => {
                    let mut replaced = Group::new(group.delimiter(), rewrite(group.stream()));
                    replaced.set_span(group.span());
                    out.push(TokenTree::Group(replaced));
                }
                other => out.push(other),
            }
            after_quote = matches!(out.last(), Some(TokenTree::Punct(p)) if p.as_char() == '\'');
        }
        out.into_iter().collect()
    }
    syn::parse2(rewrite(ty.to_token_stream())).unwrap_or_else(|_| ty.clone())
}

/// A type as declared in a signature and as it travels.
#[derive(Clone)]
pub(crate) struct WireType {
    /// The declared type (`Self` already replaced).
    pub(crate) declared: Type,
    /// What is decoded on the receiving side: `&str` → `String`,
    /// `&[T]` → `Vec<T>`, `&T` → `T`, anything else unchanged.
    pub(crate) owned: Type,
    /// Whether the declared type is a reference to `owned`.
    pub(crate) by_ref: bool,
}

impl WireType {
    /// Classify `declared`; it must have passed [`check_wire_type`].
    pub(crate) fn new(declared: Type) -> WireType {
        let (owned, by_ref) = match strip_groups(&declared) {
            Type::Reference(reference) => (owned_referent(&reference.elem), true),
            other => (other.clone(), false),
        };
        WireType {
            owned: static_lifetimes(&owned),
            declared,
            by_ref,
        }
    }
}

fn strip_groups(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => strip_groups(&group.elem),
        Type::Paren(paren) => strip_groups(&paren.elem),
        other => other,
    }
}

fn owned_referent(elem: &Type) -> Type {
    let span = elem.span();
    match strip_groups(elem) {
        Type::Path(path) if path.qself.is_none() && path.path.is_ident("str") => {
            syn::parse2(quote_spanned!(span=> ::std::string::String)).expect("a type")
        }
        Type::Slice(slice) => {
            let item = &slice.elem;
            syn::parse2(quote_spanned!(span=> ::std::vec::Vec<#item>)).expect("a type")
        }
        other => other.clone(),
    }
}

/// Where a type can go on the wire, for error messages.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Position {
    /// A method or constructor argument: a top-level `&T` is fine.
    Argument,
    /// A method's result: a top-level `&T` is cloned into its owned form.
    Return,
}

/// Why `ty` cannot cross the wire, if a syntactic reason says so: `impl
/// Trait`, `&mut`, a `&'static` argument, or a borrow below the top level.
pub(crate) fn check_wire_type(ty: &Type, position: Position) -> Result<(), syn::Error> {
    if let Some(span) = find_impl_trait(ty.to_token_stream()) {
        return Err(syn::Error::new(
            span,
            "`impl Trait` cannot cross the wire: proxies need a concrete type here",
        ));
    }
    let inner = match strip_groups(ty) {
        Type::Reference(reference) => {
            if let Some(mutability) = reference.mutability {
                let message = match position {
                    Position::Argument => {
                        "`&mut` arguments cannot be served: changes would stay in the server; \
                         take the value (or `&T`) and return what changed"
                    }
                    Position::Return => {
                        "`&mut` results cannot be served: the object stays in the server; \
                         return an owned value"
                    }
                };
                let and = reference.and_token;
                return Err(syn::Error::new_spanned(
                    quote::quote!(#and #mutability),
                    message,
                ));
            }
            if position == Position::Argument {
                // Other named lifetimes are the method's own, reported there.
                if let Some(lifetime) = &reference.lifetime {
                    if lifetime.ident == "static" {
                        return Err(syn::Error::new_spanned(
                            lifetime,
                            "a `&'static` argument cannot be decoded from the wire: the decoded \
                             value lives only for the call; take `&T` or an owned value",
                        ));
                    }
                }
            }
            owned_referent(&reference.elem)
        }
        other => other.clone(),
    };
    if let Some(span) = find_borrow(inner.to_token_stream()) {
        let message = match position {
            Position::Argument => {
                "arguments are decoded from the wire and cannot borrow below the top level: \
                 use an owned type here (`String`, `Vec<T>`, ...)"
            }
            Position::Return => {
                "results are encoded after the object is released and cannot borrow below the \
                 top level: return an owned type here (`String`, `Vec<T>`, ...)"
            }
        };
        return Err(syn::Error::new(span, message));
    }
    Ok(())
}

fn find_impl_trait(tokens: TokenStream) -> Option<Span> {
    tokens.into_iter().find_map(|token| match token {
        TokenTree::Ident(ident) if ident == "impl" => Some(ident.span()),
        TokenTree::Group(group) => find_impl_trait(group.stream()),
        _ => None,
    })
}

/// The first `&` or non-`'static` lifetime in `tokens`.
fn find_borrow(tokens: TokenStream) -> Option<Span> {
    let mut after_quote: Option<Span> = None;
    for token in tokens {
        match token {
            TokenTree::Punct(punct) if punct.as_char() == '&' => return Some(punct.span()),
            TokenTree::Punct(punct) if punct.as_char() == '\'' => {
                after_quote = Some(punct.span());
                continue;
            }
            TokenTree::Ident(ident)
                if after_quote.is_some() && ident != "static" && ident != "_" =>
            {
                return after_quote;
            }
            TokenTree::Group(group) => {
                if let Some(span) = find_borrow(group.stream()) {
                    return Some(span);
                }
            }
            _ => {}
        }
        after_quote = None;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn render(ty: &Type) -> String {
        ty.to_token_stream().to_string()
    }

    #[test]
    fn self_is_replaced_everywhere() {
        let ty: Type = parse_quote!(Result<Vec<Self>, <Self as Tr>::E>);
        let replaced = replace_self(&ty, &parse_quote!(Counter));
        assert_eq!(
            render(&replaced),
            "Result < Vec < Counter > , < Counter as Tr > :: E >"
        );
    }

    #[test]
    fn borrowed_arguments_decode_as_owned() {
        let owned = |ty: Type| {
            let wire = WireType::new(ty);
            (render(&wire.owned), wire.by_ref)
        };
        assert_eq!(
            owned(parse_quote!(&str)),
            (":: std :: string :: String".into(), true)
        );
        assert_eq!(
            owned(parse_quote!(&[u8])),
            (":: std :: vec :: Vec < u8 >".into(), true)
        );
        assert_eq!(owned(parse_quote!(&Point)), ("Point".into(), true));
        assert_eq!(owned(parse_quote!(i64)), ("i64".into(), false));
        assert_eq!(
            owned(parse_quote!(Cow<'_, str>)),
            ("Cow < 'static , str >".into(), false)
        );
    }

    #[test]
    fn wire_checks() {
        let check = |ty: Type, position| check_wire_type(&ty, position).is_ok();
        assert!(check(parse_quote!(&str), Position::Argument));
        assert!(check(parse_quote!(Vec<String>), Position::Argument));
        assert!(check(parse_quote!(Cow<'static, str>), Position::Argument));
        assert!(check(parse_quote!(&'static str), Position::Return));
        assert!(!check(parse_quote!(&'static str), Position::Argument));
        assert!(!check(parse_quote!(&mut String), Position::Argument));
        assert!(!check(parse_quote!(Vec<&str>), Position::Argument));
        assert!(!check(parse_quote!(Option<&str>), Position::Return));
        assert!(!check(
            parse_quote!(impl Iterator<Item = u8>),
            Position::Return
        ));
        assert!(!check(parse_quote!(Box<dyn Fn(&str)>), Position::Argument));
    }
}
