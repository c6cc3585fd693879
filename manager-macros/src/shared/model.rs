//! What `#[shared]` serves: the validated model of an impl block.
//!
//! Every mistake is recorded at its tokens; a method with a mistake is left
//! out of the model so the rest still expands (one mistake, one message).

use proc_macro2::Ident;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, ImplItem, ImplItemFn, ItemImpl, Pat, ReturnType, Type};

use super::parse::{Input, Marks, Options, ParamMarks};
use crate::errors::Errors;
use crate::fingerprint::Signature;
use crate::types::{self, Position, WireType};

/// Names the generated proxies already use for their own methods.
const RESERVED: &[&str] = &["to_async", "to_blocking", "with_timeout", "retype"];

/// A served type and its exposed methods.
pub(crate) struct Shared {
    /// The concrete self type (`impl ThisType`).
    pub(crate) self_ty: Type,
    /// The default typeid.
    pub(crate) typeid: String,
    /// The exposed methods, in the order of the block.
    pub(crate) methods: Vec<Method>,
    /// Where the runtime is (`crate = "..."`).
    pub(crate) runtime: crate::paths::Runtime,
    /// `typed(K, V)`: the proxies are generic over these (each defaulting
    /// to the dynamic `Value`), convert arguments with `#[of(..)]` and
    /// results with `FromReply`, and fold a served `Result<T, E>` into
    /// theirs. `None` for a plain `#[shared]` type.
    pub(crate) typed: Option<Vec<Ident>>,
    /// `own_display`: no generated `Display`.
    pub(crate) own_display: bool,
    /// The stem of the proxies' names (`proxy = ".."`, or the type's).
    pub(crate) stem: Ident,
}

/// One exposed method.
pub(crate) struct Method {
    /// The name in the user's code (may be raw).
    pub(crate) ident: Ident,
    /// The name on the wire.
    pub(crate) wire_name: String,
    /// `&mut self` rather than `&self`.
    pub(crate) is_mut: bool,
    /// `async fn`.
    pub(crate) is_async: bool,
    /// The arguments after the receiver.
    pub(crate) args: Vec<Arg>,
    /// What comes back.
    pub(crate) output: Output,
    /// `#[doc]` attributes, copied to the proxies.
    pub(crate) docs: Vec<Attribute>,
    /// Hash of the signature, checked by the server on every call.
    pub(crate) fingerprint: u64,
    /// `#[returns(T)]`: the typed proxies' result (typed mode).
    pub(crate) returns: Option<Type>,
    /// `#[undo(path)]`: `path(base, owner...)` gives what an async proxy
    /// does with a result whose future was dropped (typed mode).
    pub(crate) undo: Option<syn::Path>,
    /// The Python names of the method (`#[py(..)]`).
    pub(crate) py: Vec<crate::shared::py::Entry>,
}

/// An argument of an exposed method.
pub(crate) struct Arg {
    /// The parameter name the proxies use.
    pub(crate) name: Ident,
    /// Its type and how it travels.
    pub(crate) wire: WireType,
    /// What the proxies take for it.
    pub(crate) form: Form,
    /// How Python passes it (`#[py(..)]` on the parameter).
    pub(crate) py: crate::shared::py::Param,
}

/// What a proxy method takes for a parameter of the served method.
pub(crate) enum Form {
    /// The declared type itself.
    Plain,
    /// Nothing: the calling thread (blocking) or task (async), `#[owner]`.
    Owner,
    /// `#[of(T)]`: a `T`, sent as a dynamic value.
    Value(Type),
    /// `#[of(&T)]`: a borrowed form of `T` (as `HashMap::get` takes keys).
    Borrowed(Type),
    /// `#[of(impl Trait)]`: an argument whose `into_operand()` gives the
    /// value and what to keep alive until the call is done.
    Operand(Type),
}

/// What an exposed method returns.
// A handful per macro call, built once: boxing would only add noise.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Output {
    /// A value sent whole (including a `Result<T, E>`).
    Value(WireType),
    /// A shared object (`#[proxy]`): the caller gets a proxy.
    Object {
        /// Bare, in a `Result`, or in an `Option`.
        shape: Shape,
        /// The shared type (`Self` replaced).
        target: Type,
        /// The declared return type, for spans.
        declared: Type,
    },
}

/// How a `#[proxy]` method wraps the object it returns.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Shape {
    /// `T`.
    Bare,
    /// `Result<T, E>`, with `E`.
    Result(Type),
    /// `Option<T>`.
    Option,
}

