//! Issue 8, "Proxies as arguments": every SyncManager family, iterator
//! proxies and a user `#[shared]` type passed in a `Process`'s arguments
//! work in the child as live proxies, keep their objects alive until the
//! child drops them, and are released when it exits (CPython's
//! _TestContainers hands proxies to processes this way).
//!
//! Children are this binary re-executed: its own `main` (harness = false)
//! starts with `managers::bootstrap()`.

mod common;

use std::time::Duration;

use common::sync::settled_object_count;
use common::{MathsClassProxy, TestManager};
use managers::sync::{
    ArrayProxy, BarrierProxy, BoundedSemaphoreProxy, ConditionProxy, DictProxy, EventProxy,
    IterProxy, JoinableQueueProxy, ListProxy, LockProxy, NamespaceProxy, QueueProxy, RLockProxy,
    SemaphoreProxy, SetProxy, SyncManager, ValueProxy,
};
use managers::{ManagerOptions, Process};
use serde::{Deserialize, Serialize};

fn main() {
    managers::bootstrap();
    common::harness::run(named![
        every_sync_family_works_in_a_child,
        a_passed_proxy_keeps_its_object_alive_until_the_child_ends,
        a_user_shared_type_and_a_second_manager_with_its_own_key,
        a_killed_child_releases_its_references,
        a_server_process_starts_processes,
    ]);
}

/// One object of every SyncManager family.
#[derive(Serialize, Deserialize)]
struct Families {
    dict: DictProxy<String, i64>,
    list: ListProxy<String>,
    set: SetProxy<i64>,
    queue: QueueProxy<String>,
    joinable: JoinableQueueProxy<u32>,
    lock: LockProxy,
    rlock: RLockProxy,
    semaphore: SemaphoreProxy,
    bounded: BoundedSemaphoreProxy,
    condition: ConditionProxy,
    event: EventProxy,
    barrier: BarrierProxy,
    namespace: NamespaceProxy,
    value: ValueProxy<f64>,
    array: ArrayProxy<i32>,
    iter: IterProxy<i64>,
}

fn use_families(f: Families) -> managers::Result<()> {
    f.dict.set("child".into(), 7)?;
    f.list.append("from the child".into())?;
    f.set.add(99)?;
    f.queue.put("hello parent".into())?;
    for _ in 0..3 {
        let n = f.joinable.get()?;
        f.joinable.task_done()?;
        f.dict.set(format!("job{n}"), n.into())?;
    }
    assert!(f.lock.acquire()?);
    f.lock.release()?;
    assert!(f.rlock.acquire()? && f.rlock.acquire()?);
    f.rlock.release()?;
    f.rlock.release()?;
    assert!(f.semaphore.acquire()?);
    f.semaphore.release()?;
    assert!(f.bounded.acquire()?);
    f.bounded.release()?;
    {
        let _held = f.condition.guard()?;
        f.condition.notify_all()?;
    }
    f.namespace.set("name", "Bob")?;
    f.value.set(&2.75)?;
    f.array.set(-1, &-5)?;
    let seen: Vec<i64> = f.iter.collect::<managers::Result<_>>()?;
    f.dict.set("iterated".into(), seen.iter().sum())?;
    // Both sides meet at the barrier, then the child sets the event.
    f.barrier.wait(Some(Duration::from_secs(20)))?;
    f.event.set()?;
    Ok(())
}

fn every_sync_family_works_in_a_child() {
    let manager = SyncManager::new();
    manager.start().unwrap();
    let baseline = manager.number_of_objects().unwrap();
    let numbers = manager.list_from([1i64, 2, 3, 4]).unwrap();
    let families = Families {
        dict: manager.dict().unwrap(),
        list: manager.list().unwrap(),
        set: manager.set().unwrap(),
        queue: manager.queue(0).unwrap(),
        joinable: manager.joinable_queue(0).unwrap(),
        lock: manager.lock().unwrap(),
        rlock: manager.rlock().unwrap(),
        semaphore: manager.semaphore(1).unwrap(),
        bounded: manager.bounded_semaphore(1).unwrap(),
        condition: manager.condition().unwrap(),
        event: manager.event().unwrap(),
        barrier: manager.barrier(2).unwrap(),
        namespace: manager.namespace().unwrap(),
        value: manager.value(&0.0).unwrap(),
        array: manager.array(&[1, 2, 3]).unwrap(),
        iter: numbers.iter().unwrap(),
    };
    drop(numbers);
    let (dict, list, set, queue) = (
        families.dict.clone(),
        families.list.clone(),
        families.set.clone(),
        families.queue.clone(),
    );
    let (joinable, barrier, event, namespace, value, array) = (
        families.joinable.clone(),
        families.barrier.clone(),
        families.event.clone(),
        families.namespace.clone(),
        families.value.clone(),
        families.array.clone(),
    );
    for n in 1..=3 {
        joinable.put(n).unwrap();
    }
    let p = Process::new(use_families, (families,));
    p.start().unwrap();
    joinable.join().unwrap();
    assert!(barrier.wait(Some(Duration::from_secs(20))).unwrap() < 2);
    assert!(event.wait(Some(Duration::from_secs(20))).unwrap());
    assert!(p.join_timeout(Duration::from_secs(30)).unwrap());
    assert_eq!(p.exitcode(), Some(0));
    assert_eq!(dict.get("child").unwrap(), 7);
    assert_eq!(
        dict.get("job1").unwrap() + dict.get("job2").unwrap() + dict.get("job3").unwrap(),
        6
    );
    assert_eq!(dict.get("iterated").unwrap(), 10);
    assert_eq!(list.to_vec().unwrap(), ["from the child"]);
    assert!(set.contains(&99).unwrap());
    assert_eq!(queue.get().unwrap(), "hello parent");
    assert_eq!(namespace.get::<String>("name").unwrap(), "Bob");
    assert_eq!(value.get().unwrap(), 2.75);
    assert_eq!(array.to_vec().unwrap(), [1, 2, -5]);
    drop((
        dict, list, set, queue, joinable, barrier, event, namespace, value, array,
    ));
    assert_eq!(manager.number_of_objects().unwrap(), baseline);
}

