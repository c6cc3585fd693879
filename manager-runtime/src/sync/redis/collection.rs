//! `list` and `set` in Redis: the items in a LIST `i` (a set's distinct,
//! in the order they came), and `v`, a version every change bumps.
//!
//! A list's hot methods are Redis commands: `append`, `len`, indexing,
//! `to_vec` (a set's `len`). Every other method reads the items and the
//! version in one script, runs the **in-memory built-in's own method** on
//! them, so its semantics are exactly the in-memory one's (Python's
//! equality, slices with steps, `sort`, the set algebra), and, if the
//! items changed, writes them back only if the version is still the one
//! it read, trying again otherwise: each call is atomic, and costs O(n).
//! An operand that is another list, set or dict in this Redis (`extend`,
//! `union`, ...) is read from Redis, whichever gateway its token names.
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::sync::Arc;

use super::{command, dict, values};
use crate::__private::{call_scratch, RedisReply, Shared};
use crate::__private::{decode_args, encode_args, CallContext, Outcome};
use crate::__private::{ready, reply, stored, unstored, unstored_opt, RedisObject};
use crate::sync::server::{Dict, List, Set};
use crate::value::Value;
use crate::{RemoteError, SyncError};

pub(super) const PARTS: &[&str] = &["i", "v"];

/// `{version, {items}}`.
const LOAD: &str =
    "return {redis.call('GET', KEYS[2]) or '0', redis.call('LRANGE', KEYS[1], 0, -1)}";

/// Replace the items by ARGV from 3 on if the version is still ARGV\[2\]:
/// 1, or 0 if it changed meanwhile.
const REPLACE: &str = "if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[2] then return 0 end \
     redis.call('DEL', KEYS[1]) \
     for i = 3, #ARGV, 1000 do \
       redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV))) \
     end \
     redis.call('INCR', KEYS[2]) \
     touch(KEYS[1], KEYS[2]) \
     return 1";

/// Append ARGV\[2\].
const APPEND: &str = "redis.call('RPUSH', KEYS[1], ARGV[2]) \
     redis.call('INCR', KEYS[2]) \
     touch(KEYS[1], KEYS[2]) \
     return 1";

/// How many times a method is run again on fresh items when others
/// changed them between its read and its write.
const TRIES: usize = 100;

/// The methods whose one argument may be another container.
const OPERAND_METHODS: &[&str] = &[
    "extend",
    "concat",
    "update",
    "union",
    "intersection",
    "difference",
    "symmetric_difference",
    "intersection_update",
    "difference_update",
    "symmetric_difference_update",
    "isdisjoint",
    "issubset",
    "issuperset",
    "is_proper_subset",
    "is_proper_superset",
];

/// An in-memory container, made for one call from the items in Redis.
trait Scratch: Shared + Sized {
    fn scratch(items: Vec<Value>) -> Self;
    fn items(&self) -> Vec<Value>;
    /// Add an operand's elements (a constructor's).
    fn fill(&self, operand: Value) -> Result<(), SyncError>;
}

impl Scratch for List {
    fn scratch(items: Vec<Value>) -> Self {
        List::scratch(items)
    }
    fn items(&self) -> Vec<Value> {
        self.to_vec()
    }
    fn fill(&self, operand: Value) -> Result<(), SyncError> {
        self.extend(operand)
    }
}

impl Scratch for Set {
    fn scratch(items: Vec<Value>) -> Self {
        Set::scratch(items)
    }
    fn items(&self) -> Vec<Value> {
        self.to_vec()
    }
    fn fill(&self, operand: Value) -> Result<(), SyncError> {
        self.update(operand)
    }
}

/// The items and version, as stored.
fn load(object: &RedisObject) -> Result<(Vec<u8>, Vec<Vec<u8>>), RemoteError> {
    let reply = object.script(LOAD, PARTS, Vec::new())?;
    let mut parts = reply.into_items().unwrap_or_default().into_iter();
    let version = parts.next().and_then(RedisReply::into_bytes);
    let items = parts.next().and_then(RedisReply::into_items);
    match (version, items) {
        (Some(version), Some(items)) => Ok((
            version,
            items
                .into_iter()
                .map(|item| item.into_bytes().unwrap_or_default())
                .collect(),
        )),
        _ => Err(RemoteError::Backend(
            "Redis gave no items and version for a container".into(),
        )),
    }
}

/// Items as stored, read back.
fn decoded(items: &[Vec<u8>]) -> Result<Vec<Value>, RemoteError> {
    items.iter().map(|item| unstored(item)).collect()
}

/// Items as they are stored.
fn encoded(items: &[Value]) -> Result<Vec<Vec<u8>>, RemoteError> {
    items.iter().map(stored).collect()
}

/// Write `items` if the version is still `version`: whether it was.
fn store_if(
    object: &RedisObject,
    version: Vec<u8>,
    items: Vec<Vec<u8>>,
) -> Result<bool, RemoteError> {
    let mut args = Vec::with_capacity(items.len() + 1);
    args.push(version);
    args.extend(items);
    Ok(object.script(REPLACE, PARTS, args)?.int() == Some(1))
}

