//! CONFORMANCE.md, "Queue (manager-backed)": CPython's `_TestQueue`
//! against `SyncManager::queue` and `joinable_queue`, with child worker
//! processes where the checklist says so.

mod common;

use std::time::{Duration, Instant};

use common::check::{expect_sync_error, takes_about, SHORT};
use common::sync::{
    assert_no_objects, current_thread_runtime, not_in_redis_pass, spawn_with_tokens,
    started_sync_manager, thread_count, worker_objects, WORKER_LIMIT,
};
use common::worker::expect_success;
use managers::sync::QueueProxy as RawQueueProxy;
use managers::sync::{JoinableQueueProxy, QueueProxy};
use managers::{Proxy, SyncError};

/// "put: maxsize 6; `empty()` true then false, `full()` false then true
/// after 6 puts; a non-blocking put, `put_nowait`, and a put with a timeout
/// on a full queue each fail with Full (the timed one after about its
/// timeout)."
#[test]
fn put_fills_a_bounded_queue_then_fails_with_full() {
    let manager = started_sync_manager();
    let queue = manager.queue::<i64>(6).unwrap();
    assert!(queue.empty().unwrap());
    assert!(!queue.full().unwrap());

    queue.put(1).unwrap();
    queue.put_with(2, true, None).unwrap();
    queue
        .put_with(3, true, Some(Duration::from_secs(1)))
        .unwrap();
    queue.put_with(4, false, None).unwrap();
    queue.put_timeout(5, Duration::from_secs(1)).unwrap();
    queue.put_nowait(6).unwrap();

    assert!(!queue.empty().unwrap());
    assert!(queue.full().unwrap());
    assert_eq!(queue.qsize().unwrap(), 6);

    expect_sync_error(queue.put_with(7, false, None), SyncError::Full);
    expect_sync_error(queue.put_nowait(7), SyncError::Full);
    takes_about(SHORT, || {
        expect_sync_error(queue.put_timeout(7, SHORT), SyncError::Full)
    });
    takes_about(SHORT, || {
        expect_sync_error(queue.put_with(7, true, Some(SHORT)), SyncError::Full)
    });

    let items: Vec<i64> = (0..6).map(|_| queue.get().unwrap()).collect();
    assert_eq!(items, [1, 2, 3, 4, 5, 6]);
    assert!(queue.empty().unwrap());
    assert!(!queue.full().unwrap());
    drop(queue);
    assert_no_objects(&manager);
}

/// "put: ..." — a blocked put goes through as soon as a get makes room.
#[test]
fn a_blocked_put_completes_when_room_is_made() {
    let manager = started_sync_manager();
    let queue = manager.queue::<String>(1).unwrap();
    queue.put("first".into()).unwrap();
    let putter = std::thread::spawn({
        let queue = queue.clone();
        move || queue.put_timeout("second".into(), Duration::from_secs(10))
    });
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(queue.get().unwrap(), "first");
    putter.join().unwrap().unwrap();
    assert_eq!(queue.get_nowait().unwrap(), "second");
    drop(queue);
    assert_no_objects(&manager);
}

/// "get: items 2..5 come back in order; non-blocking get, `get_nowait`,
/// and a timed get on an empty queue fail with Empty."
#[test]
fn get_returns_items_in_order_then_fails_with_empty() {
    let manager = started_sync_manager();
    let queue = manager.queue::<i64>(0).unwrap();
    for i in 2..=5 {
        queue.put(i).unwrap();
    }
    assert_eq!(queue.get().unwrap(), 2);
    assert_eq!(queue.get_with(true, None).unwrap(), 3);
    assert_eq!(queue.get_timeout(Duration::from_secs(1)).unwrap(), 4);
    assert_eq!(queue.get_nowait().unwrap(), 5);
    assert!(queue.empty().unwrap());

    expect_sync_error(queue.get_with(false, None), SyncError::Empty);
    expect_sync_error(queue.get_nowait(), SyncError::Empty);
    takes_about(SHORT, || {
        expect_sync_error(queue.get_timeout(SHORT), SyncError::Empty)
    });
    takes_about(SHORT, || {
        expect_sync_error(queue.get_with(true, Some(SHORT)), SyncError::Empty)
    });
    drop(queue);
    assert_no_objects(&manager);
}