/// Validate `input` against `options`. `None` when the block as a whole
/// cannot be served (errors say why).
pub(crate) fn build(options: Options, input: &Input, errors: &mut Errors) -> Option<Shared> {
    let item = &input.item;
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.error(
            &item.generics,
            "#[shared] cannot serve a generic impl: proxies are generated for one concrete type; \
             write the impl for a concrete type (`impl Stack<i64> { ... }`)",
        );
        return None;
    }
    let name = type_name(&item.self_ty, errors)?;
    let typeid = match &options.typeid {
        Some(lit) => lit.value(),
        None => name.unraw().to_string(),
    };
    let exposed = exposed_methods(item, options.exposed.as_deref(), errors);
    let mut methods = Vec::new();
    for (index, entry) in item.items.iter().enumerate() {
        let ImplItem::Fn(method) = entry else {
            continue;
        };
        let marks = &input.marks[index];
        if !exposed.contains(&index) {
            if let Some(mark) = &marks.proxy {
                errors.error(mark, "`#[proxy]` on a method that is not exposed: make it `pub` or list it in `exposed(...)`");
            }
            continue;
        }
        if let Some(method) = exposed_method(
            method,
            marks,
            options.typed.is_some(),
            &item.self_ty,
            errors,
        ) {
            methods.push(method);
        }
    }
    Some(Shared {
        self_ty: (*item.self_ty).clone(),
        typeid,
        methods,
        runtime: options
            .krate
            .map(crate::paths::Runtime::renamed)
            .unwrap_or_default(),
        typed: options.typed,
        own_display: options.own_display,
        stem: options.proxy.unwrap_or(name),
    })
}

fn type_name(self_ty: &Type, errors: &mut Errors) -> Option<Ident> {
    if let Type::Path(path) = self_ty {
        if path.qself.is_none() {
            if let Some(last) = path.path.segments.last() {
                return Some(last.ident.clone());
            }
        }
    }
    errors.error(
        self_ty,
        "#[shared] needs a named type: `impl TypeName { ... }`",
    );
    None
}

/// Indices (into the block's items) of the exposed methods.
fn exposed_methods(item: &ItemImpl, listed: Option<&[Ident]>, errors: &mut Errors) -> Vec<usize> {
    let methods = || {
        item.items
            .iter()
            .enumerate()
            .filter_map(|(i, entry)| match entry {
                ImplItem::Fn(method) => Some((i, method)),
                _ => None,
            })
    };
    let Some(listed) = listed else {
        return methods()
            .filter(|(_, m)| {
                matches!(m.vis, syn::Visibility::Public(_)) && m.sig.receiver().is_some()
            })
            .map(|(i, _)| i)
            .collect();
    };
    let mut exposed = Vec::new();
    for name in listed {
        match methods().find(|(_, m)| m.sig.ident.unraw() == name.unraw()) {
            Some((_, method)) if method.sig.receiver().is_none() => errors.error(
                name,
                format!(
                    "`{name}` takes no `self`, so it cannot be called on a served object; \
                     expose methods that take `&self` or `&mut self`"
                ),
            ),
            Some((index, _)) => exposed.push(index),
            None => errors.error(name, format!("no method `{name}` in this impl block")),
        }
    }
    exposed.sort_unstable();
    exposed
}

