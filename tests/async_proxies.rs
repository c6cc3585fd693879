//! Typed async proxies of every built-in (issue 12): the same methods as
//! the blocking ones, iteration as a `Stream`, lock guards that release on
//! drop, async create methods; and containers built in one call.

mod common;

use std::future::poll_fn;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_core::Stream;
use managers::sync::{IterAsyncProxy, SyncManager};
use managers::{Error, Proxy, SyncError};

use common::sync::started_sync_manager;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Every item of a stream, through the `Stream` trait itself.
async fn collect<T: serde::de::DeserializeOwned + Send + 'static>(
    mut stream: IterAsyncProxy<T>,
) -> Vec<managers::Result<T>> {
    let mut items = Vec::new();
    while let Some(item) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
        items.push(item);
    }
    items
}

/// Wait (bounded) until `check` holds.
async fn eventually(mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < Duration::from_secs(5), "never happened");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn objects(manager: &SyncManager) -> usize {
    manager.number_of_objects().unwrap()
}

#[test]
fn dict_list_and_set_have_every_method_async() {
    let manager = started_sync_manager();
    runtime().block_on(async {
        let d = manager.dict_async::<String, i64>().await.unwrap();
        d.set("a".into(), 1).await.unwrap();
        d.update([("b".to_string(), 2), ("c".to_string(), 3)])
            .await
            .unwrap();
        assert_eq!(d.get("b").await.unwrap(), 2);
        assert_eq!(d.get_or("z", 9).await.unwrap(), 9);
        assert!(matches!(
            d.get("z").await,
            Err(Error::Sync(SyncError::KeyError(_)))
        ));
        assert_eq!(d.pop("a").await.unwrap(), 1);
        assert_eq!(d.keys().await.unwrap(), ["b", "c"]);
        let copy = manager.dict_from_async(&d).await.unwrap();
        assert_eq!(copy.items().await.unwrap(), d.items().await.unwrap());
        let keys: Vec<String> = collect(d.iter().await.unwrap())
            .await
            .into_iter()
            .collect::<managers::Result<_>>()
            .unwrap();
        assert_eq!(keys, ["b", "c"]);
        // The blocking proxy of the same dict sees the same entries.
        assert_eq!(d.to_blocking().len().unwrap(), 2);

        let list = manager.list_from_async([3, 1, 2]).await.unwrap();
        list.append(0).await.unwrap();
        list.sort(false).await.unwrap();
        assert_eq!(list.to_vec().await.unwrap(), [0, 1, 2, 3]);
        assert_eq!(list.slice(1..3).await.unwrap(), [1, 2]);
        assert_eq!(list.get(-1).await.unwrap(), 3);
        list.extend(&list).await.unwrap();
        assert_eq!(list.len().await.unwrap(), 8);
        let mut items = list.iter().await.unwrap();
        assert_eq!(items.next().await.unwrap().unwrap(), 0);
        assert_eq!(items.next().await.unwrap().unwrap(), 1);

        let set = manager.set_from_async(&list).await.unwrap();
        assert_eq!(set.len().await.unwrap(), 4);
        assert_eq!(set.intersection([2, 3, 9]).await.unwrap(), [2, 3]);
        assert!(set.issubset(&list).await.unwrap());
        set.difference_update([0]).await.unwrap();
        assert_eq!(collect(set.iter().await.unwrap()).await.len(), 3);
    });
    assert_eq!(objects(&manager), 0);
}

#[test]
fn a_stream_stops_after_an_error() {
    let manager = started_sync_manager();
    runtime().block_on(async {
        let d = manager.dict_from_async([(1, 1), (2, 2)]).await.unwrap();
        let mut keys = d.iter().await.unwrap();
        assert_eq!(keys.next().await.unwrap().unwrap(), 1);
        d.set(3, 3).await.unwrap();
        assert!(matches!(
            keys.next().await,
            Some(Err(Error::Sync(SyncError::RuntimeError(_))))
        ));
        assert!(keys.next().await.is_none());
    });
}

#[test]
fn queues_and_joinable_queues_async() {
    let manager = started_sync_manager();
    runtime().block_on(async {
        let queue = manager.queue_async::<String>(1).await.unwrap();
        queue.put("a".into()).await.unwrap();
        assert!(queue.full().await.unwrap());
        assert!(matches!(
            queue
                .put_timeout("b".into(), Duration::from_millis(20))
                .await,
            Err(Error::Sync(SyncError::Full))
        ));
        assert_eq!(queue.get().await.unwrap(), "a");
        assert!(matches!(
            queue.get_nowait().await,
            Err(Error::Sync(SyncError::Empty))
        ));
        // A getter waiting as a future meets a later put.
        let getter = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.get().await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        queue.to_blocking().put("late".into()).unwrap();
        assert_eq!(getter.await.unwrap().unwrap(), "late");

        let jobs = manager.joinable_queue_async::<u32>(0).await.unwrap();
        for job in 0..3 {
            jobs.put(job).await.unwrap();
        }
        let worker = {
            let jobs = jobs.clone();
            tokio::spawn(async move {
                let mut sum = 0;
                for _ in 0..3 {
                    sum += jobs.get().await?;
                    jobs.task_done().await?;
                }
                managers::Result::<u32>::Ok(sum)
            })
        };
        jobs.join().await.unwrap();
        assert_eq!(worker.await.unwrap().unwrap(), 3);
        assert!(matches!(
            jobs.task_done().await,
            Err(Error::Sync(SyncError::RuntimeError(_)))
        ));
    });
    assert_eq!(objects(&manager), 0);
}

