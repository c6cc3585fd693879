//! `Barrier` in Redis: a HASH `s` (the current generation `gen`, its
//! arrivals `count`, its first volunteer for the action `vol`, `broken`,
//! the default `timeout` in ms) and a HASH `g`, each generation's end:
//! `R` (released), `B` (broken) or `A` and the index of the party running
//! the action. A waiting party looks at its generation's end when a
//! change is announced. Ends of the last 10,000 generations are kept.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use super::{command, OnDrop};
use crate::__private::{decode_args, CallContext, Outcome};
use crate::__private::{poll_until, ready, reply, RedisObject, RedisReply};
use crate::sync::server::Arrival;
use crate::value::Value;
use crate::{RemoteError, SyncError};

pub(super) const PARTS: &[&str] = &["s", "g"];

/// A script that may break the barrier: `body` with the Lua function
/// `fail(s, g, broken)`, which fails every waiter of the filling
/// generation and of those whose action runs, starts a new generation and
/// sets `broken`.
macro_rules! breaking {
    ($body:literal) => {
        concat!(
            "local function fail(s, g, broken) \
               local gen = tonumber(redis.call('HGET', s, 'gen') or '0') \
               redis.call('HSET', g, gen, 'B') \
               local ends = redis.call('HGETALL', g) \
               for i = 1, #ends, 2 do \
                 if string.sub(ends[i + 1], 1, 1) == 'A' then redis.call('HSET', g, ends[i], 'B') end \
               end \
               redis.call('HSET', s, 'gen', gen + 1, 'count', 0, 'broken', broken) \
               redis.call('HDEL', s, 'vol') \
               redis.call('HDEL', g, gen - 10000) \
               wake() \
             end ",
            $body
        )
    };
}

/// Arrive (ARGV: parties, offers the action 0/1): `{-1}` if broken, else
/// `{what, index, generation, default timeout in ms or ''}`, `what` 0 to
/// wait, 1 released at once, 2 to run the action now.
const ARRIVE: &str = "local timeout = redis.call('HGET', KEYS[1], 'timeout') or '' \
     if redis.call('HGET', KEYS[1], 'broken') == '1' then return {-1} end \
     local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0') \
     local index = redis.call('HINCRBY', KEYS[1], 'count', 1) - 1 \
     if ARGV[3] == '1' and redis.call('HEXISTS', KEYS[1], 'vol') == 0 then \
       redis.call('HSET', KEYS[1], 'vol', index) \
     end \
     if index + 1 < tonumber(ARGV[2]) then return {0, index, gen, timeout} end \
     local runner = redis.call('HGET', KEYS[1], 'vol') \
     if ARGV[3] == '1' then runner = tostring(index) end \
     redis.call('HSET', KEYS[1], 'gen', gen + 1, 'count', 0) \
     redis.call('HDEL', KEYS[1], 'vol') \
     redis.call('HDEL', KEYS[2], gen - 10000) \
     wake() \
     if not runner then redis.call('HSET', KEYS[2], gen, 'R') return {1, index, gen, timeout} end \
     redis.call('HSET', KEYS[2], gen, 'A' .. runner) \
     if tonumber(runner) == index then return {2, index, gen, timeout} end \
     return {0, index, gen, timeout}";

/// A waiter of generation ARGV\[2\] (index ARGV\[3\]) gives up (its
/// time ran out, or its caller left): its end if it ended for this party
/// meanwhile, else the barrier breaks: `B`.
const GIVE_UP: &str = breaking!(
    "local v = redis.call('HGET', KEYS[2], ARGV[2]) \
     if v == 'R' or v == 'B' or v == 'A' .. ARGV[3] then return v end \
     fail(KEYS[1], KEYS[2], '1') \
     return 'B'"
);

/// The action of generation ARGV\[2\] is done (ARGV\[3\]: `1` ok): 1, or
/// 0 if the barrier broke meanwhile.
const ACTION_DONE: &str = breaking!(
    "local v = redis.call('HGET', KEYS[2], ARGV[2]) \
     if not v or string.sub(v, 1, 1) ~= 'A' then return 0 end \
     if ARGV[3] == '1' then redis.call('HSET', KEYS[2], ARGV[2], 'R') wake() \
     else fail(KEYS[1], KEYS[2], '1') end \
     return 1"
);

/// Break it (ARGV\[2\] `1`, abort) or fail its waiters and make it usable
/// again (`0`, reset).
const RESET: &str = breaking!("fail(KEYS[1], KEYS[2], ARGV[2]) return 1");

/// A new barrier: its state, with the default timeout (ARGV\[2\], ms) if
/// any.
const FILL: &str = "redis.call('HSET', KEYS[1], 'gen', 0, 'count', 0, 'broken', 0) \
     if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'timeout', ARGV[2]) end \
     touch(KEYS[1]) \
     return 1";

/// A new barrier's state; `timeout` is its default timeout in ms, if any.
pub(super) fn fill(barrier: &RedisObject, timeout: Value) -> Result<(), RemoteError> {
    let timeout = match timeout {
        Value::Int(ms) => ms.to_string().into_bytes(),
        _ => Vec::new(),
    };
    barrier.script(FILL, PARTS, vec![timeout]).map(drop)
}