/// "get: ..." — a blocked get returns as soon as another thread puts.
#[test]
fn a_blocked_get_returns_when_an_item_arrives() {
    let manager = started_sync_manager();
    let queue = manager.queue::<(u8, String)>(0).unwrap();
    let getter = std::thread::spawn({
        let queue = queue.clone();
        move || queue.get_timeout(Duration::from_secs(10))
    });
    std::thread::sleep(Duration::from_millis(50));
    queue.put((7, "seven".into())).unwrap();
    assert_eq!(getter.join().unwrap().unwrap(), (7, "seven".to_string()));
    drop(queue);
    assert_no_objects(&manager);
}

/// "20 items put by a child process arrive in order, then Empty."
#[test]
fn twenty_items_put_by_a_child_process_arrive_in_order() {
    let manager = started_sync_manager();
    let queue = manager.queue::<i64>(0).unwrap();
    let child = spawn_with_tokens(
        &manager,
        "worker_puts_twenty_items",
        &[managers::Proxy::token(&queue)],
    );
    let received: Vec<i64> = (0..20)
        .map(|_| queue.get_timeout(Duration::from_secs(30)))
        .collect::<Result<_, _>>()
        .unwrap();
    expect_success(child, WORKER_LIMIT);
    assert_eq!(received, (0..20).collect::<Vec<_>>());
    expect_sync_error(queue.get_nowait(), SyncError::Empty);
    drop(queue);
    assert_no_objects(&manager);
}

/// Worker of `twenty_items_put_by_a_child_process_arrive_in_order`.
#[test]
#[ignore = "worker process, started by its parent test"]
fn worker_puts_twenty_items() {
    let (_manager, mut objects) = worker_objects();
    let queue = QueueProxy::<i64>::from_base(objects.remove(0));
    for i in 0..20 {
        queue.put(i).unwrap();
    }
}

/// "qsize goes 0, 1, 2, 1, 0."
#[test]
fn qsize_follows_puts_and_gets() {
    let manager = started_sync_manager();
    let queue = manager.queue::<i64>(0).unwrap();
    assert_eq!(queue.qsize().unwrap(), 0);
    queue.put(1).unwrap();
    assert_eq!(queue.qsize().unwrap(), 1);
    queue.put(5).unwrap();
    assert_eq!(queue.qsize().unwrap(), 2);
    queue.get().unwrap();
    assert_eq!(queue.qsize().unwrap(), 1);
    queue.get().unwrap();
    assert_eq!(queue.qsize().unwrap(), 0);
    drop(queue);
    assert_no_objects(&manager);
}

/// "JoinableQueue: `join()` returns once 4 worker processes have called
/// `task_done()` for every item; ..."
#[test]
fn join_returns_once_four_worker_processes_called_task_done() {
    let manager = started_sync_manager();
    let queue = manager.joinable_queue::<Option<i64>>(0).unwrap();
    let done = manager.queue::<i64>(0).unwrap();
    let tokens = [
        managers::Proxy::token(&queue),
        managers::Proxy::token(&done),
    ];
    let workers: Vec<_> = (0..4)
        .map(|_| spawn_with_tokens(&manager, "worker_marks_tasks_done", &tokens))
        .collect();
    for i in 0..10 {
        queue.put(Some(i)).unwrap();
    }
    queue.join().unwrap();
    // Every item was processed before `task_done`, so all are reported.
    let mut processed: Vec<i64> = (0..10).map(|_| done.get_nowait().unwrap()).collect();
    processed.sort();
    assert_eq!(processed, (0..10).collect::<Vec<_>>());
    assert!(queue.empty().unwrap());

    for _ in &workers {
        queue.put(None).unwrap();
    }
    queue.join().unwrap();
    for worker in workers {
        expect_success(worker, WORKER_LIMIT);
    }
    drop((queue, done));
    assert_no_objects(&manager);
}

/// Worker of `join_returns_once_four_worker_processes_called_task_done`:
/// CPython's `_test_task_done`.
#[test]
#[ignore = "worker process, started by its parent test"]
fn worker_marks_tasks_done() {
    let (_manager, mut objects) = worker_objects();
    let done = QueueProxy::<i64>::from_base(objects.remove(1));
    let queue = JoinableQueueProxy::<Option<i64>>::from_base(objects.remove(0));
    while let Some(item) = queue.get_timeout(Duration::from_secs(30)).unwrap() {
        done.put(item).unwrap();
        queue.task_done().unwrap();
    }
    queue.task_done().unwrap();
}

/// "... a `task_done()` too many is an error."
#[test]
fn task_done_too_many_times_is_a_runtime_error() {
    let manager = started_sync_manager();
    let queue = manager.joinable_queue::<i64>(0).unwrap();
    let too_many = SyncError::RuntimeError("task_done() called too many times".into());
    expect_sync_error(queue.task_done(), too_many.clone());
    queue.put(1).unwrap();
    assert_eq!(queue.get().unwrap(), 1);
    queue.task_done().unwrap();
    queue.join().unwrap();
    expect_sync_error(queue.task_done(), too_many);
    drop(queue);
    assert_no_objects(&manager);
}

