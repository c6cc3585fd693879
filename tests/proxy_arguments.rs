//! Proxies as arguments of user methods (issue 12): the server adopts the
//! reference, the object stays alive while the receiving object holds the
//! proxy, and is released when that object drops it; on the same server
//! or another one, blocking or async, bare or in an `Option`/`Vec`.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use managers::sync::server::ManagedQueue;
use managers::sync::{ListProxy, QueueAsyncProxy, QueueProxy};
use managers::{manager, shared, BaseManager};

use common::sync::{started_in_thread, started_sync_manager};

/// A counter, to be held by proxy.
#[derive(Default)]
pub struct Counter {
    value: AtomicI64,
}

#[shared]
impl Counter {
    /// Add `n`, return the new value.
    pub fn add(&self, n: i64) -> i64 {
        self.value.fetch_add(n, Ordering::SeqCst) + n
    }
}

/// Holds proxies it was handed, and calls through them from the server.
#[derive(Default)]
pub struct Holder {
    queue: Option<QueueProxy<String>>,
    lists: Vec<ListProxy<i64>>,
    counter: Option<CounterProxy>,
}

#[shared]
impl Holder {
    /// Keep `queue`.
    pub fn attach(&mut self, queue: QueueProxy<String>) {
        self.queue = Some(queue);
    }

    /// Keep `queue` or forget the one held.
    pub fn replace(&mut self, queue: Option<QueueProxy<String>>) -> bool {
        std::mem::replace(&mut self.queue, queue).is_some()
    }

    /// Put `item` on the held queue, from the server.
    pub fn push(&self, item: String) -> Result<(), String> {
        let queue = self.queue.as_ref().ok_or("no queue")?;
        queue.put(item).map_err(|e| e.to_string())
    }

    /// Keep `lists`.
    pub fn attach_lists(&mut self, lists: Vec<ListProxy<i64>>) {
        self.lists = lists;
    }

    /// The sum of every held list, read from the server.
    pub fn total(&self) -> Result<i64, String> {
        let mut total = 0;
        for list in &self.lists {
            total += list
                .to_vec()
                .map_err(|e| e.to_string())?
                .iter()
                .sum::<i64>();
        }
        Ok(total)
    }

    /// Keep a proxy of a user type.
    pub fn attach_counter(&mut self, counter: CounterProxy) {
        self.counter = Some(counter);
    }

    /// Bump the held counter, from the server.
    pub fn bump(&self) -> Result<i64, String> {
        let counter = self.counter.as_ref().ok_or("no counter")?;
        counter.add(1).map_err(|e| e.to_string())
    }

    /// An async method using an async proxy it was given (not kept).
    pub async fn relay(&self, queue: QueueAsyncProxy<String>, item: String) -> Result<(), String> {
        queue.put(item).await.map_err(|e| e.to_string())
    }
}

manager! {
    pub struct HolderManager {
        Holder: Holder,
        Counter: Counter,
        Queue: ManagedQueue = |maxsize: usize| ManagedQueue::new(maxsize),
    }
}

/// Wait (bounded) until `manager` holds `count` objects: releases made by a
/// served object reach its server as messages, shortly after.
fn settles_at(manager: &BaseManager, count: usize) {
    let start = Instant::now();
    loop {
        let now = manager.number_of_objects().unwrap();
        if now == count {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{now} objects, expected {count}: {:?}",
            manager.debug_info()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn queue_of(manager: &HolderManager) -> QueueProxy<String> {
    manager.queue(0).unwrap().retype()
}

#[test]
fn a_proxy_on_the_same_server_is_kept_alive_by_its_holder() {
    let manager = started_in_thread(HolderManager::new());
    let holder = manager.holder().unwrap();
    let queue = queue_of(&manager);
    let reader = queue.clone();
    holder.attach(queue).unwrap();
    assert_eq!(manager.number_of_objects().unwrap(), 2);
    holder.push("from the server".into()).unwrap().unwrap();
    assert_eq!(reader.get().unwrap(), "from the server");
    drop(reader);
    // Only the holder keeps the queue now.
    holder.push("still there".into()).unwrap().unwrap();
    settles_at(&manager, 2);
    assert!(holder.replace(None).unwrap(), "it held one");
    settles_at(&manager, 1);
    assert_eq!(
        holder.push("x".into()).unwrap().unwrap_err(),
        "no queue",
        "the queue went with it"
    );
    drop(holder);
    settles_at(&manager, 0);
}

#[test]
fn dropping_the_holder_releases_what_it_held() {
    let manager = started_in_thread(HolderManager::new());
    let holder = manager.holder().unwrap();
    assert!(!holder.replace(Some(queue_of(&manager))).unwrap());
    let counter = manager.counter().unwrap();
    holder.attach_counter(counter.clone()).unwrap();
    assert_eq!(holder.bump().unwrap().unwrap(), 1);
    assert_eq!(counter.add(0).unwrap(), 1, "the same counter");
    drop(counter);
    assert_eq!(holder.bump().unwrap().unwrap(), 2);
    settles_at(&manager, 3);
    drop(holder);
    settles_at(&manager, 0);
}

#[test]
fn proxies_of_another_manager_are_held_across_managers() {
    let holders = started_in_thread(HolderManager::new());
    let other = started_sync_manager();
    let lists: Vec<ListProxy<i64>> = (1..=3)
        .map(|n| other.list_from([n, n * 10]).unwrap())
        .collect();
    let holder = holders.holder().unwrap();
    holder.attach_lists(lists.clone()).unwrap();
    assert_eq!(holder.total().unwrap().unwrap(), 66);
    drop(lists);
    // The holder's references keep the lists on the other server.
    assert_eq!(other.number_of_objects().unwrap(), 3);
    assert_eq!(holder.total().unwrap().unwrap(), 66);
    holder.attach_lists(Vec::new()).unwrap();
    settles_at(&other, 0);
    let queue = other.queue::<String>(0).unwrap();
    holder.attach(queue.clone()).unwrap();
    holder.push("across".into()).unwrap().unwrap();
    assert_eq!(queue.get().unwrap(), "across");
    drop(queue);
    settles_at(&other, 1);
    drop(holder);
    settles_at(&other, 0);
    settles_at(&holders, 0);
}

#[test]
fn an_async_method_calls_through_an_async_proxy_argument() {
    let manager = started_in_thread(HolderManager::new());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let holder = manager.holder_async().await.unwrap();
        let queue: QueueAsyncProxy<String> = queue_of(&manager).to_async();
        holder
            .relay(queue.clone(), "relayed".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(queue.get().await.unwrap(), "relayed");
    });
    drop(runtime);
    settles_at(&manager, 0);
}

#[test]
fn objects_calling_their_own_server_from_every_worker_do_not_deadlock() {
    // More concurrent self-calls than the server has workers: each blocks
    // its worker until its own server answers.
    let manager = started_in_thread(HolderManager::new());
    let holder = manager.holder().unwrap();
    holder.attach_counter(manager.counter().unwrap()).unwrap();
    let (finished, done) = std::sync::mpsc::channel();
    for _ in 0..8 {
        let (holder, finished) = (holder.clone(), finished.clone());
        std::thread::spawn(move || {
            let bumped = (0..25).all(|_| matches!(holder.bump(), Ok(Ok(_))));
            let _ = finished.send(bumped);
        });
    }
    // A deadlock fails the test rather than hanging it.
    for _ in 0..8 {
        let bumped = done
            .recv_timeout(Duration::from_secs(30))
            .expect("the server deadlocked on its own calls");
        assert!(bumped);
    }
    assert_eq!(holder.bump().unwrap().unwrap(), 201);
}
