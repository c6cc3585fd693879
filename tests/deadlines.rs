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
    let async_queue = queue.to_async();
    let runtime = runtime();
    runtime.block_on(async {
        // The future is dropped when the deadline passes: withdrawn.
        let dropped = tokio::time::timeout(DEADLINE, async_queue.get_with(true, None)).await;
        assert!(dropped.is_err(), "nothing to get yet");
        // The proxy's own deadline: Error::Timeout.
        let timed = async_queue
            .with_timeout(DEADLINE)
            .get_with(true, None)
            .await;
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
    let async_lock = theirs.to_async();
    let runtime = runtime();
    runtime.block_on(async {
        let dropped = tokio::time::timeout(DEADLINE, async_lock.acquire_with(true, None)).await;
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
    let async_dict = dict.to_async();
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

// A dropped async call whose server side already happened: its result goes
// to the proxy's undo instead of being lost (client/multiplexed.rs). These
// drive both halves of the race: the reply already routed but not taken
// (made certain by a later call on the same connection answered after it),
// and the reply still on its way (dropped at once, or after a few yields).

/// Poll `call` once: its request is sent (the connection is open).
async fn poll_once<F: std::future::Future + Unpin>(call: &mut F) -> std::task::Poll<F::Output> {
    std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut *call).poll(cx))).await
}

/// Wait, boundedly, until `done` is true (undos run on a task of their own).
async fn settles<F: std::future::Future<Output = bool>>(mut done: impl FnMut() -> F) -> bool {
    let until = Instant::now() + PATIENCE;
    while Instant::now() < until {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    false
}

#[test]
fn a_get_answered_but_not_taken_puts_its_item_back_in_order() {
    let manager = started_sync_manager();
    let runtime = runtime();
    runtime.block_on(async {
        let queue = manager.queue_async::<u32>(0).await.unwrap();
        for item in 0..20 {
            queue.put(item).await.unwrap();
        }
        for round in 0..20u32 {
            let mut get = Box::pin(queue.get());
            assert!(poll_once(&mut get).await.is_pending());
            // Answered after the get on the same connection: the get's
            // reply (item `round`) has arrived and waits to be taken.
            assert_eq!(queue.qsize().await.unwrap(), 19 - round as usize);
            // The undo's put-back leaves before the next call.
            drop(get);
            assert_eq!(
                queue.get().await.unwrap(),
                round,
                "item {round} came back first"
            );
        }
        assert_eq!(queue.qsize().await.unwrap(), 0);
    });
}

#[test]
fn dropped_gets_lose_no_item_and_take_none_twice() {
    const ITEMS: u32 = 300;
    let manager = started_sync_manager();
    let runtime = runtime();
    runtime.block_on(async {
        let queue = manager.queue_async::<u32>(0).await.unwrap();
        for item in 0..ITEMS / 2 {
            queue.put(item).await.unwrap();
        }
        let mut received = Vec::new();
        for round in 0..ITEMS {
            if round == ITEMS / 4 {
                // The rest arrives while gets are being dropped.
                for item in ITEMS / 2..ITEMS {
                    queue.put(item).await.unwrap();
                }
            }
            let mut get = Box::pin(queue.get_timeout(Duration::from_millis(20)));
            match poll_once(&mut get).await {
                std::task::Poll::Ready(item) => received.push(item.unwrap()),
                std::task::Poll::Pending => {
                    for _ in 0..round % 4 {
                        tokio::task::yield_now().await;
                    }
                    if round % 3 == 0 {
                        // Every third one is taken: the others race their
                        // replies or wait on the server, and are dropped.
                        received.push(get.await.unwrap());
                    }
                }
            }
        }
        let expected = ITEMS as usize - received.len();
        assert!(
            settles(|| async { queue.qsize().await.unwrap() == expected }).await,
            "every item not received is back in the queue ({} of {expected})",
            queue.qsize().await.unwrap()
        );
        while let Ok(item) = queue.get_nowait().await {
            received.push(item);
        }
        received.sort_unstable();
        assert_eq!(
            received,
            (0..ITEMS).collect::<Vec<_>>(),
            "each item exactly once"
        );
    });
}

#[test]
fn select_between_two_queues_loses_no_item() {
    // The everyday form of the race: the losing branch of a select! is
    // dropped, maybe after its get was done.
    const EACH: u32 = 150;
    let manager = started_sync_manager();
    // Two workers: replies routed on one thread, the select on another.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let left = manager.queue_async::<u32>(0).await.unwrap();
        let right = manager.queue_async::<u32>(0).await.unwrap();
        let (l, r) = (left.to_blocking(), right.to_blocking());
        let producer = std::thread::spawn(move || {
            for item in 0..EACH {
                l.put(item).unwrap();
                r.put(EACH + item).unwrap();
            }
        });
        let mut received = Vec::new();
        let all = tokio::time::timeout(PATIENCE, async {
            while received.len() < 2 * EACH as usize {
                tokio::select! {
                    item = left.get() => received.push(item.unwrap()),
                    item = right.get() => received.push(item.unwrap()),
                }
            }
        })
        .await;
        producer.join().unwrap();
        assert!(
            all.is_ok(),
            "{} of {} items received",
            received.len(),
            2 * EACH
        );
        received.sort_unstable();
        assert_eq!(
            received,
            (0..2 * EACH).collect::<Vec<_>>(),
            "each item exactly once"
        );
        assert_eq!(
            left.qsize().await.unwrap() + right.qsize().await.unwrap(),
            0
        );
    });
}

