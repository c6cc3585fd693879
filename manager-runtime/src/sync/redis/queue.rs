//! `Queue` and `JoinableQueue` in Redis: a LIST `q` (put at the tail,
//! get from the head) and `u`, the count of items put and not yet marked
//! done. The waiting `get`s of a queue in a process stand in one line,
//! served in order by one reader (`BLPOP` in slices of at most a second
//! on a thread of the blocking pool); an item taken for a caller that went
//! away meanwhile goes to the next one, or back to the head.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::{command, number, undo_apart};
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

/// Take the head of a bounded queue, if any, and announce the room made
/// for a waiting put.
const POP: &str = "local v = redis.call('LPOP', KEYS[1]) \
     if v then wake() end \
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
    let reply = if wait.is_zero() && bounded {
        queue.script(POP, &["q"], Vec::new())?
    } else if wait.is_zero() {
        let key = queue.key("q");
        queue.write(command(&[b"LPOP", key.as_bytes()]), Duration::ZERO)?
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

/// The calls waiting in `get` on one queue through this process, first
/// come first served.
#[derive(Default)]
struct Waiters {
    waiting: VecDeque<oneshot::Sender<Result<Vec<u8>, RemoteError>>>,
    /// Whether a reader takes items for them.
    reading: bool,
}

/// The waiting calls of every queue with some, by the queue's key and
/// Redis (`RedisObject::place`).
static WAITING: Mutex<BTreeMap<String, Waiters>> = Mutex::new(BTreeMap::new());

fn waiting() -> std::sync::MutexGuard<'static, BTreeMap<String, Waiters>> {
    WAITING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A waiting `get`'s place in line; dropped with an item handed to it but
/// not taken (its caller left at that moment), it puts the item back at
/// the head.
struct InLine {
    item: Option<oneshot::Receiver<Result<Vec<u8>, RemoteError>>>,
    queue: Arc<RedisObject>,
}

impl InLine {
    /// What was handed over by now, once no more can be.
    fn last_word(&mut self) -> Option<Result<Vec<u8>, RemoteError>> {
        let mut item = self.item.take()?;
        item.close();
        item.try_recv().ok()
    }
}

impl Drop for InLine {
    fn drop(&mut self) {
        if let Some(Ok(item)) = self.last_word() {
            let queue = Arc::clone(&self.queue);
            undo_apart(move || {
                if let Err(e) = queue.script(UNGET, PARTS, vec![item]) {
                    tracing::error!(target: "managers::server", error = %e, "an item taken for a caller that left could not be put back");
                }
            });
        }
    }
}

/// A waiting `get`: in line behind the calls already waiting on this
/// queue here, until an item comes or `timeout` passes. One reader per
/// queue takes items for all of them (`BLPOP` in slices of at most a
/// second on a thread of the blocking pool): a thousand waiting calls are
/// a thousand futures, one thread and one Redis connection.
async fn get_waiting(
    queue: Arc<RedisObject>,
    timeout: Option<Duration>,
) -> Result<Option<Value>, RemoteError> {
    let (tx, rx) = oneshot::channel();
    let key = queue.place("q");
    let start_reader = {
        let mut waiting = waiting();
        let waiters = waiting.entry(key.clone()).or_default();
        waiters.waiting.push_back(tx);
        !std::mem::replace(&mut waiters.reading, true)
    };
    if start_reader {
        let reader = Arc::clone(&queue);
        tokio::task::spawn_blocking(move || read_for_waiters(&reader, &key));
    }
    let mut in_line = InLine {
        item: Some(rx),
        queue,
    };
    let handed = {
        let item = in_line.item.as_mut().expect("set above");
        match timeout {
            None => Some(item.await),
            Some(timeout) => tokio::time::timeout(timeout, item).await.ok(),
        }
    };
    let got = match handed {
        Some(Ok(got)) => Some(got),
        // The reader stopped without a word (its runtime shut down).
        Some(Err(_)) => {
            return Err(RemoteError::Backend("a queue's reader stopped".into()));
        }
        // The time is up: unless an item came meanwhile.
        None => in_line.last_word(),
    };
    in_line.item = None;
    got.transpose()?.map(|item| unstored(&item)).transpose()
}

/// The reader of a queue with waiting calls: take items and hand each to
/// the first call still waiting (back to the head if none is), until no
/// call waits.
fn read_for_waiters(queue: &Arc<RedisObject>, key: &str) {
    loop {
        {
            let mut waiting = waiting();
            let Some(waiters) = waiting.get_mut(key) else {
                return;
            };
            waiters.waiting.retain(|w| !w.is_closed());
            if waiters.waiting.is_empty() {
                waiting.remove(key);
                return;
            }
        }
        match pop(queue, SLICE) {
            Ok(None) => {}
            Ok(Some(mut item)) => loop {
                let next = waiting().get_mut(key).and_then(|w| w.waiting.pop_front());
                let Some(waiter) = next else {
                    // Nobody waits any more: back to the head.
                    if let Err(e) = queue.script(UNGET, PARTS, vec![item]) {
                        tracing::error!(target: "managers::server", error = %e, "an item taken for callers that left could not be put back");
                    }
                    break;
                };
                match waiter.send(Ok(item)) {
                    Ok(()) => break,
                    // That caller left meanwhile: the next one.
                    Err(back) => match back {
                        Ok(back) => item = back,
                        Err(_) => break,
                    },
                }
            },
            Err(e) => {
                // Every waiting call waits on the same Redis: each is told.
                if let Some(waiters) = waiting().remove(key) {
                    for waiter in waiters.waiting {
                        let _ = waiter.send(Err(e.clone()));
                    }
                }
                return;
            }
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
