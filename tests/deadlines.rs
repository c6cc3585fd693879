//! Issue 12, "Deadlines and cancellation per call": a call past its
//! deadline fails with `Error::Timeout` and the server withdraws what it
//! was waiting for on the caller's behalf; dropping an async call's future
//! withdraws it the same way. A withdrawn `get()` takes no item, a
//! withdrawn `acquire()` no lock.

mod common;

use std::time::{Duration, Instant};

use common::sync::{client_options, connect_session, started_sync_manager};
use managers::sync::SyncManager;
use managers::{Error, Proxy};

const DEADLINE: Duration = Duration::from_millis(100);
/// Far longer than any of these calls takes when it works.
const PATIENCE: Duration = Duration::from_secs(10);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn assert_withdrawn<T: std::fmt::Debug>(result: managers::Result<T>) {
    match result {
        Err(Error::Timeout { after, withdrawn }) => {
            assert_eq!(after, DEADLINE);
            assert!(withdrawn, "the server confirmed the withdrawal");
        }
        other => panic!("expected a withdrawn timeout, got {other:?}"),
    }
}

#[test]
fn a_timed_out_get_does_not_swallow_the_next_item() {
    let manager = started_sync_manager();
    let queue = manager.queue::<i64>(0).unwrap();
    let impatient = queue.with_timeout(DEADLINE);
    let started = Instant::now();
    assert_withdrawn(impatient.get());
    let took = started.elapsed();
    assert!(took >= DEADLINE && took < PATIENCE, "took {took:?}");
    // A second withdrawn wait, then the items go to whoever asks next.
    assert_withdrawn(impatient.get());
    queue.put(7).unwrap();
    queue.put(8).unwrap();
    assert_eq!(queue.qsize().unwrap(), 2, "no withdrawn get took an item");
    assert_eq!(queue.get().unwrap(), 7);
    // The impatient proxy works as usual when there is something to get,
    // and the withdrawals cost the session none of its references.
    assert_eq!(impatient.get().unwrap(), 8);
    assert_eq!(manager.number_of_objects().unwrap(), 1);
}

#[test]
fn a_timed_out_acquire_does_not_hold_the_lock() {
    let manager = started_sync_manager();
    let lock = manager.lock().unwrap();
    assert!(lock.acquire().unwrap());
    let other = connect_session(&manager);
    let theirs: managers::sync::LockProxy = other.proxy_from_token(lock.token()).unwrap();
    let impatient = theirs.with_timeout(DEADLINE);
    let waited = std::thread::spawn(move || impatient.acquire());
    assert_withdrawn(waited.join().unwrap());
    lock.release().unwrap();
    // Had the withdrawn acquire taken the lock on release, this would fail.
    assert!(
        theirs.acquire_with(false, None).unwrap(),
        "the lock is free after the withdrawn acquire"
    );
    theirs.release().unwrap();
}

#[test]
fn the_manager_default_deadline_applies_to_every_proxy() {
    let manager = started_sync_manager();
    let queue = manager.queue::<i64>(0).unwrap();
    let impatient = SyncManager::with_options(client_options(&manager).call_timeout(DEADLINE));
    impatient.connect().unwrap();
    let theirs: managers::sync::QueueProxy<i64> =
        impatient.proxy_from_token(queue.token()).unwrap();
    assert_withdrawn(theirs.get());
    // A proxy's own deadline wins over the manager's.
    let patient = theirs.with_timeout(PATIENCE);
    let putter = {
        let queue = queue.clone();
        std::thread::spawn(move || {
            std::thread::sleep(2 * DEADLINE);
            queue.put(5)
        })
    };
    assert_eq!(patient.get().unwrap(), 5);
    putter.join().unwrap().unwrap();
}

#[test]
fn a_dropped_async_get_takes_no_item() {
    let manager = started_sync_manager();
    let queue = manager.queue::<i64>(0).unwrap();
    let async_queue = queue.raw().to_async();
    let runtime = runtime();
    runtime.block_on(async {
        // The future is dropped when the deadline passes: withdrawn.
        let dropped = tokio::time::timeout(DEADLINE, async_queue.get(true, None)).await;
        assert!(dropped.is_err(), "nothing to get yet");
        // The proxy's own deadline: Error::Timeout.
        let timed = async_queue.with_timeout(DEADLINE).get(true, None).await;
        assert!(matches!(timed, Err(Error::Timeout { .. })), "got {timed:?}");
    });
    // The withdrawal reaches the server before the put (one connection,
    // in order, for the async session); give it no chance to be late by
    // asking the server something on that connection first.
    runtime.block_on(async { async_queue.qsize().await.unwrap() });
    queue.put(11).unwrap();
    assert_eq!(queue.get_timeout(PATIENCE).unwrap(), 11);
    assert_eq!(queue.qsize().unwrap(), 0);
}

#[test]
fn a_dropped_async_acquire_does_not_hold_the_lock() {
    let manager = started_sync_manager();
    let lock = manager.lock().unwrap();
    assert!(lock.acquire().unwrap());
    let other = connect_session(&manager);
    let theirs: managers::sync::LockProxy = other.proxy_from_token(lock.token()).unwrap();
    let async_lock = theirs.raw().to_async();
    let runtime = runtime();
    runtime.block_on(async {
        let dropped = tokio::time::timeout(DEADLINE, async_lock.acquire(true, None)).await;
        assert!(dropped.is_err(), "the lock is held");
        async_lock.locked().await.unwrap();
    });
    lock.release().unwrap();
    assert!(
        theirs.acquire_with(false, None).unwrap(),
        "the lock is free after the dropped acquire"
    );
    theirs.release().unwrap();
}

#[test]
fn the_async_connection_comes_back_after_it_fails() {
    // A session whose async connection died reconnects on the next call
    // instead of failing every call after it.
    let manager = started_sync_manager();
    let dict = manager.dict::<i64, i64>().unwrap();
    let async_dict = dict.raw().to_async();
    let runtime = runtime();
    runtime.block_on(async {
        assert_eq!(async_dict.len().await.unwrap(), 0);
    });
    // The runtime that ran the connection's tasks is gone: they died with
    // it, and so did the connection.
    drop(runtime);
    let runtime = self::runtime();
    runtime.block_on(async {
        let mut tries = 0;
        let len = loop {
            match async_dict.len().await {
                Ok(len) => break len,
                // The first call may still find the dead connection.
                Err(Error::ServerGone { .. }) if tries < 3 => tries += 1,
                Err(e) => panic!("the async connection did not come back: {e}"),
            }
        };
        assert_eq!(len, 0);
    });
}
