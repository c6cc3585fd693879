//! Issue 20: the built-ins' state in Redis, served by any number of
//! gateways. Each test starts a `redis-server` of its own on loopback (a
//! SKIPPED line without one, a failure when `MANAGERS_REQUIRE_REDIS` is
//! set, as in CI) and its gateways (servers in threads of this process,
//! or server processes where one is killed); every process started is
//! killed however the test ends.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::check::eventually;
use common::example;
use common::redis::{free_port, RedisFailover, RedisServer};
use common::sync::started_in_thread;
use common::worker::Killed;
use managers::proxy::Token;
use managers::server::{Constructor, Registry};
use managers::sync::server::{Dict, ManagedQueue};
use managers::sync::{
    ArrayProxy, BarrierProxy, DictProxy, ListProxy, LockProxy, NamespaceProxy, QueueProxy,
    RLockProxy, SemaphoreProxy, SetProxy, SyncManager, ValueProxy,
};
use managers::{BaseManager, Error, ManagerOptions, Process, Proxy, RemoteError, SyncError};

/// The metrics of this process's servers (`ManagerOptions::metrics`).
static PROMETHEUS: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
    std::sync::OnceLock::new();

fn main() {
    managers::bootstrap();
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("the first recorder of this process");
    PROMETHEUS.set(recorder).ok();
    common::harness::run(named![
        a_gateway_counts_its_calls_and_redis_failures,
        clients_move_to_another_gateway_when_theirs_is_killed_under_load,
        with_wait_a_killed_gateway_loses_no_acknowledged_item,
        with_wait_no_acknowledged_item_is_lost_in_a_redis_failover,
        with_wait_a_write_no_replica_confirmed_is_an_error,
        every_kind_made_through_one_gateway_works_through_another,
        python_keys_and_order_hold_in_redis,
        singletons_are_one_object_for_every_gateway,
        other_builtins_are_refused_and_own_types_stay_local,
        concurrent_list_changes_through_two_gateways_lose_nothing,
        a_release_wakes_a_waiter_on_another_gateway,
        only_proxies_of_this_redis_are_handed_out_as_its_own,
        a_killed_lock_holder_frees_the_lock_at_once,
        a_killed_gateway_frees_its_locks_after_the_lease,
        objects_expire_after_their_last_holder_and_not_before,
        a_redis_that_is_not_there_is_an_error_at_start,
        cpython_clients_share_objects_through_two_example_gateways,
        calls_resume_after_a_redis_failover,
    ]);
}

/// The lease the tests give gateways (objects expire six of them after
/// their last holder).
const LEASE: Duration = Duration::from_millis(500);

fn options(redis: &RedisServer) -> ManagerOptions {
    ManagerOptions::new().redis(redis.url()).lease(LEASE)
}

/// A gateway in a thread of this process.
fn gateway(redis: &RedisServer) -> SyncManager {
    started_in_thread(SyncManager::with_options(options(redis)))
}

/// `token`'s object, reached through `other`'s server.
fn through<P: serde::de::DeserializeOwned>(other: &BaseManager, token: &Token) -> P {
    let mut token = token.clone();
    token.address = other.address().unwrap();
    other.proxy_from_token(&token).unwrap()
}

