//! CONFORMANCE.md, "Condition": CPython's `_TestCondition` against
//! `SyncManager::condition`, with waiters in threads and in child worker
//! processes, counted through shared objects as CPython counts them.

mod common;

use std::process::Child;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::check::{eventually, expect_sync_error, takes_about, SHORT};
use common::sync::{
    assert_no_objects, redis_pass, spawn_with_tokens, started_sync_manager, worker_objects,
    WORKER_LIMIT,
};
use common::worker::expect_success;
use managers::proxy::ProxyBase;
use managers::sync::{ConditionProxy, QueueProxy, SemaphoreProxy, SyncManager, ValueProxy};
use managers::{Proxy, SyncError};

/// How long any single wait of these tests may block before it is a bug.
const LONG: Duration = Duration::from_secs(30);

/// CPython's condition waiter (`_TestCondition.f`): with the condition
/// held, say it is about to sleep, wait to be notified, report it woke.
fn wait_to_be_woken(
    condition: &ConditionProxy,
    sleeping: &SemaphoreProxy,
    woken: &QueueProxy<u32>,
) {
    let _held = condition.guard().unwrap();
    sleeping.release().unwrap();
    assert!(condition.wait_timeout(LONG).unwrap(), "never notified");
    assert!(condition.is_owned().unwrap(), "the lock is held again");
    woken.put(1).unwrap();
}

/// Six waiters, as CPython runs them: three threads and three worker
/// processes.
struct Waiters {
    threads: Vec<JoinHandle<()>>,
    processes: Vec<Child>,
}

impl Waiters {
    fn start(
        manager: &SyncManager,
        condition: &ConditionProxy,
        sleeping: &SemaphoreProxy,
        woken: &QueueProxy<u32>,
    ) -> Waiters {
        let threads = (0..3)
            .map(|_| {
                let (condition, sleeping, woken) =
                    (condition.clone(), sleeping.clone(), woken.clone());
                std::thread::spawn(move || wait_to_be_woken(&condition, &sleeping, &woken))
            })
            .collect();
        let tokens = [condition.token(), sleeping.token(), woken.token()];
        let processes = (0..3)
            .map(|_| spawn_with_tokens(manager, "worker_waits_to_be_woken", &tokens))
            .collect();
        // Every waiter says it sleeps while holding the lock, so once the
        // notifier holds the lock, all six are inside `wait`.
        for _ in 0..6 {
            assert!(
                sleeping.acquire_timeout(LONG).unwrap(),
                "a waiter never started"
            );
        }
        Waiters { threads, processes }
    }

    fn finish(self) {
        for thread in self.threads {
            thread.join().expect("waiter thread");
        }
        for process in self.processes {
            expect_success(process, WORKER_LIMIT);
        }
    }
}

/// Worker of the six-waiter tests.
#[test]
#[ignore = "worker process, started by its parent test"]
fn worker_waits_to_be_woken() {
    let (_manager, mut objects) = worker_objects();
    let woken = QueueProxy::<u32>::from_base(objects.remove(2));
    let sleeping = SemaphoreProxy::from_base(objects.remove(1));
    let condition = ConditionProxy::from_base(objects.remove(0));
    wait_to_be_woken(&condition, &sleeping, &woken);
}

/// The objects of a six-waiter test.
fn six_waiter_objects(manager: &SyncManager) -> (ConditionProxy, SemaphoreProxy, QueueProxy<u32>) {
    (
        manager.condition().unwrap(),
        manager.semaphore(0).unwrap(),
        manager.queue(0).unwrap(),
    )
}

/// Check that exactly `count` waiters woke, and stay so for a while.
fn assert_woken(woken: &QueueProxy<u32>, count: usize) {
    eventually(&format!("{count} woken"), LONG, || {
        woken.qsize().unwrap() >= count
    });
    std::thread::sleep(SHORT);
    assert_eq!(woken.qsize().unwrap(), count, "woke more than notified");
}

