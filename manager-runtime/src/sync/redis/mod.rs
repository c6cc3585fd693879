//! The built-ins' Redis forms: how every built-in but a manager's `Pool`
//! keeps its state in Redis when a manager is given
//! [`ManagerOptions::redis`](crate::ManagerOptions::redis), beside the
//! built-ins whose method tables they serve (the same names, fingerprints
//! and Python names, so proxies and CPython clients cannot tell). The
//! `Pool` (and its jobs) is declared here as having none, so a gateway
//! refuses it rather than keep its state in one gateway's memory. The machinery
//! they share (ids, leases, holds, connections) is the runtime's
//! `backend` module.
#![forbid(unsafe_code)]

mod array;
mod barrier;
mod collection;
mod condition;
mod dict;
mod event;
mod lock;
mod namespace;
mod queue;
mod value;

use crate::__private::RedisForm;
use crate::__private::{decode_args, Shared};
use crate::server::Registry;
use crate::sync::server as builtins;
use crate::value::Value;
use crate::RemoteError;

/// A command from its arguments.
fn command(args: &[&[u8]]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.to_vec()).collect()
}

/// A counter's value as Redis keeps it (text), 0 if the key is absent.
fn number(reply: &crate::__private::RedisReply) -> i64 {
    reply
        .bytes()
        .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok())
        .unwrap_or(0)
}

/// The stored values of a reply (an array of them; nil is none), an item
/// that is nil read as `None`.
fn values(reply: crate::__private::RedisReply) -> Result<Vec<Value>, RemoteError> {
    reply
        .into_items()
        .unwrap_or_default()
        .into_iter()
        .map(|item| crate::__private::unstored_opt(item).map(Option::unwrap_or_default))
        .collect()
}

/// Runs `undo` on a thread of its own when dropped armed: a wait whose
/// caller went away (its future dropped mid-wait) must still leave Redis
/// as a finished wait would, and a drop cannot wait for Redis.
struct OnDrop {
    undo: Option<Box<dyn FnOnce() + Send>>,
}

impl OnDrop {
    fn new(undo: impl FnOnce() + Send + 'static) -> Self {
        OnDrop {
            undo: Some(Box::new(undo)),
        }
    }

    /// The wait finished: nothing to undo.
    fn disarm(mut self) {
        self.undo = None;
    }
}

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(undo) = self.undo.take() {
            undo_apart(undo);
        }
    }
}

/// Run `undo` (a few Redis exchanges) on a thread of its own: from a
/// `Drop`, which cannot wait for Redis.
fn undo_apart(undo: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new()
        .name("managers-undo".into())
        .spawn(undo)
    {
        tracing::warn!(target: "managers::server", error = %e, "undoing a left wait in Redis");
    }
}

/// A form that stores nothing at creation.
fn nothing_to_fill(_: &crate::__private::RedisObject, _: Value) -> Result<(), RemoteError> {
    Ok(())
}

const DICT: RedisForm = RedisForm {
    parts: dict::PARTS,
    args: |args| Ok((0, decode_args::<(Option<Value>,)>("<constructor>", args)?.0)),
    fill: dict::fill,
    call: dict::call,
};

const QUEUE: RedisForm = RedisForm {
    parts: queue::PARTS,
    args: |args| Ok((decode_args::<(u64,)>("<constructor>", args)?.0, None)),
    fill: nothing_to_fill,
    call: queue::call,
};

const VALUE: RedisForm = RedisForm {
    parts: &["v"],
    args: |args| Ok((0, Some(decode_args::<(Value,)>("<constructor>", args)?.0))),
    fill: value::store,
    call: value::call,
};

const EVENT: RedisForm = RedisForm {
    parts: &["e"],
    args: |args| decode_args::<()>("<constructor>", args).map(|()| (0, None)),
    fill: nothing_to_fill,
    call: event::call,
};

/// `l`, the holder's key, has a lease of its own (a hold's).
const LOCK: RedisForm = RedisForm {
    parts: &["f"],
    args: |args| decode_args::<()>("<constructor>", args).map(|()| (0, None)),
    fill: nothing_to_fill,
    call: lock::call,
};

