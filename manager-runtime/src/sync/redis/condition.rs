//! `Condition` in Redis: on its own `RLock` (its keys `l` and `c`, as an
//! RLock's) or on a supplied `Lock` or `RLock` in Redis (the condition's
//! parameter is that lock's id). Waiters: a LIST `w` of waiter numbers
//! (from the counter `x`), first come first notified; `notify` moves the
//! first ones into the HASH `k`, where each waiter's wait finds its
//! number when the notify is announced.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use super::lock::{call_under, Under};
use super::OnDrop;
use crate::__private::{blocking, decode_args, CallContext, Outcome, Shared};
use crate::__private::{poll_until, ready, reply, RedisObject};
use crate::sync::server::{ManagedLock, ManagedRLock};
use crate::value::Value;
use crate::{RemoteError, SyncError};

/// The waiters' keys, as the scripts below name them.
const WAITERS: &[&str] = &["w", "k", "x"];

/// Queue a new waiter: its number.
const ENQUEUE: &str = "local id = redis.call('INCR', KEYS[3]) \
     redis.call('RPUSH', KEYS[1], id) \
     touch(KEYS[1], KEYS[3]) \
     return id";

/// Notify the first ARGV\[2\] waiters (all if negative): how many.
const NOTIFY: &str = "local n = tonumber(ARGV[2]) \
     local woken = 0 \
     while n < 0 or woken < n do \
       local id = redis.call('LPOP', KEYS[1]) \
       if not id then break end \
       redis.call('HSET', KEYS[2], id, 1) \
       woken = woken + 1 \
     end \
     if woken > 0 then touch(KEYS[2]) wake() end \
     return woken";

/// Waiter ARGV\[2\] takes its notification: 1 if it had one.
const NOTICE: &str = "return redis.call('HDEL', KEYS[2], ARGV[2])";

/// Waiter ARGV\[2\] stops waiting: 1 if it was notified meanwhile.
const LEAVE: &str = "redis.call('LREM', KEYS[1], 0, ARGV[2]) \
     return redis.call('HDEL', KEYS[2], ARGV[2])";

/// The lock a condition works on.
fn under(condition: &Arc<RedisObject>) -> Result<Result<Under, SyncError>, RemoteError> {
    let id = condition.param();
    if id == 0 {
        return Ok(Ok(Under {
            lock: Arc::clone(condition),
            reentrant: true,
        }));
    }
    let Some((face, lock)) = condition.any_peer(id)? else {
        return Ok(Err(not_a_lock(id)));
    };
    let (reentrant, parts) = if face == ManagedLock::TYPEID {
        (false, super::LOCK.parts)
    } else if face == ManagedRLock::TYPEID {
        (true, super::RLOCK.parts)
    } else {
        return Ok(Err(not_a_lock(id)));
    };
    // The condition keeps its lock alive, as in memory.
    condition.keep_alive(id, parts);
    Ok(Ok(Under { lock, reentrant }))
}

fn not_a_lock(id: u64) -> SyncError {
    SyncError::TypeError(format!(
        "a condition needs a Lock or RLock: object {id} is none in Redis"
    ))
}

/// A new condition on a supplied lock: refused (`TypeError`) unless it is
/// a `Lock` or `RLock` in this Redis.
pub(super) fn fill(condition: &RedisObject, _: Value) -> Result<(), RemoteError> {
    let id = condition.param();
    let kind = condition.any_peer(id)?.map(|(face, _)| face);
    if kind.as_deref() == Some(ManagedLock::TYPEID) {
        condition.keep_alive(id, super::LOCK.parts);
    } else if kind.as_deref() == Some(ManagedRLock::TYPEID) {
        condition.keep_alive(id, super::RLOCK.parts);
    } else {
        return Err(not_a_lock(id).into());
    }
    Ok(())
}

/// The lock, if `owner` holds it; Python's `RuntimeError` otherwise.
fn owned(
    condition: &Arc<RedisObject>,
    owner: u64,
    what: &str,
    cx: &CallContext,
) -> Result<Result<Under, SyncError>, RemoteError> {
    let under = match under(condition)? {
        Ok(under) => under,
        Err(e) => return Ok(Err(e)),
    };
    if !under.is_owned(owner, cx)? {
        return Ok(Err(SyncError::RuntimeError(format!(
            "cannot {what} on un-acquired lock"
        ))));
    }
    Ok(Ok(under))
}

