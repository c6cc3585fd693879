//! Code generation for `manager!`: one method per generated item.
//!
//! Emitted: the struct, then one anonymous `const _` block with the serde
//! wrappers of create-method arguments (see `codec`), the inherent impl
//! (`new`, `with_options`, `__registry`, create methods), `Deref`,
//! `Default`, `Debug`, and the compile-time checks of `#[exposed(...)]`.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;

use super::model::{Constructor, Entry, Manager};
use crate::codec::Codec;
use crate::names;

/// Which of an entry's two create methods is being generated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Blocking,
    Async,
}

/// Generates everything `manager!` expands to.
pub(crate) struct Generator<'a> {
    model: &'a Manager,
    private: TokenStream,
    args: Codec,
}

impl<'a> Generator<'a> {
    /// A generator for `model`.
    pub(crate) fn new(model: &'a Manager) -> Generator<'a> {
        Generator {
            model,
            private: model.runtime.private(Span::call_site()),
            args: Codec::new("__ManagersArg", 2, &model.runtime),
        }
    }

    /// Every generated item.
    pub(crate) fn generate(&self) -> TokenStream {
        let definition = self.struct_definition();
        let codecs = self.codecs();
        let inherent = self.inherent_impl();
        let traits = self.trait_impls();
        let checks = self.exposed_checks();
        quote! {
            #definition
            #[allow(non_camel_case_types, dead_code, clippy::too_many_arguments, clippy::ptr_arg)]
            const _: () = {
                #codecs
                #inherent
                #traits
                #checks
            };
        }
    }

    /// `struct Name { base: BaseManager }`.
    fn struct_definition(&self) -> TokenStream {
        let Manager {
            attrs, vis, ident, ..
        } = self.model;
        let private = &self.private;
        quote! {
            #(#attrs)*
            #vis struct #ident {
                base: #private::BaseManager,
            }
        }
    }

    /// The serde wrappers of create-method arguments.
    fn codecs(&self) -> TokenStream {
        let mut tokens = self.args.definition();
        for (e, entry) in self.model.entries.iter().enumerate() {
            for (i, param) in entry.params().iter().enumerate() {
                tokens.extend(self.args.serialize_borrowed(&[e, i], &param.wire.declared));
                tokens.extend(self.args.deserialize(&[e, i], &param.wire.owned));
            }
        }
        tokens
    }

