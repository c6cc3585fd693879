//! Issue 19: blocking calls to a server on this host go through a
//! shared-memory ring, and no fault on that path hangs or leaks: a client
//! killed mid-call loses its references and nothing else, a killed
//! server fails a blocked call at once, a thousand sessions come and go
//! without a mapping or a descriptor left behind, past 512 rings a
//! connection keeps its socket. (A peer scribbling on
//! the ring: `reliability_input.rs`.)

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::sync::{
    current_thread_runtime, settled_object_count, spawn_with_tokens, started_sync_manager,
};
use common::worker::{await_line, spawn_worker, worker_context, Killed};
use managers::sync::{QueueProxy, SyncManager};
use managers::{Address, BaseManager, Error, ManagerOptions, Proxy};

const READY: &str = "WORKER READY";

/// The tests count this process's mappings and descriptors: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Mappings of a ring's memfd in process `pid` ("self" for this one).
fn ring_mappings(pid: &str) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .expect("read maps")
        .lines()
        .filter(|line| line.contains("memfd:managers-ring"))
        .count()
}

fn mappings(pid: &str) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .expect("read maps")
        .lines()
        .count()
}

fn descriptors(pid: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read fds")
        .count()
}

/// Poll (bounded by `within`) until `probe` gives `want`; what it gave last.
fn settles(within: Duration, want: usize, probe: impl Fn() -> usize) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let now = probe();
        if now == want || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn session_of(server: &BaseManager, shared_memory: bool) -> SyncManager {
    let session = SyncManager::with_options(
        ManagerOptions::new()
            .address(server.address().unwrap())
            .authkey(managers::default_authkey())
            .shared_memory(shared_memory),
    );
    session.connect().unwrap();
    session
}

#[test]
fn blocking_calls_on_this_host_go_through_a_ring_unless_turned_off() {
    let _serial = serial();
    let manager = started_sync_manager();
    let before = ring_mappings("self");

    let off = session_of(&manager, false);
    let dict = off.dict::<i64, i64>().unwrap();
    dict.set(1, 2).unwrap();
    assert_eq!(dict.get(&1).unwrap(), 2);
    // The server is in this process: neither side mapped a ring.
    assert_eq!(
        ring_mappings("self"),
        before,
        "shared_memory(false) asked for no ring"
    );
    drop((dict, off));

    let on = session_of(&manager, true);
    let dict = on.dict::<i64, i64>().unwrap();
    for i in 0..1000 {
        dict.set(i, i * i).unwrap();
    }
    assert_eq!(dict.get(&999).unwrap(), 999 * 999);
    // Client and server each map the one connection's ring.
    assert_eq!(
        ring_mappings("self"),
        before + 2,
        "the calls went through a ring"
    );
    // A reply larger than the ring (64 KiB each way) crosses it in pieces.
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let value = on.value(&big).unwrap();
    assert_eq!(value.get().unwrap(), big);
    drop((dict, value, on));
    assert_eq!(
        settles(Duration::from_secs(5), before, || ring_mappings("self")),
        before,
        "the session's end unmapped its ring on both sides"
    );

    // A server with it off refuses: the client asks, and calls on the
    // socket.
    let refusing = SyncManager::with_options(ManagerOptions::new().shared_memory(false));
    refusing.start_in_thread().unwrap();
    let rings = ring_mappings("self");
    let asking = session_of(&refusing, true);
    let list = asking.list::<i64>().unwrap();
    list.append(5).unwrap();
    assert_eq!(list.to_vec().unwrap(), [5]);
    assert_eq!(ring_mappings("self"), rings, "the server refused the ring");
}

#[test]
fn async_calls_on_this_host_go_through_a_ring_too() {
    let _serial = serial();
    let manager = started_sync_manager();
    let before = ring_mappings("self");
    let session = session_of(&manager, true);
    let runtime = common::sync::current_thread_runtime();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    runtime.block_on(async {
        let dict = session.dict_async::<i64, i64>().await.unwrap();
        // Many calls in flight on the one multiplexed connection.
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..500 {
            let dict = dict.clone();
            calls.spawn(async move { dict.set(i, 2 * i).await });
        }
        while let Some(result) = calls.join_next().await {
            result.unwrap().unwrap();
        }
        assert_eq!(dict.len().await.unwrap(), 500);
        assert_eq!(dict.get(&499).await.unwrap(), 998);
        let value = session.value(&big).unwrap().to_async();
        assert_eq!(value.get().await.unwrap(), big);
    });
    // The async connection's ring, both sides (the blocking calls made
    // their own: at least two more).
    assert!(
        ring_mappings("self") >= before + 4,
        "the async calls went through a ring ({} mappings, {before} before)",
        ring_mappings("self")
    );
    // The async connection's tasks live on the runtime: both go.
    drop(session);
    drop(runtime);
    assert_eq!(
        settles(Duration::from_secs(5), before, || ring_mappings("self")),
        before,
        "the session's end unmapped every ring"
    );
}