fn every_kind_made_through_one_gateway_works_through_another() {
    let Some(redis) = RedisServer::start("redis_backend") else {
        return;
    };
    let (a, b) = (gateway(&redis), gateway(&redis));
    assert_ne!(a.address(), b.address());

    let dict = a.dict::<String, i64>().unwrap();
    dict.set("one".into(), 1).unwrap();
    let seen: DictProxy<String, i64> = through(&b, dict.token());
    assert_eq!(seen.get("one").unwrap(), 1);
    seen.set("two".into(), 2).unwrap();
    assert_eq!(
        dict.items().unwrap(),
        vec![("one".to_string(), 1), ("two".to_string(), 2)]
    );
    assert_eq!(dict.len().unwrap(), 2);

    let queue = a.queue::<String>(0).unwrap();
    queue.put("hello".into()).unwrap();
    let other: QueueProxy<String> = through(&b, queue.token());
    assert_eq!(other.get().unwrap(), "hello");
    assert!(matches!(
        other.get_nowait(),
        Err(Error::Sync(SyncError::Empty))
    ));
    // A waiting get through B is served by a put through A.
    let waiter = std::thread::spawn(move || other.get_timeout(Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(100));
    queue.put("later".into()).unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), "later");

    let value = a.value(&41_i64).unwrap();
    let same: ValueProxy<i64> = through(&b, value.token());
    same.set(&42).unwrap();
    assert_eq!(value.get().unwrap(), 42);

    let event = a.event().unwrap();
    let seen: managers::sync::EventProxy = through(&b, event.token());
    let waiter = std::thread::spawn(move || seen.wait(Some(Duration::from_secs(10))));
    std::thread::sleep(Duration::from_millis(50));
    assert!(!event.is_set().unwrap());
    event.set().unwrap();
    assert!(
        waiter.join().unwrap().unwrap(),
        "a wait through B ends at a set through A"
    );
    event.clear().unwrap();
    assert!(!event.is_set().unwrap());

    let lock = a.lock().unwrap();
    assert!(lock.acquire().unwrap());
    let first = lock.fence().unwrap();
    let contender: LockProxy = through(&b, lock.token());
    assert!(!contender.try_acquire().unwrap(), "one holder at a time");
    lock.release().unwrap();
    assert!(contender.acquire().unwrap());
    assert!(
        contender.fence().unwrap() > first,
        "a later holder's token is larger"
    );
    contender.release().unwrap();
    assert!(matches!(
        lock.release(),
        Err(Error::Sync(SyncError::RuntimeError(_)))
    ));

    // An RLock belongs to a thread: re-entered by its owner, refused to
    // another thread through B, released level by level.
    let rlock = a.rlock().unwrap();
    assert!(rlock.acquire().unwrap() && rlock.acquire().unwrap());
    assert!(rlock.is_owned().unwrap());
    let other: RLockProxy = through(&b, rlock.token());
    let (taken, owned) = std::thread::spawn(move || {
        let taken = other.try_acquire().unwrap();
        (taken, other.is_owned().unwrap())
    })
    .join()
    .unwrap();
    assert!(!taken && !owned, "another thread cannot take a held RLock");
    rlock.release().unwrap();
    assert!(rlock.is_owned().unwrap(), "one level is still held");
    rlock.release().unwrap();
    assert!(matches!(
        rlock.release(),
        Err(Error::Sync(SyncError::RuntimeError(_)))
    ));
    let other: RLockProxy = through(&b, rlock.token());
    assert!(std::thread::spawn(move || other.try_acquire().unwrap())
        .join()
        .unwrap());

    // Semaphores count units across gateways; a bounded one keeps its bound.
    let semaphore = a.bounded_semaphore(2).unwrap();
    let same: SemaphoreProxy = through(&b, semaphore.token());
    assert!(semaphore.acquire().unwrap() && same.acquire().unwrap());
    assert!(!same.try_acquire().unwrap(), "both units are taken");
    let waiter = std::thread::spawn(move || same.acquire_timeout(Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(50));
    semaphore.release().unwrap();
    assert!(
        waiter.join().unwrap().unwrap(),
        "a release through A wakes B"
    );
    semaphore.release().unwrap();
    semaphore.release().unwrap();
    assert!(matches!(
        semaphore.release(),
        Err(Error::Sync(SyncError::ValueError(_)))
    ));
    let unbounded = a.semaphore(0).unwrap();
    unbounded.release().unwrap();
    unbounded.release().unwrap();
    assert!(unbounded.try_acquire().unwrap() && unbounded.try_acquire().unwrap());
    assert!(!unbounded.try_acquire().unwrap());

    let array = a.array(&[1_i64, 2, 3]).unwrap();
    let same: ArrayProxy<i64> = through(&b, array.token());
    same.set(-1, &30).unwrap();
    assert_eq!(array.to_vec().unwrap(), [1, 2, 30]);
    assert_eq!(same.len().unwrap(), 3);
    assert!(matches!(
        same.get(3),
        Err(Error::Sync(SyncError::IndexError(_)))
    ));

    let list = a.list_from([3_i64, 1, 2]).unwrap();
    let same: ListProxy<i64> = through(&b, list.token());
    same.sort(false).unwrap();
    list.insert(0, 0).unwrap();
    same.append(9).unwrap();
    assert_eq!(list.to_vec().unwrap(), [0, 1, 2, 3, 9]);
    assert_eq!(same.slice(1..4).unwrap(), [1, 2, 3]);
    assert_eq!(list.pop().unwrap(), 9);
    let set = a.set_from([1_i64, 2]).unwrap();
    let same: SetProxy<i64> = through(&b, set.token());
    same.update(&list).unwrap();
    assert_eq!(
        set.len().unwrap(),
        4,
        "the set has a list's items, read from Redis"
    );
    assert!(same.contains(&3).unwrap());

    let barrier = a.barrier(2).unwrap();
    let other: BarrierProxy = through(&b, barrier.token());
    let waiter = std::thread::spawn(move || other.wait(Some(Duration::from_secs(10))));
    let mut indexes = vec![barrier.wait(Some(Duration::from_secs(10))).unwrap()];
    indexes.push(waiter.join().unwrap().unwrap());
    indexes.sort_unstable();
    assert_eq!(indexes, [0, 1], "parties through A and B pass together");
    assert_eq!(barrier.n_waiting().unwrap(), 0);

    // A proxy read out of a container through B names B, whichever
    // gateway made its object (that one may be gone).
    let holder = a.dict::<String, QueueProxy<i64>>().unwrap();
    let inner = a.queue::<i64>(0).unwrap();
    holder.set("q".into(), inner.clone()).unwrap();
    let seen: DictProxy<String, QueueProxy<i64>> = through(&b, holder.token());
    let nested = seen.get("q").unwrap();
    assert_eq!(nested.token().address, b.address().unwrap());
    nested.put(5).unwrap();
    assert_eq!(inner.get().unwrap(), 5);

    let namespace = a.namespace().unwrap();
    namespace.set("name", "Bob").unwrap();
    let same: NamespaceProxy = through(&b, namespace.token());
    same.set("age", &42).unwrap();
    assert_eq!(namespace.get::<String>("name").unwrap(), "Bob");
    assert_eq!(namespace.to_string(), "Namespace(age=42, name='Bob')");
}

