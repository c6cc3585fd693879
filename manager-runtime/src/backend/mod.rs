//! The built-ins' state in Redis (or Valkey). A server given
//! [`ManagerOptions::redis`](crate::ManagerOptions::redis) is a *gateway*:
//! the built-ins that have a Redis form (a [`RedisForm`], declared beside
//! each built-in in `sync/redis/`) keep their state in Redis keys named by
//! the object's id, so every gateway given the same Redis serves the same
//! objects, and a token made through one works through any. This module
//! is the machinery they share and names no built-in.
//!
//! - **Ids** are unique among gateways without a Redis call per object:
//!   each gateway takes a number (`INCR managers:gateways`) when it starts
//!   and makes its ids in the range `number << 40`.
//! - **An object's keys** share the hash tag `{id}`
//!   (`managers:{id}:meta`, `...:hv`), so one object's keys sit in one slot
//!   and its scripts are atomic. `meta` holds the typeid it was made as and
//!   its parameter (a queue's bound), so another gateway can serve it
//!   ([`RedisStore::open`]).
//! - **Lifetime by leases**: a gateway renews the keys of every object it
//!   holds (in its table or in a call) every third of a lease; an object
//!   no gateway holds expires six leases after the last renewal. Singletons
//!   never expire.
//! - **Holds** (a lock's key naming its holder): the holder's gateway
//!   renews them every third of a lease while the holder is connected and
//!   deletes them when it leaves; if the gateway dies they expire after one
//!   lease.
//! - **Calls block** on their Redis round trip: inline on a connection's
//!   own thread (`server/dedicated.rs`), in `block_in_place` on the shared
//!   runtime. Waits are futures that try in slices or again whenever a
//!   change of their object is announced on a channel every gateway
//!   listens to ([`WAKES`]), with growing pauses as the fallback
//!   ([`poll_until`]), so a caller that goes away stops waiting.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::error::{Error, RemoteError};
use crate::object::{
    CallContext, MethodInfo, Object, ObjectLock, Outcome, Plain, Reply as _, Shared,
};
use crate::python::table::PyMethod;
use crate::redis::{cmd, Command, Redis, RedisUrl};
use crate::value::Value;

pub use crate::redis::resp::Reply as RedisReply;

/// How many bits of an id are the gateway's own counter.
const GATEWAY_SHIFT: u32 = 40;

/// What every script starts with: `lease` (ARGV\[1\], milliseconds, `0`
/// for none) and `touch(...)`, which gives the keys named that lease.
const PRELUDE: &str = "local lease = tonumber(ARGV[1]) \
     local function touch(...) if lease > 0 then \
     for _, k in ipairs({...}) do redis.call('PEXPIRE', k, lease) end end end \
     local function wake() \
     redis.call('PUBLISH', 'managers:wake', string.match(KEYS[1], '{(%d+)}')) end ";

/// The channel on which a change that waiters may wait for (a lock
/// released, an event set, ...) is announced, by the object's id: scripts
/// call `wake()`. Every gateway listens, and its waiting calls on that
/// object look again at once instead of at their next pause.
const WAKES: &str = "managers:wake";

/// The set of every gateway's address (as clients reach it): a token
/// naming one names an object of this Redis (ids of another Redis's
/// gateways may coincide with ours).
const ADDRESSES: &str = "managers:addresses";

/// How a built-in keeps its state in Redis, declared beside it and handed
/// to the registry (`Registry::redis_form`).
#[derive(Clone, Copy)]
pub struct RedisForm {
    /// The key parts an object may have (besides `meta`), renewed together.
    pub parts: &'static [&'static str],
    /// The constructor's arguments: the object's parameter (a queue's
    /// bound) and the initial contents, if any.
    pub args: fn(&[u8]) -> Result<Made, RemoteError>,
    /// Store the initial contents in a new object.
    pub fill: fn(&RedisObject, Value) -> Result<(), RemoteError>,
    /// Run a method, by its name in the built-in's table.
    pub call: fn(Arc<RedisObject>, &'static str, &[u8], &CallContext) -> Outcome,
}

/// What a constructor's arguments say: the object's parameter (a queue's
/// bound, 0 if none) and its initial contents, if any.
pub type Made = (u64, Option<Value>);

/// A typeid whose objects may live in Redis, as the server's registry
/// describes it.
#[derive(Clone, Copy)]
pub(crate) struct Target {
    /// The typeid, as the registry spells it.
    pub(crate) typeid: &'static str,
    pub(crate) exposed: Option<&'static [&'static str]>,
    pub(crate) methods: &'static [MethodInfo],
    pub(crate) python: &'static [PyMethod],
    /// The served type's own typeid.
    pub(crate) face: &'static str,
    pub(crate) singleton: bool,
    pub(crate) form: RedisForm,
}

