//! Reliability under load (issue 5, "Load"): 1,000 concurrent client
//! sessions, each on its own connection, doing 100 calls each on one shared
//! dict, against a `SyncManager` server in its own process (so its memory
//! can be measured alone). Loopback TCP; every wait is bounded and the
//! server process is killed however the test ends.

#[path = "common/worker.rs"]
#[allow(dead_code)]
mod worker;

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Barrier};
use std::time::{Duration, Instant};

use managers::sync::DictAsyncProxy;
use managers::sync::{DictProxy, SyncManager};
use managers::value::to_value;
use managers::{Address, ManagerOptions};
use worker::{spawn_worker, worker_context};

const SESSIONS: usize = 1_000;
const THREADS: usize = 50;
const CALLS: usize = 100;
const KEY: &[u8] = b"load test key";

/// Kills the server process however the test ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[repr(C)]
struct Rlimit {
    current: u64,
    max: u64,
}

extern "C" {
    fn getrlimit(resource: i32, limit: *mut Rlimit) -> i32;
    fn setrlimit(resource: i32, limit: *const Rlimit) -> i32;
}

const RLIMIT_NOFILE: i32 = 7;

/// Raise the soft open-file limit to the hard one (inherited by the server
/// process started afterwards); returns the limit now in force.
fn raise_open_file_limit() -> u64 {
    let mut limit = Rlimit { current: 0, max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a struct of the
    // kernel's layout (two 64-bit values on Linux).
    unsafe {
        assert_eq!(getrlimit(RLIMIT_NOFILE, &mut limit), 0);
        if limit.current < limit.max {
            let raised = Rlimit {
                current: limit.max,
                max: limit.max,
            };
            if setrlimit(RLIMIT_NOFILE, &raised) == 0 {
                limit.current = limit.max;
            }
        }
    }
    limit.current
}

/// `VmHWM` (peak) and `VmRSS` of process `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Start the server process and return it with its address.
fn start_server() -> (Killed, Address) {
    let bind: Address = "127.0.0.1:0".parse().unwrap();
    let mut child = Killed(spawn_worker("load_server_process", &bind, KEY, ""));
    let stdout = child.0.stdout.take().expect("server stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some((_, address)) = line.split_once("LISTENING ") {
                let _ = tx.send(address.to_string());
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server process never listened");
    (child, address.parse().unwrap())
}

fn connect(address: &Address) -> SyncManager {
    let manager =
        SyncManager::with_options(ManagerOptions::new().address(address.clone()).authkey(KEY));
    manager.connect().expect("a session connects");
    manager
}

/// Load: "1,000 concurrent connections doing 100 calls each on one dict:
/// all succeed, and the final dict holds exactly the expected entries (no
/// lost update); server memory stays bounded (record the peak)." 50 threads
/// each open 20 sessions (one connection each); once all 1,000 are open,
/// each session writes 100 keys of its own, interleaved with every other
/// session's. The dict then holds exactly the 100,000 entries written.
#[test]
fn thousand_connections_hundred_calls_each_on_one_dict() {
    let limit = raise_open_file_limit();
    assert!(
        limit >= (SESSIONS + 200) as u64,
        "the open-file limit ({limit}) is too low for {SESSIONS} connections"
    );
    let (server, address) = start_server();
    let pid = server.0.id();
    let owner = connect(&address);
    let dict = owner.dict::<String, i64>().unwrap();
    let token = managers::Proxy::token(&dict).clone();
    let (idle_peak, idle_rss) = memory_kib(pid);

    let ready = Barrier::new(THREADS + 1);
    let calls = AtomicUsize::new(0);
    let begun = Instant::now();
    let (connected, peak_connections) = std::thread::scope(|s| {
        for t in 0..THREADS {
            let (address, token, ready, calls) = (&address, &token, &ready, &calls);
            s.spawn(move || {
                let sessions: Vec<(SyncManager, DictProxy<String, i64>)> = (0..SESSIONS / THREADS)
                    .map(|_| {
                        let manager = connect(address);
                        let dict = manager.proxy_from_token(token).expect("the shared dict");
                        (manager, dict)
                    })
                    .collect();
                ready.wait();
                for i in 0..CALLS {
                    for (n, (_, dict)) in sessions.iter().enumerate() {
                        let session = t * (SESSIONS / THREADS) + n;
                        dict.set(format!("{session}/{i}"), (session * CALLS + i) as i64)
                            .expect("every call succeeds");
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Hold the connections until every thread is done.
                ready.wait();
                drop(sessions);
            });
        }
        ready.wait();
        let connected = begun.elapsed();
        // All 1,000 sessions are connected: sample the server meanwhile.
        let mut peak_connections = 0;
        while calls.load(Ordering::Relaxed) < SESSIONS * CALLS
            && begun.elapsed() < Duration::from_secs(120)
        {
            peak_connections = peak_connections.max(open_files(pid));
            std::thread::sleep(Duration::from_millis(50));
        }
        peak_connections = peak_connections.max(open_files(pid));
        ready.wait();
        (connected, peak_connections)
    });
    let elapsed = begun.elapsed();
    let (peak, rss) = memory_kib(pid);
    let total = calls.into_inner();
    assert_eq!(total, SESSIONS * CALLS);

    // No lost update: exactly the entries written, each with its value.
    assert_eq!(dict.len().unwrap(), SESSIONS * CALLS);
    let mut entries = dict.items().unwrap();
    entries.sort();
    let mut expected: Vec<(String, i64)> = (0..SESSIONS)
        .flat_map(|s| (0..CALLS).map(move |i| (format!("{s}/{i}"), (s * CALLS + i) as i64)))
        .collect();
    expected.sort();
    assert!(entries == expected, "the dict lost or changed entries");

    println!(
        "{SESSIONS} sessions connected in {connected:.1?}; {total} calls in {elapsed:.1?} \
         ({:.0} calls/s); server open files at peak {peak_connections}; \
         server memory: idle {idle_rss} KiB (peak {idle_peak} KiB), after the load \
         {rss} KiB, peak {peak} KiB",
        total as f64 / elapsed.as_secs_f64()
    );
    assert!(
        peak_connections > SESSIONS,
        "the 1,000 connections were open at once ({peak_connections} files)"
    );
    // Bounded: 100,000 small entries and 1,000 connections fit in far less.
    assert!(peak < 512 * 1024, "server peak memory {peak} KiB");
    assert!(elapsed < Duration::from_secs(120), "{elapsed:?}");

    // Every session's references were released.
    assert_eq!(owner.number_of_objects().unwrap(), 1);
    drop(dict);
    assert_eq!(owner.number_of_objects().unwrap(), 0);
    drop(server);
}

/// The same load through async proxies on one tokio runtime: 1,000
/// sessions, each with its multiplexed async connection (beside the
/// blocking one every session opens), each sending its 100 calls as 10
/// waves of 10 concurrent requests, so replies come back out of order on
/// every connection. The dict then holds exactly the 100,000 entries.
#[test]
fn thousand_async_sessions_hundred_calls_each_on_one_dict() {
    let limit = raise_open_file_limit();
    assert!(
        limit >= (2 * SESSIONS + 200) as u64,
        "the open-file limit ({limit}) is too low for {} connections",
        2 * SESSIONS
    );
    let (server, address) = start_server();
    let pid = server.0.id();
    let owner = connect(&address);
    let dict = owner.dict::<String, i64>().unwrap();
    let token = managers::Proxy::token(&dict).clone();
    let begun = Instant::now();
    // Sessions are opened (blocking) from a few threads, then driven from
    // one runtime.
    let sessions: Vec<(SyncManager, DictAsyncProxy)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (address, token) = (&address, &token);
                s.spawn(move || {
                    (0..SESSIONS / THREADS)
                        .map(|_| {
                            let manager = connect(address);
                            let dict: DictProxy<String, i64> =
                                manager.proxy_from_token(token).expect("the shared dict");
                            let dict = dict.to_async().retype();
                            (manager, dict)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let connected = begun.elapsed();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let calls = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for (session, (_, dict)) in sessions.iter().enumerate() {
            let dict = dict.clone();
            tasks.spawn(async move {
                let mut done = 0usize;
                for wave in 0..CALLS / 10 {
                    let mut wave_calls = tokio::task::JoinSet::new();
                    for j in 0..10 {
                        let i = wave * 10 + j;
                        let dict = dict.clone();
                        wave_calls.spawn(async move {
                            let key = to_value(&format!("{session}/{i}")).unwrap();
                            let value = to_value(&((session * CALLS + i) as i64)).unwrap();
                            dict.set(key, value).await
                        });
                    }
                    while let Some(result) = wave_calls.join_next().await {
                        result.unwrap().expect("every call succeeds");
                        done += 1;
                    }
                }
                done
            });
        }
        let mut calls = 0;
        while let Some(done) = tokio::time::timeout(Duration::from_secs(120), tasks.join_next())
            .await
            .expect("the load finishes in time")
        {
            calls += done.unwrap();
        }
        calls
    });
    let elapsed = begun.elapsed();
    let files = open_files(pid);
    let (peak, rss) = memory_kib(pid);
    assert_eq!(calls, SESSIONS * CALLS);
    assert_eq!(dict.len().unwrap(), SESSIONS * CALLS);
    let mut entries = dict.items().unwrap();
    entries.sort();
    let mut expected: Vec<(String, i64)> = (0..SESSIONS)
        .flat_map(|s| (0..CALLS).map(move |i| (format!("{s}/{i}"), (s * CALLS + i) as i64)))
        .collect();
    expected.sort();
    assert!(entries == expected, "the dict lost or changed entries");
    println!(
        "{SESSIONS} async sessions connected in {connected:.1?}; {calls} calls in {elapsed:.1?} \
         ({:.0} calls/s); server open files {files}; server memory after the load {rss} KiB, \
         peak {peak} KiB",
        calls as f64 / elapsed.as_secs_f64()
    );
    assert!(
        files > 2 * SESSIONS,
        "both connections of every session open ({files} files)"
    );
    assert!(peak < 512 * 1024, "server peak memory {peak} KiB");
    drop(sessions);
    drop(runtime);
    assert_eq!(owner.number_of_objects().unwrap(), 1);
    drop(dict);
    assert_eq!(owner.number_of_objects().unwrap(), 0);
    drop(server);
}

#[test]
#[ignore = "server process of thousand_connections_hundred_calls_each_on_one_dict"]
fn load_server_process() {
    let ctx = worker_context();
    let manager = SyncManager::with_options(
        ManagerOptions::new()
            .address(ctx.address)
            .authkey(&ctx.authkey),
    );
    let server = manager.get_server().unwrap();
    println!("LISTENING {}", server.address());
    server.serve_forever().unwrap();
}