/// "notify wakes exactly one waiter at a time (6 waiters, counted)."
#[test]
fn notify_wakes_exactly_one_waiter_at_a_time() {
    let manager = started_sync_manager();
    let (condition, sleeping, woken) = six_waiter_objects(&manager);
    let waiters = Waiters::start(&manager, &condition, &sleeping, &woken);
    assert_woken(&woken, 0);
    for count in 1..=6 {
        let _held = condition.guard().unwrap();
        condition.notify().unwrap();
        drop(_held);
        assert_woken(&woken, count);
    }
    waiters.finish();
    drop((condition, sleeping, woken));
    assert_no_objects(&manager);
}

/// "notify_all wakes all 6 waiters."
#[test]
fn notify_all_wakes_all_six_waiters() {
    let manager = started_sync_manager();
    let (condition, sleeping, woken) = six_waiter_objects(&manager);
    let waiters = Waiters::start(&manager, &condition, &sleeping, &woken);
    assert_woken(&woken, 0);
    {
        let _held = condition.guard().unwrap();
        condition.notify_all().unwrap();
    }
    assert_woken(&woken, 6);
    waiters.finish();
    drop((condition, sleeping, woken));
    assert_no_objects(&manager);
}

/// "notify(n=2) then notify(n=4) wakes 2 then 4."
#[test]
fn notify_n_wakes_that_many_waiters() {
    let manager = started_sync_manager();
    let (condition, sleeping, woken) = six_waiter_objects(&manager);
    let waiters = Waiters::start(&manager, &condition, &sleeping, &woken);
    {
        let _held = condition.guard().unwrap();
        condition.notify_n(2).unwrap();
    }
    assert_woken(&woken, 2);
    {
        let _held = condition.guard().unwrap();
        condition.notify_n(4).unwrap();
    }
    assert_woken(&woken, 6);
    {
        // Nobody is left: more notifications are harmless.
        let _held = condition.guard().unwrap();
        condition.notify_n(3).unwrap();
        condition.notify_all().unwrap();
    }
    waiters.finish();
    drop((condition, sleeping, woken));
    assert_no_objects(&manager);
}

/// "`wait(0.1)` returns false after the timeout."
#[test]
fn wait_with_a_timeout_returns_false_after_it() {
    let manager = started_sync_manager();
    let condition = manager.condition().unwrap();
    let _held = condition.guard().unwrap();
    assert!(!takes_about(SHORT, || condition
        .wait_timeout(SHORT)
        .unwrap()));
    assert!(!takes_about(SHORT, || condition
        .wait_with(Some(SHORT))
        .unwrap()));
    assert!(condition.is_owned().unwrap(), "the lock is held again");
    drop(_held);
    drop(condition);
    assert_no_objects(&manager);
}

/// "wait_for(predicate) and wait_for with a timeout (predicate over a
/// shared Value), ..." — CPython's `test_waitfor`: a worker process and
/// the parent each wait for a state the other sets.
#[test]
fn wait_for_a_predicate_over_a_shared_value() {
    let manager = started_sync_manager();
    let condition = manager.condition().unwrap();
    let state = manager.value(&-1_i64).unwrap();
    let child = spawn_with_tokens(
        &manager,
        "worker_waits_for_four",
        &[condition.token(), state.token()],
    );
    {
        let _held = condition.guard().unwrap();
        let ready = condition
            .wait_for(|| state.get().unwrap() == 0, Some(LONG))
            .unwrap();
        assert!(ready);
        assert_eq!(state.get().unwrap(), 0);
    }
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(10));
        let _held = condition.guard().unwrap();
        state.set(&(state.get().unwrap() + 1)).unwrap();
        condition.notify().unwrap();
    }
    expect_success(child, WORKER_LIMIT);
    drop((condition, state));
    assert_no_objects(&manager);
}

/// The objects a `wait_for` worker gets: the condition and shared values.
fn condition_and_values(objects: Vec<ProxyBase>) -> (ConditionProxy, Vec<ValueProxy<i64>>) {
    let mut objects = objects.into_iter();
    let condition = ConditionProxy::from_base(objects.next().expect("a condition"));
    let values = objects.map(ValueProxy::from_base).collect();
    (condition, values)
}