    /// `new`, `with_options`, `__registry` and the create methods.
    fn inherent_impl(&self) -> TokenStream {
        let private = &self.private;
        let ident = &self.model.ident;
        let registry = self.registry();
        let creates = self
            .model
            .entries
            .iter()
            .enumerate()
            .filter(|(_, entry)| entry.create.is_some())
            .flat_map(|(e, entry)| {
                [
                    self.create_method(e, entry, Flavor::Blocking),
                    self.create_method(e, entry, Flavor::Async),
                ]
            });
        quote! {
            impl #ident {
                /// A manager with default options: a fresh local socket and
                /// this process's authkey. Nothing runs until `start()`,
                /// `connect()` or `get_server()`.
                pub fn new() -> Self {
                    Self::with_options(::core::default::Default::default())
                }

                /// A manager with `options` (address, authkey, timeouts).
                /// Nothing runs until `start()`, `connect()` or `get_server()`.
                pub fn with_options(options: #private::ManagerOptions) -> Self {
                    #ident {
                        base: #private::BaseManager::new(Self::__registry, options),
                    }
                }

                #registry

                #(#creates)*
            }
        }
    }

    /// `__registry()`: what the server process serves.
    fn registry(&self) -> TokenStream {
        let private = &self.private;
        let registrations = self
            .model
            .entries
            .iter()
            .enumerate()
            .map(|(e, entry)| self.registration(e, entry));
        quote! {
            #[doc(hidden)]
            pub fn __registry() -> #private::Registry {
                let mut registry = #private::Registry::new();
                #(#registrations)*
                registry
            }
        }
    }

    /// Registration of one typeid.
    fn registration(&self, e: usize, entry: &Entry) -> TokenStream {
        let ty = &entry.ty;
        let typeid = &entry.typeid;
        let exposed = match &entry.exposed {
            Some(list) => {
                let list = list.iter().map(|n| n.unraw().to_string());
                quote!(::core::option::Option::Some(&[#(#list),*]))
            }
            None => quote!(::core::option::Option::None),
        };
        let constructor = match &entry.create {
            Some(_) => {
                let constructor = self.constructor(e, entry);
                quote!(::core::option::Option::Some(#constructor))
            }
            None => quote!(::core::option::Option::None),
        };
        let register = quote_spanned!(ty.span()=> registry.register::<#ty>);
        quote! {
            #register(#typeid, #exposed, #constructor);
        }
    }

    /// The `Constructor` of one typeid.
    fn constructor(&self, e: usize, entry: &Entry) -> TokenStream {
        let ty = &entry.ty;
        let default = quote_spanned!(ty.span()=> <#ty as ::core::default::Default>::default);
        // `Constructor<T>` requires `T: Shared`: spanned at the type, like
        // every other use of it.
        let private = self.model.runtime.private(ty.span());
        let private = &private;
        match &entry.constructor {
            Constructor::Default => {
                quote_spanned!(ty.span()=> #private::Constructor::new(|(): ()| #default()))
            }
            Constructor::Singleton(None) => {
                quote_spanned!(ty.span()=> #private::Constructor::singleton(#default))
            }
            Constructor::Singleton(Some(expr)) => {
                quote_spanned!(ty.span()=> #private::Constructor::singleton(#expr))
            }
            Constructor::Call(expr) => {
                let call = quote_spanned!(expr.span()=> constructor());
                let new = quote_spanned!(ty.span()=> #private::Constructor::new);
                quote!({
                    let constructor = #expr;
                    #new(move |(): ()| #call)
                })
            }
            Constructor::Closure { expr, params } => {
                let bindings: Vec<Ident> = (0..params.len())
                    .map(|i| format_ident!("__a{}", i))
                    .collect();
                let patterns = bindings.iter().map(|b| self.args.pattern(b));
                let decoded = params
                    .iter()
                    .enumerate()
                    .map(|(i, p)| self.args.ty(&[e, i], &p.wire.owned));
                let call_args = params.iter().zip(&bindings).map(|(param, binding)| {
                    if param.wire.by_ref {
                        quote!(&#binding)
                    } else {
                        quote!(#binding)
                    }
                });
                let call = quote_spanned!(expr.span()=> constructor(#(#call_args),*));
                let new = quote_spanned!(ty.span()=> #private::Constructor::new);
                quote!({
                    let constructor = #expr;
                    #new(move |(#(#patterns,)*): (#(#decoded,)*)| #call)
                })
            }
        }
    }

    /// `maths(&self, args..)` or `maths_async(&self, args..)`.
    fn create_method(&self, e: usize, entry: &Entry, flavor: Flavor) -> TokenStream {
        let Some(create) = &entry.create else {
            return TokenStream::new();
        };
        let ty = &entry.ty;
        let typeid = &entry.typeid;
        let params = entry.params().iter().map(|param| {
            let (name, ty) = (&param.name, &param.wire.declared);
            quote!(#name: #ty)
        });
        let args = entry.params().iter().enumerate().map(|(i, param)| {
            let name = &param.name;
            self.args.wrap(&[e, i], quote!(&#name))
        });
        let args = quote!(&(#(#args,)*));
        let what = match entry.constructor {
            Constructor::Singleton(_) => format!("the `{typeid}` object, created on first use,"),
            _ => format!("a new `{typeid}` object"),
        };
        // Everything naming the proxy type is spanned at the entry's type,
        // where a missing `#[shared]` is reported.
        let span = ty.span();
        let spanned_private = self.model.runtime.private(span);
        match flavor {
            Flavor::Blocking => {
                let method = &create.method;
                let output = quote_spanned!(span=>
                    #spanned_private::Result<<#ty as #spanned_private::Shared>::Proxy>);
                let call = quote_spanned!(span=> self.base.create::<<#ty as #spanned_private::Shared>::Proxy, _>);
                let docs = if create.docs.is_empty() {
                    let doc =
                        format!("Asks the server for {what} and returns a blocking proxy to it.");
                    quote!(#[doc = #doc])
                } else {
                    let docs = &create.docs;
                    quote!(#(#docs)*)
                };
                quote! {
                    #docs
                    pub fn #method(&self, #(#params),*) -> #output {
                        #call(#typeid, #args)
                    }
                }
            }
            Flavor::Async => {
                let (method, blocking) = (&create.async_method, &create.method);
                let output = quote_spanned!(span=>
                    #spanned_private::Result<<#ty as #spanned_private::Shared>::AsyncProxy>);
                let call = quote_spanned!(span=> self.base.create_async::<<#ty as #spanned_private::Shared>::AsyncProxy, _>);
                let doc = format!(
                    "Async form of [`{blocking}`](Self::{blocking}): asks the server for {what} and \
                     returns an async proxy to it."
                );
                quote! {
                    #[doc = #doc]
                    pub async fn #method(&self, #(#params),*) -> #output {
                        #call(#typeid, #args).await
                    }
                }
            }
        }
    }

    /// `Deref<Target = BaseManager>`, `Default` and `Debug`.
    fn trait_impls(&self) -> TokenStream {
        let private = &self.private;
        let ident = &self.model.ident;
        let name = ident.to_string();
        quote! {
            impl ::core::ops::Deref for #ident {
                type Target = #private::BaseManager;
                fn deref(&self) -> &#private::BaseManager {
                    &self.base
                }
            }

            impl ::core::default::Default for #ident {
                fn default() -> Self {
                    Self::new()
                }
            }

            impl ::core::fmt::Debug for #ident {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    f.debug_struct(#name).field("base", &self.base).finish()
                }
            }
        }
    }

    /// `#[exposed(...)]` names, checked at compile time at the user's
    /// tokens. (A type without `#[shared]` is reported by `register`, at
    /// the type.)
    fn exposed_checks(&self) -> TokenStream {
        let mut checks = TokenStream::new();
        for entry in &self.model.entries {
            let ty = &entry.ty;
            for name in entry.exposed.iter().flatten() {
                let type_name = names::display(ty).replace('{', "{{").replace('}', "}}");
                let name_text = name.unraw().to_string();
                let message = format!(
                    "typeid `{}`: `{name_text}` is not an exposed method of `{type_name}`",
                    entry.typeid
                );
                let private = self.model.runtime.private(name.span());
                checks.extend(quote_spanned! {name.span()=>
                    const _: () = ::core::assert!(
                        #private::has_method(<#ty as #private::Shared>::METHODS, #name_text),
                        #message
                    );
                });
            }
        }
        checks
    }
}
