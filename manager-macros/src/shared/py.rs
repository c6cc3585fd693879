//! `#[py(..)]`: how CPython's proxies call a served method, and how our
//! proxies call a CPython server's object, declared on the method itself.
//!
//! ```text
//! #[py("__getitem__", key)]
//! pub fn get(&self, key: Value) -> Result<Value, SyncError>
//! #[py("put", timeout = refused)]
//! pub async fn put(&self, item: Value, #[py(default = true)] block: bool, timeout: Option<Duration>)
//! ```
//!
//! Each method attribute becomes one entry of the type's Python table
//! (`Shared::PYTHON`); the method's own name and parameters fill it in, so
//! a renamed method renames its entry and no table names a method of ours
//! as a string. The runtime reads the table both ways (`python::names`
//! serves CPython's calls, the pickle client makes them).

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Ident, LitStr};

use crate::errors::Errors;

/// One `#[py(..)]` on a method.
pub(crate) struct Entry {
    /// The Python names (`"__repr__", "__str__"`).
    names: Vec<LitStr>,
    /// Flags and settings, as the runtime's `PyOptions` field names.
    options: Vec<(Ident, TokenStream)>,
    /// `plan = path`: a hand-written plan for CPython's calls.
    plan: Option<syn::Path>,
}

/// `#[py(..)]` on a parameter.
#[derive(Default)]
pub(crate) struct Param {
    /// `default = ..`: Python's default when the argument is not given.
    default: Option<TokenStream>,
    /// `name = ".."`: Python's keyword, when it is not our parameter's
    /// name.
    name: Option<LitStr>,
    /// `keyword`: Python takes it by keyword only.
    keyword: bool,
}

/// Flags: `key`, `slice`, `attr`, `incoming`, `outgoing`.
const FLAGS: &[&str] = &["key", "slice", "attr", "incoming", "outgoing"];

/// Settings and the runtime's enum each names a variant of.
const SETTINGS: &[(&str, &str, &[&str])] = &[
    (
        "reply",
        "PyReply",
        &["tuple", "pairs", "dict", "nothing", "namespace", "next"],
    ),
    (
        "back",
        "PyBack",
        &[
            "nothing",
            "is_zero",
            "none_on_key_error",
            "false_on_attribute_error",
            "reversed",
            "namespace_map",
            "attribute_names",
            "next",
        ],
    ),
    (
        "timeout",
        "PyTimeout",
        &["lock", "refused", "semaphore", "zero"],
    ),
    (
        "runtime_error",
        "PyException",
        &["ValueError", "AttributeError"],
    ),
    (
        "key_error",
        "PyException",
        &["ValueError", "AttributeError"],
    ),
];