#[test]
fn an_async_guard_releases_on_drop_and_on_release() {
    let manager = started_sync_manager();
    let rt = runtime();
    rt.block_on(async {
        let lock = manager.lock_async().await.unwrap();
        let held = lock.guard().await.unwrap();
        assert!(lock.locked().await.unwrap());
        assert!(!lock.try_acquire().await.unwrap());
        drop(held);
        eventually(async || !lock.locked().await.unwrap()).await;

        let held = lock.guard().await.unwrap();
        held.release().await.unwrap();
        assert!(!lock.locked().await.unwrap(), "released in place");

        // A guard held across an await in a spawned task (it is Send).
        let task = {
            let lock = lock.clone();
            tokio::spawn(async move {
                let _held = lock.guard().await?;
                tokio::time::sleep(Duration::from_millis(5)).await;
                lock.locked().await
            })
        };
        assert!(task.await.unwrap().unwrap());
        eventually(async || !lock.locked().await.unwrap()).await;
    });
    // Dropped outside any runtime: it releases on a runtime of its own.
    let lock = rt.block_on(manager.lock_async()).unwrap();
    let held = rt.block_on(lock.guard()).unwrap();
    drop(held);
    assert!(!lock.to_blocking().locked().unwrap());
    drop(lock);
    drop(rt);
    assert_eq!(objects(&manager), 0);
}

#[test]
fn an_async_rlock_belongs_to_its_task() {
    let manager = started_sync_manager();
    runtime().block_on(async {
        let rlock = manager.rlock_async().await.unwrap();
        assert!(rlock.acquire().await.unwrap());
        assert!(rlock.acquire().await.unwrap(), "re-entrant in one task");
        assert!(rlock.is_owned().await.unwrap());
        let other = {
            let rlock = rlock.clone();
            tokio::spawn(async move { (rlock.try_acquire().await, rlock.is_owned().await) })
        };
        let (acquired, owned) = other.await.unwrap();
        assert!(!acquired.unwrap(), "another task does not own it");
        assert!(!owned.unwrap());
        rlock.release().await.unwrap();
        rlock.release().await.unwrap();
        assert!(matches!(
            rlock.release().await,
            Err(Error::Sync(SyncError::RuntimeError(_)))
        ));
        // A guard releases as the task that acquired, wherever it drops.
        let held = rlock.guard().await.unwrap();
        tokio::spawn(async move { held.release().await })
            .await
            .unwrap()
            .unwrap();
        assert!(rlock.try_acquire().await.unwrap(), "free again");
        rlock.release().await.unwrap();
    });
}