/// Worker of `wait_for_a_predicate_over_a_shared_value`: CPython's
/// `_test_waitfor_f`.
#[test]
#[ignore = "worker process, started by its parent test"]
fn worker_waits_for_four() {
    let (_manager, objects) = worker_objects();
    let (condition, values) = condition_and_values(objects);
    let state = &values[0];
    let _held = condition.guard().unwrap();
    state.set(&0).unwrap();
    condition.notify().unwrap();
    let reached = condition
        .wait_for(|| state.get().unwrap() == 4, None)
        .unwrap();
    assert!(reached);
    assert_eq!(state.get().unwrap(), 4);
}

/// "... including the false result on timeout." — CPython's
/// `test_waitfor_timeout`: notified three times, the worker's predicate
/// never holds and its `wait_for` gives up after its timeout.
#[test]
fn wait_for_with_a_timeout_is_false_when_the_predicate_never_holds() {
    let manager = started_sync_manager();
    let condition = manager.condition().unwrap();
    let state = manager.value(&0_i64).unwrap();
    let success = manager.value(&0_i64).unwrap();
    let started = manager.semaphore(0).unwrap();
    let child = spawn_with_tokens(
        &manager,
        "worker_waits_for_four_in_vain",
        &[
            condition.token(),
            state.token(),
            success.token(),
            started.token(),
        ],
    );
    assert!(
        started.acquire_timeout(LONG).unwrap(),
        "the worker never started"
    );
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(10));
        let _held = condition.guard().unwrap();
        state.set(&(state.get().unwrap() + 1)).unwrap();
        condition.notify().unwrap();
    }
    expect_success(child, WORKER_LIMIT);
    assert_eq!(success.get().unwrap(), 1, "the worker's wait_for timed out");
    drop((condition, state, success, started));
    assert_no_objects(&manager);
}

/// Worker of `wait_for_with_a_timeout_is_false_when_the_predicate_never_holds`:
/// CPython's `_test_waitfor_timeout_f`.
#[test]
#[ignore = "worker process, started by its parent test"]
fn worker_waits_for_four_in_vain() {
    let (_manager, mut objects) = worker_objects();
    let started = SemaphoreProxy::from_base(objects.pop().expect("a semaphore"));
    let (condition, values) = condition_and_values(objects);
    let (state, success) = (&values[0], &values[1]);
    started.release().unwrap();
    let _held = condition.guard().unwrap();
    let start = Instant::now();
    let reached = condition
        .wait_for(|| state.get().unwrap() == 4, Some(SHORT))
        .unwrap();
    let took = start.elapsed();
    if !reached && took >= SHORT.mul_f64(0.9) {
        success.set(&1).unwrap();
    }
}

/// "... wait_for with a timeout ..." in one process: the predicate is
/// checked first, and `false` comes back after about the timeout.
#[test]
fn wait_for_checks_first_and_gives_up_after_the_timeout() {
    let manager = started_sync_manager();
    let condition = manager.condition().unwrap();
    let state = manager.value(&true).unwrap();
    let _held = condition.guard().unwrap();
    let immediately = takes_about(Duration::ZERO, || {
        condition.wait_for(|| state.get().unwrap(), Some(SHORT))
    });
    assert!(immediately.unwrap());
    state.set(&false).unwrap();
    let mut checks = 0;
    let reached = takes_about(SHORT, || {
        condition.wait_for(
            || {
                checks += 1;
                state.get().unwrap()
            },
            Some(SHORT),
        )
    });
    assert!(!reached.unwrap());
    assert_eq!(checks, 2, "checked before waiting and once at the timeout");
    assert!(condition.is_owned().unwrap());
    drop(_held);
    drop((condition, state));
    assert_no_objects(&manager);
}

/// "`wait(0)` false; `wait(60)` true after another process notifies."
#[test]
fn wait_zero_is_false_and_wait_sixty_is_woken_by_another_process() {
    let manager = started_sync_manager();
    let condition = manager.condition().unwrap();
    let held = condition.guard().unwrap();
    assert!(!condition.wait_timeout(Duration::ZERO).unwrap());
    // The worker can take the lock, and so notify, only once we wait.
    let child = spawn_with_tokens(&manager, "worker_notifies", &[condition.token()]);
    let start = Instant::now();
    assert!(condition.wait_timeout(Duration::from_secs(60)).unwrap());
    assert!(start.elapsed() < Duration::from_secs(30));
    drop(held);
    expect_success(child, WORKER_LIMIT);
    drop(condition);
    assert_no_objects(&manager);
}