#[test]
fn a_server_killed_fails_a_blocked_call_at_once() {
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("managers-ring-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let address = Address::Unix(dir.join("server.sock"));
    let mut server = Killed(spawn_worker(
        "server_until_killed",
        &address,
        managers::default_authkey(),
        "",
    ));
    await_line(&mut server.0, READY, Duration::from_secs(60));
    let client = SyncManager::with_options(
        ManagerOptions::new()
            .address(address)
            .authkey(managers::default_authkey()),
    );
    client.connect().unwrap();
    let queue: QueueProxy<i64> = client.queue(0).unwrap();
    queue.put(1).unwrap();
    assert_eq!(queue.get().unwrap(), 1);
    assert_eq!(
        ring_mappings("self"),
        1,
        "the client's connection is a ring"
    );

    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = {
        let queue = queue.clone();
        std::thread::spawn(move || {
            let result = queue.get();
            let _ = tx.send(Instant::now());
            result
        })
    };
    // An async get() waiting too, on the async connection's ring.
    let (async_tx, async_rx) = std::sync::mpsc::channel();
    let async_waiter = {
        let queue = queue.to_async();
        std::thread::spawn(move || {
            let runtime = common::sync::current_thread_runtime();
            let result = runtime.block_on(queue.get());
            let _ = async_tx.send(Instant::now());
            result
        })
    };
    // Long enough for the waiters to stop spinning and sleep.
    std::thread::sleep(Duration::from_millis(300));
    let killed = Instant::now();
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let failed_at = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the blocked get() returned");
    let after = failed_at.saturating_duration_since(killed);
    match waiter.join().unwrap() {
        Err(Error::ServerGone { .. }) => {}
        other => panic!("expected ServerGone, got {other:?}"),
    }
    let async_after = async_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the async get() returned")
        .saturating_duration_since(killed);
    match async_waiter.join().unwrap() {
        Err(Error::ServerGone { .. }) => {}
        other => panic!("expected ServerGone (async), got {other:?}"),
    }
    println!(
        "a blocked get() failed {after:?}, an async one {async_after:?}, after their server died"
    );
    for (what, after) in [("blocking", after), ("async", async_after)] {
        assert!(
            after < Duration::from_millis(100),
            "the {what} call failed {after:?} after the server died (at most 100 ms)"
        );
    }
    drop(queue);
    drop(client);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "worker process of a_server_killed_fails_a_blocked_call_at_once"]
fn server_until_killed() {
    let ctx = worker_context();
    let manager = SyncManager::with_options(
        ManagerOptions::new()
            .address(ctx.address)
            .authkey(&ctx.authkey),
    );
    manager.start_in_thread().unwrap();
    println!("{READY}");
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn a_client_killed_mid_call_loses_its_references_and_nothing_else() {
    let _serial = serial();
    let manager = started_sync_manager();
    let queue: QueueProxy<i64> = manager.queue(0).unwrap();
    let before = manager.number_of_objects().unwrap();
    let rings = ring_mappings("self");
    let mut child = Killed(spawn_with_tokens(
        &manager,
        "client_blocked_until_killed",
        &[queue.token()],
    ));
    await_line(&mut child.0, READY, Duration::from_secs(60));
    // The worker's objects are served, and its get() is waiting.
    assert!(manager.number_of_objects().unwrap() > before);
    std::thread::sleep(Duration::from_millis(200));
    let killed = Instant::now();
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let left = settled_object_count(&manager, before, Duration::from_secs(5));
    let released = killed.elapsed();
    assert_eq!(left, before, "{:?}", manager.debug_info());
    println!("a killed client's references went {released:?} after it died");
    assert!(
        released < Duration::from_millis(100),
        "its references went {released:?} after it died (at most 100 ms)"
    );
    // Its withdrawn get() takes nothing: the item is ours.
    queue.put(7).unwrap();
    assert_eq!(queue.get_timeout(Duration::from_secs(5)).unwrap(), 7);
    assert_eq!(
        settles(Duration::from_secs(5), rings, || ring_mappings("self")),
        rings,
        "the server unmapped the dead client's ring"
    );
}

#[test]
#[ignore = "worker process of a_client_killed_mid_call_loses_its_references_and_nothing_else"]
fn client_blocked_until_killed() {
    let (manager, tokens) = common::sync::worker_session();
    let queue: QueueProxy<i64> = common::sync::rebuild(&manager, &tokens[0]);
    let _mine = (
        manager.dict::<i64, i64>().unwrap(),
        manager.list::<i64>().unwrap(),
    );
    assert_eq!(
        ring_mappings("self"),
        1,
        "the worker's connection is a ring"
    );
    println!("{READY}");
    // Blocks until the parent kills this process.
    let _ = queue.get();
    unreachable!("nothing is ever put for this get()");
}

/// A server gives at most 512 rings at once (`MAX_RINGS` in
/// `server/state.rs`, 132 KiB each), and serves blocking connections'
/// rings on at most 256 threads of their own (`MAX_DEDICATED`): past
/// either, a connection calls on its socket; a ring given back goes to
/// the next connection that asks. Each session here has a blocking
/// connection and an async one.
#[test]
fn past_512_rings_a_connection_calls_on_its_socket() {
    const MAX_RINGS: usize = 512;
    const MAX_DEDICATED: usize = 256;
    let _serial = serial();
    let manager = started_sync_manager();
    let runtime = current_thread_runtime();
    // The server is in this process: a ring is mapped twice here. The
    // manager's own connection has one already (its thread and its ring
    // count).
    let rings = || ring_mappings("self") / 2;
    let before = rings();
    let blocking_and_async = |session: &SyncManager| {
        session.number_of_objects().unwrap();
        let value = runtime.block_on(session.value_async(&7_i64)).unwrap();
        assert_eq!(runtime.block_on(value.get()).unwrap(), 7);
    };
    let mut sessions: Vec<SyncManager> = (0..=MAX_DEDICATED)
        .map(|_| {
            let session = session_of(&manager, true);
            session.number_of_objects().unwrap();
            session
        })
        .collect();
    assert_eq!(
        rings(),
        MAX_DEDICATED,
        "a blocking ring per thread, then sockets"
    );
    for session in &sessions {
        blocking_and_async(session);
    }
    assert_eq!(
        rings(),
        MAX_RINGS,
        "then async rings up to the cap, then sockets"
    );
    drop(sessions.swap_remove(0));
    // An async connection closes on its runtime: run it meanwhile.
    let settled = |want: usize| {
        settles(Duration::from_secs(10), want, || {
            runtime.block_on(async { tokio::time::sleep(Duration::from_millis(1)).await });
            rings()
        })
    };
    assert_eq!(
        settled(MAX_RINGS - 2),
        MAX_RINGS - 2,
        "a session's end gave its two rings back"
    );
    let next = session_of(&manager, true);
    blocking_and_async(&next);
    assert_eq!(
        rings(),
        MAX_RINGS,
        "the rings given back went to the next session"
    );
    drop((next, sessions));
    assert_eq!(settled(before), before, "every ring unmapped");
}

#[test]
fn a_thousand_sessions_leave_no_mapping_and_no_descriptor() {
    let _serial = serial();
    let manager = started_sync_manager();
    let cycle = || {
        let session = session_of(&manager, true);
        let value = session.value(&1_i64).unwrap();
        assert_eq!(value.get().unwrap(), 1);
    };
    // Warm up: the runtime's threads and allocator arenas come once.
    for _ in 0..20 {
        cycle();
    }
    let settle = Duration::from_secs(5);
    let rings = settles(settle, 0, || ring_mappings("self"));
    let fds = descriptors("self");
    let maps = mappings("self");
    for _ in 0..1000 {
        cycle();
    }
    assert_eq!(
        settles(settle, rings, || ring_mappings("self")),
        rings,
        "every ring was unmapped"
    );
    assert_eq!(
        settles(settle, fds, || descriptors("self")),
        fds,
        "every descriptor was closed"
    );
    let now = mappings("self");
    // The server's connection threads come and go; glibc gives threads up
    // to 8 allocator arenas per CPU (two mappings each), made on first use
    // and kept: that much growth is the allocator's. A ring (or anything)
    // per session would be a thousand.
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let arenas = 2 * 8 * cpus + 16;
    assert!(
        now <= maps + arenas,
        "mappings grew from {maps} to {now} over 1000 sessions (at most {arenas} more)"
    );
}
