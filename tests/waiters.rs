//! Issue 3, "Must show": 1,000 concurrent waiters on one Event and on one
//! Queue cost futures in the server, not threads.
//!
//! The server runs in this process (`start_in_thread`), so this process's
//! thread count (`/proc/self/status`) bounds the server's. The waiters are
//! async proxies on one small tokio runtime, spread over ten client
//! sessions (ten connections).

mod common;

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::sync::{
    assert_no_objects, connect_session, rebuild, started_sync_manager, thread_count,
};
use managers::sync::SyncManager;
use managers::Proxy;

const WAITERS: usize = 1_000;
const SESSIONS: usize = 10;
/// Far more than the server's runtime and this test's own threads, far
/// fewer than one per waiter.
const THREAD_LIMIT: usize = 64;
const WAIT: Duration = Duration::from_secs(20);

/// The tests count this process's threads, so they run one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Client sessions of `manager`'s server, each with its own connections.
fn sessions(manager: &SyncManager) -> Vec<SyncManager> {
    (0..SESSIONS).map(|_| connect_session(manager)).collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Give every waiter time to reach the server, check none returned, and
/// return the thread count meanwhile.
fn all_waiting<T>(handles: &[tokio::task::JoinHandle<T>]) -> usize {
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        handles.iter().all(|h| !h.is_finished()),
        "a waiter returned before it was released"
    );
    thread_count()
}

/// The waiters cost futures, not threads: `during` (with every waiter
/// waiting) stays far below one thread per waiter and close to `before`.
fn assert_no_thread_per_waiter(before: usize, during: usize) {
    assert!(during < THREAD_LIMIT, "{during} threads while waiting");
    assert!(
        during <= before + 4,
        "{before} threads before, {during} while waiting"
    );
}

#[test]
fn a_thousand_waiters_on_one_event_cost_no_threads() {
    let _alone = one_at_a_time();
    let manager = started_sync_manager();
    let event = manager.event().unwrap();
    let sessions = sessions(&manager);
    let runtime = runtime();
    let before = thread_count();

    let handles: Vec<_> = (0..WAITERS)
        .map(|i| {
            let proxy: managers::sync::EventProxy = rebuild(&sessions[i % SESSIONS], event.token());
            let proxy = proxy.to_async();
            runtime.spawn(async move { proxy.wait(Some(WAIT)).await })
        })
        .collect();
    let during = all_waiting(&handles);

    let released = Instant::now();
    event.set().unwrap();
    let woken = runtime.block_on(async {
        let mut woken = 0;
        for handle in handles {
            woken += usize::from(handle.await.unwrap().unwrap());
        }
        woken
    });
    let took = released.elapsed();
    let after = thread_count();
    eprintln!("threads: {before} before, {during} with {WAITERS} waiting, {after} after; all released in {took:?}");
    assert_eq!(woken, WAITERS, "every waiter saw the event set");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_no_thread_per_waiter(before, during);

    drop(runtime);
    drop(sessions);
    drop(event);
    assert_no_objects(&manager);
}

#[test]
fn a_thousand_getters_on_one_queue_cost_no_threads() {
    let _alone = one_at_a_time();
    let manager = started_sync_manager();
    let queue = manager.queue::<u32>(0).unwrap();
    let sessions = sessions(&manager);
    let runtime = runtime();
    let before = thread_count();

    let handles: Vec<_> = (0..WAITERS)
        .map(|i| {
            let proxy: managers::sync::QueueProxy = rebuild(&sessions[i % SESSIONS], queue.token());
            let proxy = proxy.to_async();
            runtime.spawn(async move {
                let item = proxy.get_with(true, Some(WAIT)).await.unwrap();
                managers::value::from_value::<u32>(item).unwrap()
            })
        })
        .collect();
    let during = all_waiting(&handles);

    let released = Instant::now();
    for i in 0..WAITERS as u32 {
        queue.put(i).unwrap();
    }
    let got: BTreeSet<u32> = runtime.block_on(async {
        let mut got = BTreeSet::new();
        for handle in handles {
            got.insert(handle.await.unwrap());
        }
        got
    });
    let took = released.elapsed();
    let after = thread_count();
    eprintln!("threads: {before} before, {during} with {WAITERS} waiting, {after} after; all served in {took:?}");
    assert_eq!(
        got,
        (0..WAITERS as u32).collect(),
        "each getter got one item"
    );
    assert!(queue.empty().unwrap());
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_no_thread_per_waiter(before, during);

    drop(runtime);
    drop(sessions);
    drop(queue);
    assert_no_objects(&manager);
}
