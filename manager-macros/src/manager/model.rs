//! What `manager!` declares: the validated manager and its typeids.
//!
//! Every mistake is recorded at its tokens; an entry with a mistake is left
//! out (or keeps a harmless default) so the rest still expands.

use std::collections::HashSet;

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Ident, Pat, Type, Visibility};

use super::parse::{EntryInput, Input};
use crate::errors::Errors;
use crate::names;
use crate::types::{self, Position, WireType};

/// Entry attributes `manager!` accepts.
const ENTRY_ATTRIBUTES: &[&str] = &["exposed", "singleton", "create_method"];

/// Methods of the manager type or of `BaseManager` (reached through
/// `Deref`) that a create method must not shadow. A test checks it against
/// `BaseManager`'s source.
const RESERVED: &[&str] = &[
    "new",
    "with_options",
    "__registry",
    "options",
    "start",
    "start_with_initializer",
    "start_in_thread",
    "connect",
    "get_server",
    "shutdown",
    "address",
    "client",
    "create",
    "create_async",
    "number_of_objects",
    "debug_info",
    "server_pid",
    "server_exit_status",
    "proxy_from_token",
];

/// A manager type.
pub(crate) struct Manager {
    /// Outer attributes of the struct.
    pub(crate) attrs: Vec<Attribute>,
    /// Its visibility.
    pub(crate) vis: Visibility,
    /// Its name.
    pub(crate) ident: Ident,
    /// The valid typeids.
    pub(crate) entries: Vec<Entry>,
    /// Where the runtime is (`#[manager(crate = "...")]`).
    pub(crate) runtime: crate::paths::Runtime,
}

/// One typeid the manager serves.
pub(crate) struct Entry {
    /// The typeid on the wire.
    pub(crate) typeid: String,
    /// The served type.
    pub(crate) ty: Type,
    /// `#[exposed(...)]`, if restricted.
    pub(crate) exposed: Option<Vec<Ident>>,
    /// How the server builds objects of this typeid.
    pub(crate) constructor: Constructor,
    /// The create methods, unless `#[create_method = false]`.
    pub(crate) create: Option<Create>,
}

/// How the server builds an object.
pub(crate) enum Constructor {
    /// `Default::default()` per request.
    Default,
    /// A closure with typed parameters, called per request with the create
    /// method's arguments.
    Closure {
        /// The closure as written.
        expr: Expr,
        /// Its parameters, which become the create method's.
        params: Vec<Param>,
    },
    /// Any other expression: a callable taking no arguments.
    Call(Expr),
    /// One object for every request, from this zero-argument callable (or
    /// `Default::default`).
    Singleton(Option<Expr>),
}

/// A parameter of a constructor closure (and of the create method).
pub(crate) struct Param {
    /// The name the create method uses.
    pub(crate) name: Ident,
    /// Its type and how it travels.
    pub(crate) wire: WireType,
}

/// The create methods of a typeid.
pub(crate) struct Create {
    /// `maths`.
    pub(crate) method: Ident,
    /// `maths_async`.
    pub(crate) async_method: Ident,
    /// The entry's doc comments.
    pub(crate) docs: Vec<Attribute>,
}

impl Entry {
    /// The create method's parameters.
    pub(crate) fn params(&self) -> &[Param] {
        match &self.constructor {
            Constructor::Closure { params, .. } => params,
            _ => &[],
        }
    }
}

/// Validate `input`, keeping every valid entry.
pub(crate) fn build(input: Input, errors: &mut Errors) -> Manager {
    if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
        errors.error(&input.generics, "a manager type cannot be generic");
    }
    let mut typeids = HashSet::new();
    let mut method_names: HashSet<String> = RESERVED.iter().map(|s| s.to_string()).collect();
    let mut entries = Vec::new();
    if let Some(error) = input.body_error {
        errors.push(error);
    }
    for entry in input.entries {
        let typeid = entry.name.unraw().to_string();
        if !typeids.insert(typeid.clone()) {
            errors.error(
                &entry.name,
                format!("typeid `{typeid}` is registered twice in this manager"),
            );
            continue;
        }
        if let Some(entry) = build_entry(entry, typeid, &mut method_names, errors) {
            entries.push(entry);
        }
    }
    let (attrs, runtime) = manager_options(input.attrs, errors);
    Manager {
        attrs,
        vis: input.vis,
        ident: input.ident,
        entries,
        runtime,
    }
}