/// A list's methods that run the in-memory method on the items read from
/// Redis write back only if nobody changed them meanwhile: inserts at the
/// head from 4 threads through 2 gateways lose nothing.
fn concurrent_list_changes_through_two_gateways_lose_nothing() {
    let Some(redis) = RedisServer::start("redis_backend") else {
        return;
    };
    let (a, b) = (gateway(&redis), gateway(&redis));
    let list = a.list::<i64>().unwrap();
    const EACH: i64 = 100;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let mine: ListProxy<i64> = through(if w % 2 == 0 { &a } else { &b }, list.token());
            std::thread::spawn(move || {
                for i in 0..EACH {
                    mine.insert(0, w * EACH + i).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let mut items = list.to_vec().unwrap();
    items.sort_unstable();
    assert_eq!(items, (0..4 * EACH).collect::<Vec<_>>());
}

/// Releasing a lock announces it (`PUBLISH managers:wake`), and every
/// gateway listens: a call waiting through another gateway takes it at
/// once, not at its next look (looks are up to 200 ms apart once a wait
/// is long).
fn a_release_wakes_a_waiter_on_another_gateway() {
    let Some(redis) = RedisServer::start("redis_backend") else {
        return;
    };
    let (a, b) = (gateway(&redis), gateway(&redis));
    eventually("both gateways listen", Duration::from_secs(10), || {
        redis
            .command(&["PUBSUB", "NUMSUB", "managers:wake"])
            .ok()
            .as_deref()
            == Some("2")
    });
    let lock = a.lock().unwrap();
    let mut handoffs = Vec::new();
    for _ in 0..5 {
        assert!(lock.acquire().unwrap());
        let waiter: LockProxy = through(&b, lock.token());
        let (tx, rx) = std::sync::mpsc::channel();
        let waiting = std::thread::spawn(move || {
            assert!(waiter.acquire_timeout(Duration::from_secs(10)).unwrap());
            tx.send(Instant::now()).unwrap();
            waiter.release().unwrap();
        });
        // Long enough for the waiter's looks to be 200 ms apart; its
        // next look would come some 150 ms after the release (measured
        // with the wakes turned off: 170 ms; with them, 1 ms).
        std::thread::sleep(Duration::from_millis(700));
        let released = Instant::now();
        lock.release().unwrap();
        let taken = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        handoffs.push(taken.duration_since(released));
        waiting.join().unwrap();
    }
    handoffs.sort();
    println!("a release reached a waiter on another gateway in {handoffs:?}");
    assert!(
        handoffs[2] < Duration::from_millis(50),
        "woken, not found at a later look: {handoffs:?}"
    );
}

/// A gateway hands out a proxy read from Redis as its own only if the
/// proxy names a gateway of the same Redis: ids of two Redis's gateways
/// coincide (both first gateways make the same first id), and a proxy to
/// the other's object must keep naming it.
fn only_proxies_of_this_redis_are_handed_out_as_its_own() {
    let (Some(first), Some(second)) = (
        RedisServer::start("redis_backend"),
        RedisServer::start("redis_backend"),
    ) else {
        return;
    };
    let (a, elsewhere) = (gateway(&first), gateway(&second));
    let b = gateway(&first);
    let here = a.queue::<i64>(0).unwrap();
    let there = elsewhere.queue::<i64>(0).unwrap();
    assert_eq!(here.token().id, there.token().id, "the same first id");
    let holder = a.dict::<String, QueueProxy<i64>>().unwrap();
    holder.set("there".into(), there.clone()).unwrap();
    holder.set("here".into(), here.clone()).unwrap();
    let seen: DictProxy<String, QueueProxy<i64>> = through(&b, holder.token());
    let read_there = seen.get("there").unwrap();
    assert_eq!(read_there.token().address, elsewhere.address().unwrap());
    read_there.put(1).unwrap();
    assert_eq!(there.get_nowait().unwrap(), 1, "the other Redis's queue");
    assert!(here.empty().unwrap());
    let read_here = seen.get("here").unwrap();
    assert_eq!(read_here.token().address, b.address().unwrap());
    read_here.put(2).unwrap();
    assert_eq!(here.get_nowait().unwrap(), 2);
}

fn python_keys_and_order_hold_in_redis() {
    let Some(redis) = RedisServer::start("redis_backend") else {
        return;
    };
    let a = gateway(&redis);
    let dict = a.dict::<managers::value::Value, String>().unwrap();
    use managers::value::Value;
    dict.set(Value::Int(1), "int".into()).unwrap();
    // 1.0 and True are the key 1: the dict keeps its first key.
    dict.set(Value::Float(1.0), "float".into()).unwrap();
    dict.set(Value::Bool(true), "bool".into()).unwrap();
    dict.set(Value::Str("b".into()), "b".into()).unwrap();
    dict.set(Value::Str("a".into()), "a".into()).unwrap();
    assert_eq!(dict.len().unwrap(), 3);
    assert_eq!(
        dict.items().unwrap(),
        vec![
            (Value::Int(1), "bool".to_string()),
            (Value::Str("b".into()), "b".to_string()),
            (Value::Str("a".into()), "a".to_string()),
        ],
        "insertion order, the first key kept"
    );
    assert_eq!(
        dict.popitem().unwrap(),
        (Value::Str("a".into()), "a".into())
    );
    assert!(matches!(
        dict.get(&Value::Str("a".into())),
        Err(Error::Sync(SyncError::KeyError(_)))
    ));
    assert_eq!(dict.pop(&Value::Float(1.0)).unwrap(), "bool");
    let keys: Vec<Value> = dict
        .iter()
        .unwrap()
        .collect::<managers::Result<_>>()
        .unwrap();
    assert_eq!(keys, vec![Value::Str("b".into())]);
    dict.clear().unwrap();
    assert!(dict.is_empty().unwrap());
}

/// Every built-in, and `get_queue` and `get_dict`, as the example serves.
fn registry() -> Registry {
    let mut registry = SyncManager::registry();
    registry.register::<ManagedQueue>(
        "get_queue",
        None,
        Some(Constructor::singleton(|| ManagedQueue::new(0))),
    );
    registry.register::<Dict>(
        "get_dict",
        None,
        Some(Constructor::singleton(Dict::default)),
    );
    registry
}

fn singletons_are_one_object_for_every_gateway() {
    let Some(redis) = RedisServer::start("redis_backend") else {
        return;
    };
    let a = BaseManager::new(registry, options(&redis));
    let b = BaseManager::new(registry, options(&redis));
    a.start_in_thread().unwrap();
    b.start_in_thread().unwrap();
    let on_a: DictProxy<String, i64> = a.create("get_dict", &()).unwrap();
    let on_b: DictProxy<String, i64> = b.create("get_dict", &()).unwrap();
    assert_eq!(on_a.token().id, on_b.token().id, "one object");
    on_a.set("x".into(), 7).unwrap();
    assert_eq!(on_b.get("x").unwrap(), 7);
    let again: DictProxy<String, i64> = a.create("get_dict", &()).unwrap();
    assert_eq!(again.token().id, on_a.token().id);
    let queue_a: QueueProxy<i64> = a.create("get_queue", &()).unwrap();
    let queue_b: QueueProxy<i64> = b.create("get_queue", &()).unwrap();
    queue_a.put(5).unwrap();
    assert_eq!(queue_b.get().unwrap(), 5);
    // Singletons never expire.
    let meta = format!("managers:{{{}}}:meta", on_a.token().id);
    assert_eq!(redis.number(&["PTTL", &meta]), -1, "{meta} has no lease");
}

fn other_builtins_are_refused_and_own_types_stay_local() {
    let Some(redis) = RedisServer::start("redis_backend") else {
        return;
    };
    let a = gateway(&redis);
    match a.pool(Some(1)) {
        Err(Error::Remote(RemoteError::BadRequest(why))) => {
            assert!(why.contains("not served from Redis"), "{why}");
        }
        other => panic!("a Pool through the Redis backend: {other:?}"),
    }
    // The gateway still serves what it can.
    assert!(a.dict::<String, String>().is_ok());
}

/// A client process: takes `lock` (through the gateway its token names)
/// and sleeps until killed.
fn hold_until_killed(lock: LockProxy) {
    assert!(lock.acquire().unwrap());
    std::thread::sleep(Duration::from_secs(60));
}

fn a_killed_lock_holder_frees_the_lock_at_once() {
    let Some(redis) = RedisServer::start("redis_backend") else {
        return;
    };
    let (a, b) = (gateway(&redis), gateway(&redis));
    let lock = a.lock().unwrap();
    let holder = Process::new(hold_until_killed, (lock.clone(),));
    holder.start().unwrap();
    let holder = KillOnDrop(holder);
    eventually("the child holds the lock", Duration::from_secs(30), || {
        lock.locked().unwrap()
    });
    let held_with = lock.fence().unwrap();
    holder.0.kill().unwrap();
    holder.0.join().unwrap();
    // Its gateway saw it go and released what it held: free long before
    // the lease would have run out.
    let contender: LockProxy = through(&b, lock.token());
    let started = Instant::now();
    assert!(contender.acquire_timeout(Duration::from_secs(10)).unwrap());
    assert!(
        started.elapsed() < LEASE,
        "freed when its holder's connection closed, not at the lease ({:?})",
        started.elapsed()
    );
    assert!(contender.fence().unwrap() > held_with);
}

struct KillOnDrop(Process);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.is_alive() {
            let _ = self.0.kill();
            let _ = self.0.join();
        }
    }
}

fn a_killed_gateway_frees_its_locks_after_the_lease() {
    let Some(redis) = RedisServer::start("redis_backend") else {
        return;
    };
    // A gateway in a process of its own, to be SIGKILLed.
    let a = SyncManager::with_options(options(&redis));
    a.start().unwrap();
    let pid = a.server_pid().unwrap();
    let b = gateway(&redis);
    let lock = a.lock().unwrap();
    assert!(lock.acquire().unwrap());
    let held_with = lock.fence().unwrap();
    let contender: LockProxy = through(&b, lock.token());
    // Renewed while its gateway lives: still held after two leases.
    std::thread::sleep(LEASE * 2);
    assert!(!contender.try_acquire().unwrap());
    let killed = Instant::now();
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(contender.acquire_timeout(Duration::from_secs(10)).unwrap());
    let freed = killed.elapsed();
    assert!(
        freed <= LEASE + Duration::from_millis(500),
        "free within its lease: {freed:?}"
    );
    assert!(contender.fence().unwrap() > held_with);
    println!("a dead gateway's lock was free after {freed:?} (lease {LEASE:?})");
}

fn objects_expire_after_their_last_holder_and_not_before() {
    let Some(redis) = RedisServer::start("redis_backend") else {
        return;
    };
    let a = gateway(&redis);
    let kept = a.dict::<String, i64>().unwrap();
    kept.set("k".into(), 1).unwrap();
    let dropped = a.dict::<String, i64>().unwrap();
    dropped.set("k".into(), 1).unwrap();
    // A condition keeps the lock it was made on alive.
    let lock = a.lock().unwrap();
    let condition = a.condition_with(&lock).unwrap();
    let lock_keys = format!("managers:{{{}}}:*", lock.token().id);
    assert!(condition.acquire().unwrap());
    condition.release().unwrap();
    drop(lock);
    let gone = format!("managers:{{{}}}:*", dropped.token().id);
    let held = format!("managers:{{{}}}:*", kept.token().id);
    assert!(!redis.keys(&gone).is_empty());
    drop(dropped);
    eventually(
        "the released dict's keys expire",
        Duration::from_secs(10),
        || redis.keys(&gone).is_empty(),
    );
    // Eight leases later, the held one is still there, renewed.
    assert_eq!(redis.keys(&held).len(), 5, "{:?}", redis.keys(&held));
    assert_eq!(kept.get("k").unwrap(), 1);
    assert!(!redis.keys(&lock_keys).is_empty(), "the condition's lock");
    assert!(condition.acquire().unwrap());
    assert!(!condition.wait_timeout(Duration::from_millis(20)).unwrap());
    condition.release().unwrap();
}

fn a_redis_that_is_not_there_is_an_error_at_start() {
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = nobody.local_addr().unwrap().port();
    drop(nobody);
    let manager =
        SyncManager::with_options(ManagerOptions::new().redis(format!("redis://127.0.0.1:{port}")));
    match manager.start_in_thread() {
        Err(Error::Redis(why)) => assert!(why.contains("connect"), "{why}"),
        other => panic!("a gateway without its Redis: {other:?}"),
    }
    let manager = SyncManager::with_options(ManagerOptions::new().redis("http://nowhere"));
    assert!(matches!(manager.start_in_thread(), Err(Error::Redis(_))));
}

/// The issue's CLI, twice: CPython clients create through one gateway and
/// find through the other; the singletons are one object.
fn cpython_clients_share_objects_through_two_example_gateways() {
    let Some(redis) = RedisServer::start("redis_backend") else {
        return;
    };
    let path = example("redis_server");
    assert!(path.exists(), "{} was not built", path.display());
    let ports = [free_port(), free_port()];
    let gateways: Vec<Killed> = ports
        .iter()
        .map(|port| {
            let mut child = Command::new(&path)
                .args([&format!("127.0.0.1:{port}"), "KEY", &redis.url()])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            common::worker::await_line(&mut child, "serving 127.0.0.1", Duration::from_secs(30));
            Killed(child)
        })
        .collect();
    let script = format!(
        r#"
import queue
from multiprocessing.managers import SyncManager
SyncManager.register('get_queue'); SyncManager.register('get_dict')
a = SyncManager(address=('127.0.0.1', {a}), authkey=b'KEY'); a.connect()
b = SyncManager(address=('127.0.0.1', {b}), authkey=b'KEY'); b.connect()
a.get_dict()['x'] = 1
a.get_dict()[2.0] = 'two'
assert b.get_dict()['x'] == 1 and b.get_dict()[2] == 'two', b.get_dict().copy()
assert dict(b.get_dict()) == {{'x': 1, 2.0: 'two'}}, b.get_dict().copy()
a.get_queue().put('hello')
assert b.get_queue().get(timeout=5) == 'hello'
try:
    b.get_queue().get(timeout=0.2)
    raise SystemExit('an empty queue gave an item')
except queue.Empty:
    pass
d = a.dict({{'k': [1, 2]}})
assert d.copy() == {{'k': [1, 2]}}
v = a.Value('i', 5); v.value = 7; assert v.value == 7
l = a.Lock(); assert l.acquire(); assert not l.acquire(False); l.release()
r = a.RLock(); assert r.acquire() and r.acquire(); r.release(); r.release()
try:
    r.release()
    raise SystemExit('an RLock released once too often')
except RuntimeError:
    pass
s = a.BoundedSemaphore(1); assert s.acquire(); assert not s.acquire(timeout=0.05); s.release()
try:
    s.release()
    raise SystemExit('a BoundedSemaphore released above its bound')
except ValueError:
    pass
arr = a.Array('i', [1, 2, 3]); arr[0] = 10
assert len(arr) == 3 and arr[:] == [10, 2, 3] and arr[-1] == 3, arr[:]
import multiprocessing
multiprocessing.current_process().authkey = b'KEY'  # for nested proxies (README)
a.get_dict()['q'] = a.Queue()
nested = b.get_dict()['q']
assert tuple(nested._token.address) == ('127.0.0.1', {b}), nested._token
nested.put(5)
assert a.get_dict()['q'].get(timeout=5) == 5
c = a.Condition(l); assert c.acquire(); assert not c.wait(0.05); c.notify_all(); c.release()
bar = a.Barrier(1); assert bar.wait() == 0 and bar.parties == 1 and not bar.broken
ns = a.Namespace(); ns.x = 1; ns.name = 'Bob'
assert ns.x == 1 and ns.name == 'Bob' and not hasattr(ns, 'y'), ns
q = a.Queue(1); q.put(1)
try:
    q.put(2, timeout=0.1)
    raise SystemExit('a full queue took an item')
except queue.Full:
    pass
lst = a.list([3, 1, 2]); lst.sort(); lst.insert(0, 0); lst.append(9)
assert lst[:] == [0, 1, 2, 3, 9] and lst[1:4] == [1, 2, 3] and lst.index(3) == 3, lst[:]
print('PYTHON OK')
"#,
        a = ports[0],
        b = ports[1]
    );
    let output = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("PYTHON OK"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    drop(gateways);
}

/// The Redis primary SIGKILLed under a gateway that found it through
/// Sentinels: calls fail (the outcome unknown) for the window of the
/// failover, then resume on the promoted replica with what it holds.
fn calls_resume_after_a_redis_failover() {
    let Some(mut redis) = RedisFailover::start("redis_backend failover") else {
        return;
    };
    let gateway = started_in_thread(SyncManager::with_options(
        ManagerOptions::new().redis(redis.url()).lease(LEASE),
    ));
    let dict = gateway.dict::<String, u64>().unwrap();
    let queue = gateway.queue::<u64>(0).unwrap();
    for i in 0..100 {
        dict.set(format!("k{i}"), i).unwrap();
        queue.put(i).unwrap();
    }
    // The replica has it all before the primary goes.
    assert_eq!(redis.primary.number(&["WAIT", "1", "5000"]), 1);
    redis.primary.kill();
    let killed = Instant::now();
    let mut failures = 0;
    let resumed = loop {
        match dict.set("after".into(), 1) {
            Ok(()) => break killed.elapsed(),
            Err(Error::Remote(RemoteError::Backend(_))) => failures += 1,
            Err(other) => panic!("a call during the failover: {other:?}"),
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "calls did not resume within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(redis.replica_is_primary());
    println!("calls resumed {resumed:?} after the primary's SIGKILL ({failures} failed meanwhile)");
    assert_eq!(dict.get("after").unwrap(), 1);
    assert_eq!(dict.get("k99").unwrap(), 99, "what was replicated is there");
    assert_eq!(queue.get().unwrap(), 0);
    assert_eq!(queue.qsize().unwrap(), 99);
}

/// The value of the first sample of `name` in Prometheus's text whose
/// labels contain `label`.
fn sample(text: &str, name: &str, label: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// A gateway with metrics on: its calls, and a Redis that dropped its
/// connections (a failed call, then a connection made again).
fn a_gateway_counts_its_calls_and_redis_failures() {
    let Some(redis) = RedisServer::start("redis_backend metrics") else {
        return;
    };
    let gateway = started_in_thread(SyncManager::with_options(options(&redis).metrics(true)));
    let server = gateway.address().unwrap().to_string();
    let dict = gateway.dict::<String, u64>().unwrap();
    for i in 0..10 {
        dict.set(format!("k{i}"), i).unwrap();
    }
    // Redis drops every client connection while they are idle: the next
    // call sees it before it sends anything and connects again.
    redis
        .command(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    dict.set("after".into(), 0).unwrap();
    assert_eq!(dict.get("k3").unwrap(), 3);
    let text = PROMETHEUS.get().unwrap().render();
    let url = format!("127.0.0.1:{}", redis.port());
    assert!(
        sample(&text, "managers_backend_reconnects_total", &url) >= Some(1.0),
        "{text}"
    );
    // Redis gone: a call fails (outcome unknown, not repeated), counted.
    let mut redis = redis;
    redis.kill();
    match dict.get("k3") {
        Err(Error::Remote(RemoteError::Backend(_))) => {}
        other => panic!("a call with Redis gone: {other:?}"),
    }
    let text = PROMETHEUS.get().unwrap().render();
    assert!(
        sample(&text, "managers_calls_total", &server).unwrap_or(0.0) >= 12.0,
        "{text}"
    );
    assert!(
        sample(&text, "managers_objects", &server) >= Some(1.0),
        "{text}"
    );
    assert!(
        sample(&text, "managers_backend_errors_total", &url) >= Some(1.0),
        "{text}"
    );
}

/// A client process among gateways: puts `base..base + count` into the
/// queue of `token` through `gateway` (or the others after it is lost),
/// with a blocking proxy or an async one (`asynchronous`), and writes to
/// `report` one line per item: `ok N` (acknowledged) or `unknown N` (its
/// gateway was lost during the call).
fn producer_among_gateways(
    gateway: managers::Address,
    others: Vec<managers::Address>,
    token: Token,
    (base, count, asynchronous): (u64, u64, bool),
    report: String,
) {
    let manager = SyncManager::with_options(
        ManagerOptions::new()
            .address(gateway)
            .authkey(managers::default_authkey())
            .gateways(others),
    );
    manager.connect().unwrap();
    let queue: QueueProxy<u64> = manager.proxy_from_token(&token).unwrap();
    let line = |item: u64, put: managers::Result<()>| match put {
        Ok(()) => format!("ok {item}\n"),
        Err(Error::OutcomeUnknown { .. }) => format!("unknown {item}\n"),
        Err(other) => panic!("put {item}: {other:?}"),
    };
    let lines: String = if asynchronous {
        let queue = queue.to_async();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let mut lines = String::new();
                for item in base..base + count {
                    lines.push_str(&line(item, queue.put(item).await));
                }
                lines
            })
    } else {
        (base..base + count)
            .map(|item| line(item, queue.put(item)))
            .collect()
    };
    std::fs::write(report, lines).unwrap();
}

/// Everything in `queue`, taken out; asserts that each `acknowledged` put
/// is there exactly once, each `unknown` one at most once, nothing else.
fn drained_once_each(
    queue: &QueueProxy<u64>,
    acknowledged: &std::collections::BTreeSet<u64>,
    unknown: &std::collections::BTreeSet<u64>,
) -> std::collections::BTreeSet<u64> {
    let mut seen = std::collections::BTreeMap::<u64, u32>::new();
    while let Ok(item) = queue.get_nowait() {
        *seen.entry(item).or_default() += 1;
    }
    for item in acknowledged {
        assert_eq!(seen.get(item), Some(&1), "acknowledged item {item}");
    }
    for (item, times) in &seen {
        assert_eq!(*times, 1, "item {item} is in the queue {times} times");
        assert!(
            acknowledged.contains(item) || unknown.contains(item),
            "item {item} was never put"
        );
    }
    seen.into_keys().collect()
}

/// Issue 20: a gateway SIGKILLed under load from 4 client processes (two
/// with blocking proxies, two with async ones). The clients go on through
/// the other gateway; every acknowledged item is in
/// the queue exactly once, an item whose outcome was reported unknown at
/// most once, nothing else (no call was repeated).
fn clients_move_to_another_gateway_when_theirs_is_killed_under_load() {
    let Some(redis) = RedisServer::start("redis_backend failover of gateways") else {
        return;
    };
    kill_a_gateway_under_load(options(&redis), "");
}

/// The same with `redis_wait(1, 500 ms)` and a replica: every put is
/// answered once the replica has it.
fn with_wait_a_killed_gateway_loses_no_acknowledged_item() {
    let Some(redis) = RedisFailover::start("redis_backend failover of gateways, WAIT") else {
        return;
    };
    let options = ManagerOptions::new()
        .redis(redis.url())
        .lease(LEASE)
        .redis_wait(1, Duration::from_millis(500));
    kill_a_gateway_under_load(options, " (WAIT 1)");
}

/// Two gateways with `options`, one a process SIGKILLed while 4 client
/// processes put through it; `what` names the run in its report line.
fn kill_a_gateway_under_load(options: ManagerOptions, what: &str) {
    let a = SyncManager::with_options(options.clone());
    a.start().unwrap();
    let pid = a.server_pid().unwrap();
    let b = started_in_thread(SyncManager::with_options(options));
    let queue = b.queue::<u64>(0).unwrap();
    let mut on_a = queue.token().clone();
    on_a.address = a.address().unwrap();
    const PER: u64 = 3_000;
    let dir = std::env::temp_dir().join(format!("managers-gw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let reports: Vec<String> = (0..4)
        .map(|i| dir.join(format!("client{i}")).display().to_string())
        .collect();
    let clients: Vec<KillOnDrop> = (0..4u64)
        .map(|i| {
            let process = Process::new(
                producer_among_gateways,
                (
                    a.address().unwrap(),
                    vec![b.address().unwrap()],
                    on_a.clone(),
                    // Two clients with blocking proxies, two with async ones.
                    (i * 1_000_000, PER, i % 2 == 1),
                    reports[i as usize].clone(),
                ),
            );
            process.start().unwrap();
            KillOnDrop(process)
        })
        .collect();
    eventually("the clients are under way", Duration::from_secs(30), || {
        queue.qsize().unwrap() >= 1_000
    });
    let at_kill = queue.qsize().unwrap();
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for client in &clients {
        assert!(
            client.0.join_timeout(Duration::from_secs(60)).unwrap(),
            "a client did not finish after its gateway died"
        );
        assert_eq!(client.0.exitcode(), Some(0), "a client failed");
    }
    let mut acknowledged = std::collections::BTreeSet::new();
    let mut unknown = std::collections::BTreeSet::new();
    for report in &reports {
        for line in std::fs::read_to_string(report).unwrap().lines() {
            let (kind, item) = line.split_once(' ').unwrap();
            let item: u64 = item.parse().unwrap();
            match kind {
                "ok" => acknowledged.insert(item),
                _ => unknown.insert(item),
            };
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(acknowledged.len() + unknown.len(), 4 * PER as usize);
    let seen = drained_once_each(&queue, &acknowledged, &unknown);
    println!(
        "gateway killed{what} with {at_kill} items queued: {} acknowledged, {} unknown \
         ({} of those in the queue)",
        acknowledged.len(),
        unknown.len(),
        unknown.intersection(&seen).count()
    );
}

/// `redis_wait`: puts go on while the Redis primary is SIGKILLed and its
/// one replica promoted; every put acknowledged is in the queue afterwards,
/// exactly once, and an item whose put failed (outcome unknown) at most
/// once. (The promoted replica has no replica of its own, so from then on
/// no write can be confirmed: those puts all fail, and say why.)
fn with_wait_no_acknowledged_item_is_lost_in_a_redis_failover() {
    let Some(mut redis) = RedisFailover::start("redis_backend WAIT failover") else {
        return;
    };
    let gateway = started_in_thread(SyncManager::with_options(
        ManagerOptions::new()
            .redis(redis.url())
            .lease(LEASE)
            .redis_wait(1, Duration::from_millis(500)),
    ));
    let queue = gateway.queue::<u64>(0).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = {
        let (queue, stop) = (queue.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut acknowledged = std::collections::BTreeSet::new();
            let mut unknown = std::collections::BTreeSet::new();
            let begun = Instant::now();
            let mut item = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match queue.put(item) {
                    Ok(()) => {
                        acknowledged.insert(item);
                    }
                    Err(Error::Remote(RemoteError::Backend(_))) => {
                        unknown.insert(item);
                    }
                    Err(other) => panic!("put {item}: {other:?}"),
                }
                item += 1;
                assert!(begun.elapsed() < Duration::from_secs(60), "puts stalled");
            }
            (acknowledged, unknown)
        })
    };
    eventually("puts under way", Duration::from_secs(30), || {
        queue.qsize().unwrap_or(0) >= 300
    });
    redis.primary.kill();
    eventually("the replica is promoted", Duration::from_secs(30), || {
        redis.replica_is_primary()
    });
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (acknowledged, unknown) = producer.join().unwrap();
    assert!(
        !unknown.is_empty(),
        "writes after the failover cannot be confirmed"
    );
    // Read out through a gateway that does not wait (a `get` is a write
    // too, and nothing can confirm one now).
    let reader = started_in_thread(SyncManager::with_options(
        ManagerOptions::new().redis(redis.url()).lease(LEASE),
    ));
    let drained: QueueProxy<u64> = through(&reader, queue.token());
    let seen = drained_once_each(&drained, &acknowledged, &unknown);
    println!(
        "WAIT 1: {} puts acknowledged, all in the queue after the failover; {} not \
         confirmed ({} of those in the queue)",
        acknowledged.len(),
        unknown.len(),
        unknown.intersection(&seen).count()
    );
}

/// `redis_wait` with no replica to confirm: the write happened on the
/// primary, and the call says it may not survive.
fn with_wait_a_write_no_replica_confirmed_is_an_error() {
    let Some(redis) = RedisServer::start("redis_backend WAIT alone") else {
        return;
    };
    let gateway = started_in_thread(SyncManager::with_options(
        options(&redis).redis_wait(1, Duration::from_millis(100)),
    ));
    let value = match gateway.value(&1_u64) {
        Err(Error::Remote(RemoteError::Backend(why))) => {
            assert!(why.contains("0 of 1 replicas"), "{why}");
            return;
        }
        other => other.unwrap(),
    };
    match value.set(&2) {
        Err(Error::Remote(RemoteError::Backend(why))) => {
            assert!(why.contains("0 of 1 replicas"), "{why}")
        }
        other => panic!("a write no replica confirmed: {other:?}"),
    }
}
