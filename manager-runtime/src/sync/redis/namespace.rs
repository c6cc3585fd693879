//! `Namespace` in Redis: a `dict` keyed by attribute names (the dict's
//! keys and scripts), so attributes keep the order they were first set
//! in, as the in-memory namespace's do.
#![forbid(unsafe_code)]

use std::sync::Arc;

use super::dict;
use crate::__private::{decode_args, CallContext, Outcome};
use crate::__private::{ready, reply, RedisObject};
use crate::sync::namespace::check_name;
use crate::sync::server::Namespace;
use crate::value::Value;
use crate::SyncError;

pub(super) fn call(
    namespace: Arc<RedisObject>,
    name: &'static str,
    args: &[u8],
    cx: &CallContext,
) -> Outcome {
    let n = &*namespace;
    ready(|| match name {
        "getattr" => {
            let (attribute,): (String,) = decode_args(name, args)?;
            let value = dict::get(n, &Value::from(attribute.as_str()))?;
            reply(value.ok_or_else(|| Namespace::missing(&attribute)), cx)
        }
        "setattr" => {
            let (attribute, value): (String, Value) = decode_args(name, args)?;
            if let Err(e) = check_name(&attribute) {
                return reply(Err::<(), _>(e), cx);
            }
            dict::set_all(n, &[(Value::from(attribute.as_str()), value)])?;
            reply(Ok::<(), SyncError>(()), cx)
        }
        "delattr" => {
            let (attribute,): (String,) = decode_args(name, args)?;
            let removed = dict::remove(n, &Value::from(attribute.as_str()))?;
            reply(
                removed
                    .map(drop)
                    .ok_or_else(|| Namespace::missing(&attribute)),
                cx,
            )
        }
        "hasattr" => {
            let (attribute,): (String,) = decode_args(name, args)?;
            reply(dict::contains(n, &Value::from(attribute.as_str()))?, cx)
        }
        "attributes" => {
            let names: Vec<String> = dict::entries(n, "k")?
                .into_iter()
                .map(|name| match name {
                    Value::Str(name) => name,
                    other => other.repr(),
                })
                .collect();
            reply(names, cx)
        }
        "vars" => reply(Value::Map(dict::items(n)?), cx),
        "repr" => {
            let mut items: Vec<String> = dict::items(n)?
                .into_iter()
                .map(|(name, value)| match name {
                    Value::Str(name) => format!("{name}={}", value.repr()),
                    other => format!("{}={}", other.repr(), value.repr()),
                })
                .collect();
            items.sort();
            reply(format!("Namespace({})", items.join(", ")), cx)
        }
        _ => Err(n.not_served(name)),
    })
}
