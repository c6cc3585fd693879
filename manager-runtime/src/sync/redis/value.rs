//! `Value` in Redis: one STRING `v`, the stored value.
#![forbid(unsafe_code)]

use std::sync::Arc;

use super::command;
use crate::__private::{decode_args, CallContext, Outcome};
use crate::__private::{ready, reply, stored, unstored_opt, RedisObject};
use crate::value::Value;
use crate::{RemoteError, SyncError};

/// The value, with the object's lease (a plain `SET` would drop it).
const SET: &str = "if lease > 0 then redis.call('SET', KEYS[1], ARGV[2], 'PX', lease) \
     else redis.call('SET', KEYS[1], ARGV[2]) end \
     return 1";

/// Replace the value (also its constructor's initial value).
pub(super) fn store(object: &RedisObject, value: Value) -> Result<(), RemoteError> {
    object.script(SET, &["v"], vec![stored(&value)?]).map(drop)
}

pub(super) fn call(
    object: Arc<RedisObject>,
    name: &'static str,
    args: &[u8],
    cx: &CallContext,
) -> Outcome {
    let o = &*object;
    ready(|| match name {
        "get" => {
            let got = o.command(command(&[b"GET", o.key("v").as_bytes()]))?;
            reply(unstored_opt(got)?.unwrap_or_default(), cx)
        }
        "set_value" => {
            let (value,): (Value,) = decode_args(name, args)?;
            store(o, value)?;
            reply(Ok::<(), SyncError>(()), cx)
        }
        _ => Err(o.not_served(name)),
    })
}