#[test]
fn dropped_acquires_leave_the_lock_free() {
    let manager = started_sync_manager();
    let other = connect_session(&manager);
    let runtime = runtime();
    runtime.block_on(async {
        let lock = manager.lock_async().await.unwrap();
        let theirs: managers::sync::LockProxy = other.proxy_from_token(lock.token()).unwrap();
        for round in 0..60u32 {
            let mut acquire = Box::pin(lock.acquire());
            assert!(poll_once(&mut acquire).await.is_pending());
            match round % 3 {
                // Answered (the lock taken) and not taken by the caller.
                0 => assert!(lock.locked().await.unwrap()),
                1 => tokio::task::yield_now().await,
                _ => {}
            }
            drop(acquire);
            assert!(
                settles(|| async { !lock.locked().await.unwrap() }).await,
                "round {round}: the dropped acquire's lock was given back"
            );
        }
        // Another session can take it: nobody that gave up holds it.
        assert!(theirs.acquire_with(false, None).unwrap());
        theirs.release().unwrap();
    });
}

#[test]
fn dropped_acquires_of_an_rlock_and_a_semaphore_give_back_what_they_took() {
    let manager = started_sync_manager();
    let runtime = runtime();
    runtime.block_on(async {
        let rlock = manager.rlock_async().await.unwrap();
        let semaphore = manager.semaphore_async(2).await.unwrap();
        for round in 0..30u32 {
            // An RLock is released as the task that acquired it: were the
            // undo's release made as anyone else it would be refused.
            let rl = rlock.clone();
            tokio::spawn(async move {
                let mut acquire = Box::pin(rl.acquire());
                assert!(poll_once(&mut acquire).await.is_pending());
                if round % 2 == 0 {
                    assert!(rl.is_owned_as(0).await.is_ok());
                }
            })
            .await
            .unwrap();
            let mut first = Box::pin(semaphore.acquire());
            let mut second = Box::pin(semaphore.acquire());
            assert!(poll_once(&mut first).await.is_pending());
            assert!(poll_once(&mut second).await.is_pending());
            if round % 2 == 0 {
                // Answered after both acquires: their replies are in.
                semaphore.release().await.ok();
                let again = tokio::time::timeout(PATIENCE, semaphore.acquire()).await;
                assert!(again.is_ok(), "round {round}: no unit came back");
            }
            drop((first, second));
        }
        let rlock_free = settles(|| async {
            let mine = rlock.try_acquire().await.unwrap();
            if mine {
                rlock.release().await.unwrap();
            }
            mine
        })
        .await;
        assert!(rlock_free, "no dropped acquire holds the rlock");
        let units = settles(|| async {
            let a = semaphore.try_acquire().await.unwrap();
            let b = semaphore.try_acquire().await.unwrap();
            let c = semaphore.try_acquire().await.unwrap();
            for taken in [a, b, c] {
                if taken {
                    semaphore.release().await.unwrap();
                }
            }
            a && b && !c
        })
        .await;
        assert!(units, "both units are back, and no more");
    });
}

#[test]
fn an_async_get_past_its_deadline_gives_back_the_item_it_was_sent() {
    // A deadline of zero fires at the runtime's next timer tick: before or
    // after the reply, so both happen over the rounds. An item sent for a
    // get that timed out comes back at the head of the queue.
    const ITEMS: u32 = 40;
    let manager = started_sync_manager();
    let runtime = runtime();
    runtime.block_on(async {
        let queue = manager.queue_async::<u32>(0).await.unwrap();
        for item in 0..ITEMS {
            queue.put(item).await.unwrap();
        }
        let impatient = queue.with_timeout(Duration::ZERO);
        let (mut next, mut timed_out) = (0, 0);
        for _ in 0..1000 {
            if next == ITEMS || timed_out >= 5 {
                break;
            }
            match impatient.get().await {
                Ok(item) => {
                    assert_eq!(item, next, "in order");
                    next += 1;
                }
                Err(Error::Timeout { .. }) => {
                    timed_out += 1;
                    let left = (ITEMS - next) as usize;
                    assert!(
                        settles(|| async { queue.qsize().await.unwrap() == left }).await,
                        "the item of the timed-out get came back"
                    );
                    assert_eq!(queue.get().await.unwrap(), next, "at the head");
                    next += 1;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert!(timed_out > 0, "no get timed out in {next} rounds");
        while next < ITEMS {
            assert_eq!(queue.get().await.unwrap(), next);
            next += 1;
        }
        assert_eq!(queue.qsize().await.unwrap(), 0);
    });
}
