//! Per-value serde impls, so a type that cannot cross the wire fails in
//! exactly one place, at its own span.
//!
//! Arguments travel as a tuple, but `(A, B): Serialize` fails as a whole and
//! once per use (the server, the blocking proxy, the async proxy). Instead
//! each value is wrapped in a generated newtype keyed by const parameters
//! (method, position), whose one `Serialize` or `Deserialize` impl names the
//! user's type under its span. The wrappers delegate, so the bytes are those
//! of the plain tuple.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::Type;

use crate::paths;

/// A generated newtype `Name<const __K0: usize, .., __T>(__T)`.
///
/// Every generic parameter the generated code declares has a reserved
/// `__` name: the user's types are named inside those impls, and a user
/// type called `S`, `D` or `T` must still mean the user's type.
pub(crate) struct Codec {
    name: Ident,
    keys: usize,
    runtime: paths::Runtime,
}

impl Codec {
    /// A wrapper called `name`, keyed by `keys` const parameters.
    pub(crate) fn new(name: &str, keys: usize, runtime: &paths::Runtime) -> Codec {
        Codec {
            name: Ident::new(name, Span::call_site()),
            keys,
            runtime: runtime.clone(),
        }
    }

    /// The struct definition.
    pub(crate) fn definition(&self) -> TokenStream {
        let name = &self.name;
        let keys = (0..self.keys).map(|k| format_ident!("__K{}", k));
        quote!(struct #name<#(const #keys: usize,)* __T>(__T);)
    }

    /// The wrapper type for `key` around `value`.
    pub(crate) fn ty(&self, key: &[usize], value: impl quote::ToTokens) -> TokenStream {
        let name = &self.name;
        debug_assert_eq!(key.len(), self.keys);
        quote!(#name<#(#key,)* #value>)
    }

    /// An expression wrapping `value` for `key`.
    pub(crate) fn wrap(&self, key: &[usize], value: TokenStream) -> TokenStream {
        let name = &self.name;
        quote!(#name::<#(#key,)* _>(#value))
    }

    /// A pattern unwrapping into `binding`.
    pub(crate) fn pattern(&self, binding: &Ident) -> TokenStream {
        let name = &self.name;
        quote!(#name(#binding))
    }

    /// `Serialize` for the wrapper around `&ty` (what a caller sends).
    pub(crate) fn serialize_borrowed(&self, key: &[usize], ty: &Type) -> TokenStream {
        let span = ty.span();
        let serde = self.runtime.serde(span);
        let wrapper = self.ty(key, quote!(&#ty));
        let body = quote_spanned!(span=> <#ty as #serde::Serialize>::serialize(self.0, serializer));
        self.serialize_impl(&wrapper, body)
    }

    /// `Serialize` for the wrapper around `ty` itself (a result).
    pub(crate) fn serialize_owned(&self, key: &[usize], ty: &Type) -> TokenStream {
        let span = ty.span();
        let serde = self.runtime.serde(span);
        let wrapper = self.ty(key, ty);
        let body =
            quote_spanned!(span=> <#ty as #serde::Serialize>::serialize(&self.0, serializer));
        self.serialize_impl(&wrapper, body)
    }

    /// `Deserialize` for the wrapper around `ty` (what a receiver decodes).
    pub(crate) fn deserialize(&self, key: &[usize], ty: &Type) -> TokenStream {
        let name = &self.name;
        let span = ty.span();
        let wrapper = self.ty(key, ty);
        let decoded = {
            let serde = self.runtime.serde(span);
            quote_spanned!(span=> <#ty as #serde::Deserialize<'de>>::deserialize(deserializer))
        };
        let serde = self.runtime.serde(Span::call_site());
        quote! {
            impl<'de> #serde::Deserialize<'de> for #wrapper {
                fn deserialize<__D>(deserializer: __D) -> ::core::result::Result<Self, __D::Error>
                where
                    __D: #serde::Deserializer<'de>,
                {
                    ::core::result::Result::map(#decoded, #name)
                }
            }
        }
    }

    fn serialize_impl(&self, wrapper: &TokenStream, body: TokenStream) -> TokenStream {
        let serde = self.runtime.serde(Span::call_site());
        quote! {
            impl #serde::Serialize for #wrapper {
                fn serialize<__S>(&self, serializer: __S) -> ::core::result::Result<__S::Ok, __S::Error>
                where
                    __S: #serde::Serializer,
                {
                    #body
                }
            }
        }
    }
}
