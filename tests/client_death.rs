//! A client process that dies holding proxies leaks nothing: the server
//! releases every reference of its session (CPython leaks them).

#[path = "common/worker.rs"]
#[allow(dead_code)]
mod worker;

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use managers::sync::{SyncManager, ValueProxy};
use managers::{ManagerOptions, Proxy};
use worker::{spawn_worker, tokens_arg, tokens_from_arg, worker_context};

const READY: &str = "WORKER READY";

/// Kills the child however the test ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait (bounded) for the worker to print its ready line.
fn await_ready(child: &mut Child) {
    let stdout = child.stdout.take().expect("worker stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains(READY) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the worker never said it was ready");
}

/// Poll (bounded) until the server holds `expected` objects.
fn await_objects(manager: &SyncManager, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = manager.number_of_objects().unwrap();
        if now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server still holds {now} objects, expected {expected}: {:?}",
            manager.debug_info()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

// Issue 3: "A test that kills a client process holding proxies and shows
// the server's object count returns to where it was."
#[test]
fn a_killed_client_releases_its_objects() {
    let manager = SyncManager::new();
    manager.start_in_thread().unwrap();
    // An object of this process, which the worker holds too: it must
    // survive the worker.
    let mine = manager.value(&0_i64).unwrap();
    let before = manager.number_of_objects().unwrap();
    assert_eq!(before, 1);
    for round in 1..=5 {
        let mut child = Killed(spawn_worker(
            "worker_holds_objects_until_killed",
            &manager.address().unwrap(),
            managers::default_authkey(),
            &tokens_arg(&[mine.token()]),
        ));
        await_ready(&mut child.0);
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
    assert_eq!(manager.number_of_objects().unwrap(), 0);
}

#[test]
#[ignore = "worker process of a_killed_client_releases_its_objects"]
fn worker_holds_objects_until_killed() {
    let ctx = worker_context();
    let manager = SyncManager::with_options(
        ManagerOptions::new()
            .address(ctx.address.clone())
            .authkey(&ctx.authkey),
    );
    manager.connect().unwrap();
    let token = tokens_from_arg(&ctx.address, &ctx.argument).remove(0);
    let theirs: ValueProxy<i64> = manager.proxy_from_token(&token).unwrap();
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
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
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
