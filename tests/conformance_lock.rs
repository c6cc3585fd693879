//! CONFORMANCE.md, "Lock, RLock" and "Semaphore, BoundedSemaphore":
//! CPython's `_TestLock` and `_TestSemaphore` against `SyncManager`'s
//! locks (Python's `AcquirerProxy`).

mod common;

use std::time::{Duration, Instant};

use common::check::{expect_sync_error, takes_about, SHORT};
use common::sync::{assert_no_objects, started_sync_manager};
use managers::{Error, SyncError};

/// Run `f` on another thread (another caller) and return its result.
fn on_other_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().expect("other thread")
}

/// "Lock: `acquire()` true, `acquire(false)` false, `release()` ok, a
/// second `release()` fails (RuntimeError in Python)."
#[test]
fn lock_acquire_release_and_a_second_release_fails() {
    let manager = started_sync_manager();
    let lock = manager.lock().unwrap();
    assert!(!lock.locked().unwrap());
    assert!(lock.acquire().unwrap());
    assert!(lock.locked().unwrap());
    assert!(!lock.try_acquire().unwrap());
    assert!(!lock.acquire_with(false, None).unwrap());
    lock.release().unwrap();
    assert!(!lock.locked().unwrap());
    expect_sync_error(
        lock.release(),
        SyncError::RuntimeError("release unlocked lock".into()),
    );
    drop(lock);
    assert_no_objects(&manager);
}

/// "Lock: ..." — as in Python, a `Lock` is not owned: another thread may
/// release it, and a blocked acquirer gets it then.
#[test]
fn lock_is_released_by_any_thread_and_wakes_a_waiter() {
    let manager = started_sync_manager();
    let lock = manager.lock().unwrap();
    assert!(lock.acquire().unwrap());
    let waiter = std::thread::spawn({
        let lock = lock.clone();
        move || lock.acquire_timeout(Duration::from_secs(10))
    });
    std::thread::sleep(Duration::from_millis(50));
    on_other_thread({
        let lock = lock.clone();
        move || lock.release()
    })
    .unwrap();
    assert!(waiter.join().unwrap().unwrap());
    assert!(lock.locked().unwrap());
    lock.release().unwrap();
    drop(lock);
    assert_no_objects(&manager);
}

/// "RLock: three acquires then three releases; a fourth release fails."
#[test]
fn rlock_three_acquires_three_releases_and_a_fourth_fails() {
    let manager = started_sync_manager();
    let lock = manager.rlock().unwrap();
    assert!(lock.acquire().unwrap());
    assert!(lock.acquire().unwrap());
    assert!(lock.try_acquire().unwrap(), "re-entrant for its owner");
    assert!(lock.is_owned().unwrap());
    lock.release().unwrap();
    lock.release().unwrap();
    assert!(lock.is_owned().unwrap(), "one level still held");
    lock.release().unwrap();
    assert!(!lock.is_owned().unwrap());
    expect_sync_error(
        lock.release(),
        SyncError::RuntimeError("cannot release un-acquired lock".into()),
    );
    drop(lock);
    assert_no_objects(&manager);
}

/// "Re-entrancy belongs to the caller (client thread), not to the
/// connection." The two threads call one after the other through the same
/// manager session, so they reuse its one pooled connection.
#[test]
fn rlock_belongs_to_the_calling_thread_not_the_connection() {
    let manager = started_sync_manager();
    let lock = manager.rlock().unwrap();
    assert!(lock.acquire().unwrap());
    let (taken, released) = on_other_thread({
        let lock = lock.clone();
        move || (lock.try_acquire().unwrap(), lock.release())
    });
    assert!(!taken, "another thread must not re-enter");
    match released {
        Err(Error::Sync(SyncError::RuntimeError(_))) => {}
        other => panic!("a non-owner's release must fail, got {other:?}"),
    }
    assert!(lock.is_owned().unwrap());
    lock.release().unwrap();
    let taken = on_other_thread({
        let lock = lock.clone();
        move || {
            let taken = lock.try_acquire().unwrap();
            lock.release().unwrap();
            taken
        }
    });
    assert!(taken, "free once its owner released it");
    drop(lock);
    assert_no_objects(&manager);
}

/// "Lock and RLock usable as a scope guard (Python's `with lock:`)."
#[test]
fn lock_and_rlock_as_scope_guards() {
    let manager = started_sync_manager();
    let lock = manager.lock().unwrap();
    {
        let _held = lock.guard().unwrap();
        assert!(lock.locked().unwrap());
        assert!(!lock.try_acquire().unwrap());
    }
    assert!(!lock.locked().unwrap());

    let rlock = manager.rlock().unwrap();
    {
        let _outer = rlock.guard().unwrap();
        {
            let _inner = rlock.guard().unwrap();
            assert!(rlock.is_owned().unwrap());
        }
        assert!(rlock.is_owned().unwrap(), "the outer guard still holds it");
        let other = rlock.clone();
        assert!(!on_other_thread(move || other.try_acquire().unwrap()));
    }
    assert!(!rlock.is_owned().unwrap());
    let other = rlock.clone();
    assert!(on_other_thread(move || {
        let _held = other.guard().unwrap();
        true
    }));
    expect_sync_error(
        rlock.release(),
        SyncError::RuntimeError("cannot release un-acquired lock".into()),
    );
    drop((lock, rlock));
    assert_no_objects(&manager);
}