/// A failed Redis exchange, as the caller sees it.
fn backend_error(e: Error) -> RemoteError {
    RemoteError::Backend(crate::error::chain(&e))
}

/// Run `f`, which blocks on Redis, without stalling other connections: on
/// the shared (multi-threaded) runtime in `block_in_place`, elsewhere (a
/// connection's own thread) as it is.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The Redis key `part` of object `id`.
fn key(id: u64, part: &str) -> String {
    format!("managers:{{{id}}}:{part}")
}

/// Delete KEYS\[1\] if ARGV\[1\] holds it (its value is ARGV\[1\], or
/// starts with it and a `:`: an RLock's holder names the owner too), and
/// wake its waiters.
const LET_GO_IF_HOLDER: &str = "local h = redis.call('GET', KEYS[1]) \
     if h == ARGV[1] or (h and string.sub(h, 1, #ARGV[1] + 1) == ARGV[1] .. ':') then \
       redis.call('DEL', KEYS[1]) \
       redis.call('PUBLISH', 'managers:wake', string.match(KEYS[1], '{(%d+)}')) \
       return 1 \
     end \
     return 0";

/// Renew KEYS\[1\] for ARGV\[2\] ms if ARGV\[1\] holds it (as for
/// [`LET_GO_IF_HOLDER`]).
const RENEW_IF_HOLDER: &str = "local h = redis.call('GET', KEYS[1]) \
     if h == ARGV[1] or (h and string.sub(h, 1, #ARGV[1] + 1) == ARGV[1] .. ':') then \
       return redis.call('PEXPIRE', KEYS[1], ARGV[2]) \
     end \
     return 0";

/// One gateway's link to Redis: connections, the objects it renews, the
/// holds it keeps for its sessions.
pub(crate) struct RedisStore {
    url: RedisUrl,
    lease: Duration,
    /// This gateway's number (ids and holders carry it).
    gateway: u64,
    /// Idle connections; a call takes one (or makes one) and gives it back.
    idle: Mutex<Vec<Redis>>,
    /// The objects alive in this process, by id, to renew.
    live: Mutex<HashMap<u64, Vec<Weak<RedisObject>>>>,
    /// Keys held for sessions of this gateway (a taken lock), with the
    /// holder session.
    holds: Mutex<HashMap<String, u128>>,
    /// Each script's SHA1 in Redis (`SCRIPT LOAD`), by the address of its
    /// body, so a call sends `EVALSHA` and not the script.
    scripts: Mutex<HashMap<usize, Vec<u8>>>,
    /// Failed exchanges and reconnections, if the server reports metrics.
    metrics: Option<BackendMetrics>,
    /// What calls waiting on an object of this gateway wait on, by the
    /// object's id: notified when Redis announces a change ([`WAKES`]).
    wakes: Mutex<HashMap<u64, Weak<tokio::sync::Notify>>>,
    /// Addresses known to be gateways' of this Redis ([`ADDRESSES`]).
    gateways: Mutex<std::collections::HashSet<String>>,
    /// `WAIT` after each write: replicas, and how long at most.
    wait: Option<(u32, Duration)>,
}

/// A gateway's Redis metrics (see `ManagerOptions::metrics`).
struct BackendMetrics {
    errors: metrics::Counter,
    reconnects: metrics::Counter,
}

impl RedisStore {
    /// Connect to the Redis at `url` and take a gateway number; a thread
    /// renews this gateway's leases every third of `lease` until the
    /// store is dropped.
    pub(crate) fn connect(
        url: &str,
        lease: Duration,
        wait: Option<(u32, Duration)>,
        metrics: bool,
    ) -> crate::Result<Arc<RedisStore>> {
        let url: RedisUrl = url.parse()?;
        let metrics = metrics.then(|| {
            let redis = format!("{url:?}");
            BackendMetrics {
                errors: metrics::counter!("managers_backend_errors_total", "redis" => redis.clone()),
                reconnects: metrics::counter!("managers_backend_reconnects_total", "redis" => redis),
            }
        });
        let mut redis = Redis::connect(&url)?;
        let gateway = redis
            .call(cmd!["INCR", "managers:gateways"])?
            .int()
            .and_then(|n| u64::try_from(n).ok())
            .filter(|&n| n > 0 && n < (1 << (63 - GATEWAY_SHIFT)))
            .ok_or_else(|| Error::Redis("INCR managers:gateways: not a gateway number".into()))?;
        let store = Arc::new(RedisStore {
            url,
            lease,
            gateway,
            idle: Mutex::new(vec![redis]),
            live: Mutex::default(),
            holds: Mutex::default(),
            scripts: Mutex::default(),
            metrics,
            wakes: Mutex::default(),
            gateways: Mutex::default(),
            wait,
        });
        let weak = Arc::downgrade(&store);
        std::thread::Builder::new()
            .name("managers-lease".into())
            .spawn(move || renew_while_alive(&weak, lease / 3))
            .map_err(Error::Io)?;
        let (weak, url) = (Arc::downgrade(&store), store.url.clone());
        std::thread::Builder::new()
            .name("managers-wakes".into())
            .spawn(move || listen_while_alive(&weak, &url))
            .map_err(Error::Io)?;
        tracing::info!(target: "managers::server", gateway, url = ?store.url, "state in Redis");
        Ok(store)
    }

