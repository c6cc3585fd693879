//! CONFORMANCE.md "Pool" (CPython _TestPool, _TestPoolWorkerErrors,
//! _TestPoolWorkerLifetime) and issue 9's tests: callbacks exactly once,
//! workers replaced (maxtasksperchild), imap's laziness and next_timeout,
//! a worker killed during map, imap and apply_async, terminate with 100
//! tasks in flight.
//!
//! Workers are this binary re-executed: its own `main` (harness = false)
//! starts with `managers::bootstrap()`. Every pool is dropped (terminated)
//! however its test ends.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use managers::process::TaskRef;
use managers::sync::{PoolProxy, SyncManager};
use managers::{Error, Pool, Process, ProcessError};

fn main() {
    managers::bootstrap();
    common::harness::run(named![
        apply_map_and_starmap_equal_the_serial_results,
        map_async_callbacks_run_once,
        a_failing_iterator_is_an_error_not_a_hang,
        imap_in_order_and_unordered,
        imap_next_timeout_while_a_task_sleeps,
        imap_reads_its_items_lazily,
        async_result_timeout_ready_successful,
        async_result_is_a_future,
        a_panicking_task_is_its_callers_error,
        an_unencodable_result_is_an_error,
        maxtasksperchild_replaces_workers,
        initializer_runs_in_each_worker,
        close_join_terminate_follow_python,
        a_killed_worker_fails_only_its_tasks,
        terminate_with_100_tasks_in_flight_returns_promptly,
        apply_async_callbacks_run_once,
        the_managers_pool_serves_two_client_processes,
        the_managers_pool_results_time_out_and_fail_as_errors,
        the_managers_pool_has_async_proxies,
        workers_take_tasks_through_shared_memory,
        megabyte_chunks_both_ways_finish,
    ]);
}

fn sqr(x: i64) -> i64 {
    x * x
}

