//! `Lock` in Redis: `l` names the holder (gateway and session) with a
//! lease (`SET NX PX`), `f` counts acquisitions: the fencing token. The
//! holder's gateway renews `l` while the holder is connected and deletes
//! it when the holder leaves; if the gateway dies, the lock frees when its
//! lease runs out, and the next holder's token is larger, so a resource
//! that checks tokens refuses the old holder's late writes. As in Python,
//! anyone may release it.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use super::{command, number};
use crate::__private::{decode_args, CallContext, Outcome};
use crate::__private::{poll_until, ready, reply, RedisObject};
use crate::{RemoteError, SyncError};

/// Take the lock for holder ARGV\[2\] for ARGV\[3\] ms: its token, or 0.
const ACQUIRE: &str = "if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) then \
       local f = redis.call('INCR', KEYS[2]) \
       if f == 1 then touch(KEYS[2]) end \
       return f \
     end \
     return 0";

/// Take the lock now for the caller of `cx`: whether it was taken.
fn try_take(lock: &RedisObject, cx: &CallContext) -> Result<bool, RemoteError> {
    let args = vec![
        lock.holder(cx),
        lock.hold_lease_ms().to_string().into_bytes(),
    ];
    let token = lock.script(ACQUIRE, &["l", "f"], args)?.int().unwrap_or(0);
    if token > 0 {
        lock.hold("l", cx);
    }
    Ok(token > 0)
}

pub(super) fn call(
    lock: Arc<RedisObject>,
    name: &'static str,
    args: &[u8],
    cx: &CallContext,
) -> Outcome {
    let l = &*lock;
    match name {
        "acquire_with" => {
            let (block, timeout): (bool, Option<Duration>) = match decode_args(name, args) {
                Ok(args) => args,
                Err(e) => return Outcome::Ready(Err(e)),
            };
            if !block && timeout.is_some() {
                return Outcome::Ready(reply(
                    Err::<bool, _>(SyncError::ValueError(
                        "can't specify a timeout for a non-blocking call".into(),
                    )),
                    cx,
                ));
            }
            if !block {
                return ready(|| reply(Ok::<bool, SyncError>(try_take(l, cx)?), cx));
            }
            let cx = cx.clone();
            Outcome::pending(async move {
                let taken = poll_until(timeout, || Ok(try_take(&lock, &cx)?.then_some(())))
                    .await?
                    .is_some();
                reply(Ok::<bool, SyncError>(taken), &cx)
            })
        }
        "release" => ready(|| {
            let deleted = l.write(command(&[b"DEL", l.key("l").as_bytes()]), Duration::ZERO)?;
            l.let_go("l");
            reply(
                if deleted.int() == Some(1) {
                    Ok(())
                } else {
                    Err(SyncError::RuntimeError("release unlocked lock".into()))
                },
                cx,
            )
        }),
        "locked" => ready(|| {
            let exists = l.command(command(&[b"EXISTS", l.key("l").as_bytes()]))?;
            reply(exists.int() == Some(1), cx)
        }),
        "fence" => ready(|| {
            let token = l.command(command(&[b"GET", l.key("f").as_bytes()]))?;
            reply(number(&token).max(0) as u64, cx)
        }),
        _ => Outcome::Ready(Err(l.not_served(name))),
    }
}