    /// The first id this gateway makes.
    pub(crate) fn first_id(&self) -> u64 {
        self.gateway << GATEWAY_SHIFT
    }

    /// Run `f` on a connection of the pool.
    fn with<R>(&self, f: impl FnOnce(&mut Redis) -> crate::Result<R>) -> Result<R, RemoteError> {
        let taken = self.idle.lock().unwrap().pop();
        let mut redis = match taken {
            Some(redis) => redis,
            None => Redis::connect(&self.url).map_err(backend_error)?,
        };
        let before = redis.connections();
        // A connection Redis closed while it was idle (a timeout, a
        // restart, `CLIENT KILL`) is made again before a command goes into
        // it, whose outcome would otherwise be unknown.
        if redis.socket().is_some_and(crate::wait::peer_closed) {
            redis.disconnect();
        }
        let result = f(&mut redis).map_err(backend_error);
        if let Some(metrics) = &self.metrics {
            if result.is_err() {
                metrics.errors.increment(1);
            }
            if redis.connections() > before {
                metrics.reconnects.increment(1);
            }
        }
        self.idle.lock().unwrap().push(redis);
        result
    }

    /// `reply`, a write's, once the replicas asked for have it
    /// ([`ManagerOptions::redis_wait`](crate::ManagerOptions::redis_wait));
    /// at once when there is no such option.
    fn replicated(&self, redis: &mut Redis, reply: RedisReply) -> crate::Result<RedisReply> {
        let Some((replicas, timeout)) = self.wait else {
            return Ok(reply);
        };
        // `WAIT n 0` would wait for ever: at least a millisecond.
        let ms = (timeout.as_millis() as u64).max(1);
        let acked = redis
            .call_waiting(cmd!["WAIT", u64::from(replicas), ms], timeout)?
            .int()
            .unwrap_or(0);
        if acked < i64::from(replicas) {
            return Err(Error::Redis(format!(
                "written on the primary, but {acked} of {replicas} replicas had it within \
                 {timeout:?}: a failover now may lose it"
            )));
        }
        Ok(reply)
    }

    /// Objects' keys live this long past their last renewal.
    fn object_lease(&self) -> Duration {
        self.lease * 6
    }

    /// Make a new object of `target` in Redis as `id`, from its
    /// constructor's `args`. A singleton typeid names one object for every
    /// gateway: its id is the first gateway's, which this returns.
    pub(crate) fn create(
        self: &Arc<Self>,
        target: Target,
        args: &[u8],
        id: u64,
    ) -> Result<(u64, Arc<RedisObject>), RemoteError> {
        blocking(|| {
            let (param, initial) = if target.singleton {
                crate::object::decode_args::<()>("<constructor>", args)?;
                (0, None)
            } else {
                (target.form.args)(args)?
            };
            let id = if target.singleton {
                self.with(|redis| named(redis, target, id))?
            } else {
                let lease = self.object_lease().as_millis() as u64;
                self.with(|redis| {
                    let meta = key(id, "meta");
                    let fields = cmd![
                        "HSET",
                        &meta,
                        "typeid",
                        target.typeid,
                        "face",
                        target.face,
                        "param",
                        param,
                        "leased",
                        "1"
                    ];
                    check(redis.pipeline(&[fields, cmd!["PEXPIRE", &meta, lease]])?)
                })?;
                id
            };
            let object = RedisObject::new(self, id, target, param, !target.singleton);
            if let Some(initial) = initial {
                (target.form.fill)(&object, initial)?;
            }
            Ok((id, object))
        })
    }