#[test]
fn semaphores_and_conditions_async() {
    let manager = started_sync_manager();
    runtime().block_on(async {
        let semaphore = manager.semaphore_async(2).await.unwrap();
        assert!(semaphore.acquire().await.unwrap());
        assert!(semaphore.acquire().await.unwrap());
        assert!(!semaphore
            .acquire_timeout(Duration::from_millis(10))
            .await
            .unwrap());
        semaphore.release().await.unwrap();
        let bounded = manager.bounded_semaphore_async(1).await.unwrap();
        assert!(matches!(
            bounded.release().await,
            Err(Error::Sync(SyncError::ValueError(_)))
        ));

        let condition = manager.condition_async().await.unwrap();
        let flag = manager.value(&false).unwrap().to_async();
        let waiter = {
            let (condition, flag) = (condition.clone(), flag.clone());
            tokio::spawn(async move {
                let _held = condition.guard().await?;
                let deadline = Instant::now() + Duration::from_secs(5);
                while !flag.get().await? {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() || !condition.wait_timeout(left).await? {
                        return managers::Result::<bool>::Ok(false);
                    }
                }
                Ok(true)
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        {
            let _held = condition.guard().await.unwrap();
            flag.set(&true).await.unwrap();
            condition.notify_all().await.unwrap();
        }
        assert!(waiter.await.unwrap().unwrap());
        let lock = manager.lock_async().await.unwrap();
        let on_lock = manager.condition_with_async(&lock).await.unwrap();
        let _held = on_lock.guard().await.unwrap();
        assert!(lock.locked().await.unwrap(), "the condition holds its lock");
    });
}

#[test]
fn a_failed_constructor_leaves_no_object_and_a_typed_error() {
    let manager = started_sync_manager();
    let dead = {
        let list = manager.list::<i64>().unwrap();
        list.token().clone()
    };
    let before = manager.list::<i64>().unwrap();
    let values = [
        managers::value::Value::from(1),
        managers::value::Value::from(dead),
    ];
    match manager.list_from(values.clone()) {
        Err(Error::Sync(SyncError::ValueError(message))) => {
            assert!(message.contains("cannot store a proxy"), "{message}")
        }
        other => panic!("expected a ValueError, got {other:?}"),
    }
    match manager.set_from(values.clone()) {
        Err(Error::Sync(SyncError::ValueError(_))) => {}
        other => panic!("expected a ValueError, got {other:?}"),
    }
    match manager.dict_from([(values[0].clone(), values[1].clone())]) {
        Err(Error::Sync(SyncError::ValueError(_))) => {}
        other => panic!("expected a ValueError, got {other:?}"),
    }
    let after = manager.list::<i64>().unwrap();
    // Ids are never reused: none was taken by the failed creations.
    assert_eq!(after.token().id, before.token().id + 1);

    // A condition on a lock of another manager is refused when it is made.
    let other = started_sync_manager();
    let foreign = other.lock().unwrap();
    assert!(matches!(
        manager.condition_with(&foreign),
        Err(Error::Sync(SyncError::TypeError(_)))
    ));
    let last = manager.list::<i64>().unwrap();
    assert_eq!(last.token().id, after.token().id + 1);
    drop((before, after, last));
    assert_eq!(objects(&manager), 0);
}

#[test]
fn containers_are_built_from_other_containers_in_the_server() {
    let manager = started_sync_manager();
    let source = manager
        .dict_from([("a".to_string(), 1), ("b".to_string(), 2)])
        .unwrap();
    let copy = manager.dict_from(&source).unwrap();
    source.set("c".into(), 3).unwrap();
    assert_eq!(copy.keys().unwrap(), ["a", "b"], "a copy, not a view");
    let list = manager
        .list_from(["x", "y", "x"].map(String::from))
        .unwrap();
    let set = manager.set_from(&list).unwrap();
    assert_eq!(set.to_vec().unwrap(), ["x", "y"]);
    let back = manager.list_from(&set).unwrap();
    list.append("z".into()).unwrap();
    assert_eq!(back.to_vec().unwrap(), ["x", "y"]);
}

#[test]
fn every_create_method_has_an_async_form() {
    let manager = started_sync_manager();
    runtime().block_on(async {
        let event = manager.event_async().await.unwrap();
        event.set().await.unwrap();
        assert!(event.wait(Some(Duration::ZERO)).await.unwrap());
        let barrier = manager.barrier_async(1).await.unwrap();
        assert_eq!(barrier.wait(None).await.unwrap(), 0);
        assert!(matches!(
            manager.barrier_async(0).await,
            Err(Error::Sync(SyncError::ValueError(_)))
        ));
        let timed = manager
            .barrier_with_timeout_async(2, Duration::from_millis(10))
            .await
            .unwrap();
        assert!(matches!(
            timed.wait(None).await,
            Err(Error::Sync(SyncError::BrokenBarrier))
        ));
        let ns = manager.namespace_async().await.unwrap();
        ns.set("name", "Ann").await.unwrap();
        assert_eq!(ns.get::<String>("name").await.unwrap(), "Ann");
        let value = manager.value_async(&5_i32).await.unwrap();
        assert_eq!(value.get().await.unwrap(), 5);
        let array = manager.array_async(&[1.5_f64, 2.5]).await.unwrap();
        assert_eq!(array.to_vec().await.unwrap(), [1.5, 2.5]);
        let lock = manager.lock_async().await.unwrap();
        let condition = manager.condition_with_async(&lock).await.unwrap();
        assert!(!condition.is_owned().await.unwrap());
    });
    assert_eq!(objects(&manager), 0);
}

#[test]
fn serve_forever_called_from_async_code_serves() {
    let manager = SyncManager::new();
    let server = manager.get_server().unwrap();
    let (address, stopper) = (server.address().clone(), server.stopper());
    let client = std::thread::spawn(move || {
        let guest = SyncManager::with_options(managers::ManagerOptions::new().address(address));
        guest.connect().unwrap();
        let event = guest.event().unwrap();
        event.set().unwrap();
        let set = event.is_set().unwrap();
        drop((event, guest));
        stopper.stop();
        set
    });
    // As `bootstrap()` does on the first line of a `#[tokio::main]`.
    let served = runtime().block_on(async move { server.serve_forever() });
    served.unwrap();
    assert!(client.join().unwrap());
}