/// "Semaphore(2): acquire, acquire true; acquire(false) false; releases
/// ok."
#[test]
fn semaphore_of_two() {
    let manager = started_sync_manager();
    let semaphore = manager.semaphore(2).unwrap();
    assert!(semaphore.acquire().unwrap());
    assert!(semaphore.acquire().unwrap());
    assert!(!semaphore.try_acquire().unwrap());
    assert!(!semaphore.acquire_with(false, None).unwrap());
    semaphore.release().unwrap();
    semaphore.release().unwrap();
    // A plain semaphore may go above its initial value, as in Python.
    semaphore.release().unwrap();
    for _ in 0..3 {
        assert!(semaphore.try_acquire().unwrap());
    }
    assert!(!semaphore.try_acquire().unwrap());
    semaphore.release().unwrap();
    {
        let _unit = semaphore.guard().unwrap();
        assert!(!semaphore.try_acquire().unwrap());
    }
    assert!(semaphore.try_acquire().unwrap());
    drop(semaphore);
    assert_no_objects(&manager);
}

/// "BoundedSemaphore(2): releasing above the initial value fails."
#[test]
fn bounded_semaphore_refuses_release_above_its_initial_value() {
    let manager = started_sync_manager();
    let semaphore = manager.bounded_semaphore(2).unwrap();
    let too_many = SyncError::ValueError("Semaphore released too many times".into());
    expect_sync_error(semaphore.release(), too_many.clone());
    assert!(semaphore.acquire().unwrap());
    assert!(semaphore.acquire().unwrap());
    assert!(!semaphore.try_acquire().unwrap());
    semaphore.release().unwrap();
    semaphore.release().unwrap();
    expect_sync_error(semaphore.release(), too_many);
    drop(semaphore);
    assert_no_objects(&manager);
}

/// "acquire with a timeout returns false after about that timeout."
#[test]
fn acquire_with_a_timeout_returns_false_after_about_that_timeout() {
    let manager = started_sync_manager();
    let semaphore = manager.semaphore(0).unwrap();
    assert!(!takes_about(Duration::ZERO, || semaphore
        .try_acquire()
        .unwrap()));
    assert!(!takes_about(SHORT, || semaphore
        .acquire_timeout(SHORT)
        .unwrap()));
    assert!(!takes_about(SHORT, || semaphore
        .acquire_with(true, Some(SHORT))
        .unwrap()));

    let bounded = manager.bounded_semaphore(1).unwrap();
    assert!(bounded.acquire().unwrap());
    assert!(!takes_about(SHORT, || bounded
        .acquire_timeout(SHORT)
        .unwrap()));

    let lock = manager.lock().unwrap();
    assert!(lock.acquire().unwrap());
    assert!(!takes_about(SHORT, || lock.acquire_timeout(SHORT).unwrap()));

    let rlock = manager.rlock().unwrap();
    assert!(rlock.acquire().unwrap());
    let other = rlock.clone();
    assert!(!on_other_thread(move || takes_about(SHORT, || other
        .acquire_timeout(SHORT)
        .unwrap())));

    // As in Python's threading, a timeout needs a blocking call.
    expect_sync_error(
        semaphore.acquire_with(false, Some(SHORT)),
        SyncError::ValueError("can't specify a timeout for a non-blocking call".into()),
    );
    drop((semaphore, bounded, lock, rlock));
    assert_no_objects(&manager);
}

/// "acquire with a timeout ..." — a timed acquire succeeds as soon as a
/// unit is released, well before its timeout.
#[test]
fn a_timed_acquire_succeeds_when_released_in_time() {
    let manager = started_sync_manager();
    let semaphore = manager.semaphore(0).unwrap();
    let waiter = std::thread::spawn({
        let semaphore = semaphore.clone();
        move || {
            let start = Instant::now();
            (
                semaphore.acquire_timeout(Duration::from_secs(10)),
                start.elapsed(),
            )
        }
    });
    std::thread::sleep(Duration::from_millis(50));
    semaphore.release().unwrap();
    let (taken, took) = waiter.join().unwrap();
    assert!(taken.unwrap());
    assert!(took < Duration::from_secs(5), "{took:?}");
    drop(semaphore);
    assert_no_objects(&manager);
}
