//! `Queue` and `JoinableQueue` in Redis: a LIST `q` (put at the tail,
//! get from the head) and `u`, the count of items put and not yet marked
//! done. A waiting `get` is `BLPOP` in slices of at most a second on a
//! thread of the blocking pool, so waiters are served in order; an item a
//! slice took for a caller that went away meanwhile goes back to the head.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use super::{command, number};
use crate::__private::{
    blocking, poll_until, ready, reply, stored, unstored, RedisObject, RedisReply as Reply,
};
use crate::__private::{decode_args, CallContext, Outcome};
use crate::value::Value;
use crate::{RemoteError, SyncError};

/// The longest single `BLPOP`.
const SLICE: Duration = Duration::from_secs(1);

/// Append ARGV\[3\] unless the queue holds ARGV\[2\] items (0: no
/// bound); keys made now get the object's lease.
const PUT: &str = "local max = tonumber(ARGV[2]) \
     if max > 0 and redis.call('LLEN', KEYS[1]) >= max then return 0 end \
     local len = redis.call('RPUSH', KEYS[1], ARGV[3]) \
     if redis.call('INCR', KEYS[2]) == 1 or len == 1 then touch(KEYS[1], KEYS[2]) end \
     return 1";

/// Put ARGV\[2\] back at the head (no new task).
const UNGET: &str = "if redis.call('LPUSH', KEYS[1], ARGV[2]) == 1 then touch(KEYS[1]) end \
     return 1";

/// Take the head, if any; a bounded queue (ARGV\[2\] `1`) announces the
/// room made for a waiting put.
const POP: &str = "local v = redis.call('LPOP', KEYS[1]) \
     if v and ARGV[2] == '1' then wake() end \
     return v";

/// One task done, if any is unfinished.
const TASK_DONE: &str = "local u = tonumber(redis.call('GET', KEYS[2]) or '0') \
     if u <= 0 then return 0 end \
     if redis.call('DECR', KEYS[2]) <= 0 then wake() end \
     return 1";

pub(super) const PARTS: &[&str] = &["q", "u"];

fn maxsize(queue: &RedisObject) -> u64 {
    queue.param()
}

/// Put `item` if there is room: whether it was put.
fn try_put(queue: &RedisObject, item: &[u8]) -> Result<bool, RemoteError> {
    let args = vec![maxsize(queue).to_string().into_bytes(), item.to_vec()];
    Ok(queue.script(PUT, PARTS, args)?.int() == Some(1))
}

/// Take the head, waiting at most `wait` (zero: not at all).
fn pop(queue: &RedisObject, wait: Duration) -> Result<Option<Vec<u8>>, RemoteError> {
    let bounded = maxsize(queue) > 0;
    let reply = if wait.is_zero() {
        let bounded = if bounded { b"1" } else { b"0" };
        queue.script(POP, &["q"], vec![bounded.to_vec()])?
    } else {
        let (key, seconds) = (queue.key("q"), format!("{:.3}", wait.as_secs_f64()));
        let reply = queue.write(
            command(&[b"BLPOP", key.as_bytes(), seconds.as_bytes()]),
            wait,
        )?;
        if bounded && matches!(reply, Reply::Array(_)) {
            // Room for a waiting put.
            queue.wake_waiters()?;
        }
        reply
    };
    Ok(match reply {
        Reply::Bulk(bytes) => Some(bytes),
        Reply::Array(mut pair) if pair.len() == 2 => pair.pop().and_then(Reply::into_bytes),
        _ => None,
    })
}

fn len(queue: &RedisObject) -> Result<u64, RemoteError> {
    let reply = queue.command(command(&[b"LLEN", queue.key("q").as_bytes()]))?;
    Ok(reply.int().unwrap_or(0).max(0) as u64)
}