/// `l`, the holder's key, has a lease of its own (a hold's); `c` counts
/// the holder's levels.
const RLOCK: RedisForm = RedisForm {
    parts: &["c"],
    args: |args| decode_args::<()>("<constructor>", args).map(|()| (0, None)),
    fill: nothing_to_fill,
    call: lock::call_owned,
};

/// The parameter is the initial value (and a bounded one's bound).
const SEMAPHORE: RedisForm = RedisForm {
    parts: &["s", "b"],
    args: |args| {
        let (value,) = decode_args::<(u64,)>("<constructor>", args)?;
        Ok((value, Some(Value::None)))
    },
    fill: lock::fill_units,
    call: lock::call_units,
};

/// The parameter is the length, fixed.
const ARRAY: RedisForm = RedisForm {
    parts: &["a"],
    args: |args| {
        let (items,) = decode_args::<(Vec<Value>,)>("<constructor>", args)?;
        Ok((items.len() as u64, Some(Value::List(items))))
    },
    fill: array::fill,
    call: array::call,
};

/// A dict's keys, attribute names for keys.
const NAMESPACE: RedisForm = RedisForm {
    parts: dict::PARTS,
    args: |args| decode_args::<()>("<constructor>", args).map(|()| (0, None)),
    fill: nothing_to_fill,
    call: namespace::call,
};

const LIST: RedisForm = RedisForm {
    parts: collection::PARTS,
    args: |args| Ok((0, decode_args::<(Option<Value>,)>("<constructor>", args)?.0)),
    fill: collection::fill_list,
    call: collection::call_list,
};

const SET: RedisForm = RedisForm {
    parts: collection::PARTS,
    args: |args| Ok((0, decode_args::<(Option<Value>,)>("<constructor>", args)?.0)),
    fill: collection::fill_set,
    call: collection::call_set,
};

/// The parameter is the number of parties; the default timeout is kept
/// in Redis.
const BARRIER: RedisForm = RedisForm {
    parts: barrier::PARTS,
    args: |args| {
        let (parties, timeout) =
            decode_args::<(u64, Option<std::time::Duration>)>("<constructor>", args)?;
        let timeout = timeout.map_or(Value::None, |t| Value::Int(t.as_millis() as i128));
        Ok((parties.max(1), Some(timeout)))
    },
    fill: barrier::fill,
    call: barrier::call,
};

/// The parameter is the id of the supplied lock (0: its own RLock, whose
/// holder's key `l` has a lease of its own).
const CONDITION: RedisForm = RedisForm {
    parts: &["c", "w", "k", "x"],
    args: |args| {
        let (lock,) = decode_args::<(Option<crate::__private::Token>,)>("<constructor>", args)?;
        Ok(match lock {
            Some(lock) => (lock.id, Some(Value::None)),
            None => (0, None),
        })
    },
    fill: condition::fill,
    call: condition::call,
};

/// Declare every built-in's Redis form in `registry` (none for those that
/// have none).
pub(crate) fn register(registry: &mut Registry) {
    registry.redis_form(builtins::Dict::TYPEID, Some(DICT));
    registry.redis_form(builtins::ManagedQueue::TYPEID, Some(QUEUE));
    registry.redis_form(builtins::ManagedValue::TYPEID, Some(VALUE));
    registry.redis_form(builtins::ManagedLock::TYPEID, Some(LOCK));
    registry.redis_form(builtins::Event::TYPEID, Some(EVENT));
    registry.redis_form(builtins::ManagedRLock::TYPEID, Some(RLOCK));
    registry.redis_form(builtins::Semaphore::TYPEID, Some(SEMAPHORE));
    registry.redis_form(builtins::ManagedArray::TYPEID, Some(ARRAY));
    registry.redis_form(builtins::Namespace::TYPEID, Some(NAMESPACE));
    registry.redis_form(builtins::List::TYPEID, Some(LIST));
    registry.redis_form(builtins::Set::TYPEID, Some(SET));
    registry.redis_form(builtins::Barrier::TYPEID, Some(BARRIER));
    registry.redis_form(builtins::Condition::TYPEID, Some(CONDITION));
    for face in [
        builtins::RemoteIter::TYPEID,
        builtins::ManagedPool::TYPEID,
        builtins::PoolJob::TYPEID,
    ] {
        registry.redis_form(face, None);
    }
}