fn camel(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Parse one method's `#[py(..)]`.
pub(crate) fn entry(attr: &syn::Attribute, errors: &mut Errors) -> Option<Entry> {
    let mut entry = Entry {
        names: Vec::new(),
        options: Vec::new(),
        plan: None,
    };
    let parsed = attr.parse_args_with(|input: syn::parse::ParseStream| {
        while !input.is_empty() {
            if input.peek(LitStr) {
                entry.names.push(input.parse()?);
            } else {
                let name: Ident = input.parse()?;
                let text = name.to_string();
                if FLAGS.contains(&text.as_str()) {
                    entry.options.push((name, quote!(true)));
                } else if text == "plan" {
                    input.parse::<syn::Token![=]>()?;
                    entry.plan = Some(input.parse()?);
                } else if let Some((_, ty, variants)) =
                    SETTINGS.iter().find(|(setting, _, _)| *setting == text)
                {
                    input.parse::<syn::Token![=]>()?;
                    let value: Ident = input.parse()?;
                    if !variants.contains(&value.to_string().as_str()) {
                        return Err(syn::Error::new(
                            value.span(),
                            format!("`{text}` is one of: {}", variants.join(", ")),
                        ));
                    }
                    let ty = Ident::new(ty, value.span());
                    let variant = Ident::new(&camel(&value.to_string()), value.span());
                    entry.options.push((name, quote!(#ty::#variant)));
                } else {
                    return Err(syn::Error::new(
                        name.span(),
                        format!(
                            "unknown `#[py]` option `{text}`; expected Python names (\"name\"), \
                             `plan = path`, one of {}, or a setting ({})",
                            FLAGS.join(", "),
                            SETTINGS
                                .iter()
                                .map(|(s, _, _)| *s)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
            if !input.is_empty() {
                input.parse::<syn::Token![,]>()?;
            }
        }
        Ok(())
    });
    if let Err(error) = parsed {
        errors.push(error);
        return None;
    }
    let has = |flag: &str| entry.options.iter().any(|(name, _)| name == flag);
    if entry.names.is_empty() && !has("attr") {
        errors.error(
            attr,
            "`#[py(..)]` names the Python method: `#[py(\"__getitem__\")]`",
        );
        return None;
    }
    Some(entry)
}

/// Parse a parameter's `#[py(default = .., name = "..")]`.
pub(crate) fn param(attr: Option<&syn::Attribute>, errors: &mut Errors) -> Param {
    let mut param = Param::default();
    let Some(attr) = attr else {
        return param;
    };
    let parsed = attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("default") {
            let value: syn::Expr = meta.value()?.parse()?;
            param.default = Some(match &value {
                syn::Expr::Path(path) if path.path.is_ident("None") => quote!(PyDefault::None),
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Bool(b),
                    ..
                }) => quote!(PyDefault::Bool(#b)),
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Int(i),
                    ..
                }) => quote!(PyDefault::Int(#i)),
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "a Python default is `None`, `true`, `false` or an integer",
                    ))
                }
            });
            Ok(())
        } else if meta.path.is_ident("keyword") {
            param.keyword = true;
            Ok(())
        } else if meta.path.is_ident("name") {
            param.name = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error("expected `default = ..`, `name = \"..\"` or `keyword`"))
        }
    });
    if let Err(error) = parsed {
        errors.push(error);
    }
    param
}

/// What the expansion of one entry needs to know of its method.
pub(crate) struct Method<'a> {
    /// Our method's wire name.
    pub(crate) wire_name: &'a str,
    /// Its index in the type's method table.
    pub(crate) index: usize,
    /// Each parameter: its name, its owned type, whether it is the owner,
    /// its `#[py]`.
    pub(crate) params: Vec<(String, TokenStream, bool, &'a Param)>,
    /// Whether it returns nothing (`()` or `Result<(), E>`).
    pub(crate) unit: bool,
}

/// The `PyMethod` of one entry, at paths under `private`.
pub(crate) fn expand(entry: &Entry, method: &Method<'_>, private: &TokenStream) -> TokenStream {
    let names = &entry.names;
    let wire_name = method.wire_name;
    let index = method.index;
    let params = method.params.iter().map(|(name, ty, owner, param)| {
        let name = match &param.name {
            Some(lit) => lit.value(),
            None => name.clone(),
        };
        let kind = if *owner {
            quote!(#private::PyKind::Owner)
        } else {
            quote!(<#ty as #private::PyArg>::KIND)
        };
        let default = match &param.default {
            Some(default) => quote!(#private::#default),
            None => quote!(#private::PyDefault::Required),
        };
        let keyword = param.keyword;
        quote!(#private::PyParam { name: #name, kind: #kind, default: #default, keyword: #keyword })
    });
    let options = entry.options.iter().map(|(name, value)| {
        let value = if value.to_string() == "true" {
            value.clone()
        } else {
            quote!(#private::#value)
        };
        quote!(#name: #value,)
    });
    let unit = method.unit.then(|| quote!(unit: true,));
    let plan = match &entry.plan {
        Some(path) => quote!(::core::option::Option::Some(#path)),
        None => quote!(::core::option::Option::None),
    };
    quote! {
        #private::PyMethod {
            names: &[#(#names),*],
            method: #wire_name,
            index: #index,
            params: &[#(#params),*],
            options: #private::PyOptions { #(#options)* #unit ..#private::PyOptions::DEFAULT },
            plan: #plan,
        }
    }
}