/// Python's `wait(timeout)`: queue, release the lock entirely, wait for a
/// notification, take the lock back at its former level.
fn wait(
    condition: Arc<RedisObject>,
    owner: u64,
    timeout: Option<Duration>,
    cx: &CallContext,
) -> Outcome {
    let started = blocking(|| {
        let under = match owned(&condition, owner, "wait", cx)? {
            Ok(under) => under,
            Err(e) => return Ok(Err(e)),
        };
        let id = condition.script(ENQUEUE, WAITERS, Vec::new())?;
        let id = id.int().unwrap_or(0).to_string().into_bytes();
        match under.release(owner, true, cx)? {
            Ok(levels) => Ok(Ok((under, id, levels))),
            Err(e) => {
                condition.script(LEAVE, WAITERS, vec![id])?;
                Ok(Err(e))
            }
        }
    });
    let (under, id, levels) = match started {
        Ok(Ok(started)) => started,
        Ok(Err(e)) => return Outcome::Ready(reply(Err::<bool, _>(e), cx)),
        Err(e) => return Outcome::Ready(Err(e)),
    };
    let cx = cx.clone();
    Outcome::pending(async move {
        // A caller that leaves mid-wait is no longer a waiter a notify
        // could count.
        let leaving = {
            let (condition, id) = (Arc::clone(&condition), id.clone());
            OnDrop::new(move || {
                let _ = condition.script(LEAVE, WAITERS, vec![id]);
            })
        };
        let notice = || {
            let taken = condition.script(NOTICE, WAITERS, vec![id.clone()])?;
            Ok((taken.int() == Some(1)).then_some(()))
        };
        let mut notified = poll_until(&condition, timeout, notice).await?.is_some();
        leaving.disarm();
        if !notified {
            // A notification that raced with the timeout still counts.
            let left = blocking(|| condition.script(LEAVE, WAITERS, vec![id.clone()]))?;
            notified = left.int() == Some(1);
        }
        poll_until(&under.lock, None, || {
            Ok(under.take(owner, levels, &cx)?.then_some(()))
        })
        .await?;
        reply(Ok::<bool, SyncError>(notified), &cx)
    })
}

pub(super) fn call(
    condition: Arc<RedisObject>,
    name: &'static str,
    args: &[u8],
    cx: &CallContext,
) -> Outcome {
    match name {
        "acquire_with" | "release" => {
            let under = match blocking(|| under(&condition)) {
                Ok(Ok(under)) => under,
                Ok(Err(e)) => return Outcome::Ready(reply(Err::<(), _>(e), cx)),
                Err(e) => return Outcome::Ready(Err(e)),
            };
            call_under(under, name, args, cx)
                .unwrap_or_else(|| Outcome::Ready(Err(condition.not_served(name))))
        }
        "is_owned" => ready(|| {
            let (owner,): (u64,) = decode_args(name, args)?;
            let owned = match under(&condition)? {
                Ok(under) => Ok(under.is_owned(owner, cx)?),
                Err(e) => Err(e),
            };
            reply(owned, cx)
        }),
        "wait_with" => match decode_args::<(u64, Option<Duration>)>(name, args) {
            Ok((owner, timeout)) => wait(condition, owner, timeout, cx),
            Err(e) => Outcome::Ready(Err(e)),
        },
        "notify_n" | "notify_all" => ready(|| {
            let (owner, n): (u64, i64) = if name == "notify_n" {
                let (owner, n): (u64, usize) = decode_args(name, args)?;
                (owner, i64::try_from(n).unwrap_or(i64::MAX))
            } else {
                let (owner,): (u64,) = decode_args(name, args)?;
                (owner, -1)
            };
            let notified = match owned(&condition, owner, "notify", cx)? {
                Ok(_) => {
                    condition.script(NOTIFY, WAITERS, vec![n.to_string().into_bytes()])?;
                    Ok(())
                }
                Err(e) => Err(e),
            };
            reply(notified, cx)
        }),
        _ => Outcome::Ready(Err(condition.not_served(name))),
    }
}