fn mul(x: i64, y: i64) -> i64 {
    x * y
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn pid() -> u32 {
    std::process::id()
}

fn pid_after(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

fn fail_on(x: i64) -> i64 {
    if x == 5 {
        panic!("five is not allowed");
    }
    x
}

fn kill_self_on(x: i64) -> i64 {
    if x == 5 {
        // SAFETY: kill(2) on this very process.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
    x
}

// "apply(sqr, 5) == 25; map(sqr, 0..10) and with chunksize 20 over 0..100
// equal the serial map; starmap(mul, tuples) and starmap_async equal the
// serial results; map_async(...).get() equals map."
fn apply_map_and_starmap_equal_the_serial_results() {
    let pool = Pool::new(4).unwrap();
    assert_eq!(pool.apply(sqr, (5,)).unwrap(), 25);
    let serial: Vec<i64> = (0..10).map(sqr).collect();
    assert_eq!(pool.map(sqr, 0..10, None).unwrap(), serial);
    let serial: Vec<i64> = (0..100).map(sqr).collect();
    assert_eq!(pool.map(sqr, 0..100, Some(20)).unwrap(), serial);
    assert_eq!(
        pool.map_async(sqr, 0..100, Some(20))
            .unwrap()
            .get()
            .unwrap(),
        serial
    );
    let pairs: Vec<(i64, i64)> = (0..10).map(|i| (i, i + 1)).collect();
    let serial: Vec<i64> = pairs.iter().map(|&(a, b)| a * b).collect();
    assert_eq!(pool.starmap(mul, pairs.clone(), None).unwrap(), serial);
    assert_eq!(
        pool.starmap_async(mul, pairs, Some(3))
            .unwrap()
            .get()
            .unwrap(),
        serial
    );
    assert_eq!(
        pool.map(sqr, Vec::<i64>::new(), None).unwrap(),
        Vec::<i64>::new()
    );
    // Chunks are sent as they are encoded and decoded as they come back,
    // in any order: the list is still in the items' order, also for an
    // iterator that does not know its length (listed first, for the
    // default chunk size) and for many small chunks.
    let odd = (0..20_000i64).filter(|i| i % 2 == 1);
    let serial: Vec<i64> = odd.clone().map(sqr).collect();
    assert_eq!(pool.map(sqr, odd.clone(), None).unwrap(), serial);
    assert_eq!(pool.map(sqr, odd, Some(7)).unwrap(), serial);
}

// "map_async with callbacks: on success the callback runs once with the
// whole result list; on failure the error callback runs once with the
// error."
fn map_async_callbacks_run_once() {
    let pool = Pool::new(2).unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let (ok, err) = (Arc::clone(&calls), Arc::clone(&calls));
    let result = pool
        .map_async_with(
            sqr,
            0..10,
            None,
            move |list: &Vec<i64>| ok.lock().unwrap().push(format!("ok {list:?}")),
            move |e: &Error| err.lock().unwrap().push(format!("error {e}")),
        )
        .unwrap();
    result.get().unwrap();
    assert_eq!(
        *calls.lock().unwrap(),
        ["ok [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]"]
    );
    calls.lock().unwrap().clear();
    let (ok, err) = (Arc::clone(&calls), Arc::clone(&calls));
    let result = pool
        .map_async_with(
            fail_on,
            0..10,
            Some(1),
            move |_: &Vec<i64>| ok.lock().unwrap().push("ok".into()),
            move |e: &Error| err.lock().unwrap().push(format!("error {e}")),
        )
        .unwrap();
    assert!(matches!(result.get(), Err(Error::TaskPanicked(ref m)) if m.contains("five")));
    // Let the other chunks come back: still exactly one call.
    std::thread::sleep(Duration::from_millis(100));
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(
        calls[0].starts_with("error") && calls[0].contains("five"),
        "{calls:?}"
    );
}

// "An iterator that fails half way makes map fail with that error, not
// hang."
fn a_failing_iterator_is_an_error_not_a_hang() {
    let pool = Pool::new(2).unwrap();
    let failing = (0..10i64).map(|i| {
        if i == 5 {
            panic!("the iterator broke")
        } else {
            i
        }
    });
    match pool.map(sqr, failing, None) {
        Err(Error::TaskPanicked(message)) => {
            assert!(message.contains("the iterator broke"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let failing = (0..10i64).map(|i| {
        if i == 5 {
            panic!("the iterator broke")
        } else {
            i
        }
    });
    let results: Vec<managers::Result<i64>> = pool.imap(sqr, failing, Some(1)).unwrap().collect();
    assert_eq!(
        results.len(),
        6,
        "five results, then the error: {results:?}"
    );
    assert!(matches!(results[5], Err(Error::TaskPanicked(_))));
    assert_eq!(pool.apply(sqr, (3,)).unwrap(), 9, "the pool goes on");
}

// "imap gives results in order; imap_unordered gives the same multiset;
// both work with chunksize > 1."
fn imap_in_order_and_unordered() {
    let pool = Pool::new(3).unwrap();
    let serial: Vec<i64> = (0..200).map(sqr).collect();
    for chunksize in [1, 7] {
        let ordered: Vec<i64> = pool
            .imap(sqr, 0..200, Some(chunksize))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(ordered, serial);
        let mut unordered: Vec<i64> = pool
            .imap_unordered(sqr, 0..200, Some(chunksize))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        unordered.sort();
        assert_eq!(unordered, serial);
    }
}

// "next with a timeout raises TimeoutError while the task sleeps".
fn imap_next_timeout_while_a_task_sleeps() {
    let pool = Pool::new(2).unwrap();
    let mut it = pool.imap(sleep_ms, vec![500u64, 0], None).unwrap();
    let begun = Instant::now();
    assert!(matches!(
        it.next_timeout(Duration::from_millis(50)),
        Some(Err(Error::Timeout { .. }))
    ));
    assert!(begun.elapsed() >= Duration::from_millis(50));
    assert_eq!(
        it.next_timeout(Duration::from_secs(20)).unwrap().unwrap(),
        500
    );
    assert_eq!(it.next().unwrap().unwrap(), 0);
    assert!(it.next().is_none());
}

static PRODUCED: AtomicUsize = AtomicUsize::new(0);

// Issue 9: "imap laziness (an iterator of 10 million items does not get
// materialised: bound the memory)".
fn imap_reads_its_items_lazily() {
    let pool = Pool::new(2).unwrap();
    let items = (0..10_000_000i64).inspect(|_| {
        PRODUCED.fetch_add(1, Ordering::Relaxed);
    });
    let mut it = pool.imap(sqr, items, Some(10)).unwrap();
    for i in 0..1000 {
        assert_eq!(it.next().unwrap().unwrap(), i * i);
    }
    let produced = PRODUCED.load(Ordering::Relaxed);
    // A few chunks per worker ahead of the consumer, nowhere near all.
    assert!(
        (1000..=1000 + 20 * 10).contains(&produced),
        "read {produced} items for 1000 results"
    );
    // Until the iterator is dropped the pool goes on reading up to its
    // limit (16 chunks out and not taken) as answers come back; once it
    // is dropped (the job cancelled under the pool's lock, where chunks
    // are read), nothing more is read.
    drop(it);
    let at_drop = PRODUCED.load(Ordering::Relaxed);
    assert!(
        at_drop <= 1000 + 20 * 10,
        "read {at_drop} items for 1000 results"
    );
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        PRODUCED.load(Ordering::Relaxed),
        at_drop,
        "a dropped imap reads no more"
    );
    pool.close();
    pool.join().unwrap();
}

// "apply_async(sleep 1s).get(timeout=0.05) fails with TimeoutError;
// ready() false then true; successful() before ready is ValueError."
fn async_result_timeout_ready_successful() {
    let pool = Pool::new(2).unwrap();
    let result = pool.apply_async(sleep_ms, (1000,)).unwrap();
    let begun = Instant::now();
    assert!(matches!(
        result.get_timeout(Duration::from_millis(50)),
        Err(Error::Timeout { .. })
    ));
    assert!(begun.elapsed() >= Duration::from_millis(50));
    assert!(!result.ready());
    assert!(matches!(
        result.successful(),
        Err(Error::Process(ProcessError::ResultNotReady))
    ));
    assert!(result.wait_timeout(Duration::from_secs(20)));
    assert!(result.ready());
    assert!(result.successful().unwrap());
    assert_eq!(result.get().unwrap(), 1000);
    // Issue 18: `get` again gives the same outcome, as Python's does.
    assert_eq!(result.get().unwrap(), 1000);
    assert!(result.successful().unwrap());
    assert_eq!(result.into_result().unwrap(), 1000, "taken without a copy");
    let failed = pool.apply_async(fail_on, (5,)).unwrap();
    for _ in 0..2 {
        match failed.get() {
            Err(Error::TaskPanicked(message)) => assert!(message.contains("five"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}

// Issue 9: "It also implements Future, so async code can .await it."
fn async_result_is_a_future() {
    let pool = Pool::new(2).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (a, b) = (
        pool.apply_async(sqr, (6,)).unwrap(),
        pool.apply_async(sleep_ms, (50,)).unwrap(),
    );
    let (a, b) = runtime.block_on(async { (a.await, b.await) });
    assert_eq!((a.unwrap(), b.unwrap()), (36, 50));
}

// "A task raising gives the caller that error (and error_callback gets
// it)"; the worker goes on.
fn a_panicking_task_is_its_callers_error() {
    let pool = Pool::new(1).unwrap();
    let before = pool.apply(pid, ()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (ok, err) = (Arc::clone(&seen), Arc::clone(&seen));
    let result = pool
        .apply_async_with(
            fail_on,
            (5,),
            move |_: &i64| ok.lock().unwrap().push("ok".to_string()),
            move |e: &Error| err.lock().unwrap().push(e.to_string()),
        )
        .unwrap();
    match result.get() {
        Err(Error::TaskPanicked(message)) => assert_eq!(message, "five is not allowed"),
        other => panic!("{other:?}"),
    }
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert!(seen.lock().unwrap()[0].contains("five is not allowed"));
    assert_eq!(
        pool.apply(pid, ()).unwrap(),
        before,
        "the same worker goes on"
    );
}

/// A result whose encoding fails.
#[derive(serde::Deserialize)]
struct Unencodable;

impl serde::Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "this value refuses to be encoded",
        ))
    }
}

fn unencodable() -> Unencodable {
    Unencodable
}

// "a result that cannot be encoded gives an encoding error, not a hang".
fn an_unencodable_result_is_an_error() {
    let pool = Pool::new(1).unwrap();
    match pool.apply(unencodable, ()) {
        Err(Error::Codec { context, .. }) => assert!(context.contains("encoding"), "{context}"),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("encoded"),
    }
    assert_eq!(pool.apply(sqr, (4,)).unwrap(), 16);
}

// "maxtasksperchild=10 with 3 workers: after 100 tasks every original
// worker pid has been replaced; maxtasksperchild=0 is ValueError" and
// issue 9's "maxtasksperchild = 1 replaces workers (count distinct pids)".
fn maxtasksperchild_replaces_workers() {
    assert!(matches!(
        Pool::builder().processes(2).maxtasksperchild(0).build(),
        Err(Error::Process(ProcessError::NoTasksPerChild))
    ));
    assert!(matches!(
        Pool::new(0),
        Err(Error::Process(ProcessError::NoProcesses))
    ));
    let pool = Pool::builder()
        .processes(3)
        .maxtasksperchild(10)
        .build()
        .unwrap();
    let first: BTreeSet<u32> = (0..3)
        .map(|_| pool.apply_async(pid_after, (50,)).unwrap())
        .collect::<Vec<_>>()
        .into_iter()
        .map(|r| r.get().unwrap())
        .collect();
    let pids: Vec<u32> = pool.map(pid_of_item, 0..100, Some(1)).unwrap();
    let last: BTreeSet<u32> = pids[90..].iter().copied().collect();
    assert!(
        first.is_disjoint(&last),
        "original workers {first:?} still ran {last:?}"
    );
    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(1)
        .build()
        .unwrap();
    let pids: BTreeSet<u32> = (0..6).map(|_| pool.apply(pid, ()).unwrap()).collect();
    assert_eq!(pids.len(), 6, "one task per worker: {pids:?}");
}

fn remember(n: u32) {
    INITIALIZED.fetch_add(n as usize, Ordering::SeqCst);
}

static INITIALIZED: AtomicUsize = AtomicUsize::new(0);

fn initialized() -> usize {
    INITIALIZED.load(Ordering::SeqCst)
}

fn initialized_of_item(_: u8) -> usize {
    initialized()
}

fn pid_of_item(_: u32) -> u32 {
    std::process::id()
}

fn refuse(why: String) -> Result<(), String> {
    Err(why)
}

// Issue 9: "initializer + initargs (run once in each worker)".
fn initializer_runs_in_each_worker() {
    let pool = Pool::builder()
        .processes(2)
        .initializer(remember, (7,))
        .build()
        .unwrap();
    let seen: Vec<usize> = pool.map(initialized_of_item, 0..20, Some(1)).unwrap();
    assert!(seen.iter().all(|&n| n == 7), "{seen:?}");
    assert_eq!(initialized(), 0, "not in this process");
    match Pool::builder()
        .processes(2)
        .initializer(refuse, ("no database".to_string(),))
        .build()
    {
        Err(e) => assert!(e.to_string().contains("initializer failed"), "{e}"),
        Ok(_) => panic!("a pool whose initializer fails does not start"),
    }
}

// "close() then join() waits for outstanding tasks; join() without close
// or terminate is an error; terminate() returns promptly with sleeping
// tasks in flight; work submitted after close() is an error."
fn close_join_terminate_follow_python() {
    let pool = Pool::new(2).unwrap();
    assert!(matches!(
        pool.join(),
        Err(Error::Process(ProcessError::PoolStillRunning))
    ));
    let pending: Vec<_> = (0..4)
        .map(|_| pool.apply_async(sleep_ms, (200,)).unwrap())
        .collect();
    pool.close();
    assert!(matches!(
        pool.apply_async(sqr, (1,)),
        Err(Error::Process(ProcessError::PoolNotRunning))
    ));
    let begun = Instant::now();
    pool.join().unwrap();
    assert!(begun.elapsed() >= Duration::from_millis(200), "join waited");
    for result in pending {
        assert!(result.ready());
        assert_eq!(result.get().unwrap(), 200);
    }
    let pool = Pool::new(2).unwrap();
    let sleeping: Vec<_> = (0..2)
        .map(|_| pool.apply_async(sleep_ms, (10_000,)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let begun = Instant::now();
    pool.terminate();
    assert!(
        begun.elapsed() < Duration::from_secs(3),
        "terminate took {:?}",
        begun.elapsed()
    );
    for result in sleeping {
        assert!(matches!(
            result.get(),
            Err(Error::Process(ProcessError::PoolTerminated))
        ));
    }
    pool.join().unwrap();
}

// Beyond CPython: "a worker killed during map/apply_async gives an error
// naming the worker, never a hang, and the pool goes on with a
// replacement"; and during imap.
fn a_killed_worker_fails_only_its_tasks() {
    let pool = Pool::new(2).unwrap();
    match pool.map(kill_self_on, 0..10, Some(1)) {
        Err(Error::WorkerDied { pid, exitcode }) => {
            assert!(pid > 0);
            assert_eq!(exitcode, -libc::SIGKILL);
        }
        other => panic!("{other:?}"),
    }
    // The worker that dies held the fatal item and at most three more of
    // the same imap (a worker gets up to 4 chunks of the job it is on,
    // dispatch.rs's DEPTH): exactly those fail, every other item comes
    // back.
    let results: Vec<managers::Result<i64>> =
        pool.imap(kill_self_on, 0..10, Some(1)).unwrap().collect();
    assert_eq!(results.len(), 10);
    let mut failed = Vec::new();
    for (i, result) in results.iter().enumerate() {
        match result {
            Ok(x) => assert_eq!(*x, i as i64),
            Err(Error::WorkerDied { .. }) => failed.push(i),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(failed.contains(&5) && failed.len() <= 4, "{failed:?}");
    let other = pool.apply_async(sleep_ms, (100,)).unwrap();
    let killed = pool.apply_async(kill_self_on, (5,)).unwrap();
    assert!(matches!(killed.get(), Err(Error::WorkerDied { .. })));
    assert_eq!(
        other.get().unwrap(),
        100,
        "the other worker's task is untouched"
    );
    assert_eq!(
        pool.map(sqr, 0..10, None).unwrap(),
        (0..10).map(sqr).collect::<Vec<_>>()
    );
}

// Issue 9: "terminate with 100 tasks in flight".
fn terminate_with_100_tasks_in_flight_returns_promptly() {
    let pool = Pool::new(2).unwrap();
    let pending: Vec<_> = (0..100)
        .map(|_| pool.apply_async(sleep_ms, (1000,)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let begun = Instant::now();
    drop(pool);
    assert!(
        begun.elapsed() < Duration::from_secs(3),
        "took {:?}",
        begun.elapsed()
    );
    for result in pending {
        assert!(matches!(
            result.get_timeout(Duration::from_secs(1)),
            Err(Error::Process(ProcessError::PoolTerminated))
        ));
    }
}

// Issue 9: "callbacks and error callbacks called exactly once each", for
// apply_async: the callback gets the value, before `get` returns it, and
// the error callback is not called; and the other way round.
fn apply_async_callbacks_run_once() {
    let pool = Pool::new(2).unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let (ok, err) = (Arc::clone(&calls), Arc::clone(&calls));
    let result = pool
        .apply_async_with(
            mul,
            (6, 7),
            move |x: &i64| ok.lock().unwrap().push(format!("ok {x}")),
            move |e: &Error| err.lock().unwrap().push(format!("error {e}")),
        )
        .unwrap();
    assert_eq!(result.get().unwrap(), 42);
    assert_eq!(*calls.lock().unwrap(), ["ok 42"], "ran before get returned");
    calls.lock().unwrap().clear();
    let (ok, err) = (Arc::clone(&calls), Arc::clone(&calls));
    let result = pool
        .apply_async_with(
            kill_self_on,
            (5,),
            move |x: &i64| ok.lock().unwrap().push(format!("ok {x}")),
            move |e: &Error| err.lock().unwrap().push(format!("error {e}")),
        )
        .unwrap();
    assert!(matches!(result.get(), Err(Error::WorkerDied { .. })));
    std::thread::sleep(Duration::from_millis(50));
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].starts_with("error pool worker"), "{calls:?}");
}

/// One client process of a manager's pool: a `map`, a `starmap`, an
/// `imap` and an `apply_async`, each checked against the serial results.
fn client_of_the_managers_pool(pool: PoolProxy, first: i64) -> Result<(), String> {
    let items: Vec<i64> = (first..first + 300).collect();
    let serial: Vec<i64> = items.iter().map(|&x| sqr(x)).collect();
    let squares = pool
        .map(sqr, items.clone(), None)
        .map_err(|e| e.to_string())?;
    if squares != serial {
        return Err(format!("map gave {squares:?}"));
    }
    let products = pool
        .starmap(mul, vec![(first, 2), (3, 4)], None)
        .map_err(|e| e.to_string())?;
    if products != [first * 2, 12] {
        return Err(format!("starmap gave {products:?}"));
    }
    let ordered: Vec<i64> = pool
        .imap(sqr, items, Some(7))
        .map_err(|e| e.to_string())?
        .collect::<managers::Result<_>>()
        .map_err(|e| e.to_string())?;
    if ordered != serial {
        return Err(format!("imap gave {ordered:?}"));
    }
    let applied = pool
        .apply_async(sqr, (first,))
        .and_then(|r| r.get())
        .map_err(|e| e.to_string())?;
    if applied != sqr(first) {
        return Err(format!("apply_async gave {applied}"));
    }
    Ok(())
}

// Issue 9: "the manager's Pool used from two client processes": a pool
// owned by the manager's server (a child process), two client processes
// mapping on it at once, then this process; close and join through the
// proxy, after which the pool refuses work.
fn the_managers_pool_serves_two_client_processes() {
    let manager = SyncManager::new();
    manager.start().unwrap();
    let pool = manager.pool(Some(2)).unwrap();
    assert_eq!(pool.processes().unwrap(), 2);
    let clients: Vec<Process> = [0i64, 1000]
        .into_iter()
        .map(|first| Process::new(client_of_the_managers_pool, (pool.clone(), first)))
        .collect();
    for client in &clients {
        client.start().unwrap();
    }
    for client in &clients {
        let joined = client.join_timeout(Duration::from_secs(30)).unwrap();
        if !joined {
            let _ = client.kill();
            panic!("a client of the manager's pool hung");
        }
        assert_eq!(client.exitcode(), Some(0), "a client's checks failed");
    }
    let mut unordered: Vec<i64> = pool
        .imap_unordered(sqr, 0..50, Some(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    unordered.sort();
    assert_eq!(unordered, (0..50).map(sqr).collect::<Vec<_>>());
    let async_map = pool.map_async(sqr, 0..20, Some(3)).unwrap();
    assert_eq!(
        async_map.get().unwrap(),
        (0..20).map(sqr).collect::<Vec<_>>()
    );
    assert_eq!(pool.apply(mul, (6, 7)).unwrap(), 42);
    assert!(matches!(
        pool.join(),
        Err(Error::Process(ProcessError::PoolStillRunning))
    ));
    pool.close().unwrap();
    pool.join().unwrap();
    assert!(matches!(
        pool.map(sqr, 0..3, None),
        Err(Error::Process(ProcessError::PoolNotRunning))
    ));
}

// A manager's pool's results as Python's AsyncResult proxies:
// get_timeout is Error::Timeout (the task goes on), ready/successful,
// get again; a panic, a killed worker, imap's next_timeout; a task of
// another executable image refused; terminate fails what is pending.
fn the_managers_pool_results_time_out_and_fail_as_errors() {
    let manager = SyncManager::new();
    manager.start_in_thread().unwrap();
    let pool = manager.pool(Some(2)).unwrap();
    let slow = pool.apply_async(sleep_ms, (5000,)).unwrap();
    let begun = Instant::now();
    assert!(matches!(
        slow.get_timeout(Duration::from_millis(100)),
        Err(Error::Timeout { .. })
    ));
    assert!(
        begun.elapsed() < Duration::from_secs(3),
        "{:?}",
        begun.elapsed()
    );
    assert!(!slow.ready().unwrap());
    assert!(!slow.wait_timeout(Duration::from_millis(20)).unwrap());
    assert!(matches!(
        slow.successful(),
        Err(Error::Process(ProcessError::ResultNotReady))
    ));
    let quick = pool.apply_async(sqr, (9,)).unwrap();
    assert_eq!(quick.get().unwrap(), 81);
    assert_eq!(
        quick.clone().get().unwrap(),
        81,
        "the result stays in the server"
    );
    assert!(quick.ready().unwrap() && quick.successful().unwrap());
    match pool.apply_async(fail_on, (5,)).unwrap().get() {
        Err(Error::TaskPanicked(message)) => assert!(message.contains("five"), "{message}"),
        other => panic!("{other:?}"),
    }
    match pool.map(kill_self_on, 0..10, Some(1)) {
        Err(Error::WorkerDied { pid, exitcode }) => {
            assert!(pid > 0);
            assert_eq!(exitcode, -libc::SIGKILL);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        pool.map(sqr, 0..10, None).unwrap(),
        (0..10).map(sqr).collect::<Vec<_>>(),
        "the pool goes on with a replacement"
    );
    let mut waiting = pool.imap(sleep_ms, [3000u64], Some(1)).unwrap();
    assert!(matches!(
        waiting.next_timeout(Duration::from_millis(50)),
        Some(Err(Error::Timeout { .. }))
    ));
    // Only the server's own image is accepted: a task whose image is not
    // the server's is refused, and nothing runs.
    let foreign = TaskRef::new::<_, (i64,), i64>(sqr)
        .unwrap()
        .from_another_image();
    let chunks = TaskRef::chunks([(3i64,)], Some(1), 1).unwrap();
    match pool.submit(foreign, chunks).unwrap() {
        Err(refused) => assert!(matches!(
            refused.into_error(None),
            Error::Process(ProcessError::ForeignImage)
        )),
        Ok(_) => panic!("a task of another image was accepted"),
    }
    let begun = Instant::now();
    pool.terminate().unwrap();
    assert!(
        begun.elapsed() < Duration::from_secs(3),
        "{:?}",
        begun.elapsed()
    );
    assert!(matches!(
        slow.get_timeout(Duration::from_secs(2)),
        Err(Error::Process(ProcessError::PoolTerminated))
    ));
    assert!(matches!(
        waiting.next_timeout(Duration::from_secs(2)),
        Some(Err(Error::Process(ProcessError::PoolTerminated)))
    ));
    pool.join().unwrap();
}

// The manager's pool in its async form (PoolAsyncProxy): every method
// awaited; AsyncResultAsyncProxy's get, get_timeout (Error::Timeout, the
// task going on), wait_timeout, ready, successful, get again on a clone;
// a panic; PoolIterAsyncProxy as a Stream, with next() and next_timeout;
// to_blocking/to_async reach the same pool and results; terminate fails
// what is pending.
fn the_managers_pool_has_async_proxies() {
    use futures_core::Stream;
    use std::future::poll_fn;
    use std::pin::Pin;

    let manager = SyncManager::new();
    manager.start_in_thread().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let serial: Vec<i64> = (0..50).map(sqr).collect();
    let pool = runtime.block_on(async {
        let pool = manager.pool_async(Some(2)).await.unwrap();
        assert_eq!(pool.processes().await.unwrap(), 2);
        assert_eq!(pool.apply(sqr, (6,)).await.unwrap(), 36);
        assert_eq!(pool.map(sqr, 0..50, None).await.unwrap(), serial);
        assert_eq!(pool.map(sqr, 0..50, Some(7)).await.unwrap(), serial);
        let pairs: Vec<(i64, i64)> = (0..10).map(|i| (i, i + 1)).collect();
        let products: Vec<i64> = pairs.iter().map(|&(a, b)| a * b).collect();
        assert_eq!(
            pool.starmap(mul, pairs.clone(), None).await.unwrap(),
            products
        );
        let pending = pool.starmap_async(mul, pairs, Some(3)).await.unwrap();
        assert_eq!(pending.get().await.unwrap(), products);
        let pending = pool.map_async(sqr, 0..50, Some(5)).await.unwrap();
        assert_eq!(pending.get().await.unwrap(), serial);
        assert_eq!(
            pending.clone().get().await.unwrap(),
            serial,
            "the result stays in the server"
        );
        assert!(pending.ready().await.unwrap() && pending.successful().await.unwrap());
        pending.wait().await.unwrap();
        match pool.apply_async(fail_on, (5,)).await.unwrap().get().await {
            Err(Error::TaskPanicked(message)) => assert!(message.contains("five"), "{message}"),
            other => panic!("{other:?}"),
        }
        let mut ordered = pool.imap(sqr, 0..30, Some(4)).await.unwrap();
        let mut got = Vec::new();
        while let Some(item) = poll_fn(|cx| Pin::new(&mut ordered).poll_next(cx)).await {
            got.push(item.unwrap());
        }
        assert_eq!(got, serial[..30]);
        let mut unordered = pool.imap_unordered(sqr, 0..30, Some(4)).await.unwrap();
        let mut got = BTreeSet::new();
        while let Some(item) = unordered.next().await {
            got.insert(item.unwrap());
        }
        assert_eq!(got, serial[..30].iter().copied().collect::<BTreeSet<_>>());
        pool
    });
    // The other flavour of each, on the same objects.
    let blocking: PoolProxy = pool.to_blocking();
    assert_eq!(blocking.apply(sqr, (4,)).unwrap(), 16);
    let result = blocking.apply_async(sqr, (3,)).unwrap();
    assert_eq!(runtime.block_on(result.to_async().get()).unwrap(), 9);
    assert_eq!(result.get().unwrap(), 9);
    let mut items = blocking.imap(sqr, 0..6, Some(2)).unwrap();
    assert_eq!(items.next().unwrap().unwrap(), 0);
    assert_eq!(items.next().unwrap().unwrap(), 1);
    let mut rest = items.to_async();
    let rest = runtime.block_on(async {
        let mut got = Vec::new();
        while let Some(item) = rest.next().await {
            got.push(item.unwrap());
        }
        got
    });
    assert_eq!(rest, [4, 9, 16, 25], "the iterator's next chunks, in order");
    runtime.block_on(async {
        let slow = pool.apply_async(sleep_ms, (5000,)).await.unwrap();
        let begun = Instant::now();
        assert!(matches!(
            slow.get_timeout(Duration::from_millis(100)).await,
            Err(Error::Timeout { .. })
        ));
        assert!(
            begun.elapsed() < Duration::from_secs(3),
            "{:?}",
            begun.elapsed()
        );
        assert!(!slow.ready().await.unwrap());
        assert!(!slow.wait_timeout(Duration::from_millis(20)).await.unwrap());
        assert!(matches!(
            slow.successful().await,
            Err(Error::Process(ProcessError::ResultNotReady))
        ));
        let mut waiting = pool.imap(sleep_ms, [3000u64], Some(1)).await.unwrap();
        assert!(matches!(
            waiting.next_timeout(Duration::from_millis(50)).await,
            Some(Err(Error::Timeout { .. }))
        ));
        let begun = Instant::now();
        pool.terminate().await.unwrap();
        assert!(
            begun.elapsed() < Duration::from_secs(3),
            "{:?}",
            begun.elapsed()
        );
        assert!(matches!(
            slow.get_timeout(Duration::from_secs(2)).await,
            Err(Error::Process(ProcessError::PoolTerminated))
        ));
        assert!(matches!(
            waiting.next_timeout(Duration::from_secs(2)).await,
            Some(Err(Error::Process(ProcessError::PoolTerminated)))
        ));
        pool.join().await.unwrap();
    });
}

/// Whether this process maps a pipe's shared memory.
fn maps_a_pipe(_: i64) -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .contains("/memfd:managers-pipe")
}

// Issue 19: a pool's workers take their tasks and give their answers
// through shared memory (each maps its pipe's lanes), and a burst of
// single-call chunks comes back whole and in order.
fn workers_take_tasks_through_shared_memory() {
    let pool = Pool::new(2).unwrap();
    assert!(pool
        .map(maps_a_pipe, 0..8, Some(1))
        .unwrap()
        .iter()
        .all(|&m| m));
    let serial: Vec<i64> = (0..5_000).map(sqr).collect();
    assert_eq!(pool.map(sqr, 0..5_000, Some(1)).unwrap(), serial);
    pool.close();
    pool.join().unwrap();
}

fn shout(s: String) -> String {
    s.to_uppercase()
}

// Issue 19: chunks and answers far larger than a pipe's 64 KiB lanes, up to
// four chunks in flight per worker: the pool waits for room to send a
// chunk while its worker waits for room to answer; the worker takes the
// next chunks in while it waits, so neither waits for ever.
fn megabyte_chunks_both_ways_finish() {
    let pool = Arc::new(Pool::new(2).unwrap());
    let words: Vec<String> = (0..40_000).map(|i| format!("{i:0>200}x")).collect();
    let serial: Vec<String> = words.iter().cloned().map(shout).collect();
    let begun = Instant::now();
    // On a thread of its own, so that a map stuck for good fails the test
    // (and the harness goes on) rather than hangs it.
    let (tx, rx) = std::sync::mpsc::channel();
    let mapper = Arc::clone(&pool);
    std::thread::spawn(move || {
        let _ = tx.send(mapper.map(shout, words, Some(5_000)));
    });
    let result = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a map of megabyte chunks did not finish in 60 s");
    assert_eq!(result.unwrap(), serial);
    eprintln!("megabyte chunks: {:?}", begun.elapsed());
    pool.terminate();
}
