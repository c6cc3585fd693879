//! Syntax of `#[shared(...)]`: its options and the item it annotates.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Ident, ImplItem, Item, ItemImpl, LitStr};

use crate::errors::Errors;
use crate::names;

/// The option names `#[shared(...)]` accepts.
const OPTIONS: &[&str] = &[
    "typeid",
    "exposed",
    "crate",
    "typed",
    "own_display",
    "proxy",
];

/// The options of `#[shared(...)]`.
#[derive(Default)]
pub(crate) struct Options {
    /// `typeid = "Name"`.
    pub(crate) typeid: Option<LitStr>,
    /// `exposed(a, b)`.
    pub(crate) exposed: Option<Vec<Ident>>,
    /// `crate = "path"`: the `managers` crate under another name.
    pub(crate) krate: Option<syn::Path>,
    /// `typed` or `typed(K, V)`: typed proxies over a server whose elements
    /// are dynamic values (the built-ins), generic over these parameters.
    pub(crate) typed: Option<Vec<Ident>>,
    /// `own_display`: the proxies' `Display` is written by hand.
    pub(crate) own_display: bool,
    /// `proxy = "Name"`: the proxies are `NameProxy` and
    /// `NameAsyncProxy` (the type's name otherwise).
    pub(crate) proxy: Option<Ident>,
}

/// Parse the options, recording every mistake (unknown or duplicate
/// options, bad values) and keeping what is valid.
pub(crate) fn options(args: TokenStream, errors: &mut Errors) -> Options {
    let mut options = Options::default();
    let parser = syn::meta::parser(|meta| {
        let name = meta
            .path
            .get_ident()
            .map(Ident::unraw)
            .map(|i| i.to_string());
        match name.as_deref() {
            Some("typeid") => {
                let value: syn::Expr = meta.value()?.parse()?;
                if options.typeid.is_some() {
                    errors.error(&meta.path, "duplicate option `typeid`");
                } else {
                    options.typeid = typeid(&value, errors);
                }
            }
            Some("crate") => {
                let value: syn::Expr = meta.value()?.parse()?;
                if options.krate.is_some() {
                    errors.error(&meta.path, "duplicate option `crate`");
                } else {
                    match crate::paths::parse_crate(&value) {
                        Ok(path) => options.krate = Some(path),
                        Err(error) => errors.push(error),
                    }
                }
            }
            Some("own_display") => options.own_display = true,
            Some("proxy") => {
                let value: LitStr = meta.value()?.parse()?;
                match value.parse::<Ident>() {
                    Ok(ident) => options.proxy = Some(ident),
                    Err(_) => errors.error(&value, "expected a name: `proxy = \"Queue\"`"),
                }
            }
            Some("typed") => {
                let mut params = Vec::new();
                if meta.input.peek(syn::token::Paren) {
                    meta.parse_nested_meta(|inner| {
                        match inner.path.get_ident() {
                            Some(ident) if !params.contains(ident) => params.push(ident.clone()),
                            _ => {
                                errors.error(&inner.path, "expected distinct type parameter names")
                            }
                        }
                        Ok(())
                    })?;
                }
                if options.typed.is_some() {
                    errors.error(&meta.path, "duplicate option `typed`");
                } else {
                    options.typed = Some(params);
                }
            }
            Some("exposed") => {
                if !meta.input.peek(syn::token::Paren) {
                    return Err(meta.error("write the exposed methods as `exposed(a, b)`"));
                }
                let mut names = Vec::new();
                meta.parse_nested_meta(|inner| {
                    match inner.path.get_ident() {
                        Some(ident)
                            if inner.input.is_empty() || inner.input.peek(syn::Token![,]) =>
                        {
                            if names.contains(ident) {
                                errors.error(ident, format!("`{ident}` is listed twice"));
                            } else {
                                names.push(ident.clone());
                            }
                        }
                        _ => errors.error(&inner.path, "expected a method name"),
                    }
                    skip_value(&inner)
                })?;
                if options.exposed.is_some() {
                    errors.error(&meta.path, "duplicate option `exposed`");
                } else {
                    options.exposed = Some(names);
                }
            }
            _ => {
                let path = &meta.path;
                let written = name.unwrap_or_else(|| quote::quote!(#path).to_string());
                let hint = match names::closest(&written, OPTIONS) {
                    Some(option) => format!(" (did you mean `{option}`?)"),
                    None => String::new(),
                };
                errors.error(
                    &meta.path,
                    format!(
                        "unknown option `{written}`{hint}; valid options: `typeid = \"Name\"`, \
                         `exposed(method, ...)`, `crate = \"path\"`, `typed(T, ...)`, \
                         `proxy = \"Name\"`, `own_display`"
                    ),
                );
                skip_value(&meta)?;
            }
        }
        Ok(())
    });
    if let Err(error) = parser.parse2(args) {
        errors.push(error);
    }
    options
}

fn typeid(value: &syn::Expr, errors: &mut Errors) -> Option<LitStr> {
    match value {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(lit),
            ..
        }) if !lit.value().is_empty() => Some(lit.clone()),
        _ => {
            errors.error(
                value,
                "expected the typeid as a non-empty string: `typeid = \"Name\"`",
            );
            None
        }
    }
}

/// Consume an option's `= value` or `(...)`, to go on to the next option.
fn skip_value(meta: &syn::meta::ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.input.parse::<proc_macro2::Group>()?;
    }
    Ok(())
}