/// The elements of a container in this Redis that `token` names (a
/// dict's keys), or `None` if it names none.
fn elements_of(
    object: &RedisObject,
    token: &crate::proxy::Token,
) -> Result<Option<Vec<Value>>, RemoteError> {
    let Some((face, peer)) = object.any_peer(token.id)? else {
        return Ok(None);
    };
    if face == List::TYPEID || face == Set::TYPEID {
        return decoded(&load(&peer)?.1).map(Some);
    }
    if face == Dict::TYPEID {
        return dict::entries(&peer, "k").map(Some);
    }
    Ok(None)
}

/// An operand as the in-memory method takes it: a container in Redis
/// read into its elements.
fn resolved(object: &RedisObject, operand: Value) -> Result<Value, RemoteError> {
    Ok(match &operand {
        Value::Token(token) => elements_of(object, token)?
            .map(Value::List)
            .unwrap_or(operand),
        _ => operand,
    })
}

/// `args` with a container operand in Redis read into its elements.
fn resolved_args<'a>(
    object: &RedisObject,
    name: &str,
    args: &'a [u8],
) -> Result<Cow<'a, [u8]>, RemoteError> {
    if !OPERAND_METHODS.contains(&name) {
        return Ok(Cow::Borrowed(args));
    }
    let (operand,): (Value,) = decode_args(name, args)?;
    if !matches!(operand, Value::Token(_)) {
        return Ok(Cow::Borrowed(args));
    }
    let operand = resolved(object, operand)?;
    encode_args(&(operand,)).map(Cow::Owned)
}

/// Run method `name` of the in-memory `C` on the items in Redis, writing
/// back what it changed (see the module's documentation).
fn in_memory<C: Scratch>(
    object: &RedisObject,
    name: &'static str,
    args: &[u8],
    cx: &CallContext,
) -> Result<Vec<u8>, RemoteError> {
    let args = resolved_args(object, name, args)?;
    for _ in 0..TRIES {
        let (version, before) = load(object)?;
        let (reply, scratch) = call_scratch(C::scratch(decoded(&before)?), name, &args, cx)?;
        let after = encoded(&scratch.items())?;
        if after == before || store_if(object, version, after)? {
            return Ok(reply);
        }
    }
    Err(RemoteError::Backend(format!(
        "`{name}`: others changed the container between its read and its write \
         {TRIES} times in a row; nothing was written"
    )))
}

/// A new container's elements (its constructor's operand).
fn fill<C: Scratch>(object: &RedisObject, operand: Value) -> Result<(), RemoteError> {
    let container = C::scratch(Vec::new());
    container.fill(resolved(object, operand)?)?;
    let items = encoded(&container.items())?;
    if items.is_empty() {
        return Ok(());
    }
    store_if(object, b"0".to_vec(), items).map(drop)
}

pub(super) fn fill_list(list: &RedisObject, operand: Value) -> Result<(), RemoteError> {
    fill::<List>(list, operand)
}

pub(super) fn fill_set(set: &RedisObject, operand: Value) -> Result<(), RemoteError> {
    fill::<Set>(set, operand)
}

fn len(object: &RedisObject) -> Result<usize, RemoteError> {
    let reply = object.command(command(&[b"LLEN", object.key("i").as_bytes()]))?;
    Ok(reply.int().unwrap_or(0).max(0) as usize)
}

pub(super) fn call_list(
    list: Arc<RedisObject>,
    name: &'static str,
    args: &[u8],
    cx: &CallContext,
) -> Outcome {
    let l = &*list;
    ready(|| match name {
        "len" => reply(len(l)?, cx),
        "is_empty" => reply(len(l)? == 0, cx),
        "get" => {
            let (index,): (isize,) = decode_args(name, args)?;
            let index = index.to_string();
            let got = l.command(command(&[
                b"LINDEX",
                l.key("i").as_bytes(),
                index.as_bytes(),
            ]))?;
            reply(
                unstored_opt(got)?
                    .ok_or_else(|| SyncError::IndexError("list index out of range".into())),
                cx,
            )
        }
        "append" => {
            let (value,): (Value,) = decode_args(name, args)?;
            l.script(APPEND, PARTS, vec![stored(&value)?])?;
            reply(Ok::<(), SyncError>(()), cx)
        }
        "to_vec" => {
            let items = l.command(command(&[b"LRANGE", l.key("i").as_bytes(), b"0", b"-1"]))?;
            reply(values(items)?, cx)
        }
        _ => in_memory::<List>(l, name, args, cx),
    })
}

pub(super) fn call_set(
    set: Arc<RedisObject>,
    name: &'static str,
    args: &[u8],
    cx: &CallContext,
) -> Outcome {
    let s = &*set;
    ready(|| match name {
        "len" => reply(len(s)?, cx),
        "is_empty" => reply(len(s)? == 0, cx),
        _ => in_memory::<Set>(s, name, args, cx),
    })
}