/// Worker of `wait_zero_is_false_and_wait_sixty_is_woken_by_another_process`.
#[test]
#[ignore = "worker process, started by its parent test"]
fn worker_notifies() {
    let (_manager, mut objects) = worker_objects();
    let condition = ConditionProxy::from_base(objects.remove(0));
    let _held = condition.guard().unwrap();
    condition.notify().unwrap();
}

/// "A Condition can be built on a supplied Lock or RLock proxy." — on a
/// `Lock`, both proxies see one lock.
#[test]
fn condition_on_a_supplied_lock() {
    let manager = started_sync_manager();
    let lock = manager.lock().unwrap();
    let condition = manager.condition_with(&lock).unwrap();
    assert!(condition.acquire().unwrap());
    assert!(lock.locked().unwrap(), "the condition took the lock itself");
    assert!(!lock.try_acquire().unwrap());
    assert!(!takes_about(SHORT, || condition
        .wait_timeout(SHORT)
        .unwrap()));
    assert!(lock.locked().unwrap(), "held again after the wait");
    lock.release().unwrap();
    assert!(!condition.is_owned().unwrap());

    // A waiter on the condition is notified by a thread holding the lock
    // through the lock's own proxy.
    let waiter = std::thread::spawn({
        let condition = condition.clone();
        move || {
            let _held = condition.guard().unwrap();
            condition.wait_timeout(LONG).unwrap()
        }
    });
    eventually("the waiter to wait", LONG, || {
        let _held = lock.guard().unwrap();
        condition.notify().unwrap();
        waiter.is_finished()
    });
    assert!(waiter.join().unwrap());

    // The condition keeps its lock alive (in Redis by renewing its keys:
    // redis_backend's objects_expire_after_their_last_holder_and_not_before).
    drop(lock);
    if !redis_pass() {
        assert_eq!(manager.number_of_objects().unwrap(), 2);
    }
    let _held = condition.guard().unwrap();
    drop(_held);
    drop(condition);
    assert_no_objects(&manager);
}

/// "A Condition can be built on a supplied Lock or RLock proxy." — on an
/// `RLock`, ownership and recursion levels are shared, and `wait` restores
/// the level it found.
#[test]
fn condition_on_a_supplied_rlock() {
    let manager = started_sync_manager();
    let rlock = manager.rlock().unwrap();
    let condition = manager.condition_with(&rlock).unwrap();
    assert!(rlock.acquire().unwrap());
    assert!(rlock.acquire().unwrap());
    assert!(condition.is_owned().unwrap());
    let other = condition.clone();
    assert!(!std::thread::spawn(move || other.is_owned().unwrap())
        .join()
        .unwrap());
    assert!(!condition.wait_timeout(SHORT).unwrap());
    condition.release().unwrap();
    rlock.release().unwrap();
    expect_sync_error(
        rlock.release(),
        SyncError::RuntimeError("cannot release un-acquired lock".into()),
    );

    // An async proxy works too.
    let again = manager.condition_with(&rlock.to_async()).unwrap();
    {
        let _held = again.guard().unwrap();
        assert!(rlock.is_owned().unwrap());
    }
    drop((rlock, condition, again));
    assert_no_objects(&manager);
}

/// Python's `RuntimeError` for waiting or notifying without the lock.
#[test]
fn wait_and_notify_need_the_lock() {
    let manager = started_sync_manager();
    let condition = manager.condition().unwrap();
    let not_held =
        |what: &str| SyncError::RuntimeError(format!("cannot {what} on un-acquired lock"));
    expect_sync_error(condition.wait_timeout(SHORT), not_held("wait"));
    expect_sync_error(condition.notify(), not_held("notify"));
    expect_sync_error(condition.notify_all(), not_held("notify"));
    let _held = condition.guard().unwrap();
    let other = condition.clone();
    let from_other_thread = std::thread::spawn(move || other.notify()).join().unwrap();
    expect_sync_error(from_other_thread, not_held("notify"));
    drop(_held);
    drop(condition);
    assert_no_objects(&manager);
}