fn exposed_method(
    method: &ImplItemFn,
    marks: &Marks,
    typed: bool,
    self_ty: &Type,
    errors: &mut Errors,
) -> Option<Method> {
    let is_proxy = marks.proxy.is_some();
    let sig = &method.sig;
    let before = errors.count();
    check_signature(method, errors);
    let is_mut = receiver_is_mut(sig, errors);
    let typed_mode = typed;
    let mut args = Vec::new();
    let mut arg_texts = Vec::new();
    for (position, input) in sig.inputs.iter().skip(1).enumerate() {
        let FnArg::Typed(typed) = input else { continue };
        if let Err(error) = types::check_wire_type(&typed.ty, Position::Argument) {
            errors.push(error);
            continue;
        }
        arg_texts.push(typed.ty.to_token_stream().to_string());
        let param = marks.params.get(position).cloned().unwrap_or_default();
        args.push(Arg {
            name: arg_name(&typed.pat, position),
            wire: WireType::new(types::replace_self(&typed.ty, self_ty)),
            form: form(&param, typed_mode, &typed.ty, errors),
            py: crate::shared::py::param(param.py.as_ref(), errors),
        });
    }
    dedupe_names(&mut args);
    let declared: Type = match &sig.output {
        ReturnType::Default => syn::parse_quote_spanned!(sig.ident.span()=> ()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let output = if is_proxy {
        object_output(&declared, self_ty, errors)
    } else {
        match types::check_wire_type(&declared, Position::Return) {
            Ok(()) => Some(Output::Value(WireType::new(types::replace_self(
                &declared, self_ty,
            )))),
            Err(error) => {
                errors.push(error);
                None
            }
        }
    };
    if errors.count() > before {
        return None;
    }
    let returns = marks
        .returns
        .as_ref()
        .and_then(|attr| typed_only(attr, typed, errors))
        .and_then(|attr| attr.parse_args::<Type>().map_err(|e| errors.push(e)).ok());
    let undo = marks
        .undo
        .as_ref()
        .and_then(|attr| typed_only(attr, typed, errors))
        .and_then(|attr| {
            attr.parse_args::<syn::Path>()
                .map_err(|e| errors.push(e))
                .ok()
        });
    let py = marks
        .py
        .iter()
        .filter_map(|attr| crate::shared::py::entry(attr, errors))
        .collect();
    let wire_name = sig.ident.unraw().to_string();
    let fingerprint = Signature {
        is_async: sig.asyncness.is_some(),
        is_mut: is_mut?,
        returns_proxy: is_proxy,
        name: &wire_name,
        args: arg_texts,
        output: declared.to_token_stream().to_string(),
    }
    .fingerprint();
    Some(Method {
        ident: sig.ident.clone(),
        wire_name,
        is_mut: is_mut?,
        is_async: sig.asyncness.is_some(),
        args,
        output: output?,
        docs: method
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .cloned()
            .collect(),
        fingerprint,
        returns,
        undo,
        py,
    })
}

/// `attr`, if the block is `typed`; an error otherwise.
fn typed_only<'a>(
    attr: &'a syn::Attribute,
    typed: bool,
    errors: &mut Errors,
) -> Option<&'a syn::Attribute> {
    if typed {
        return Some(attr);
    }
    let name = attr.path().to_token_stream().to_string();
    errors.error(
        attr,
        format!("`#[{name}]` is for typed proxies: add `typed` to the `#[shared(..)]` options"),
    );
    None
}

/// What the proxies take for a parameter with these markers.
fn form(marks: &ParamMarks, typed: bool, declared: &Type, errors: &mut Errors) -> Form {
    if let Some(owner) = &marks.owner {
        if typed_only(owner, typed, errors).is_none() {
            return Form::Plain;
        }
        if !matches!(owner.meta, syn::Meta::Path(_)) {
            errors.error(owner, "`#[owner]` takes no arguments");
        }
        if declared.to_token_stream().to_string() != "u64" {
            errors.error(declared, "an `#[owner]` parameter is a `u64`");
        }
        return Form::Owner;
    }
    let Some(of) = &marks.of else {
        return Form::Plain;
    };
    if typed_only(of, typed, errors).is_none() {
        return Form::Plain;
    }
    match of.parse_args::<Type>() {
        Ok(Type::Reference(reference)) => Form::Borrowed((*reference.elem).clone()),
        Ok(ty @ Type::ImplTrait(_)) => Form::Operand(ty),
        Ok(ty) => Form::Value(ty),
        Err(error) => {
            errors.push(error);
            Form::Plain
        }
    }
}