    /// The object `id` that a gateway (this one or another) made, as the
    /// typeid it was made as (`target` finds how this server serves it);
    /// `None` if Redis holds no such object (never made, or expired), or
    /// one this server does not serve from Redis; an error if Redis could
    /// not be asked.
    pub(crate) fn open(
        self: &Arc<Self>,
        id: u64,
        target: impl FnOnce(&str) -> Option<Target>,
    ) -> Result<Option<Arc<RedisObject>>, RemoteError> {
        let reply = blocking(|| {
            self.with(|redis| {
                redis.call(cmd!["HMGET", key(id, "meta"), "typeid", "param", "leased"])
            })
        })?;
        Ok(self.opened(id, reply, target))
    }

    /// [`open`](Self::open)'s object from the fields of its `meta`.
    fn opened(
        self: &Arc<Self>,
        id: u64,
        meta: RedisReply,
        target: impl FnOnce(&str) -> Option<Target>,
    ) -> Option<Arc<RedisObject>> {
        let [typeid, param, leased]: [RedisReply; 3] = meta.into_items()?.try_into().ok()?;
        let typeid = String::from_utf8(typeid.into_bytes()?).ok()?;
        let param = param
            .bytes()
            .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok())
            .unwrap_or(0);
        let leased = leased.bytes() != Some(b"0");
        let target = target(&typeid)?;
        Some(RedisObject::new(self, id, target, param, leased))
    }

    /// Every connection of `session` is gone: the keys it holds through
    /// this gateway are let go (if still its own).
    pub(crate) fn session_left(&self, session: u128) {
        let held: Vec<String> = {
            let mut holds = self.holds.lock().unwrap();
            let keys: Vec<String> = holds
                .iter()
                .filter(|(_, &s)| s == session)
                .map(|(key, _)| key.clone())
                .collect();
            for key in &keys {
                holds.remove(key);
            }
            keys
        };
        if held.is_empty() {
            return;
        }
        let holder = self.holder(session);
        let commands: Vec<Command> = held
            .iter()
            .map(|key| cmd!["EVAL", LET_GO_IF_HOLDER, "1", key, &holder])
            .collect();
        if let Err(e) = blocking(|| self.with(|redis| redis.pipeline(&commands).map(drop))) {
            tracing::warn!(target: "managers::server", error = %e, "letting go of a departed session's holds in Redis");
        }
    }

    /// Record `address` as a gateway's of this Redis: a token naming it
    /// names an object kept here, which any gateway may hand out as its
    /// own (`is_gateway`).
    pub(crate) fn announce(&self, address: &crate::address::Address) -> crate::Result<()> {
        let address = address.to_string();
        blocking(|| self.with(|redis| redis.call(cmd!["SADD", ADDRESSES, &address])))
            .map(drop)
            .map_err(|e| Error::Redis(e.to_string()))?;
        self.gateways.lock().unwrap().insert(address);
        Ok(())
    }

    /// Whether `address` is (or was) a gateway's of this Redis; asked once
    /// per address.
    pub(crate) fn is_gateway(&self, address: &crate::address::Address) -> bool {
        let address = address.to_string();
        if self.gateways.lock().unwrap().contains(&address) {
            return true;
        }
        let known =
            blocking(|| self.with(|redis| redis.call(cmd!["SISMEMBER", ADDRESSES, &address])))
                .is_ok_and(|reply| reply.int() == Some(1));
        if known {
            self.gateways.lock().unwrap().insert(address);
        }
        known
    }

    /// Wake the calls waiting on object `id` (every object's: `None`).
    fn wake(&self, id: Option<u64>) {
        let wakes = self.wakes.lock().unwrap();
        let notify = |w: &Weak<tokio::sync::Notify>| {
            if let Some(notify) = w.upgrade() {
                notify.notify_waiters();
            }
        };
        match id {
            Some(id) => wakes.get(&id).into_iter().for_each(notify),
            None => wakes.values().for_each(notify),
        }
    }

    /// What calls waiting on object `id` wait on.
    fn waker(&self, id: u64) -> Arc<tokio::sync::Notify> {
        let mut wakes = self.wakes.lock().unwrap();
        if let Some(notify) = wakes.get(&id).and_then(Weak::upgrade) {
            return notify;
        }
        wakes.retain(|_, w| w.strong_count() > 0);
        let notify = Arc::new(tokio::sync::Notify::new());
        wakes.insert(id, Arc::downgrade(&notify));
        notify
    }

    /// How a held key names `session` of this gateway.
    fn holder(&self, session: u128) -> String {
        format!("{}:{session:032x}", self.gateway)
    }

    /// Renew the keys of every live object and every hold of this gateway.
    fn renew(&self) {
        let objects: Vec<(u64, &'static [&'static str])> = {
            let mut live = self.live.lock().unwrap();
            live.retain(|_, handles| {
                handles.retain(|h| h.strong_count() > 0);
                !handles.is_empty()
            });
            live.values()
                .filter_map(|handles| handles.iter().find_map(Weak::upgrade))
                .filter(|o| o.leased)
                .flat_map(|o| {
                    let kept = o.kept.lock().unwrap().clone();
                    std::iter::once((o.id, o.target.form.parts)).chain(kept)
                })
                .collect()
        };
        let holds: Vec<(String, u128)> = self
            .holds
            .lock()
            .unwrap()
            .iter()
            .map(|(key, &s)| (key.clone(), s))
            .collect();
        let object_lease = self.object_lease().as_millis() as u64;
        let hold_lease = self.lease.as_millis() as u64;
        let mut commands: Vec<Command> = Vec::new();
        for (id, parts) in &objects {
            commands.push(cmd!["PEXPIRE", key(*id, "meta"), object_lease]);
            for part in *parts {
                commands.push(cmd!["PEXPIRE", key(*id, part), object_lease]);
            }
        }
        let first_hold = commands.len();
        for (key, session) in &holds {
            let holder = self.holder(*session);
            commands.push(cmd!["EVAL", RENEW_IF_HOLDER, "1", key, holder, hold_lease]);
        }
        if commands.is_empty() {
            return;
        }
        match self.with(|redis| redis.pipeline(&commands)) {
            Ok(replies) => {
                // A hold no longer ours (let go by another caller, or
                // expired while Redis was out of reach) is forgotten.
                let mut held = self.holds.lock().unwrap();
                for (reply, (key, session)) in replies[first_hold..].iter().zip(&holds) {
                    if reply.int() == Some(0) && held.get(key) == Some(session) {
                        held.remove(key);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(target: "managers::server", error = %e, "renewing leases in Redis");
            }
        }
    }
}

