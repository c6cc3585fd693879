//! `dict` in Redis: keys in insertion order, compared as Python compares
//! them (`1`, `1.0` and `True` are one key).
//!
//! Keys `hv` (a HASH: canonical key → value), `hk` (canonical key → the
//! key as first inserted, which the dict keeps, as Python's does), `o` (a
//! sorted set: canonical key by insertion number) and `n` (the insertion
//! counter). Every change is one script, so it is atomic.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use super::{command, values};
use crate::__private::{decode_args, CallContext, Outcome, Reply as _, Returned};
use crate::__private::{
    ready, reply, stored, unstored, unstored_opt, RedisObject, RedisReply as Reply,
};
use crate::sync::server::RemoteIter;
use crate::value::Value;
use crate::{RemoteError, SyncError};

pub(super) const PARTS: &[&str] = &["hk", "hv", "o", "n"];

/// Set each (canonical, key, value) triple of ARGV from 2 on. The keys
/// get the object's lease when this made them (every entry new, and no
/// other: the dict was empty).
const SET: &str = "local new = 0 \
     for i = 2, #ARGV, 3 do \
       redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2]) \
       if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then \
         redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[4]), ARGV[i]) \
         new = new + 1 \
       end \
     end \
     if new > 0 and redis.call('HLEN', KEYS[1]) == new then \
       touch(KEYS[1], KEYS[2], KEYS[3], KEYS[4]) \
     end \
     return 1";

/// Remove the entry of canonical key ARGV\[2\]; its value, or nil.
const REMOVE: &str = "local v = redis.call('HGET', KEYS[2], ARGV[2]) \
     if not v then return false end \
     redis.call('HDEL', KEYS[1], ARGV[2]) \
     redis.call('HDEL', KEYS[2], ARGV[2]) \
     redis.call('ZREM', KEYS[3], ARGV[2]) \
     return v";

/// Remove the last inserted entry: `{key, value}`, or nil.
const POP_LAST: &str = "local last = redis.call('ZRANGE', KEYS[3], -1, -1) \
     if #last == 0 then return false end \
     local c = last[1] \
     local k = redis.call('HGET', KEYS[1], c) \
     local v = redis.call('HGET', KEYS[2], c) \
     redis.call('HDEL', KEYS[1], c) \
     redis.call('HDEL', KEYS[2], c) \
     redis.call('ZREM', KEYS[3], c) \
     return {k, v}";

/// The value of canonical key ARGV\[2\], inserting key ARGV\[3\] with
/// value ARGV\[4\] first if it is absent.
const SETDEFAULT: &str = "local v = redis.call('HGET', KEYS[2], ARGV[2]) \
     if v then return v end \
     redis.call('HSET', KEYS[2], ARGV[2], ARGV[4]) \
     redis.call('HSET', KEYS[1], ARGV[2], ARGV[3]) \
     redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[4]), ARGV[2]) \
     if redis.call('HLEN', KEYS[1]) == 1 then touch(KEYS[1], KEYS[2], KEYS[3], KEYS[4]) end \
     return ARGV[4]";

/// Every entry in order: keys (ARGV\[2\] has `k`), values (has `v`), or
/// both, flat.
const ENTRIES: &str = "local out = {} \
     for _, c in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do \
       if string.find(ARGV[2], 'k') then out[#out + 1] = redis.call('HGET', KEYS[1], c) end \
       if string.find(ARGV[2], 'v') then out[#out + 1] = redis.call('HGET', KEYS[2], c) end \
     end \
     return out";

/// The field a key is stored under: Python's equal keys give equal bytes.
fn field(key: &Value) -> Result<Vec<u8>, RemoteError> {
    stored(&canonical(key))
}