/// Limits on the method as a whole: no generics, nothing unsafe or foreign.
fn check_signature(method: &ImplItemFn, errors: &mut Errors) {
    let sig = &method.sig;
    let name = &sig.ident;
    let generics = &sig.generics;
    if generics
        .params
        .iter()
        .any(|p| !matches!(p, syn::GenericParam::Lifetime(_)))
    {
        errors.error(
            generics,
            format!(
                "generic method `{name}` cannot be exposed: proxies need concrete types; \
                 make it non-generic, or keep it out of the exposed methods (not `pub`, or \
                 not in `exposed(...)`)"
            ),
        );
    } else if !generics.params.is_empty() {
        errors.error(
            generics,
            format!(
                "method `{name}` has lifetime parameters and cannot be exposed: arguments are \
                 decoded into values that live only for the call; use elided lifetimes (`&str`) \
                 or owned types"
            ),
        );
    } else if let Some(clause) = &generics.where_clause {
        errors.error(
            clause,
            format!("exposed method `{name}` cannot have a `where` clause"),
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.error(
            unsafety,
            format!(
                "unsafe method `{name}` cannot be exposed: a proxy call cannot uphold its contract"
            ),
        );
    }
    if let Some(abi) = &sig.abi {
        errors.error(
            abi,
            format!("method `{name}` with a foreign ABI cannot be exposed"),
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.error(
            variadic,
            format!("variadic method `{name}` cannot be exposed"),
        );
    }
    if let Some(cfg) = method
        .attrs
        .iter()
        .find(|a| a.path().is_ident("cfg") || a.path().is_ident("cfg_attr"))
    {
        errors.error(
            cfg,
            "#[cfg] on an exposed method is not supported: put it on a separate impl block",
        );
    }
    let unraw = name.unraw().to_string();
    if RESERVED.contains(&unraw.as_str()) {
        errors.error(
            name,
            format!("`{unraw}` is a method of every generated proxy; rename this method"),
        );
    }
}

/// `Some(true)` for `&mut self`, `Some(false)` for `&self`.
fn receiver_is_mut(sig: &syn::Signature, errors: &mut Errors) -> Option<bool> {
    let receiver = sig.receiver()?;
    // syn spells every receiver as a type: `&mut self` is `self: &mut Self`.
    if let Type::Reference(reference) = &*receiver.ty {
        if matches!(&*reference.elem, Type::Path(p) if p.qself.is_none() && p.path.is_ident("Self"))
        {
            return Some(reference.mutability.is_some());
        }
    }
    let how = if receiver.colon_token.is_none() {
        "`self` by value, which would move the object out of the server".to_string()
    } else {
        let ty = &receiver.ty;
        format!(
            "`self: {}`, but the server only lends its objects",
            quote::quote!(#ty)
        )
    };
    errors.error(
        receiver,
        format!(
            "`{}` takes {how}; use `&self` or `&mut self`, or keep it out of the exposed methods",
            sig.ident
        ),
    );
    None
}

/// The name a proxy gives a parameter: the binding's, without leading
/// underscores (the proxy uses every parameter), or `arg{position}`.
pub(crate) fn arg_name(pat: &Pat, position: usize) -> Ident {
    if let Pat::Ident(binding) = pat {
        let name = binding.ident.unraw().to_string();
        let trimmed = name.trim_start_matches('_');
        if binding.subpat.is_none() && !trimmed.is_empty() {
            if let Some(ident) = crate::names::ident(trimmed, binding.ident.span()) {
                return ident;
            }
        }
    }
    Ident::new(&format!("arg{position}"), pat.span())
}

/// Generated names (`arg0`, `x` from `_x`) must not collide.
fn dedupe_names(args: &mut [Arg]) {
    for i in 0..args.len() {
        while args[..i]
            .iter()
            .chain(&args[i + 1..])
            .any(|a| a.name == args[i].name)
        {
            let renamed = format!("{}_", args[i].name);
            args[i].name = Ident::new(&renamed, args[i].name.span());
        }
    }
}

/// The output of a `#[proxy]` method: `T`, `Result<T, E>` or `Option<T>`.
fn object_output(declared: &Type, self_ty: &Type, errors: &mut Errors) -> Option<Output> {
    let replaced = types::replace_self(declared, self_ty);
    let (shape, target) = match generic_args(&replaced) {
        Some((name, args)) if name == "Result" && args.len() == 2 => {
            (Shape::Result(args[1].clone()), args[0].clone())
        }
        Some((name, args)) if name == "Option" && args.len() == 1 => {
            (Shape::Option, args[0].clone())
        }
        _ => (Shape::Bare, replaced.clone()),
    };
    let is_named = matches!(&target, Type::Path(p) if p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| s.ident != "Result" && s.ident != "Option"));
    if !is_named {
        errors.error(
            declared,
            "a `#[proxy]` method returns a shared object: `T`, `Result<T, E>` or `Option<T>`, \
             where `T` has a `#[shared]` impl",
        );
        return None;
    }
    if let Shape::Result(error) = &shape {
        if let Err(e) = types::check_wire_type(error, Position::Return) {
            errors.push(e);
            return None;
        }
    }
    Some(Output::Object {
        shape,
        target,
        declared: declared.clone(),
    })
}

/// `Name<A, B>` → (`Name`, [A, B]) for a path type whose last segment has
/// only type arguments.
fn generic_args(ty: &Type) -> Option<(String, Vec<Type>)> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    let syn::PathArguments::AngleBracketed(bracketed) = &last.arguments else {
        return None;
    };
    let args = bracketed
        .args
        .iter()
        .map(|arg| match arg {
            syn::GenericArgument::Type(ty) => Some(ty.clone()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((last.ident.to_string(), args))
}