/// How a generation ended for a party.
fn ended(end: &[u8], index: usize, generation: u64) -> Option<Result<Arrival, SyncError>> {
    match end {
        b"R" => Some(Ok(Arrival {
            index,
            action: None,
        })),
        b"B" => Some(Err(SyncError::BrokenBarrier)),
        [b'A', runner @ ..] if runner == index.to_string().as_bytes() => Some(Ok(Arrival {
            index,
            action: Some(generation),
        })),
        _ => None,
    }
}

/// How a method answers with a party's passage (its index, or the whole
/// arrival).
type Answer = fn(Result<Arrival, SyncError>, &CallContext) -> Result<Vec<u8>, RemoteError>;

/// Pass the barrier (Python's `wait`): arrive, then wait for the
/// generation's end.
fn pass(
    barrier: Arc<RedisObject>,
    timeout: Option<Duration>,
    offers_action: bool,
    cx: &CallContext,
    answer: Answer,
) -> Outcome {
    let arrived = crate::__private::blocking(|| {
        let args = vec![
            barrier.param().to_string().into_bytes(),
            if offers_action {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            },
        ];
        barrier.script(ARRIVE, PARTS, args)
    });
    let arrived: Vec<RedisReply> = match arrived {
        Ok(reply) => reply.into_items().unwrap_or_default(),
        Err(e) => return Outcome::Ready(Err(e)),
    };
    let number = |i: usize| arrived.get(i).and_then(RedisReply::int);
    let (Some(what), Some(index), Some(generation)) = (number(0), number(1), number(2)) else {
        return Outcome::Ready(answer(Err(SyncError::BrokenBarrier), cx));
    };
    let (index, generation) = (index as usize, generation as u64);
    match what {
        1 => {
            return Outcome::Ready(answer(
                Ok(Arrival {
                    index,
                    action: None,
                }),
                cx,
            ))
        }
        2 => {
            return Outcome::Ready(answer(
                Ok(Arrival {
                    index,
                    action: Some(generation),
                }),
                cx,
            ))
        }
        _ => {}
    }
    let default = number(3).map(|ms| Duration::from_millis(ms.max(0) as u64));
    let timeout = timeout.or(default);
    let give_up_args = vec![
        generation.to_string().into_bytes(),
        index.to_string().into_bytes(),
    ];
    let cx = cx.clone();
    Outcome::pending(async move {
        // A caller that leaves mid-wait breaks the barrier, as in memory:
        // the others must not wait for it forever.
        let leaving = {
            let (barrier, args) = (Arc::clone(&barrier), give_up_args.clone());
            OnDrop::new(move || {
                let _ = barrier.script(GIVE_UP, PARTS, args);
            })
        };
        let key = barrier.key("g");
        let field = generation.to_string();
        let end = poll_until(&barrier, timeout, || {
            let end = barrier.command(command(&[b"HGET", key.as_bytes(), field.as_bytes()]))?;
            Ok(end.bytes().and_then(|end| ended(end, index, generation)))
        })
        .await?;
        leaving.disarm();
        let end = match end {
            Some(end) => end,
            None => {
                let end =
                    crate::__private::blocking(|| barrier.script(GIVE_UP, PARTS, give_up_args))?;
                ended(end.bytes().unwrap_or(b"B"), index, generation)
                    .unwrap_or(Err(SyncError::BrokenBarrier))
            }
        };
        answer(end, &cx)
    })
}

pub(super) fn call(
    barrier: Arc<RedisObject>,
    name: &'static str,
    args: &[u8],
    cx: &CallContext,
) -> Outcome {
    match name {
        "wait" => match decode_args::<(Option<Duration>,)>(name, args) {
            Ok((timeout,)) => pass(barrier, timeout, false, cx, |end, cx| {
                reply(end.map(|arrival| arrival.index), cx)
            }),
            Err(e) => Outcome::Ready(Err(e)),
        },
        "wait_offering_action" => match decode_args::<(Option<Duration>,)>(name, args) {
            Ok((timeout,)) => pass(barrier, timeout, true, cx, reply),
            Err(e) => Outcome::Ready(Err(e)),
        },
        "action_done" => ready(|| {
            let (ticket, ok): (u64, bool) = decode_args(name, args)?;
            let args = vec![
                ticket.to_string().into_bytes(),
                if ok { b"1".to_vec() } else { b"0".to_vec() },
            ];
            let done = barrier.script(ACTION_DONE, PARTS, args)?;
            reply(
                if done.int() == Some(1) {
                    Ok(())
                } else {
                    Err(SyncError::BrokenBarrier)
                },
                cx,
            )
        }),
        "abort" | "reset" => ready(|| {
            let broken = if name == "abort" { b"1" } else { b"0" };
            barrier.script(RESET, PARTS, vec![broken.to_vec()])?;
            reply((), cx)
        }),
        "parties" => ready(|| reply(barrier.param() as usize, cx)),
        "n_waiting" | "broken" => ready(|| {
            let key = barrier.key("s");
            let state =
                barrier.command(command(&[b"HMGET", key.as_bytes(), b"broken", b"count"]))?;
            let state = state.into_items().unwrap_or_default();
            let broken = state.first().and_then(RedisReply::bytes) == Some(b"1");
            let count = state.get(1).and_then(RedisReply::int).unwrap_or(0).max(0) as usize;
            if name == "broken" {
                reply(broken, cx)
            } else {
                reply(if broken { 0 } else { count }, cx)
            }
        }),
        _ => Outcome::Ready(Err(barrier.not_served(name))),
    }
}