/// A waiting `get`: slices of `BLPOP` until an item comes or `timeout`
/// passes.
async fn get_waiting(
    queue: Arc<RedisObject>,
    timeout: Option<Duration>,
) -> Result<Option<Value>, RemoteError> {
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    loop {
        let slice = match deadline {
            Some(deadline) => deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .min(SLICE),
            None => SLICE,
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiter = Arc::clone(&queue);
        tokio::task::spawn_blocking(move || {
            let got = pop(&waiter, slice);
            if let Err(Ok(Some(item))) = tx.send(got) {
                // The caller went away while this slice waited: the item
                // goes back where it was.
                if let Err(e) = waiter.script(UNGET, PARTS, vec![item]) {
                    tracing::error!(target: "managers::server", error = %e, "an item taken for a caller that left could not be put back");
                }
            }
        });
        let got = rx
            .await
            .map_err(|_| RemoteError::Backend("a queue's waiting thread stopped".into()))??;
        if let Some(item) = got {
            return unstored(&item).map(Some);
        }
        if slice.is_zero() || deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return Ok(None);
        }
    }
}

pub(super) fn call(
    queue: Arc<RedisObject>,
    name: &'static str,
    args: &[u8],
    cx: &CallContext,
) -> Outcome {
    let q = &*queue;
    match name {
        "put_with" => {
            let decoded: Result<(Value, bool, Option<Duration>), _> = decode_args(name, args);
            let (item, block, timeout) = match decoded {
                Ok(args) => args,
                Err(e) => return Outcome::Ready(Err(e)),
            };
            let item = match stored(&item) {
                Ok(item) => item,
                Err(e) => return Outcome::Ready(Err(e)),
            };
            if !block || maxsize(q) == 0 {
                return ready(|| {
                    let put = try_put(q, &item)?;
                    reply(if put { Ok(()) } else { Err(SyncError::Full) }, cx)
                });
            }
            let cx = cx.clone();
            Outcome::pending(async move {
                let put = poll_until(
                    &queue,
                    timeout,
                    || Ok(try_put(&queue, &item)?.then_some(())),
                )
                .await?;
                reply(put.ok_or(SyncError::Full), &cx)
            })
        }
        "put_nowait" => ready(|| {
            let (item,): (Value,) = decode_args(name, args)?;
            let put = try_put(q, &stored(&item)?)?;
            reply(if put { Ok(()) } else { Err(SyncError::Full) }, cx)
        }),
        "get_with" => {
            let (block, timeout): (bool, Option<Duration>) = match decode_args(name, args) {
                Ok(args) => args,
                Err(e) => return Outcome::Ready(Err(e)),
            };
            // An item there now is taken at once, on this thread.
            let now = blocking(|| pop(q, Duration::ZERO));
            match now {
                Err(e) => Outcome::Ready(Err(e)),
                Ok(Some(item)) => Outcome::Ready(
                    unstored(&item).and_then(|v| reply(Ok::<Value, SyncError>(v), cx)),
                ),
                Ok(None) if !block => Outcome::Ready(reply(Err::<Value, _>(SyncError::Empty), cx)),
                Ok(None) => {
                    let cx = cx.clone();
                    Outcome::pending(async move {
                        let got = get_waiting(queue, timeout).await?;
                        reply(got.ok_or(SyncError::Empty), &cx)
                    })
                }
            }
        }
        "get_nowait" => ready(|| {
            let item = pop(q, Duration::ZERO)?.map(|b| unstored(&b)).transpose()?;
            reply(item.ok_or(SyncError::Empty), cx)
        }),
        "unget" => ready(|| {
            let (item,): (Value,) = decode_args(name, args)?;
            q.script(UNGET, PARTS, vec![stored(&item)?])?;
            reply(Ok::<(), SyncError>(()), cx)
        }),
        "qsize" => ready(|| reply(len(q)? as usize, cx)),
        "empty" => ready(|| reply(len(q)? == 0, cx)),
        "full" => ready(|| {
            let max = maxsize(q);
            reply(max > 0 && len(q)? >= max, cx)
        }),
        "task_done" => ready(|| {
            let done = q.script(TASK_DONE, PARTS, Vec::new())?.int() == Some(1);
            reply(
                if done {
                    Ok(())
                } else {
                    Err(SyncError::RuntimeError(
                        "task_done() called too many times".into(),
                    ))
                },
                cx,
            )
        }),
        "join" => {
            let cx = cx.clone();
            Outcome::pending(async move {
                let unfinished = queue.key("u");
                poll_until(&queue, None, || {
                    let reply = queue.command(command(&[b"GET", unfinished.as_bytes()]))?;
                    Ok((number(&reply) <= 0).then_some(()))
                })
                .await?;
                reply((), &cx)
            })
        }
        _ => Outcome::Ready(Err(q.not_served(name))),
    }
}