/// The annotated impl block, with our markers taken off.
pub(crate) struct Input {
    /// The block as the compiler must see it (no `#[proxy]`, `#[returns]`,
    /// `#[undo]`, `#[py]`, and no `#[owner]`, `#[of]` or `#[py]` on
    /// parameters).
    pub(crate) item: ItemImpl,
    /// For each item of the block, the markers it had.
    pub(crate) marks: Vec<Marks>,
}

/// Our markers on one method of the block.
#[derive(Default)]
pub(crate) struct Marks {
    /// `#[proxy]`: the method returns a served object.
    pub(crate) proxy: Option<syn::Attribute>,
    /// `#[returns(T)]`: the typed proxies' result type.
    pub(crate) returns: Option<syn::Attribute>,
    /// `#[undo(path)]`: what the async proxy does with a result nobody
    /// awaits any more.
    pub(crate) undo: Option<syn::Attribute>,
    /// `#[py(...)]`: the method's Python names.
    pub(crate) py: Vec<syn::Attribute>,
    /// For each parameter after the receiver, its markers.
    pub(crate) params: Vec<ParamMarks>,
}

/// Our markers on one parameter.
#[derive(Default, Clone)]
pub(crate) struct ParamMarks {
    /// `#[owner]`: the calling thread or task, filled in by the proxy.
    pub(crate) owner: Option<syn::Attribute>,
    /// `#[of(T)]`, `#[of(&T)]`, `#[of(impl Trait)]`: the proxy's type for a
    /// dynamic value.
    pub(crate) of: Option<syn::Attribute>,
    /// `#[py(...)]`: how Python passes it.
    pub(crate) py: Option<syn::Attribute>,
}

/// An item `#[shared]` refuses whole.
pub(crate) struct Refused {
    /// What to emit instead: the item unchanged, so the rest of the crate
    /// still sees it.
    pub(crate) tokens: TokenStream,
    /// The impl block, if it was one (a trait impl): its type gets stub
    /// proxies so its uses report nothing more.
    pub(crate) block: Option<Box<ItemImpl>>,
}

/// Parse the annotated item.
pub(crate) fn item(tokens: TokenStream, errors: &mut Errors) -> Result<Input, Refused> {
    let refused = |tokens| Refused {
        tokens,
        block: None,
    };
    let item = match syn::parse2::<Item>(tokens.clone()) {
        Ok(item) => item,
        Err(error) => {
            errors.push(error);
            return Err(refused(tokens));
        }
    };
    let mut item = match item {
        Item::Impl(item) => item,
        other => {
            let (span, what) = describe(&other);
            errors.push(syn::Error::new(
                span,
                format!(
                    "#[shared] goes on an inherent `impl` block (`impl Type {{ ... }}`), not on {what}: \
                     it serves the block's methods"
                ),
            ));
            return Err(refused(tokens));
        }
    };
    let marks = item
        .items
        .iter_mut()
        .map(|i| take_marks(i, errors))
        .collect();
    if let Some((_, path, _)) = &item.trait_ {
        errors.error(
            path,
            "#[shared] goes on an inherent `impl` block (`impl Type { ... }`), not on a trait impl",
        );
        return Err(Refused {
            tokens: quote::quote!(#item),
            block: Some(Box::new(item)),
        });
    }
    Ok(Input { item, marks })
}

fn describe(item: &Item) -> (proc_macro2::Span, &'static str) {
    match item {
        Item::Struct(s) => (s.ident.span(), "a struct definition"),
        Item::Enum(e) => (e.ident.span(), "an enum definition"),
        Item::Union(u) => (u.ident.span(), "a union definition"),
        Item::Fn(f) => (f.sig.ident.span(), "a function"),
        Item::Trait(t) => (t.ident.span(), "a trait definition"),
        Item::Mod(m) => (m.ident.span(), "a module"),
        other => (other.span(), "this item"),
    }
}

/// Take one marker attribute `name` off `attrs`; a second is an error.
fn take(
    attrs: &mut Vec<syn::Attribute>,
    name: &str,
    errors: &mut Errors,
) -> Option<syn::Attribute> {
    let position = attrs.iter().position(|a| a.path().is_ident(name))?;
    let attr = attrs.remove(position);
    while let Some(second) = attrs.iter().position(|a| a.path().is_ident(name)) {
        errors.error(attrs.remove(second), format!("duplicate `#[{name}]`"));
    }
    Some(attr)
}

fn take_marks(item: &mut ImplItem, errors: &mut Errors) -> Marks {
    let ImplItem::Fn(method) = item else {
        return Marks::default();
    };
    let proxy = take(&mut method.attrs, "proxy", errors);
    if let Some(attr) = &proxy {
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            errors.error(attr, "`#[proxy]` takes no arguments");
        }
    }
    let mut py = Vec::new();
    while let Some(position) = method.attrs.iter().position(|a| a.path().is_ident("py")) {
        py.push(method.attrs.remove(position));
    }
    let params = method
        .sig
        .inputs
        .iter_mut()
        .filter_map(|input| match input {
            syn::FnArg::Typed(typed) => Some(ParamMarks {
                owner: take(&mut typed.attrs, "owner", errors),
                of: take(&mut typed.attrs, "of", errors),
                py: take(&mut typed.attrs, "py", errors),
            }),
            syn::FnArg::Receiver(_) => None,
        })
        .collect();
    Marks {
        proxy,
        returns: take(&mut method.attrs, "returns", errors),
        undo: take(&mut method.attrs, "undo", errors),
        py,
        params,
    }
}
