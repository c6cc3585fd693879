//! Code generation for `#[shared]`: one method per generated item.
//!
//! Emitted: the two proxy structs, then one anonymous `const _` block with
//! the per-value serde wrappers (see `codec`), `impl Shared`, and the
//! proxies' trait and inherent impls. Inside the block nothing the
//! generator names can clash with the user's items.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::Type;

use super::model::{Method, Output, Shape, Shared};
use crate::codec::Codec;
use crate::names;

/// Which of the two proxies is being generated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Blocking,
    Async,
}

/// Generates everything `#[shared]` adds next to the user's impl block.
pub(crate) struct Generator<'a> {
    model: &'a Shared,
    private: TokenStream,
    blocking: Ident,
    asynchronous: Ident,
    args: Codec,
    result: Codec,
}

impl<'a> Generator<'a> {
    /// A generator for `model`.
    pub(crate) fn new(model: &'a Shared) -> Generator<'a> {
        let stem = model.name.unraw();
        let span = model.name.span();
        Generator {
            model,
            private: model.runtime.private(Span::call_site()),
            blocking: Ident::new(&format!("{stem}Proxy"), span),
            asynchronous: Ident::new(&format!("{stem}AsyncProxy"), span),
            args: Codec::new("__ManagersArg", 2, &model.runtime),
            result: Codec::new("__ManagersResult", 1, &model.runtime),
        }
    }

    /// Every generated item.
    pub(crate) fn generate(&self) -> TokenStream {
        let blocking_struct = self.proxy_struct(Flavor::Blocking);
        let async_struct = self.proxy_struct(Flavor::Async);
        let codecs = self.codecs();
        let shared_impl = self.shared_impl();
        let blocking_impls = self.proxy_trait_impls(Flavor::Blocking);
        let async_impls = self.proxy_trait_impls(Flavor::Async);
        let blocking_methods = self.proxy_methods(Flavor::Blocking);
        let async_methods = self.proxy_methods(Flavor::Async);
        quote! {
            #blocking_struct
            #async_struct
            #[allow(
                non_camel_case_types,
                dead_code,
                unused_variables,
                private_interfaces,
                clippy::too_many_arguments,
                clippy::ptr_arg,
                clippy::type_complexity
            )]
            const _: () = {
                #codecs
                #shared_impl
                #blocking_impls
                #async_impls
                #blocking_methods
                #async_methods
            };
        }
    }

    fn proxy_name(&self, flavor: Flavor) -> &Ident {
        match flavor {
            Flavor::Blocking => &self.blocking,
            Flavor::Async => &self.asynchronous,
        }
    }

    /// `pub struct TProxy { base: ProxyBase }`.
    fn proxy_struct(&self, flavor: Flavor) -> TokenStream {
        let private = &self.private;
        let name = self.proxy_name(flavor);
        let ty = names::display(&self.model.self_ty);
        let doc = match flavor {
            Flavor::Blocking => format!(
                "Blocking proxy of a `{ty}` served by a manager: each method calls the object \
                 in the server and waits for the result. Clones share the reference."
            ),
            Flavor::Async => format!(
                "Async proxy of a `{ty}` served by a manager: each method calls the object in \
                 the server and resolves to the result. Clones share the reference."
            ),
        };
        quote! {
            #[doc = #doc]
            pub struct #name {
                base: #private::ProxyBase,
            }
        }
    }

    /// The serde wrappers of every argument and result.
    fn codecs(&self) -> TokenStream {
        let mut tokens = self.args.definition();
        tokens.extend(self.result.definition());
        for (m, method) in self.model.methods.iter().enumerate() {
            for (i, arg) in method.args.iter().enumerate() {
                tokens.extend(self.args.serialize_borrowed(&[m, i], &arg.wire.declared));
                tokens.extend(self.args.deserialize(&[m, i], &arg.wire.owned));
            }
            if let Output::Value(wire) = &method.output {
                // A borrowed result is encoded from the borrow (while the
                // object's lock is held), so the server serializes the
                // declared `&T`; the proxy decodes the owned `T`.
                let served = if wire.by_ref {
                    &wire.declared
                } else {
                    &wire.owned
                };
                tokens.extend(self.result.serialize_owned(&[m], served));
                tokens.extend(self.result.deserialize(&[m], &wire.owned));
            }
        }
        tokens
    }

    /// `impl Shared for T`: typeid, method table and dispatch.
    fn shared_impl(&self) -> TokenStream {
        let private = &self.private;
        let self_ty = &self.model.self_ty;
        let typeid = &self.model.typeid;
        let (blocking, asynchronous) = (&self.blocking, &self.asynchronous);
        let infos = self.model.methods.iter().map(|method| {
            let name = &method.wire_name;
            let fingerprint = method.fingerprint;
            quote!(#private::MethodInfo { name: #name, fingerprint: #fingerprint })
        });
        let arms = self
            .model
            .methods
            .iter()
            .enumerate()
            .map(|(m, method)| self.dispatch_arm(m, method));
        quote! {
            impl #private::Shared for #self_ty {
                const TYPEID: &'static str = #typeid;
                const METHODS: &'static [#private::MethodInfo] = &[#(#infos),*];
                type Proxy = #blocking;
                type AsyncProxy = #asynchronous;

                fn dispatch(
                    this: ::std::sync::Arc<#private::Cell<Self>>,
                    method: usize,
                    args: &[u8],
                    cx: &#private::CallContext,
                ) -> #private::Outcome {
                    match method {
                        #(#arms)*
                        _ => #private::Outcome::Ready(::core::result::Result::Err(
                            #private::RemoteError::BadRequest(::std::format!(
                                "`{}` has no method number {}",
                                <Self as #private::Shared>::TYPEID,
                                method,
                            )),
                        )),
                    }
                }
            }
        }
    }

    /// One arm of `dispatch`: decode the arguments, run the method.
    fn dispatch_arm(&self, m: usize, method: &Method) -> TokenStream {
        let private = &self.private;
        let wire_name = &method.wire_name;
        let bindings: Vec<Ident> = (0..method.args.len())
            .map(|i| format_ident!("__a{}", i))
            .collect();
        let patterns = bindings.iter().map(|b| self.args.pattern(b));
        let decoded = method
            .args
            .iter()
            .enumerate()
            .map(|(i, arg)| self.args.ty(&[m, i], &arg.wire.owned));
        let call_args = method.args.iter().zip(&bindings).map(|(arg, binding)| {
            if arg.wire.by_ref {
                quote!(&#binding)
            } else {
                quote!(#binding)
            }
        });
        let ident = &method.ident;
        let call_args = quote!(#(#call_args),*);
        let run = if method.is_async {
            let (lock, binding) = if method.is_mut {
                (quote!(write), quote!(mut __guard))
            } else {
                (quote!(read), quote!(__guard))
            };
            let object = if method.is_mut {
                quote!((&mut *__guard))
            } else {
                quote!((&*__guard))
            };
            let reply = self.reply(m, method, quote!(#object.#ident(#call_args).await));
            let pending = {
                let private = self.model.runtime.private(ident.span());
                quote_spanned!(ident.span()=> #private::Outcome::pending)
            };
            quote! {
                let __cx = ::core::clone::Clone::clone(cx);
                #pending(async move {
                    let #binding = this.#lock().await;
                    #private::Reply::encode(#reply, &__cx)
                })
            }
        } else {
            let self_ty = &self.model.self_ty;
            let object_ty = if method.is_mut {
                quote!(&mut #self_ty)
            } else {
                quote!(&#self_ty)
            };
            let reply = self.reply(m, method, quote!(__object.#ident(#call_args)));
            let span = match &method.output {
                Output::Object { declared, .. } => declared.span(),
                Output::Value(_) => ident.span(),
            };
            let private = self.model.runtime.private(span);
            let borrowed = matches!(&method.output, Output::Value(wire) if wire.by_ref);
            let runner = match (method.is_mut, borrowed) {
                (false, false) => quote_spanned!(span=> #private::run_ref),
                (true, false) => quote_spanned!(span=> #private::run_mut),
                (false, true) => quote_spanned!(span=> #private::run_ref_encoded),
                (true, true) => quote_spanned!(span=> #private::run_mut_encoded),
            };
            if borrowed {
                // The result borrows from the object: encoded before the
                // lock is released, not cloned first.
                quote_spanned! {span=>
                    #runner(this, cx, move |__object: #object_ty, __cx: &#private::CallContext| {
                        #private::Reply::encode(#reply, __cx)
                    })
                }
            } else {
                quote_spanned! {span=>
                    #runner(this, cx, move |__object: #object_ty| #reply)
                }
            }
        };
        quote! {
            #m => {
                let (#(#patterns,)*) = match #private::decode_args::<(#(#decoded,)*)>(#wire_name, args) {
                    ::core::result::Result::Ok(decoded) => decoded,
                    ::core::result::Result::Err(error) => {
                        return #private::Outcome::Ready(::core::result::Result::Err(error));
                    }
                };
                #run
            }
        }
    }

    /// The `Reply` wrapping a method's result.
    fn reply(&self, m: usize, method: &Method, value: TokenStream) -> TokenStream {
        let private = &self.private;
        match &method.output {
            Output::Value(_) => {
                let wrapped = self.result.wrap(&[m], value);
                quote!(#private::Plain(#wrapped))
            }
            Output::Object {
                shape, declared, ..
            } => {
                let wrapper = match shape {
                    Shape::Bare => quote!(Returned),
                    Shape::Result(_) => quote!(ReturnedResult),
                    Shape::Option => quote!(ReturnedOption),
                };
                quote_spanned!(declared.span()=> #private::#wrapper(#value))
            }
        }
    }

    /// `Proxy`, `Clone`, `Debug`, `Display` and serde for one proxy. A proxy
    /// serializes as its token, so it can be stored in a shared container
    /// or returned inside a result, and comes back as a proxy.
    fn proxy_trait_impls(&self, flavor: Flavor) -> TokenStream {
        let private = &self.private;
        let name = self.proxy_name(flavor);
        let label = name.to_string();
        quote! {
            impl #private::Proxy for #name {
                fn from_base(base: #private::ProxyBase) -> Self {
                    #name { base }
                }
                fn base(&self) -> &#private::ProxyBase {
                    &self.base
                }
            }

            impl ::core::clone::Clone for #name {
                /// Another reference to the same object.
                fn clone(&self) -> Self {
                    #name { base: ::core::clone::Clone::clone(&self.base) }
                }
            }

            impl ::core::fmt::Debug for #name {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    self.base.describe(#label, f)
                }
            }

            impl ::core::fmt::Display for #name {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    self.base.describe(#label, f)
                }
            }

            impl #private::serde::Serialize for #name {
                fn serialize<__S: #private::serde::Serializer>(
                    &self,
                    serializer: __S,
                ) -> ::core::result::Result<__S::Ok, __S::Error> {
                    #private::serde::Serialize::serialize(&self.base, serializer)
                }
            }

            impl<'de> #private::serde::Deserialize<'de> for #name {
                fn deserialize<__D: #private::serde::Deserializer<'de>>(
                    deserializer: __D,
                ) -> ::core::result::Result<Self, __D::Error> {
                    ::core::result::Result::map(
                        <#private::ProxyBase as #private::serde::Deserialize<'de>>::deserialize(deserializer),
                        |base| #name { base },
                    )
                }
            }
        }
    }

    /// The inherent impl of one proxy: conversion to the other flavor and
    /// one method per exposed method.
    fn proxy_methods(&self, flavor: Flavor) -> TokenStream {
        let name = self.proxy_name(flavor);
        let conversion = match flavor {
            Flavor::Blocking => {
                let other = &self.asynchronous;
                quote! {
                    /// The async proxy of the same object (another reference).
                    pub fn to_async(&self) -> #other {
                        #other { base: ::core::clone::Clone::clone(&self.base) }
                    }
                }
            }
            Flavor::Async => {
                let other = &self.blocking;
                quote! {
                    /// The blocking proxy of the same object (another reference).
                    pub fn to_blocking(&self) -> #other {
                        #other { base: ::core::clone::Clone::clone(&self.base) }
                    }
                }
            }
        };
        let methods = self
            .model
            .methods
            .iter()
            .enumerate()
            .map(|(m, method)| self.proxy_method(flavor, m, method));
        quote! {
            impl #name {
                #conversion
                #(#methods)*
            }
        }
    }

    /// One proxy method: same name and arguments, `Result` of the output.
    fn proxy_method(&self, flavor: Flavor, m: usize, method: &Method) -> TokenStream {
        let private = &self.private;
        let ident = &method.ident;
        let wire_name = &method.wire_name;
        let fingerprint = method.fingerprint;
        let index = u32::try_from(m).expect("a method table of more than u32::MAX entries");
        let method_ref = quote!(#private::MethodRef::at(#index, #wire_name, #fingerprint));
        let params = method.args.iter().map(|arg| {
            let (name, ty) = (&arg.name, &arg.wire.declared);
            quote!(#name: #ty)
        });
        let args = method.args.iter().enumerate().map(|(i, arg)| {
            let name = &arg.name;
            self.args.wrap(&[m, i], quote!(&#name))
        });
        let args = quote!(&(#(#args,)*));
        let docs = if method.docs.is_empty() {
            let doc = format!("Calls `{wire_name}` on the served object.");
            quote!(#[doc = #doc])
        } else {
            let docs = &method.docs;
            quote!(#(#docs)*)
        };
        let (asyncness, call, call_adopt, await_) = match flavor {
            Flavor::Blocking => (None, quote!(call), quote!(call_adopt), None),
            Flavor::Async => (
                Some(quote!(async)),
                quote!(call_async),
                quote!(call_adopt_async),
                Some(quote!(.await)),
            ),
        };
        let (output, body) = match &method.output {
            Output::Value(wire) => {
                let result = self.result.ty(&[m], &wire.owned);
                let owned = &wire.owned;
                let output = quote!(#private::Result<#owned>);
                let body = quote! {
                    ::core::result::Result::map(
                        self.base.#call::<_, #result>(#method_ref, #args)#await_,
                        |result| result.0,
                    )
                };
                (output, body)
            }
            Output::Object {
                shape,
                target,
                declared,
            } => {
                // Everything naming the object type is spanned at the
                // declared result, where a missing `#[shared]` is reported.
                let span = declared.span();
                let private = self.model.runtime.private(span);
                let proxy = self.object_proxy(flavor, target);
                let (output, adopt) = match shape {
                    Shape::Bare => (
                        proxy.clone(),
                        quote_spanned!(span=> #private::AdoptProxy<#proxy>),
                    ),
                    Shape::Result(error) => (
                        quote_spanned!(span=> ::core::result::Result<#proxy, #error>),
                        quote_spanned!(span=> #private::AdoptResult<#proxy, #error>),
                    ),
                    Shape::Option => (
                        quote_spanned!(span=> ::core::option::Option<#proxy>),
                        quote_spanned!(span=> #private::AdoptOption<#proxy>),
                    ),
                };
                let output = quote_spanned!(span=> #private::Result<#output>);
                let body = quote_spanned! {span=>
                    self.base.#call_adopt::<_, #adopt>(#method_ref, #args)#await_
                };
                (output, body)
            }
        };
        quote! {
            #docs
            pub #asyncness fn #ident(&self, #(#params),*) -> #output {
                #body
            }
        }
    }

    /// The proxy type of a shared object a `#[proxy]` method returns.
    fn object_proxy(&self, flavor: Flavor, target: &Type) -> TokenStream {
        if target.to_token_stream().to_string() == self.model.self_ty.to_token_stream().to_string()
        {
            // Our own proxies: named directly, clearer in docs and errors.
            return self.proxy_name(flavor).to_token_stream();
        }
        let span = target.span();
        let private = self.model.runtime.private(span);
        match flavor {
            Flavor::Blocking => quote_spanned!(span=> <#target as #private::Shared>::Proxy),
            Flavor::Async => quote_spanned!(span=> <#target as #private::Shared>::AsyncProxy),
        }
    }
}

/// What a refused block still gets: its type's two proxies (no methods)
/// and a `Shared` impl exposing nothing, so the block's one error is the
/// only one. Nothing when the block names no type.
pub(crate) fn stub(block: &syn::ItemImpl, runtime: &crate::paths::Runtime) -> TokenStream {
    let Type::Path(path) = &*block.self_ty else {
        return TokenStream::new();
    };
    let Some(last) = path.path.segments.last() else {
        return TokenStream::new();
    };
    let private = runtime.private(Span::call_site());
    let stem = last.ident.unraw();
    let span = last.ident.span();
    let blocking = Ident::new(&format!("{stem}Proxy"), span);
    let asynchronous = Ident::new(&format!("{stem}AsyncProxy"), span);
    let self_ty = &block.self_ty;
    let typeid = stem.to_string();
    let (impl_generics, _, where_clause) = block.generics.split_for_impl();
    let mut predicates = where_clause
        .map(|w| w.predicates.iter().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(ToTokens::to_token_stream)
        .collect::<Vec<_>>();
    predicates.push(quote!(Self: ::core::marker::Send + ::core::marker::Sync + 'static));
    let proxies = [&blocking, &asynchronous].map(|name| {
        quote! {
            #[doc = "Stands in for a proxy `#[shared]` could not generate (see its error)."]
            pub struct #name {
                base: #private::ProxyBase,
            }

            impl #private::Proxy for #name {
                fn from_base(base: #private::ProxyBase) -> Self {
                    #name { base }
                }
                fn base(&self) -> &#private::ProxyBase {
                    &self.base
                }
            }
        }
    });
    quote! {
        #(#proxies)*

        impl #impl_generics #private::Shared for #self_ty where #(#predicates),* {
            const TYPEID: &'static str = #typeid;
            const METHODS: &'static [#private::MethodInfo] = &[];
            type Proxy = #blocking;
            type AsyncProxy = #asynchronous;

            fn dispatch(
                _: ::std::sync::Arc<#private::Cell<Self>>,
                _: usize,
                _: &[u8],
                _: &#private::CallContext,
            ) -> #private::Outcome {
                ::core::unreachable!("a type `#[shared]` refused is never served")
            }
        }
    }
}
