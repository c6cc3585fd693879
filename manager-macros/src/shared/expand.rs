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

use super::model::{Form, Method, Output, Shape, Shared};
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
        let stem = model.stem.unraw();
        let span = model.stem.span();
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

    /// The typed parameters (`typed(K, V)`), empty for a plain type.
    fn params(&self) -> &[Ident] {
        self.model.typed.as_deref().unwrap_or_default()
    }

    /// `<K, V>` (or nothing) after a proxy's name, in an impl.
    fn generics(&self) -> TokenStream {
        let params = self.params();
        if params.is_empty() {
            TokenStream::new()
        } else {
            quote!(<#(#params),*>)
        }
    }

    /// `<Value, Value>` (or nothing): the dynamic proxy, the server's own.
    fn dynamic(&self) -> TokenStream {
        let private = &self.private;
        let values = self.params().iter().map(|_| quote!(#private::Value));
        if self.params().is_empty() {
            TokenStream::new()
        } else {
            quote!(<#(#values),*>)
        }
    }

    /// The bounds every typed parameter meets in the methods' impl.
    fn bounds(&self) -> TokenStream {
        let private = &self.private;
        let params = self.params();
        quote!(where #(#params: #private::serde::Serialize + #private::serde::de::DeserializeOwned,)*)
    }

    /// The struct's field besides `base`, and its initial value.
    fn phantom(&self) -> (TokenStream, TokenStream) {
        let params = self.params();
        if params.is_empty() {
            return (TokenStream::new(), TokenStream::new());
        }
        (
            quote!(_type: ::core::marker::PhantomData<fn() -> (#(#params,)*)>,),
            quote!(_type: ::core::marker::PhantomData,),
        )
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
        let (field, _) = self.phantom();
        let decl = if self.params().is_empty() {
            TokenStream::new()
        } else {
            let params = self.params().iter().map(|p| quote!(#p = #private::Value));
            quote!(<#(#params),*>)
        };
        let typed_doc = if self.params().is_empty() {
            String::new()
        } else {
            let params: Vec<String> = self.params().iter().map(ToString::to_string).collect();
            format!(
                " Elements are sent and read back as `{}` (each a dynamic `Value` unless named); \
                 `retype` views the same object with other types.",
                params.join("`, `")
            )
        };
        let doc = format!("{doc}{typed_doc}");
        quote! {
            #[doc = #doc]
            pub struct #name #decl {
                base: #private::ProxyBase,
                #field
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
        let dynamic = self.dynamic();
        let python = self.python_table();
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
                type Proxy = #blocking #dynamic;
                type AsyncProxy = #asynchronous #dynamic;
                #python

                fn dispatch(
                    this: ::std::sync::Arc<#private::ObjectLock<Self>>,
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

    /// `const PYTHON`, the type's Python table, if a method has `#[py]`.
    fn python_table(&self) -> TokenStream {
        let private = &self.private;
        let entries: Vec<TokenStream> = self
            .model
            .methods
            .iter()
            .enumerate()
            .flat_map(|(index, method)| {
                let described = super::py::Method {
                    wire_name: &method.wire_name,
                    index,
                    params: method
                        .args
                        .iter()
                        .map(|arg| {
                            let owned = &arg.wire.owned;
                            (
                                arg.name.to_string(),
                                quote!(#owned),
                                matches!(arg.form, Form::Owner),
                                &arg.py,
                            )
                        })
                        .collect(),
                    unit: match &method.output {
                        Output::Value(wire) => {
                            let text = wire.owned.to_token_stream().to_string();
                            text == "()" || (text.starts_with("Result < ()") && text.ends_with('>'))
                        }
                        Output::Object { .. } => false,
                    },
                };
                method
                    .py
                    .iter()
                    .map(|entry| super::py::expand(entry, &described, private))
                    .collect::<Vec<_>>()
            })
            .collect();
        if entries.is_empty() {
            return TokenStream::new();
        }
        quote!(const PYTHON: &'static [#private::PyMethod] = &[#(#entries),*];)
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
        let g = self.generics();
        let (_, init) = self.phantom();
        let de_params = self.params();
        let display = if self.model.own_display && flavor == Flavor::Blocking {
            TokenStream::new()
        } else {
            quote! {
                impl #g ::core::fmt::Display for #name #g {
                    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                        self.base.describe(#label, f)
                    }
                }
            }
        };
        quote! {
            impl #g #private::Proxy for #name #g {
                fn from_base(base: #private::ProxyBase) -> Self {
                    #name { base, #init }
                }
                fn base(&self) -> &#private::ProxyBase {
                    &self.base
                }
            }

            impl #g ::core::clone::Clone for #name #g {
                /// Another reference to the same object.
                fn clone(&self) -> Self {
                    #name { base: ::core::clone::Clone::clone(&self.base), #init }
                }
            }

            impl #g ::core::fmt::Debug for #name #g {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    self.base.describe(#label, f)
                }
            }

            #display

            impl #g #private::serde::Serialize for #name #g {
                fn serialize<__S: #private::serde::Serializer>(
                    &self,
                    serializer: __S,
                ) -> ::core::result::Result<__S::Ok, __S::Error> {
                    #private::serde::Serialize::serialize(&self.base, serializer)
                }
            }

            impl<'de, #(#de_params),*> #private::serde::Deserialize<'de> for #name #g {
                fn deserialize<__D: #private::serde::Deserializer<'de>>(
                    deserializer: __D,
                ) -> ::core::result::Result<Self, __D::Error> {
                    ::core::result::Result::map(
                        <#private::ProxyBase as #private::serde::Deserialize<'de>>::deserialize(deserializer),
                        |base| #name { base, #init },
                    )
                }
            }
        }
    }

    /// The inherent impl of one proxy: conversion to the other flavor and
    /// one method per exposed method.
    fn proxy_methods(&self, flavor: Flavor) -> TokenStream {
        let name = self.proxy_name(flavor);
        let g = self.generics();
        let (_, init) = self.phantom();
        let conversion = match flavor {
            Flavor::Blocking => {
                let other = &self.asynchronous;
                quote! {
                    /// The async proxy of the same object (another reference).
                    pub fn to_async(&self) -> #other #g {
                        #other { base: ::core::clone::Clone::clone(&self.base), #init }
                    }
                }
            }
            Flavor::Async => {
                let other = &self.blocking;
                quote! {
                    /// The blocking proxy of the same object (another reference).
                    pub fn to_blocking(&self) -> #other #g {
                        #other { base: ::core::clone::Clone::clone(&self.base), #init }
                    }
                }
            }
        };
        let private = &self.private;
        let timeout = quote! {
            /// Another proxy of the same object whose calls have this
            /// deadline: `Proxy::with_timeout`, without importing the trait.
            pub fn with_timeout(&self, timeout: ::core::time::Duration) -> Self {
                <Self as #private::Proxy>::with_timeout(self, timeout)
            }
        };
        let retype = if self.params().is_empty() {
            TokenStream::new()
        } else {
            let others: Vec<Ident> = self
                .params()
                .iter()
                .map(|p| format_ident!("{}2", p))
                .collect();
            quote! {
                /// The same object seen with other element types (another
                /// reference); `retype::<Value, ..>()` is the dynamic view.
                pub fn retype<#(#others),*>(&self) -> #name<#(#others),*> {
                    #name { base: ::core::clone::Clone::clone(&self.base), #init }
                }
            }
        };
        let bounds = self.bounds();
        let methods = self
            .model
            .methods
            .iter()
            .enumerate()
            .map(|(m, method)| self.proxy_method(flavor, m, method));
        quote! {
            impl #g #name #g {
                #conversion
                #timeout
                #retype
            }

            impl #g #name #g #bounds {
                #(#methods)*
            }
        }
    }

    /// One proxy method: same name and arguments (or their typed forms),
    /// `Result` of the output (typed, and a served `Result` folded in, for
    /// a `typed` type).
    fn proxy_method(&self, flavor: Flavor, m: usize, method: &Method) -> TokenStream {
        let plain = self.proxy_method_as(flavor, m, method, false);
        if !method.args.iter().any(|a| matches!(a.form, Form::Owner)) {
            return plain;
        }
        // The same call for an owner the caller names: a guard releasing as
        // the thread or task that acquired, an undo on another task.
        let explicit = self.proxy_method_as(flavor, m, method, true);
        quote!(#plain #explicit)
    }

    fn proxy_method_as(
        &self,
        flavor: Flavor,
        m: usize,
        method: &Method,
        explicit: bool,
    ) -> TokenStream {
        let private = &self.private;
        let ident = &if explicit {
            format_ident!("{}_as", method.ident)
        } else {
            method.ident.clone()
        };
        let wire_name = &method.wire_name;
        let fingerprint = method.fingerprint;
        let index = u32::try_from(m).expect("a method table of more than u32::MAX entries");
        let self_ty = &self.model.self_ty;
        let method_ref = quote!(#private::MethodRef::at(#index, #wire_name, #fingerprint)
            .with_python(<#self_ty as #private::Shared>::PYTHON));
        let parts = self.arguments(flavor, m, method, explicit);
        let (params, generics, where_clause, prepare, keep, args) = (
            &parts.params,
            &parts.generics,
            &parts.bounds,
            &parts.prepare,
            &parts.keep,
            &parts.args,
        );
        let args = quote!(&(#(#args,)*));
        let docs = if explicit {
            let doc = format!("[`{}`](Self::{}) for `owner`.", method.ident, method.ident);
            quote!(#[doc = #doc] #[doc(hidden)])
        } else if method.docs.is_empty() {
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
        let typed = self.model.typed.is_some();
        let (output, body) = match &method.output {
            Output::Value(wire) => {
                let result = self.result.ty(&[m], &wire.owned);
                let owned = &wire.owned;
                let raw_call = quote!(self.base.#call::<_, #result>(#method_ref, #args));
                let raw_call = match (&method.undo, flavor) {
                    (Some(undo), Flavor::Async) => {
                        let owners = &parts.owners;
                        quote! {{
                            let __undo = #undo(::core::clone::Clone::clone(&self.base) #(, #owners)*);
                            self.base.undo_if_dropped(#raw_call, move |__r: #result| __undo(__r.0))
                        }}
                    }
                    _ => raw_call,
                };
                if typed {
                    let typed_output = match &method.returns {
                        Some(ty) => ty.to_token_stream(),
                        None => folded(owned),
                    };
                    let body = quote! {
                        let __raw = #raw_call #await_?.0;
                        #keep
                        <#typed_output as #private::FromReply<#owned>>::from_reply(&self.base, __raw)
                    };
                    (quote!(#private::Result<#typed_output>), body)
                } else {
                    let body = quote! {
                        ::core::result::Result::map(#raw_call #await_, |result| result.0)
                    };
                    (quote!(#private::Result<#owned>), body)
                }
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
                let proxy = match &method.returns {
                    Some(ty) if typed => flavored(ty, flavor),
                    _ => self.object_proxy(flavor, target),
                };
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
                    let __result = self.base.#call_adopt::<_, #adopt>(#method_ref, #args)#await_;
                    #keep
                    __result
                };
                (output, body)
            }
        };
        quote! {
            #docs
            pub #asyncness fn #ident #generics (&self, #(#params),*) -> #output #where_clause {
                #(#prepare)*
                #body
            }
        }
    }

    /// How a proxy method takes and sends each argument.
    fn arguments(&self, flavor: Flavor, m: usize, method: &Method, explicit: bool) -> Arguments {
        let private = &self.private;
        let mut parts = Arguments::default();
        let borrowed = method
            .args
            .iter()
            .filter(|a| matches!(a.form, Form::Borrowed(_)))
            .count();
        let mut generics = Vec::new();
        let mut bounds = Vec::new();
        for (i, arg) in method.args.iter().enumerate() {
            let (name, declared) = (&arg.name, &arg.wire.declared);
            let sent = match &arg.form {
                Form::Plain => {
                    parts.params.push(quote!(#name: #declared));
                    quote!(&#name)
                }
                Form::Owner if explicit => {
                    parts.params.push(quote!(#name: u64));
                    parts.owners.push(quote!(#name));
                    quote!(&#name)
                }
                Form::Owner => {
                    let owner = match flavor {
                        Flavor::Blocking => quote!(#private::caller_id()),
                        Flavor::Async => quote!(#private::task_owner()),
                    };
                    parts.prepare.push(quote!(let #name: u64 = #owner;));
                    parts.owners.push(quote!(#name));
                    quote!(&#name)
                }
                Form::Value(ty) => {
                    parts.params.push(quote!(#name: #ty));
                    parts
                        .prepare
                        .push(quote!(let #name = #private::to_value(&#name)?;));
                    quote!(&#name)
                }
                Form::Borrowed(ty) => {
                    let q = if borrowed == 1 {
                        format_ident!("Q")
                    } else {
                        format_ident!("Q{}", generics.len() + 1)
                    };
                    parts.params.push(quote!(#name: &#q));
                    bounds.push(quote!(#ty: ::core::borrow::Borrow<#q>));
                    bounds.push(quote!(#q: #private::serde::Serialize + ?::core::marker::Sized));
                    generics.push(q);
                    parts
                        .prepare
                        .push(quote!(let #name = #private::to_value(#name)?;));
                    quote!(&#name)
                }
                Form::Operand(ty) => {
                    parts.params.push(quote!(#name: #ty));
                    let keep = format_ident!("__keep_{}", name);
                    parts
                        .prepare
                        .push(quote!(let (#name, #keep) = #name.into_operand()?.into_parts();));
                    parts.keep.extend(quote!(::core::mem::drop(#keep);));
                    quote!(&#name)
                }
            };
            parts.args.push(self.args.wrap(&[m, i], sent));
        }
        if !generics.is_empty() {
            parts.generics = quote!(<#(#generics),*>);
            parts.bounds = quote!(where #(#bounds),*);
        }
        parts
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

/// The pieces of a proxy method that come from its arguments.
#[derive(Default)]
struct Arguments {
    /// The parameters it declares.
    params: Vec<TokenStream>,
    /// Its own generic parameters (`<Q>` for a borrowed key).
    generics: TokenStream,
    /// Their bounds.
    bounds: TokenStream,
    /// Statements turning parameters into what is sent.
    prepare: Vec<TokenStream>,
    /// Statements after the call: dropping what had to live until then.
    keep: TokenStream,
    /// The wrapped values sent, in order.
    args: Vec<TokenStream>,
    /// The owner values, for an undo.
    owners: Vec<TokenStream>,
}

/// A served `Result<T, E>` as the typed proxies return it: `T` (their
/// `Result` holds the error); any other type unchanged.
fn folded(ty: &Type) -> TokenStream {
    if let Type::Path(path) = ty {
        if let Some(last) = path.path.segments.last() {
            if last.ident == "Result" {
                if let syn::PathArguments::AngleBracketed(args) = &last.arguments {
                    if let (2, Some(syn::GenericArgument::Type(ok))) =
                        (args.args.len(), args.args.first())
                    {
                        return ok.to_token_stream();
                    }
                }
            }
        }
    }
    ty.to_token_stream()
}

/// A typed proxy type written for the blocking flavour, in `flavor`:
/// `IterProxy<T>` is `IterAsyncProxy<T>` in the async one.
fn flavored(ty: &Type, flavor: Flavor) -> TokenStream {
    let mut ty = ty.clone();
    if flavor == Flavor::Async {
        if let Type::Path(path) = &mut ty {
            if let Some(last) = path.path.segments.last_mut() {
                let name = last.ident.to_string();
                if let Some(stem) = name.strip_suffix("Proxy") {
                    last.ident = Ident::new(&format!("{stem}AsyncProxy"), last.ident.span());
                }
            }
        }
    }
    ty.to_token_stream()
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
                _: ::std::sync::Arc<#private::ObjectLock<Self>>,
                _: usize,
                _: &[u8],
                _: &#private::CallContext,
            ) -> #private::Outcome {
                ::core::unreachable!("a type `#[shared]` refused is never served")
            }
        }
    }
}