/// A joiner waits while a task is unfinished (CPython's join semantics).
#[test]
fn join_waits_for_the_last_task_done() {
    let manager = started_sync_manager();
    let queue = manager.joinable_queue::<i64>(0).unwrap();
    queue.put(1).unwrap();
    let joiner = std::thread::spawn({
        let queue = queue.clone();
        move || {
            let start = Instant::now();
            queue.join().unwrap();
            start.elapsed()
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !joiner.is_finished(),
        "join returned with a task unfinished"
    );
    queue.get().unwrap();
    queue.task_done().unwrap();
    assert!(joiner.join().unwrap() >= Duration::from_millis(90));
    drop(queue);
    assert_no_objects(&manager);
}

/// Nesting (CONFORMANCE "dict: A queue proxy stored in a dict still
/// works"; DESIGN "a token is itself a value"): a proxy put in a queue
/// keeps its object alive after the putter drops it, and works once taken
/// out; a queue dropped while holding proxies releases them.
#[test]
fn proxies_travel_through_a_queue() {
    if not_in_redis_pass(
        "objects in Redis live by leases, not the references their containers hold",
    ) {
        return;
    }
    let manager = started_sync_manager();
    let outer = manager.queue::<QueueProxy<i64>>(0).unwrap();
    let inner = manager.queue::<i64>(0).unwrap();
    inner.put(123).unwrap();
    outer.put(inner).unwrap();
    assert_eq!(manager.number_of_objects().unwrap(), 2, "held by the queue");

    let inner = outer.get().unwrap();
    inner.put(456).unwrap();
    assert_eq!(inner.get().unwrap(), 123);
    assert_eq!(inner.get().unwrap(), 456);

    // A put that fails (Full) or waits in vain gives its references back.
    let full = manager.queue::<QueueProxy<i64>>(1).unwrap();
    full.put(inner.clone()).unwrap();
    expect_sync_error(full.put_nowait(inner.clone()), SyncError::Full);
    expect_sync_error(full.put_timeout(inner.clone(), SHORT), SyncError::Full);
    assert_eq!(manager.number_of_objects().unwrap(), 3);
    drop(full);
    assert_eq!(manager.number_of_objects().unwrap(), 2);

    outer.put(inner).unwrap();
    drop(outer);
    assert_no_objects(&manager);
}

/// A queue holding a proxy to itself does not keep itself alive.
#[test]
fn a_queue_can_hold_itself() {
    let manager = started_sync_manager();
    let queue = manager.queue::<RawQueueProxy>(0).unwrap();
    queue.put(queue.retype()).unwrap();
    let same = queue.get().unwrap();
    assert_eq!(same.base().token(), managers::Proxy::token(&queue));
    queue.put(same).unwrap();
    drop(queue);
    assert_no_objects(&manager);
}

// Waiting gets are futures in the server (and here, with the async
// proxy): a thousand of them on one connection cost a few threads at
// most (in Redis, one reader takes items for all of them), and each gets
// exactly one of the thousand items put afterwards.
#[test]
fn a_thousand_waiting_gets_are_futures_not_threads() {
    const GETS: u64 = 1000;
    let manager = started_sync_manager();
    let queue = manager.queue::<u64>(0).unwrap();
    let runtime = current_thread_runtime();
    let before = thread_count();
    let (mut got, during) = runtime.block_on(async {
        let mut gets = tokio::task::JoinSet::new();
        for _ in 0..GETS {
            let queue = queue.to_async();
            gets.spawn(async move { queue.get_timeout(Duration::from_secs(60)).await });
        }
        // Every get sent and waiting (none can return: the queue is empty).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let during = thread_count();
        let producer = queue.to_async();
        for item in 0..GETS {
            producer.put(item).await.unwrap();
        }
        let mut got = Vec::new();
        while let Some(done) = gets.join_next().await {
            got.push(done.unwrap().unwrap());
        }
        (got, during)
    });
    got.sort_unstable();
    assert_eq!(got, (0..GETS).collect::<Vec<_>>(), "each item once");
    assert!(
        during < before + 40,
        "{during} threads with {GETS} waiting gets, {before} before"
    );
    assert!(queue.empty().unwrap());
    drop(queue);
    assert_no_objects(&manager);
}