/// The one form of every key equal to `key`: `True` and `1.0` are `1`,
/// a map's entries sorted.
fn canonical(key: &Value) -> Value {
    match key {
        Value::Bool(b) => Value::Int(i128::from(*b)),
        Value::Float(f) if f.is_nan() => Value::Float(f64::NAN),
        Value::Float(f) if f.trunc() == *f && f.abs() < 1.7e38 => Value::Int(*f as i128),
        Value::List(items) => Value::List(items.iter().map(canonical).collect()),
        Value::Map(entries) => {
            let mut entries: Vec<(Value, Value)> = entries
                .iter()
                .map(|(k, v)| (canonical(k), canonical(v)))
                .collect();
            entries.sort();
            Value::Map(entries)
        }
        other => other.clone(),
    }
}

fn key_error(key: &Value) -> SyncError {
    SyncError::KeyError(key.repr())
}

/// Store `entries` (key, value) in one script.
pub(super) fn set_all(dict: &RedisObject, entries: &[(Value, Value)]) -> Result<(), RemoteError> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut args = Vec::with_capacity(entries.len() * 3);
    for (key, value) in entries {
        args.push(field(key)?);
        args.push(stored(key)?);
        args.push(stored(value)?);
    }
    dict.script(SET, PARTS, args).map(drop)
}

/// The pairs of an `update` operand: a map, a sequence of pairs, or
/// another dict in this Redis.
fn pairs_of(
    dict: &RedisObject,
    other: Value,
) -> Result<Result<Vec<(Value, Value)>, SyncError>, RemoteError> {
    if let Value::Token(token) = &other {
        return Ok(match dict.peer(token)? {
            Some(peer) => Ok(items(&peer)?),
            None => Err(SyncError::TypeError(format!(
                "dict.update() from {} is not served from Redis (give a map, pairs or a dict)",
                other.repr()
            ))),
        });
    }
    Ok(pairs(other))
}

/// The pairs of an `update` operand given by value: a map, or a sequence
/// of pairs.
fn pairs(other: Value) -> Result<Vec<(Value, Value)>, SyncError> {
    match other {
        Value::Map(entries) => Ok(entries),
        Value::List(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::List(pair) if pair.len() == 2 => {
                    let mut pair = pair.into_iter();
                    Ok((pair.next().unwrap(), pair.next().unwrap()))
                }
                _ => Err(SyncError::TypeError(format!(
                    "cannot convert dictionary update sequence element #{i} to a sequence of two"
                ))),
            })
            .collect(),
        Value::None => Ok(Vec::new()),
        other => Err(SyncError::TypeError(format!(
            "dict.update() from {} is not served from Redis (give a map, pairs or a dict)",
            other.repr()
        ))),
    }
}

/// The initial contents of a new dict (its constructor's argument).
pub(super) fn fill(dict: &RedisObject, initial: Value) -> Result<(), RemoteError> {
    set_all(dict, &pairs(initial)?)
}

/// Every entry's keys, values, or both (`which`: `k`, `v`, `kv`).
pub(super) fn entries(dict: &RedisObject, which: &str) -> Result<Vec<Value>, RemoteError> {
    values(dict.script(ENTRIES, PARTS, vec![which.as_bytes().to_vec()])?)
}

pub(super) fn items(dict: &RedisObject) -> Result<Vec<(Value, Value)>, RemoteError> {
    let flat = entries(dict, "kv")?;
    let mut flat = flat.into_iter();
    let mut out = Vec::with_capacity(flat.len() / 2);
    while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
        out.push((k, v));
    }
    Ok(out)
}

/// The value of `key`, if present.
pub(super) fn get(dict: &RedisObject, key: &Value) -> Result<Option<Value>, RemoteError> {
    let field = field(key)?;
    let reply = dict.command(command(&[b"HGET", dict.key("hv").as_bytes(), &field]))?;
    unstored_opt(reply)
}

/// Remove `key`: its value, if it was present.
/// Whether `key` is present.
pub(super) fn contains(dict: &RedisObject, key: &Value) -> Result<bool, RemoteError> {
    let field = field(key)?;
    let reply = dict.command(command(&[b"HEXISTS", dict.key("hv").as_bytes(), &field]))?;
    Ok(reply.int() == Some(1))
}

