//! `Lock`, `RLock`, `Semaphore` and `BoundedSemaphore` in Redis.
//!
//! A `Lock`: `l` names the holder (gateway and session) with a lease
//! (`SET NX PX`), `f` counts acquisitions: the fencing token. The holder's
//! gateway renews `l` while the holder is connected and deletes it when
//! the holder leaves; if the gateway dies, the lock frees when its lease
//! runs out, and the next holder's token is larger, so a resource that
//! checks tokens refuses the old holder's late writes. As in Python,
//! anyone may release it.
//!
//! An `RLock`: `l` names the holder down to its owning thread, held and
//! let go as a `Lock`'s; `c` counts its levels.
//!
//! A `Semaphore`: `s` is the number of free units, `b` a bounded
//! semaphore's bound. A unit taken is not a hold: as in Python (and the
//! in-memory semaphore), a client that dies holding one does not give it
//! back.
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
        lock.holder(cx, None),
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
        "acquire_with" => match decode_args(name, args) {
            Ok(args) => acquire(Arc::clone(&lock), args, cx, move |cx| try_take(&lock, cx)),
            Err(e) => Outcome::Ready(Err(e)),
        },
        "release" => ready(|| {
            let under = Under {
                lock: Arc::clone(&lock),
                reentrant: false,
            };
            reply(under.release(0, false, cx)?.map(drop), cx)
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

/// Take the RLock for owner ARGV\[2\] for ARGV\[3\] ms at ARGV\[4\]
/// levels, or that many more if it holds it already: whether it was taken.
const ACQUIRE_OWNED: &str = "local h = redis.call('GET', KEYS[1]) \
     if h == ARGV[2] then redis.call('INCRBY', KEYS[2], ARGV[4]) return 1 end \
     if h then return 0 end \
     redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) \
     redis.call('SET', KEYS[2], ARGV[4]) \
     touch(KEYS[2]) \
     return 1";

/// Release one level (ARGV\[3\] `1`) or all of them (`0`) of the RLock
/// for owner ARGV\[2\]: the levels left (one level) or released (all),
/// or -1 if it does not hold it.
const RELEASE_OWNED: &str = "if redis.call('GET', KEYS[1]) ~= ARGV[2] then return -1 end \
     if ARGV[3] == '0' then \
       local n = tonumber(redis.call('GET', KEYS[2]) or '1') \
       redis.call('DEL', KEYS[1], KEYS[2]) \
       wake() \
       return n \
     end \
     local n = redis.call('DECR', KEYS[2]) \
     if n <= 0 then redis.call('DEL', KEYS[1], KEYS[2]) wake() return 0 end \
     return n";

/// Free the lock, whoever holds it: 1, or 0 if nobody did.
const RELEASE: &str = "local n = redis.call('DEL', KEYS[1]) \
     if n == 1 then wake() end \
     return n";

/// A lock's keys (`l`, its holder; `c` its levels or `f` its fencing
/// token) and its kind: an `RLock` (or a condition's own), owned by a
/// thread and re-entrant, or a plain `Lock`.
pub(super) struct Under {
    pub(super) lock: Arc<RedisObject>,
    pub(super) reentrant: bool,
}

/// Python's error for releasing a lock one does not hold.
fn unheld(reentrant: bool) -> SyncError {
    SyncError::RuntimeError(if reentrant {
        "cannot release un-acquired lock".into()
    } else {
        "release unlocked lock".into()
    })
}

impl Under {
    /// Take it now for `owner`, the caller of `cx`, at `levels` levels (1
    /// for a plain lock): whether it was taken.
    pub(super) fn take(
        &self,
        owner: u64,
        levels: u64,
        cx: &CallContext,
    ) -> Result<bool, RemoteError> {
        if !self.reentrant {
            return try_take(&self.lock, cx);
        }
        let l = &*self.lock;
        let args = vec![
            l.holder(cx, Some(owner)),
            l.hold_lease_ms().to_string().into_bytes(),
            levels.to_string().into_bytes(),
        ];
        let taken = l.script(ACQUIRE_OWNED, &["l", "c"], args)?.int() == Some(1);
        if taken {
            l.hold("l", cx);
        }
        Ok(taken)
    }

    /// Release one level (`all == false`) or every level: how many were
    /// released, or Python's error if `owner` does not hold it.
    pub(super) fn release(
        &self,
        owner: u64,
        all: bool,
        cx: &CallContext,
    ) -> Result<Result<u64, SyncError>, RemoteError> {
        let l = &*self.lock;
        if !self.reentrant {
            let deleted = l.script(RELEASE, &["l"], Vec::new())?;
            l.let_go("l");
            return Ok(if deleted.int() == Some(1) {
                Ok(1)
            } else {
                Err(unheld(false))
            });
        }
        let args = vec![
            l.holder(cx, Some(owner)),
            if all { b"0".to_vec() } else { b"1".to_vec() },
        ];
        let n = l
            .script(RELEASE_OWNED, &["l", "c"], args)?
            .int()
            .unwrap_or(-1);
        if n < 0 {
            return Ok(Err(unheld(true)));
        }
        if all || n == 0 {
            l.let_go("l");
        }
        Ok(Ok(if all { n as u64 } else { 1 }))
    }

    /// Whether `owner` holds it (anyone, for a plain lock).
    pub(super) fn is_owned(&self, owner: u64, cx: &CallContext) -> Result<bool, RemoteError> {
        let l = &*self.lock;
        if !self.reentrant {
            let exists = l.command(command(&[b"EXISTS", l.key("l").as_bytes()]))?;
            return Ok(exists.int() == Some(1));
        }
        let holder = l.command(command(&[b"GET", l.key("l").as_bytes()]))?;
        Ok(holder.bytes() == Some(&l.holder(cx, Some(owner))[..]))
    }
}

/// A timeout given to a non-blocking acquire: Python's error.
fn timeout_without_blocking(cx: &CallContext) -> Outcome {
    Outcome::Ready(reply(
        Err::<bool, _>(SyncError::ValueError(
            "can't specify a timeout for a non-blocking call".into(),
        )),
        cx,
    ))
}

/// `acquire(blocking, timeout)` by `try_take`: one try, or tries until the
/// timeout, looking again whenever a change of `lock` is announced.
pub(super) fn acquire(
    lock: Arc<RedisObject>,
    (block, timeout): (bool, Option<Duration>),
    cx: &CallContext,
    try_take: impl Fn(&CallContext) -> Result<bool, RemoteError> + Send + Sync + 'static,
) -> Outcome {
    if !block && timeout.is_some() {
        return timeout_without_blocking(cx);
    }
    if !block {
        return ready(|| reply(Ok::<bool, SyncError>(try_take(cx)?), cx));
    }
    let cx = cx.clone();
    Outcome::pending(async move {
        let taken = poll_until(&lock, timeout, || Ok(try_take(&cx)?.then_some(())))
            .await?
            .is_some();
        reply(Ok::<bool, SyncError>(taken), &cx)
    })
}

/// The methods an `RLock` and a `Condition` share, on `under`: `None` if
/// `name` is none of them.
pub(super) fn call_under(
    under: Under,
    name: &'static str,
    args: &[u8],
    cx: &CallContext,
) -> Option<Outcome> {
    Some(match name {
        "acquire_with" => match decode_args::<(u64, bool, Option<Duration>)>(name, args) {
            Ok((owner, block, timeout)) => {
                acquire(Arc::clone(&under.lock), (block, timeout), cx, move |cx| {
                    under.take(owner, 1, cx)
                })
            }
            Err(e) => Outcome::Ready(Err(e)),
        },
        "release" => ready(|| {
            let (owner,): (u64,) = decode_args(name, args)?;
            reply(under.release(owner, false, cx)?.map(drop), cx)
        }),
        _ => return None,
    })
}

pub(super) fn call_owned(
    lock: Arc<RedisObject>,
    name: &'static str,
    args: &[u8],
    cx: &CallContext,
) -> Outcome {
    let under = Under {
        lock: Arc::clone(&lock),
        reentrant: true,
    };
    if name == "is_owned" {
        return ready(|| {
            let (owner,): (u64,) = decode_args(name, args)?;
            reply(under.is_owned(owner, cx)?, cx)
        });
    }
    call_under(under, name, args, cx).unwrap_or_else(|| Outcome::Ready(Err(lock.not_served(name))))
}

/// Take a unit if one is free: whether one was.
const ACQUIRE_UNIT: &str = "local s = tonumber(redis.call('GET', KEYS[1]) or '0') \
     if s > 0 then redis.call('DECR', KEYS[1]) return 1 end \
     return 0";

/// Give a unit back: 1, or 0 if that would pass the bound.
const RELEASE_UNIT: &str = "local b = redis.call('GET', KEYS[2]) \
     if b and tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(b) then return 0 end \
     if redis.call('INCR', KEYS[1]) == 1 then touch(KEYS[1]) end \
     wake() \
     return 1";

/// The units and, for a bounded semaphore, the bound.
const FILL_UNITS: &str = "if lease > 0 then redis.call('SET', KEYS[1], ARGV[2], 'PX', lease) \
     else redis.call('SET', KEYS[1], ARGV[2]) end \
     if ARGV[3] == '1' then redis.call('SET', KEYS[2], ARGV[2]) touch(KEYS[2]) end \
     return 1";

/// A new semaphore's units (its constructor's value), bounded by them if
/// it was made as a `BoundedSemaphore`.
pub(super) fn fill_units(
    semaphore: &RedisObject,
    _: crate::value::Value,
) -> Result<(), RemoteError> {
    let bounded = semaphore.typeid() == "BoundedSemaphore";
    let args = vec![
        semaphore.param().to_string().into_bytes(),
        if bounded {
            b"1".to_vec()
        } else {
            b"0".to_vec()
        },
    ];
    semaphore.script(FILL_UNITS, &["s", "b"], args).map(drop)
}

fn try_take_unit(semaphore: &RedisObject, _: &CallContext) -> Result<bool, RemoteError> {
    Ok(semaphore.script(ACQUIRE_UNIT, &["s"], Vec::new())?.int() == Some(1))
}

pub(super) fn call_units(
    semaphore: Arc<RedisObject>,
    name: &'static str,
    args: &[u8],
    cx: &CallContext,
) -> Outcome {
    match name {
        "acquire_with" => match decode_args(name, args) {
            Ok(args) => acquire(Arc::clone(&semaphore), args, cx, move |cx| {
                try_take_unit(&semaphore, cx)
            }),
            Err(e) => Outcome::Ready(Err(e)),
        },
        "release" => ready(|| {
            let released = semaphore.script(RELEASE_UNIT, &["s", "b"], Vec::new())?;
            reply(
                if released.int() == Some(1) {
                    Ok(())
                } else {
                    Err(SyncError::ValueError(
                        "Semaphore released too many times".into(),
                    ))
                },
                cx,
            )
        }),
        _ => Outcome::Ready(Err(semaphore.not_served(name))),
    }
}