/// The wakes thread: listen to [`WAKES`] on a connection of its own while
/// the store lives, notifying the calls that wait on each object named;
/// after a reconnection (a change may have been missed), every one.
fn listen_while_alive(store: &Weak<RedisStore>, url: &RedisUrl) {
    let mut redis: Option<Redis> = None;
    loop {
        let Some(listening) = redis.as_mut() else {
            if store.strong_count() == 0 {
                return;
            }
            match Redis::connect(url).and_then(|mut r| r.call(cmd!["SUBSCRIBE", WAKES]).map(|_| r))
            {
                Ok(subscribed) => {
                    redis = Some(subscribed);
                    if let Some(store) = store.upgrade() {
                        store.wake(None);
                    }
                }
                Err(e) => {
                    tracing::debug!(target: "managers::server", error = %e, "listening for wakes in Redis");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            continue;
        };
        match listening.next_message(Duration::from_millis(200)) {
            Ok(None) => {
                if store.strong_count() == 0 {
                    return;
                }
            }
            Ok(Some(message)) => {
                let id = message
                    .into_items()
                    .and_then(|mut parts| parts.pop())
                    .and_then(|id| id.int())
                    .and_then(|id| u64::try_from(id).ok());
                match (id, store.upgrade()) {
                    (Some(id), Some(store)) => store.wake(Some(id)),
                    (_, None) => return,
                    (None, _) => {}
                }
            }
            Err(_) => redis = None,
        }
    }
}

/// The lease thread: renew every `every` while the store lives.
fn renew_while_alive(store: &Weak<RedisStore>, every: Duration) {
    let step = Duration::from_millis(50).min(every);
    let mut waited = Duration::ZERO;
    loop {
        std::thread::sleep(step);
        waited += step;
        let Some(store) = store.upgrade() else {
            return;
        };
        if waited >= every {
            waited = Duration::ZERO;
            store.renew();
        }
    }
}

/// A singleton's id: the one Redis names for `typeid`, or `id`, recorded
/// now as that name's.
fn named(redis: &mut Redis, target: Target, id: u64) -> crate::Result<u64> {
    const NAMED: &str = "local got = redis.call('GET', KEYS[1]) \
         if got then return tonumber(got) end \
         redis.call('SET', KEYS[1], ARGV[1]) \
         redis.call('HSET', 'managers:{' .. ARGV[1] .. '}:meta', \
           'typeid', ARGV[2], 'face', ARGV[3], 'param', '0', 'leased', '0') \
         return tonumber(ARGV[1])";
    let typeid = target.typeid;
    let name = format!("managers:named:{typeid}");
    let reply = redis.call(cmd!["EVAL", NAMED, "1", name, id, typeid, target.face])?;
    reply
        .int()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| Error::Redis(format!("a bad id for the singleton `{typeid}`")))
}

/// A pipeline's replies, an error reply among them an error.
fn check(replies: Vec<RedisReply>) -> crate::Result<()> {
    match replies
        .into_iter()
        .find(|r| matches!(r, RedisReply::Error(_)))
    {
        Some(RedisReply::Error(e)) => Err(Error::Redis(e)),
        _ => Ok(()),
    }
}

/// A built-in whose state is in Redis: its id names its keys, its
/// [`RedisForm`] runs its methods.
pub struct RedisObject {
    id: u64,
    target: Target,
    /// The constructor's parameter (a queue's bound).
    param: u64,
    /// Its keys expire unless renewed (every object but a singleton).
    leased: bool,
    store: Arc<RedisStore>,
    /// Other objects renewed with it (a condition's lock): id and parts.
    kept: Mutex<Vec<(u64, &'static [&'static str])>>,
}