fn hold_then_write(dict: DictProxy<String, i64>, done: QueueProxy<i64>) -> managers::Result<()> {
    std::thread::sleep(Duration::from_millis(300));
    dict.set("late".into(), 41)?;
    done.put(dict.get("late")? + 1)
}

// "keep their objects alive until the child drops them": the parent's only
// proxy goes into the arguments, so from the moment start() returns only
// the child holds the dict; it is released when the child ends.
fn a_passed_proxy_keeps_its_object_alive_until_the_child_ends() {
    let manager = SyncManager::new();
    manager.start().unwrap();
    let dict: DictProxy<String, i64> = manager.dict().unwrap();
    let done: QueueProxy<i64> = manager.queue(0).unwrap();
    let id = managers::Proxy::token(&dict).id;
    let p = Process::new(hold_then_write, (dict, done.clone()));
    p.start().unwrap();
    // `dict` (moved) and the Process's copy of the arguments are gone here.
    let held = manager.debug_info().unwrap();
    assert!(
        held.iter().any(|e| e.id == id),
        "the child keeps the dict alive: {held:?}"
    );
    assert_eq!(
        done.get().unwrap(),
        42,
        "the child used the dict after the parent let go"
    );
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(0));
    assert_eq!(
        manager.number_of_objects().unwrap(),
        1,
        "the child released the dict"
    );
    drop(done);
    assert_eq!(manager.number_of_objects().unwrap(), 0);
}

fn use_maths_and_other(maths: MathsClassProxy, other: ListProxy<i64>) -> managers::Result<()> {
    let sum = maths.add(4, 3)?;
    let product = maths.mul(7, 8)?;
    other.extend([sum, product])?;
    assert_ne!(maths.pid()?, std::process::id());
    Ok(())
}

// Proxies of two managers in one call, one of them with its own authkey
// (the child authenticates with each session's key).
fn a_user_shared_type_and_a_second_manager_with_its_own_key() {
    let tests = TestManager::new();
    tests.start().unwrap();
    let keyed = SyncManager::with_options(ManagerOptions::new().authkey(b"not the process key"));
    keyed.start().unwrap();
    let list: ListProxy<i64> = keyed.list().unwrap();
    let p = Process::new(use_maths_and_other, (tests.maths().unwrap(), list.clone()));
    p.start().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(0));
    assert_eq!(list.to_vec().unwrap(), [7, 56]);
    drop(list);
    assert_eq!(tests.number_of_objects().unwrap(), 0);
    assert_eq!(keyed.number_of_objects().unwrap(), 0);
}

fn hold_forever(_dict: DictProxy<String, i64>, ready: QueueProxy<u32>) -> managers::Result<()> {
    ready.put(1)?;
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}

// A child killed while it holds references: the server releases them when
// its session's connections close.
fn a_killed_child_releases_its_references() {
    let manager = SyncManager::new();
    manager.start().unwrap();
    let ready: QueueProxy<u32> = manager.queue(0).unwrap();
    let p = Process::new(
        hold_forever,
        (manager.dict::<String, i64>().unwrap(), ready.clone()),
    );
    p.start().unwrap();
    ready.get().unwrap();
    assert_eq!(manager.number_of_objects().unwrap(), 2);
    p.kill().unwrap();
    p.join().unwrap();
    drop(ready);
    assert_eq!(settled_object_count(&manager, 0, Duration::from_secs(5)), 0);
}

/// A served type whose method starts a child process.
#[derive(Default)]
pub struct Launcher;

fn exit_with(code: i32) {
    std::process::exit(code);
}

#[managers::shared]
impl Launcher {
    /// Run a child that exits with `code`; its exit code.
    pub fn run_child(&self, code: i32) -> Result<i32, String> {
        let p = Process::new(exit_with, (code,));
        p.start().map_err(|e| e.to_string())?;
        p.join().map_err(|e| e.to_string())?;
        p.exitcode().ok_or_else(|| "no exit code".to_string())
    }
}

managers::manager! {
    struct LauncherManager {
        Launcher: Launcher,
    }
}

// "Everything here works ... from a manager's server process."
fn a_server_process_starts_processes() {
    let manager = LauncherManager::new();
    manager.start().unwrap();
    let launcher = manager.launcher().unwrap();
    assert_eq!(launcher.run_child(5).unwrap(), Ok(5));
}