pub(super) fn remove(dict: &RedisObject, key: &Value) -> Result<Option<Value>, RemoteError> {
    unstored_opt(dict.script(REMOVE, PARTS, vec![field(key)?])?)
}

fn len(dict: &RedisObject) -> Result<usize, RemoteError> {
    let reply = dict.command(command(&[b"HLEN", dict.key("hv").as_bytes()]))?;
    Ok(reply.int().unwrap_or(0).max(0) as usize)
}

pub(super) fn call(
    dict: Arc<RedisObject>,
    name: &'static str,
    args: &[u8],
    cx: &CallContext,
) -> Outcome {
    let d = &*dict;
    ready(|| match name {
        "len" => reply(len(d)?, cx),
        "is_empty" => reply(len(d)? == 0, cx),
        "contains" => {
            let (key,): (Value,) = decode_args(name, args)?;
            reply(contains(d, &key)?, cx)
        }
        "get" => {
            let (key,): (Value,) = decode_args(name, args)?;
            reply(get(d, &key)?.ok_or_else(|| key_error(&key)), cx)
        }
        "get_opt" => {
            let (key,): (Value,) = decode_args(name, args)?;
            reply(get(d, &key)?, cx)
        }
        "get_or" => {
            let (key, default): (Value, Value) = decode_args(name, args)?;
            reply(get(d, &key)?.unwrap_or(default), cx)
        }
        "set" => {
            let (key, value): (Value, Value) = decode_args(name, args)?;
            set_all(d, &[(key, value)])?;
            reply(Ok::<(), SyncError>(()), cx)
        }
        "update" => {
            let (other,): (Value,) = decode_args(name, args)?;
            match pairs_of(d, other)? {
                Ok(entries) => {
                    set_all(d, &entries)?;
                    reply(Ok::<(), SyncError>(()), cx)
                }
                Err(e) => reply(Err::<(), SyncError>(e), cx),
            }
        }
        "del" => {
            let (key,): (Value,) = decode_args(name, args)?;
            let removed = remove(d, &key)?;
            reply(removed.map(drop).ok_or_else(|| key_error(&key)), cx)
        }
        "pop" => {
            let (key,): (Value,) = decode_args(name, args)?;
            reply(remove(d, &key)?.ok_or_else(|| key_error(&key)), cx)
        }
        "pop_opt" => {
            let (key,): (Value,) = decode_args(name, args)?;
            reply(remove(d, &key)?, cx)
        }
        "pop_or" => {
            let (key, default): (Value, Value) = decode_args(name, args)?;
            reply(remove(d, &key)?.unwrap_or(default), cx)
        }
        "popitem" => {
            let popped = values(d.script(POP_LAST, PARTS, Vec::new())?)?;
            let entry = match <[Value; 2]>::try_from(popped) {
                Ok([key, value]) => Ok((key, value)),
                Err(_) => Err(SyncError::KeyError(
                    "'popitem(): dictionary is empty'".into(),
                )),
            };
            reply(entry, cx)
        }
        "setdefault" => {
            let (key, default): (Value, Value) = decode_args(name, args)?;
            let args = vec![field(&key)?, stored(&key)?, stored(&default)?];
            let value = match d.script(SETDEFAULT, PARTS, args)? {
                Reply::Bulk(bytes) => unstored(&bytes)?,
                _ => default,
            };
            reply(Ok::<Value, SyncError>(value), cx)
        }
        "clear" => {
            let mut del = vec![b"DEL".to_vec()];
            del.extend(PARTS[..3].iter().map(|p| d.key(p).into_bytes()));
            d.write(del, Duration::ZERO)?;
            reply((), cx)
        }
        "items" => reply(items(d)?, cx),
        "keys" => reply(entries(d, "k")?, cx),
        "values" => reply(entries(d, "v")?, cx),
        "repr" => reply(Value::Map(items(d)?).repr(), cx),
        // The keys as they are now (the in-memory dict's iterator notices
        // keys that come or go; this one does not).
        "iter" => Returned(RemoteIter::new(entries(d, "k")?)).encode(cx),
        _ => Err(d.not_served(name)),
    })
}