impl RedisObject {
    fn new(
        store: &Arc<RedisStore>,
        id: u64,
        target: Target,
        param: u64,
        leased: bool,
    ) -> Arc<Self> {
        let object = Arc::new(RedisObject {
            id,
            target,
            param,
            leased,
            store: Arc::clone(store),
            kept: Mutex::default(),
        });
        store
            .live
            .lock()
            .unwrap()
            .entry(id)
            .or_default()
            .push(Arc::downgrade(&object));
        object
    }

    /// The typeid and exposed set it is served as.
    pub(crate) fn served_as(&self) -> (&'static str, Option<&'static [&'static str]>) {
        (self.target.typeid, self.target.exposed)
    }

    /// The object `token` names, if it lives in this Redis and is of this
    /// object's kind (a dict's `update` from another dict): read through
    /// this gateway whichever gateway the token names.
    pub fn peer(
        &self,
        token: &crate::token::Token,
    ) -> Result<Option<Arc<RedisObject>>, RemoteError> {
        Ok(self
            .any_peer(token.id)?
            .filter(|(face, _)| face.as_bytes() == self.target.face.as_bytes())
            .map(|(_, peer)| peer))
    }

    /// The object `id`, if it lives in this Redis, whatever its kind: the
    /// typeid of the type it is served as, and a handle on its keys (only
    /// [`key`](Self::key), [`command`](Self::command),
    /// [`write`](Self::write), [`script`](Self::script) and the holds mean
    /// anything on it).
    pub fn any_peer(&self, id: u64) -> Result<Option<(String, Arc<RedisObject>)>, RemoteError> {
        let face = self.command(cmd!["HGET", key(id, "meta"), "face"])?;
        let Some(face) = face
            .bytes()
            .map(|f| String::from_utf8_lossy(f).into_owned())
        else {
            return Ok(None);
        };
        let peer = RedisObject::new(&self.store, id, self.target, 0, self.leased);
        Ok(Some((face, peer)))
    }

    /// The typeid it was made as (`BoundedSemaphore` or `Semaphore`, both
    /// served by one type).
    pub fn typeid(&self) -> &'static str {
        self.target.typeid
    }

