//! `#[derive(Pod)]`: a `#[repr(C)]` struct of plain data may live in
//! shared memory (`managers::process::SharedValue`, `Array`).
//!
//! One small stage each: check the item (a struct, `#[repr(C)]` or
//! `#[repr(transparent)]`, no generic parameters, an optional
//! `#[pod(crate = "...")]`), then emit the `unsafe impl`, one assertion
//! per field that its type is `Pod` itself, spanned at the field's type,
//! so a pointer or a `String` is reported where it is written, and a
//! constant assertion, spanned at the struct's name, that its size is the
//! sum of its fields' (no padding: padding bytes are uninitialized).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::errors::Errors;
use crate::paths::{parse_crate, Runtime};

/// The whole derive.
pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let input: syn::DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.to_compile_error(),
    };
    let mut errors = Errors::default();
    let runtime = runtime(&input, &mut errors);
    if !has_c_layout(&input) {
        errors.error(
            &input.ident,
            "#[derive(Pod)] needs #[repr(C)] (or #[repr(transparent)]): shared memory wants a fixed layout",
        );
    }
    if !input.generics.params.is_empty() {
        errors.error(
            &input.generics,
            "#[derive(Pod)] does not take generic parameters",
        );
    }
    let fields: Vec<&syn::Type> = match &input.data {
        syn::Data::Struct(data) => data.fields.iter().map(|f| &f.ty).collect(),
        _ => {
            errors.error(&input.ident, "#[derive(Pod)] is for structs (an enum or a union has bytes that are not all valid)");
            Vec::new()
        }
    };
    if errors.count() > 0 {
        return quote!(#errors);
    }
    let ident = &input.ident;
    let private = runtime.private(ident.span());
    let checks = fields.iter().map(|ty| {
        let private = runtime.private(ty.span());
        quote_spanned!(ty.span()=> #private::assert_pod::<#ty>();)
    });
    let sizes = fields
        .iter()
        .map(|ty| quote!(::core::mem::size_of::<#ty>()));
    let padding = quote_spanned! {ident.span()=>
        const _: () = ::core::assert!(
            ::core::mem::size_of::<#ident>() == 0 #(+ #sizes)*,
            ::core::concat!(
                "#[derive(Pod)] struct `", ::core::stringify!(#ident),
                "` has padding (its size is more than the sum of its fields' sizes): padding \
                 bytes are uninitialized, and Pod promises every byte is a value; add explicit \
                 fields for them (e.g. `_pad: [u8; N]`) or reorder the fields"
            )
        );
    };
    quote! {
        // SAFETY: a #[repr(C)] struct whose every field is `Pod` (asserted
        // below) and that has no padding (asserted below: its size is the
        // sum of its fields') has only initialized bytes, every bit pattern
        // valid, and no pointers.
        unsafe impl #private::Pod for #ident {}
        const _: () = {
            #[allow(dead_code)]
            fn __managers_pod_fields() {
                #(#checks)*
            }
        };
        #padding
    }
}

/// `#[pod(crate = "path")]`, if given.
fn runtime(input: &syn::DeriveInput, errors: &mut Errors) -> Runtime {
    let mut runtime = Runtime::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("pod")) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let value: syn::Expr = meta.value()?.parse()?;
                runtime = Runtime::renamed(parse_crate(&value)?);
                Ok(())
            } else {
                Err(meta.error("unknown #[pod] option (expected `crate = \"...\"`)"))
            }
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
    runtime
}

fn has_c_layout(input: &syn::DeriveInput) -> bool {
    input
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("repr"))
        .any(|attr| {
            let mut c = false;
            let _ = attr.parse_nested_meta(|meta| {
                c |= meta.path.is_ident("C") || meta.path.is_ident("transparent");
                // `align(N)` and the like carry a value: skip it.
                if meta.input.peek(syn::token::Paren) {
                    let _content;
                    syn::parenthesized!(_content in meta.input);
                }
                Ok(())
            });
            c
        })
}