/// Take `#[manager(crate = "path")]` off the struct's attributes.
fn manager_options(
    attrs: Vec<Attribute>,
    errors: &mut Errors,
) -> (Vec<Attribute>, crate::paths::Runtime) {
    let mut kept = Vec::new();
    let mut krate: Option<syn::Path> = None;
    for attr in attrs {
        if !attr.path().is_ident("manager") {
            kept.push(attr);
            continue;
        }
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let value: Expr = meta.value()?.parse()?;
                if krate.is_some() {
                    errors.error(&meta.path, "duplicate option `crate`");
                } else {
                    match crate::paths::parse_crate(&value) {
                        Ok(path) => krate = Some(path),
                        Err(error) => errors.push(error),
                    }
                }
                Ok(())
            } else {
                Err(meta.error("unknown manager option; the one option is `crate = \"path\"`"))
            }
        });
        if let Err(error) = parsed {
            errors.push(error);
        }
    }
    let runtime = krate
        .map(crate::paths::Runtime::renamed)
        .unwrap_or_default();
    (kept, runtime)
}

/// What the entry's attributes say.
#[derive(Default)]
struct EntryAttributes {
    docs: Vec<Attribute>,
    exposed: Option<Vec<Ident>>,
    singleton: Option<Span>,
    no_create_method: Option<Span>,
}

fn entry_attributes(attrs: Vec<Attribute>, errors: &mut Errors) -> EntryAttributes {
    let mut parsed = EntryAttributes::default();
    for attr in attrs {
        let name = attr
            .path()
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        match name.as_str() {
            "doc" => parsed.docs.push(attr),
            "exposed" => match attr.parse_args_with(
                syn::punctuated::Punctuated::<Ident, syn::Token![,]>::parse_terminated,
            ) {
                Ok(_) if parsed.exposed.is_some() => {
                    errors.error(&attr, "duplicate `#[exposed(...)]`")
                }
                Ok(list) => {
                    let mut names: Vec<Ident> = Vec::new();
                    for ident in list {
                        if names.contains(&ident) {
                            errors.error(&ident, format!("`{ident}` is listed twice"));
                        } else {
                            names.push(ident);
                        }
                    }
                    parsed.exposed = Some(names);
                }
                Err(error) => errors.push(syn::Error::new(
                    error.span(),
                    "expected the exposed methods as `#[exposed(method, ...)]`",
                )),
            },
            "singleton" => {
                if !matches!(attr.meta, syn::Meta::Path(_)) {
                    errors.error(&attr, "`#[singleton]` takes no arguments");
                } else if parsed.singleton.is_some() {
                    errors.error(&attr, "duplicate `#[singleton]`");
                } else {
                    parsed.singleton = Some(attr.span());
                }
            }
            "create_method" => match &attr.meta {
                syn::Meta::NameValue(syn::MetaNameValue {
                    value:
                        Expr::Lit(syn::ExprLit {
                            lit: syn::Lit::Bool(value),
                            ..
                        }),
                    ..
                }) => {
                    if !value.value {
                        parsed.no_create_method = Some(attr.span());
                    }
                }
                _ => errors.error(&attr, "expected `#[create_method = false]`"),
            },
            _ => {
                let hint = match names::closest(&name, ENTRY_ATTRIBUTES) {
                    Some(valid) => format!(" (did you mean `{valid}`?)"),
                    None => String::new(),
                };
                errors.error(
                    attr.path(),
                    format!(
                        "unknown entry attribute `{name}`{hint}; valid ones: \
                         `#[exposed(method, ...)]`, `#[singleton]`, `#[create_method = false]`"
                    ),
                );
            }
        }
    }
    parsed
}

fn build_entry(
    entry: EntryInput,
    typeid: String,
    method_names: &mut HashSet<String>,
    errors: &mut Errors,
) -> Option<Entry> {
    let before = errors.count();
    let attrs = entry_attributes(entry.attrs, errors);
    let constructor = constructor(entry.constructor, attrs.singleton.is_some(), errors);
    if let Some(span) = attrs.no_create_method {
        if attrs.singleton.is_some() {
            errors.push(syn::Error::new(
                span,
                "a `#[singleton]` without a create method could never be created",
            ));
        } else if !matches!(constructor, Some(Constructor::Default)) {
            errors.push(syn::Error::new(
                span,
                "a typeid with `#[create_method = false]` is only returned by methods, never \
                 built by the server: remove its constructor",
            ));
        }
    }
    let create = match attrs.no_create_method {
        Some(_) => None,
        None => create_methods(&entry.name, &typeid, attrs.docs, method_names, errors),
    };
    if errors.count() > before {
        return None;
    }
    Some(Entry {
        typeid,
        ty: entry.ty,
        exposed: attrs.exposed,
        constructor: constructor?,
        create,
    })
}

