//! CONFORMANCE.md, "Event": CPython's `_TestEvent` against
//! `SyncManager::event`, with a child worker process setting the event.

mod common;

use std::time::{Duration, Instant};

use common::check::{takes_about, SHORT};
use common::sync::{
    assert_no_objects, rebuild, spawn_with_tokens, started_sync_manager, worker_session,
    WORKER_LIMIT,
};
use common::worker::expect_success;
use managers::sync::EventProxy;
use managers::Proxy;

/// "`wait(timeout)` false while unset, true once set; `is_set()`;
/// `clear()`; ..."
#[test]
fn wait_is_false_while_unset_and_true_once_set() {
    let manager = started_sync_manager();
    let event = manager.event().unwrap();
    assert!(!event.is_set().unwrap());
    assert!(!takes_about(Duration::ZERO, || event
        .wait(Some(Duration::ZERO))
        .unwrap()));
    assert!(!takes_about(SHORT, || event.wait(Some(SHORT)).unwrap()));

    event.set().unwrap();
    assert!(event.is_set().unwrap());
    assert!(takes_about(Duration::ZERO, || event.wait(None).unwrap()));
    assert!(takes_about(Duration::ZERO, || event
        .wait(Some(SHORT))
        .unwrap()));
    event.set().unwrap();
    assert!(event.is_set().unwrap(), "setting twice keeps it set");

    event.clear().unwrap();
    assert!(!event.is_set().unwrap());
    assert!(!takes_about(SHORT, || event.wait(Some(SHORT)).unwrap()));
    drop(event);
    assert_no_objects(&manager);
}

/// "... `set()` from a child process releases a waiting parent."
#[test]
fn set_from_a_child_process_releases_a_waiting_parent() {
    let manager = started_sync_manager();
    let event = manager.event().unwrap();
    let child = spawn_with_tokens(&manager, "worker_sets_the_event", &[event.token()]);
    let start = Instant::now();
    assert!(event.wait(Some(Duration::from_secs(30))).unwrap());
    assert!(
        start.elapsed() >= SHORT.mul_f64(0.9),
        "the child sleeps first"
    );
    assert!(event.is_set().unwrap());
    expect_success(child, WORKER_LIMIT);
    drop(event);
    assert_no_objects(&manager);
}

/// Worker of `set_from_a_child_process_releases_a_waiting_parent`:
/// CPython's `_test_event`.
#[test]
#[ignore = "worker process, started by its parent test"]
fn worker_sets_the_event() {
    let (manager, tokens) = worker_session();
    let event: EventProxy = rebuild(&manager, &tokens[0]);
    std::thread::sleep(SHORT);
    event.set().unwrap();
}

/// A waiter in another thread is released by `set()`, well before its
/// timeout.
#[test]
fn set_releases_a_waiting_thread() {
    let manager = started_sync_manager();
    let event = manager.event().unwrap();
    let waiter = std::thread::spawn({
        let event = event.clone();
        move || {
            let start = Instant::now();
            (event.wait(Some(Duration::from_secs(30))), start.elapsed())
        }
    });
    std::thread::sleep(Duration::from_millis(50));
    event.set().unwrap();
    let (woken, took) = waiter.join().unwrap();
    assert!(woken.unwrap());
    assert!(took < Duration::from_secs(10), "{took:?}");
    drop(event);
    assert_no_objects(&manager);
}

/// "Its printed form names the proxy type and typeid."
#[test]
fn printed_form_names_the_proxy_type_and_typeid() {
    let manager = started_sync_manager();
    let event = manager.event().unwrap();
    for printed in [format!("{event}"), format!("{event:?}")] {
        assert!(printed.contains("EventProxy"), "{printed}");
        assert!(printed.contains("typeid 'Event'"), "{printed}");
    }
    let printed = format!("{}", event.to_async());
    assert!(printed.contains("EventAsyncProxy"), "{printed}");
    assert!(printed.contains("typeid 'Event'"), "{printed}");
    drop(event);
    assert_no_objects(&manager);
}
