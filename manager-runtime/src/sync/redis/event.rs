//! `Event` in Redis: the key `e` exists while the event is set. A `wait`
//! looks again when a `set` is announced (and, failing that, with pauses
//! growing to 200 ms).
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use super::command;
use crate::__private::{decode_args, CallContext, Outcome};
use crate::__private::{poll_until, ready, reply, RedisObject};
use crate::RemoteError;

/// Set it, with the object's lease.
const SET: &str = "if lease > 0 then redis.call('SET', KEYS[1], '1', 'PX', lease) \
     else redis.call('SET', KEYS[1], '1') end \
     wake() \
     return 1";

fn is_set(event: &RedisObject) -> Result<bool, RemoteError> {
    let exists = event.command(command(&[b"EXISTS", event.key("e").as_bytes()]))?;
    Ok(exists.int() == Some(1))
}

pub(super) fn call(
    event: Arc<RedisObject>,
    name: &'static str,
    args: &[u8],
    cx: &CallContext,
) -> Outcome {
    let e = &*event;
    match name {
        "is_set" => ready(|| reply(is_set(e)?, cx)),
        "set" => ready(|| {
            e.script(SET, &["e"], Vec::new())?;
            reply((), cx)
        }),
        "clear" => ready(|| {
            e.write(command(&[b"DEL", e.key("e").as_bytes()]), Duration::ZERO)?;
            reply((), cx)
        }),
        "wait" => {
            let (timeout,): (Option<Duration>,) = match decode_args(name, args) {
                Ok(args) => args,
                Err(e) => return Outcome::Ready(Err(e)),
            };
            let cx = cx.clone();
            Outcome::pending(async move {
                let set = poll_until(&event, timeout, || Ok(is_set(&event)?.then_some(())))
                    .await?
                    .is_some();
                reply(set, &cx)
            })
        }
        _ => Outcome::Ready(Err(e.not_served(name))),
    }
}
