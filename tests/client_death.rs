//! A client process that dies holding proxies leaks nothing: the server
//! releases every reference of its session (CPython leaks them).

mod common;

use std::time::Duration;

use common::sync::{
    assert_no_objects, current_thread_runtime, settled_object_count, spawn_with_tokens,
    started_sync_manager, worker_session,
};
use common::worker::{await_line, Killed};
use managers::sync::{SyncManager, ValueProxy};
use managers::Proxy;

const READY: &str = "WORKER READY";

/// Poll (bounded) until the server holds `expected` objects.
fn await_objects(manager: &SyncManager, expected: usize) {
    let now = settled_object_count(manager, expected, Duration::from_secs(5));
    assert_eq!(
        now,
        expected,
        "the server still holds {now} objects, expected {expected}: {:?}",
        manager.debug_info()
    );
}

// Issue 3: "A test that kills a client process holding proxies and shows
// the server's object count returns to where it was."
#[test]
fn a_killed_client_releases_its_objects() {
    let manager = started_sync_manager();
    // An object of this process, which the worker holds too: it must
    // survive the worker.
    let mine = manager.value(&0_i64).unwrap();
    let before = manager.number_of_objects().unwrap();
    assert_eq!(before, 1);
    for round in 1..=5 {
        let mut child = Killed(spawn_with_tokens(
            &manager,
            "worker_holds_objects_until_killed",
            &[mine.token()],
        ));
        await_line(&mut child.0, READY, Duration::from_secs(60));
        let during = manager.number_of_objects().unwrap();
        assert!(
            during >= before + 7,
            "round {round}: the worker's objects are served ({during})"
        );
        assert_eq!(mine.get().unwrap(), round, "the worker wrote to ours");
        child.0.kill().expect("kill the worker");
        child.0.wait().expect("reap the worker");
        await_objects(&manager, before);
        // Ours is untouched and still usable.
        mine.set(&round).unwrap();
    }
    drop(mine);
    assert_no_objects(&manager);
}

#[test]
#[ignore = "worker process of a_killed_client_releases_its_objects"]
fn worker_holds_objects_until_killed() {
    let (manager, tokens) = worker_session();
    let theirs: ValueProxy<i64> = manager.proxy_from_token(&tokens[0]).unwrap();
    theirs.set(&(theirs.get().unwrap() + 1)).unwrap();

    // Objects of every kind, some only reachable through others.
    let event = manager.event().unwrap();
    let value = manager.value(&"text").unwrap();
    let array = manager.array(&[1, 2, 3]).unwrap();
    let ns = manager.namespace().unwrap();
    let barrier = manager.barrier(3).unwrap();
    ns.set("event", &manager.event().unwrap()).unwrap();
    ns.set("theirs", &theirs).unwrap();
    let holder = manager.value(&manager.array(&[0.5]).unwrap()).unwrap();

    // Calls in flight when the process dies.
    let waiting = event.to_async();
    let blocked = barrier.clone();
    std::thread::spawn(move || {
        current_thread_runtime().block_on(async {
            let _ = waiting.wait(None).await;
        });
    });
    std::thread::spawn(move || blocked.wait(None));
    while barrier.n_waiting().unwrap() == 0 {
        std::thread::sleep(Duration::from_millis(2));
    }

    println!("{READY}");
    std::thread::sleep(Duration::from_secs(60));
    drop((event, value, array, ns, barrier, holder, theirs));
    panic!("the worker was not killed");
}
