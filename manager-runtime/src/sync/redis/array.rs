//! `Array` in Redis: one LIST `a`. Its length is fixed when it is made
//! and kept in the object's `meta` (its parameter), so `len` and index
//! checks ask Redis nothing.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use super::{command, values};
use crate::__private::{decode_args, CallContext, Outcome};
use crate::__private::{ready, reply, stored, unstored_opt, RedisObject};
use crate::sync::array::server::{bounds, position};
use crate::value::Value;
use crate::{RemoteError, SyncError};

/// Append ARGV from 2 on to the new list, which gets the object's lease.
const FILL: &str = "redis.call('RPUSH', KEYS[1], unpack(ARGV, 2)) \
     touch(KEYS[1]) \
     return 1";

/// Replace the items from index ARGV\[2\] on by ARGV\[3\], ...
const SET_FROM: &str = "local start = tonumber(ARGV[2]) \
     for i = 3, #ARGV do redis.call('LSET', KEYS[1], start + i - 3, ARGV[i]) end \
     return 1";

/// The items a new array holds (its constructor's).
pub(super) fn fill(array: &RedisObject, items: Value) -> Result<(), RemoteError> {
    let Value::List(items) = items else {
        return Ok(());
    };
    if items.is_empty() {
        return Ok(());
    }
    let args = items.iter().map(stored).collect::<Result<Vec<_>, _>>()?;
    array.script(FILL, &["a"], args).map(drop)
}

/// The items from `start` to `stop` (exclusive), as stored.
fn range(array: &RedisObject, start: usize, stop: usize) -> Result<Vec<Value>, RemoteError> {
    if start >= stop {
        return Ok(Vec::new());
    }
    let (first, last) = (start.to_string(), (stop - 1).to_string());
    let key = array.key("a");
    values(array.command(command(&[
        b"LRANGE",
        key.as_bytes(),
        first.as_bytes(),
        last.as_bytes(),
    ]))?)
}

pub(super) fn call(
    array: Arc<RedisObject>,
    name: &'static str,
    args: &[u8],
    cx: &CallContext,
) -> Outcome {
    let a = &*array;
    let len = a.param() as usize;
    ready(|| match name {
        "len" => reply(len, cx),
        "is_empty" => reply(len == 0, cx),
        "get" => {
            let (index,): (i64,) = decode_args(name, args)?;
            let Some(i) = position(index, len) else {
                let e = SyncError::IndexError("array index out of range".into());
                return reply(Err::<Value, _>(e), cx);
            };
            let i = i.to_string();
            let got = a.command(command(&[b"LINDEX", a.key("a").as_bytes(), i.as_bytes()]))?;
            reply(
                Ok::<Value, SyncError>(unstored_opt(got)?.unwrap_or_default()),
                cx,
            )
        }
        "set" => {
            let (index, value): (i64, Value) = decode_args(name, args)?;
            let Some(i) = position(index, len) else {
                let e = SyncError::IndexError("array assignment index out of range".into());
                return reply(Err::<(), _>(e), cx);
            };
            let (i, value) = (i.to_string(), stored(&value)?);
            let key = a.key("a");
            a.write(
                command(&[b"LSET", key.as_bytes(), i.as_bytes(), &value]),
                Duration::ZERO,
            )?;
            reply(Ok::<(), SyncError>(()), cx)
        }
        "slice" => {
            let (start, stop): (Option<i64>, Option<i64>) = decode_args(name, args)?;
            let (start, stop) = bounds(start, stop, len);
            reply(range(a, start, stop)?, cx)
        }
        "set_slice" => {
            let (start, stop, values): (Option<i64>, Option<i64>, Value) = decode_args(name, args)?;
            let Value::List(values) = values else {
                let e = SyncError::TypeError(format!(
                    "can only assign a sequence to an array slice, not '{}'",
                    values.type_name()
                ));
                return reply(Err::<(), _>(e), cx);
            };
            let (start, stop) = bounds(start, stop, len);
            if values.len() != stop - start {
                let e = SyncError::ValueError(format!(
                    "can only assign a sequence of the same size ({} to a slice of {})",
                    values.len(),
                    stop - start
                ));
                return reply(Err::<(), _>(e), cx);
            }
            if !values.is_empty() {
                let mut args = vec![start.to_string().into_bytes()];
                for value in &values {
                    args.push(stored(value)?);
                }
                a.script(SET_FROM, &["a"], args)?;
            }
            reply(Ok::<(), SyncError>(()), cx)
        }
        "to_vec" => reply(range(a, 0, len)?, cx),
        _ => Err(a.not_served(name)),
    })
}