fn constructor(expr: Option<Expr>, singleton: bool, errors: &mut Errors) -> Option<Constructor> {
    let Some(expr) = expr else {
        return Some(if singleton {
            Constructor::Singleton(None)
        } else {
            Constructor::Default
        });
    };
    let Expr::Closure(closure) = &expr else {
        return Some(if singleton {
            Constructor::Singleton(Some(expr))
        } else {
            Constructor::Call(expr)
        });
    };
    if singleton {
        if !closure.inputs.is_empty() {
            errors.error(
                &closure.inputs,
                "a `#[singleton]` is built once, not per request: its constructor takes no arguments",
            );
            return None;
        }
        return Some(Constructor::Singleton(Some(expr)));
    }
    let mut params = Vec::new();
    for (position, input) in closure.inputs.iter().enumerate() {
        let Pat::Type(typed) = input else {
            errors.error(
                input,
                "give this parameter a type (`|start: i64| ...`): it becomes an argument of the \
                 create method",
            );
            continue;
        };
        if let Err(error) = types::check_wire_type(&typed.ty, Position::Argument) {
            errors.push(error);
            continue;
        }
        let name = crate::shared::arg_name(&typed.pat, position);
        if params.iter().any(|p: &Param| p.name == name) {
            errors.error(&typed.pat, "two parameters with the same name");
            continue;
        }
        params.push(Param {
            name,
            wire: WireType::new((*typed.ty).clone()),
        });
    }
    Some(Constructor::Closure { expr, params })
}

fn create_methods(
    name: &Ident,
    typeid: &str,
    docs: Vec<Attribute>,
    taken: &mut HashSet<String>,
    errors: &mut Errors,
) -> Option<Create> {
    let snake = names::snake_case(typeid);
    let async_snake = format!("{snake}_async");
    for candidate in [&snake, &async_snake] {
        if !taken.insert(candidate.clone()) {
            let why = if RESERVED.contains(&candidate.as_str()) {
                "a method of every manager"
            } else {
                "the create method of an earlier typeid"
            };
            errors.error(
                name,
                format!("the create method `{candidate}` of typeid `{typeid}` would clash with {why}; rename the typeid"),
            );
            return None;
        }
    }
    let (Some(method), Some(async_method)) = (
        names::ident(&snake, name.span()),
        names::ident(&async_snake, name.span()),
    ) else {
        errors.error(
            name,
            format!("typeid `{typeid}` cannot name a create method; rename it"),
        );
        return None;
    };
    Some(Create {
        method,
        async_method,
        docs,
    })
}

#[cfg(test)]
mod tests {
    use super::RESERVED;

    /// Every method `BaseManager` has is reserved: a create method of the
    /// same name would hide it behind the manager's `Deref`.
    #[test]
    fn reserved_names_cover_every_base_manager_method() {
        let source = include_str!("../../../manager-runtime/src/manager.rs");
        let file = syn::parse_file(source).expect("manager.rs parses");
        let mut methods = Vec::new();
        for item in file.items {
            let syn::Item::Impl(block) = item else {
                continue;
            };
            let is_base =
                matches!(&*block.self_ty, syn::Type::Path(p) if p.path.is_ident("BaseManager"));
            if !is_base || block.trait_.is_some() {
                continue;
            }
            for item in block.items {
                if let syn::ImplItem::Fn(method) = item {
                    if matches!(method.vis, syn::Visibility::Public(_)) {
                        methods.push(method.sig.ident.to_string());
                    }
                }
            }
        }
        assert!(
            methods.len() > 10,
            "found BaseManager's methods: {methods:?}"
        );
        let missing: Vec<_> = methods
            .iter()
            .filter(|m| !RESERVED.contains(&m.as_str()))
            .collect();
        assert!(missing.is_empty(), "add to RESERVED: {missing:?}");
    }
}