    /// Renew object `id`'s keys `parts` (and its `meta`) with this
    /// object's for as long as this gateway holds it: an object this one
    /// uses (a condition's lock) lives at least as long.
    pub fn keep_alive(&self, id: u64, parts: &'static [&'static str]) {
        let mut kept = self.kept.lock().unwrap();
        if !kept.iter().any(|(k, _)| *k == id) {
            kept.push((id, parts));
        }
    }

    /// The parameter it was made with (a queue's bound; 0 if none).
    pub fn param(&self) -> u64 {
        self.param
    }

    /// This object's key `part`.
    pub fn key(&self, part: &str) -> String {
        key(self.id, part)
    }

    /// This object's key `part` and the Redis it is in (its URL, without
    /// a password): a name for it among the gateways of this process,
    /// which may use several Redis.
    pub fn place(&self, part: &str) -> String {
        format!("{:?}/{}", self.store.url, self.key(part))
    }

    /// The lease a script gives the keys it writes (ARGV\[1\]).
    fn lease_arg(&self) -> Vec<u8> {
        let ms = if self.leased {
            self.store.object_lease().as_millis() as u64
        } else {
            0
        };
        ms.to_string().into_bytes()
    }

    /// One command that only reads.
    pub fn command(&self, command: Vec<Vec<u8>>) -> Result<RedisReply, RemoteError> {
        self.store.with(|redis| redis.call(command))
    }

    /// One command that writes (and may block for `block`, a `BLPOP`):
    /// answered once the replicas asked for have it.
    pub fn write(&self, command: Vec<Vec<u8>>, block: Duration) -> Result<RedisReply, RemoteError> {
        let store = &self.store;
        store.with(|redis| {
            let reply = redis.call_waiting(command, block)?;
            store.replicated(redis, reply)
        })
    }

    /// Run Lua `body` with KEYS the parts `parts` of this object and ARGV
    /// the lease (`lease` in the script, milliseconds, 0 for none), then
    /// `args`. The body may call `touch(key, ...)` to give keys it made
    /// the object's lease. It is loaded once (`SCRIPT LOAD`) and run by its
    /// SHA1; a Redis that lost it (restarted, failed over) gets it again.
    /// Scripts write: the call is answered once the replicas asked for
    /// have it (a read-only script waits for nothing it wrote: at once).
    pub fn script(
        &self,
        body: &'static str,
        parts: &[&str],
        args: Vec<Vec<u8>>,
    ) -> Result<RedisReply, RemoteError> {
        let scripts = &self.store.scripts;
        let id = body.as_ptr() as usize;
        let mut command: Command = Vec::with_capacity(4 + parts.len() + args.len());
        command.push(b"EVALSHA".to_vec());
        command.push(Vec::new());
        command.push(parts.len().to_string().into_bytes());
        command.extend(parts.iter().map(|p| self.key(p).into_bytes()));
        command.push(self.lease_arg());
        command.extend(args);
        self.store.with(|redis| {
            if let Some(sha) = scripts.lock().unwrap().get(&id).cloned() {
                command[1] = sha;
                let reply = redis.pipeline(std::slice::from_ref(&command))?.pop();
                match reply {
                    // Not run: this Redis does not have it (yet).
                    Some(RedisReply::Error(e)) if e.starts_with("NOSCRIPT") => {}
                    Some(RedisReply::Error(e)) => {
                        return Err(Error::Redis(format!("EVALSHA: {e}")))
                    }
                    Some(reply) => return self.store.replicated(redis, reply),
                    None => return Err(Error::Redis("EVALSHA: no reply".into())),
                }
            }
            let loaded = redis.call(cmd!["SCRIPT", "LOAD", [PRELUDE, body].concat()])?;
            let sha = loaded
                .into_bytes()
                .ok_or_else(|| Error::Redis("SCRIPT LOAD gave no SHA1".into()))?;
            scripts.lock().unwrap().insert(id, sha.clone());
            command[1] = sha;
            let reply = redis.call(command)?;
            self.store.replicated(redis, reply)
        })
    }

    /// How key `part` names the caller of `cx` when it holds it (a lock):
    /// its gateway and session, then `:` and `owner` if given (an RLock's
    /// owning thread). Either is renewed and let go as the session's.
    pub fn holder(&self, cx: &CallContext, owner: Option<u64>) -> Vec<u8> {
        let session = self.store.holder(cx.session);
        match owner {
            Some(owner) => format!("{session}:{owner:x}").into_bytes(),
            None => session.into_bytes(),
        }
    }

    /// How long a hold lasts unless renewed, in milliseconds.
    pub fn hold_lease_ms(&self) -> u64 {
        self.store.lease.as_millis() as u64
    }

    /// The caller of `cx` now holds key `part` (it wrote
    /// [`holder`](Self::holder) there with [`hold_lease_ms`](Self::hold_lease_ms)):
    /// its gateway renews it while the caller's session is connected and
    /// lets it go when the session leaves.
    pub fn hold(&self, part: &str, cx: &CallContext) {
        self.store
            .holds
            .lock()
            .unwrap()
            .insert(self.key(part), cx.session);
    }

    /// Key `part` is no longer held through this gateway (deleted).
    pub fn let_go(&self, part: &str) {
        self.store.holds.lock().unwrap().remove(&self.key(part));
    }

    /// Announce a change of this object made without a script (one that
    /// calls `wake()`): its waiters look again.
    pub fn wake_waiters(&self) -> Result<(), RemoteError> {
        let id = self.id.to_string();
        self.store
            .with(|redis| redis.call(cmd!["PUBLISH", WAKES, id]))
            .map(drop)
    }

    /// The error of a method this Redis form does not serve.
    pub fn not_served(&self, name: &str) -> RemoteError {
        RemoteError::BadRequest(format!(
            "`{}.{name}` is not served from Redis",
            self.target.face
        ))
    }
}

impl Object for RedisObject {
    fn methods(&self) -> &'static [MethodInfo] {
        self.target.methods
    }

    fn type_typeid(&self) -> &'static str {
        self.target.face
    }

    fn python(&self) -> &'static [PyMethod] {
        self.target.python
    }

    fn call(self: Arc<Self>, method: usize, args: &[u8], cx: &CallContext) -> Outcome {
        let name = self.target.methods[method].name;
        (self.target.form.call)(self, name, args, cx)
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

/// Encode a method's result as the in-memory type's would be.
pub fn reply<T: serde::Serialize>(value: T, cx: &CallContext) -> Result<Vec<u8>, RemoteError> {
    Plain(value).encode(cx)
}

/// A value as it is stored.
pub fn stored(value: &Value) -> Result<Vec<u8>, RemoteError> {
    crate::codec::encode(value).map_err(|e| RemoteError::Encode(crate::error::chain(&e)))
}

/// A stored value, read back.
pub fn unstored(bytes: &[u8]) -> Result<Value, RemoteError> {
    crate::codec::decode(bytes).map_err(|e| {
        RemoteError::Backend(format!(
            "a value in Redis cannot be read: {}",
            crate::error::chain(&e)
        ))
    })
}

/// A reply that is a stored value or nil.
pub fn unstored_opt(reply: RedisReply) -> Result<Option<Value>, RemoteError> {
    match reply {
        RedisReply::Nil => Ok(None),
        RedisReply::Bulk(bytes) => unstored(&bytes).map(Some),
        other => Err(RemoteError::Backend(format!(
            "Redis replied {other:?} where a value was expected"
        ))),
    }
}

/// Run method `name` of `object`, an in-memory object made for this one
/// call (a container read out of Redis): its encoded reply, and the
/// object as the method left it. Only a method that runs at once can be
/// run so (not one that waits).
pub fn call_scratch<T: Shared>(
    object: T,
    name: &str,
    args: &[u8],
    cx: &CallContext,
) -> Result<(Vec<u8>, T), RemoteError> {
    let not_at_once = || {
        RemoteError::BadRequest(format!(
            "`{}.{name}` cannot be served from Redis",
            T::TYPEID
        ))
    };
    let method = T::METHODS
        .iter()
        .position(|m| m.name == name)
        .ok_or_else(not_at_once)?;
    let cell = Arc::new(ObjectLock::new(object));
    let reply = match Arc::clone(&cell).call(method, args, cx) {
        Outcome::Ready(reply) => reply?,
        Outcome::Pending(_) => return Err(not_at_once()),
    };
    let object = Arc::try_unwrap(cell).map_err(|_| not_at_once())?;
    Ok((reply, object.into_inner()))
}

/// A method that blocks on Redis, run now (see [`blocking`]).
pub fn ready(f: impl FnOnce() -> Result<Vec<u8>, RemoteError>) -> Outcome {
    Outcome::Ready(blocking(f))
}

/// How many tries of waits ([`poll_until`]) run at once in a process;
/// the others wait their turn as futures.
static TRY_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);

/// The longest pause between two tries of a wait: what a change nobody
/// announced (a lease that ran out) may take to be seen.
const MOST_PAUSE: Duration = Duration::from_millis(200);

/// A wait on `object` with `timeout` (`None`: none): the first try now,
/// then tries of `again` each time a change of `object` is announced
/// (`wake()` in a script) and, failing that, after pauses from 1 ms
/// growing to 200 ms, until one gives a value or the time is up. Each try
/// is one short Redis exchange.
pub async fn poll_until<T>(
    object: &RedisObject,
    timeout: Option<Duration>,
    mut again: impl FnMut() -> Result<Option<T>, RemoteError>,
) -> Result<Option<T>, RemoteError> {
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut pause = Duration::from_millis(1);
    let waker = object.store.waker(object.id);
    loop {
        // Listening before the try: a change announced during it counts.
        let woken = waker.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let tried = {
            // A try blocks its thread for a round trip: the runtime lends
            // another thread meanwhile, so unbounded tries in flight
            // would make a thread per waiting call.
            let _slot = TRY_SLOTS.acquire().await;
            blocking(&mut again)?
        };
        if let Some(found) = tried {
            return Ok(Some(found));
        }
        let now = tokio::time::Instant::now();
        let next = match deadline {
            Some(deadline) if now >= deadline => return Ok(None),
            Some(deadline) => (now + pause).min(deadline),
            None => now + pause,
        };
        tokio::select! {
            () = &mut woken => {}
            () = tokio::time::sleep_until(next) => {}
        }
        pause = (pause * 2).min(MOST_PAUSE);
    }
}
