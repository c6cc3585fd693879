//! Reliability under faults (issue 5, "Faults"): clients killed mid-call,
//! the server killed, the parent of a server killed, panics in methods,
//! and shutdown with calls in flight — against real server processes.
//!
//! The servers are this test binary, re-executed by `start()`, so the file
//! has its own `main` (harness = false) whose first line is
//! `managers::bootstrap()`. Client processes are this binary too: a
//! *worker* runs when the arguments name one (as `common/worker.rs`'s
//! `spawn_worker` asks), and the *parent* mode (environment
//! `FAULT_TEST_MODE=parent`) starts a server and waits to be killed.
//!
//! Run: `cargo test --test reliability_faults [NAME...] [-- --ignored]`.
//! Every child process is killed if a test fails; every wait is bounded.

mod common;
#[path = "common/worker.rs"]
#[allow(dead_code)]
mod worker;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{MathsClass, Tool};
use managers::proxy::Token;
use managers::sync::{LockProxy, QueueProxy, SyncManager};
use managers::{manager, shared, Error, ManagerOptions, Proxy, RemoteError};
use worker::{spawn_worker, worker_context};

const MODE: &str = "FAULT_TEST_MODE";
const READY: &str = "WORKER READY";

// ---------------------------------------------------------------------
// The served types
// ---------------------------------------------------------------------

/// Counts calls as they enter and leave the server, so a test knows when
/// calls are in flight and whether they are still running.
#[derive(Default)]
pub struct Gate {
    entered: AtomicUsize,
    active: Arc<AtomicUsize>,
}

/// One running `hold`; leaves the count however the call ends (finished
/// or dropped).
struct Active(Arc<AtomicUsize>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[shared]
impl Gate {
    /// Count in, then wait `ms` milliseconds (a slow call).
    pub async fn hold(&self, ms: u64) -> u64 {
        self.active.fetch_add(1, Ordering::SeqCst);
        let active = Active(Arc::clone(&self.active));
        self.entered.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        drop(active);
        ms
    }

    /// How many `hold` calls ever began.
    pub fn entered(&self) -> usize {
        self.entered.load(Ordering::SeqCst)
    }

    /// How many `hold` calls are running now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Panics after an await (the async path of panic handling).
    pub async fn panic_later(&self, message: String) -> u64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        panic!("{message}")
    }
}

manager! {
    /// The manager of the fault tests.
    pub struct FaultManager {
        Gate: Gate,
        Tool: Tool,
        Maths: MathsClass,
    }
}

// ---------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------

type Test = (&'static str, fn());

fn main() {
    managers::bootstrap();
    if std::env::var(MODE).as_deref() == Ok("parent") {
        return parent_mode();
    }
    let workers: &[Test] = named![
        worker_holds_calls_until_killed,
        worker_blocks_on_lock,
        worker_blocks_on_get,
    ];
    let tests: &[Test] = named![
        client_killed_mid_call_100_times,
        server_killed_fails_every_call_with_server_gone,
        server_killed_tcp_fails_every_call_with_server_gone,
        killed_parent_server_exits_within_a_second,
        panic_in_a_method_fails_only_that_call,
        shutdown_with_100_calls_in_flight,
        killed_client_calls_are_cancelled,
        killed_client_pending_acquire_does_not_take_the_lock,
        reconnect_racing_a_killed_server_is_server_gone,
        killed_client_pending_get_does_not_swallow_an_item,
    ];
    // Tests that show a runtime bug; they run with `--ignored`. (None open.)
    let ignored: &[(&str, fn(), &str)] = &[];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let run_ignored = args
        .iter()
        .any(|a| a == "--ignored" || a == "--include-ignored");
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    // A worker process: `spawn_worker` names it with `--exact --ignored`.
    if args.iter().any(|a| a == "--exact") {
        if let Some((_, worker)) = workers.iter().find(|(n, _)| filter.iter().any(|f| f == n)) {
            worker();
            return;
        }
    }
    let selected =
        |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut run = |name: &str, test: fn()| {
        let begun = Instant::now();
        match std::panic::catch_unwind(test) {
            Ok(()) => {
                println!("test {name} ... ok ({:.1?})", begun.elapsed());
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    };
    let only_ignored = args.iter().any(|a| a == "--ignored");
    for (name, test) in tests {
        if selected(name) && !only_ignored {
            run(name, *test);
        }
    }
    for (name, test, reason) in ignored {
        if !selected(name) {
            continue;
        }
        if run_ignored {
            run(name, *test);
        } else {
            println!("test {name} ... ignored, {reason}");
            skipped += 1;
        }
    }
    println!("test result: {passed} passed; {failed} failed; {skipped} ignored");
    if failed > 0 {
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------

/// Kills the child however the test ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

extern "C" {
    fn kill(pid: i32, signal: i32) -> i32;
}

const SIGKILL: i32 = 9;

fn sigkill(pid: u32) {
    // SAFETY: kill(2) with a pid this test started and has not reaped.
    let rc = unsafe { kill(pid as i32, SIGKILL) };
    assert_eq!(rc, 0, "kill -9 {pid}");
}

/// Whether `pid` runs (a zombie has exited).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Poll `condition` every 2 ms for at most `limit`; how long it took.
fn wait_for(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    let begun = Instant::now();
    while !condition() {
        assert!(begun.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    begun.elapsed()
}

/// Wait (bounded) for a worker to print its ready line.
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

fn tokens_text(tokens: &[&Token]) -> String {
    tokens
        .iter()
        .map(|t| t.to_text())
        .collect::<Vec<_>>()
        .join(",")
}

fn tokens_from_text(text: &str) -> Vec<Token> {
    text.split(',')
        .map(|t| Token::from_text(t).expect("a token"))
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A server that keeps panics quiet (the tests cause hundreds).
fn quiet() {
    std::panic::set_hook(Box::new(|_| {}));
}

fn stats(times: &[Duration]) -> String {
    let max = times.iter().max().copied().unwrap_or_default();
    let total: Duration = times.iter().sum();
    let mean = total / times.len().max(1) as u32;
    format!("mean {mean:.1?}, max {max:.1?}")
}

// ---------------------------------------------------------------------
// A client killed mid-call
// ---------------------------------------------------------------------

/// Faults: "A client killed (SIGKILL) mid-call, 100 times: the server
/// keeps serving and its object count returns to the baseline." Each worker
/// process creates three objects, takes a reference to one of ours, and
/// sits in three slow calls (two blocking, on two connections, and one
/// async) that the server has begun (`Gate::entered` says so) when it is
/// killed.
fn client_killed_mid_call_100_times() {
    const ROUNDS: usize = 100;
    let manager = FaultManager::new();
    manager.start().unwrap();
    let gate = manager.gate().unwrap();
    let maths = manager.maths().unwrap();
    let baseline = manager.number_of_objects().unwrap();
    assert_eq!(baseline, 2);
    let address = manager.address().unwrap();
    let argument = tokens_text(&[gate.token()]);
    let mut to_baseline = Vec::new();
    let begun = Instant::now();
    for round in 0..ROUNDS {
        let entered = gate.entered().unwrap();
        let mut child = Killed(spawn_worker(
            "worker_holds_calls_until_killed",
            &address,
            managers::default_authkey(),
            &argument,
        ));
        await_ready(&mut child.0);
        wait_for(Duration::from_secs(30), "the worker's calls begin", || {
            gate.entered().unwrap() >= entered + 3
        });
        assert_eq!(
            manager.number_of_objects().unwrap(),
            baseline + 3,
            "round {round}: the worker's objects are served"
        );
        child.0.kill().expect("SIGKILL the worker");
        child.0.wait().expect("reap the worker");
        to_baseline.push(wait_for(
            Duration::from_secs(5),
            "the object count returns to the baseline",
            || manager.number_of_objects().unwrap() == baseline,
        ));
        assert_eq!(maths.add(round as i64, 1).unwrap(), round as i64 + 1);
    }
    println!(
        "    {ROUNDS} clients killed mid-call in {:.1?}; object count back to baseline after {}; \
         calls of dead clients still running on the server: {}",
        begun.elapsed(),
        stats(&to_baseline),
        gate.active().unwrap()
    );
    drop((gate, maths));
    assert_eq!(manager.number_of_objects().unwrap(), 0);
    manager.shutdown().unwrap();
}

fn worker_holds_calls_until_killed() {
    let ctx = worker_context();
    let manager = FaultManager::with_options(
        ManagerOptions::new()
            .address(ctx.address.clone())
            .authkey(&ctx.authkey),
    );
    manager.connect().unwrap();
    let token = tokens_from_text(&ctx.argument).remove(0);
    let gate: GateProxy = manager.proxy_from_token(&token).unwrap();
    let tool = manager.tool().unwrap();
    let inner = tool.maths().unwrap();
    let maths = manager.maths().unwrap();
    assert_eq!(maths.add(1, 2).unwrap(), 3);
    for _ in 0..2 {
        let gate = gate.clone();
        std::thread::spawn(move || gate.hold(60_000));
    }
    let waiting = gate.to_async();
    std::thread::spawn(move || runtime().block_on(waiting.hold(60_000)));
    println!("{READY}");
    std::thread::sleep(Duration::from_secs(60));
    drop((tool, inner, maths, gate));
    panic!("the worker was not killed");
}

/// What a SIGKILLed client leaves running: its pending calls should be
/// cancelled when its connections close (they hold the object, memory and,
/// for the built-ins, a place in a wait queue).
fn killed_client_calls_are_cancelled() {
    let manager = FaultManager::new();
    manager.start().unwrap();
    let gate = manager.gate().unwrap();
    let mut child = Killed(spawn_worker(
        "worker_holds_calls_until_killed",
        &manager.address().unwrap(),
        managers::default_authkey(),
        &tokens_text(&[gate.token()]),
    ));
    await_ready(&mut child.0);
    wait_for(Duration::from_secs(30), "the worker's calls begin", || {
        gate.entered().unwrap() >= 3
    });
    assert_eq!(gate.active().unwrap(), 3);
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let took = wait_for(
        Duration::from_secs(2),
        "the dead client's calls end",
        || gate.active().unwrap() == 0,
    );
    println!("    the dead client's 3 calls were cancelled after {took:.1?}");
    drop(gate);
    manager.shutdown().unwrap();
}

/// A SIGKILLed client blocked in `Lock::acquire()`: when the holder
/// releases, the lock must go to a live client, not to the dead one.
fn killed_client_pending_acquire_does_not_take_the_lock() {
    let manager = SyncManager::new();
    manager.start().unwrap();
    let lock = manager.lock().unwrap();
    assert!(lock.acquire().unwrap());
    let mut child = Killed(spawn_worker(
        "worker_blocks_on_lock",
        &manager.address().unwrap(),
        managers::default_authkey(),
        &tokens_text(&[managers::Proxy::token(&lock)]),
    ));
    await_ready(&mut child.0);
    // No way to see a Lock's waiters: give the call time to arrive.
    std::thread::sleep(Duration::from_millis(300));
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    lock.release().unwrap();
    assert!(
        lock.acquire_timeout(Duration::from_secs(2)).unwrap(),
        "the lock went to the dead client's pending acquire()"
    );
    lock.release().unwrap();
    drop(lock);
    manager.shutdown().unwrap();
}

fn worker_blocks_on_lock() {
    let ctx = worker_context();
    let manager = SyncManager::with_options(
        ManagerOptions::new()
            .address(ctx.address.clone())
            .authkey(&ctx.authkey),
    );
    manager.connect().unwrap();
    let lock: LockProxy = manager
        .proxy_from_token(&tokens_from_text(&ctx.argument)[0])
        .unwrap();
    println!("{READY}");
    let _ = lock.acquire();
    std::thread::sleep(Duration::from_secs(60));
    panic!("the worker was not killed");
}

/// A SIGKILLed client blocked in `Queue::get()`: the next item put must
/// go to a live client, not be taken by the dead one and lost.
fn killed_client_pending_get_does_not_swallow_an_item() {
    let manager = SyncManager::new();
    manager.start().unwrap();
    let queue = manager.queue::<i64>(0).unwrap();
    let mut child = Killed(spawn_worker(
        "worker_blocks_on_get",
        &manager.address().unwrap(),
        managers::default_authkey(),
        &tokens_text(&[managers::Proxy::token(&queue)]),
    ));
    await_ready(&mut child.0);
    std::thread::sleep(Duration::from_millis(300));
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    queue.put(42).unwrap();
    match queue.get_timeout(Duration::from_secs(2)) {
        Ok(item) => assert_eq!(item, 42),
        Err(e) => panic!("the item went to the dead client's pending get(): {e}"),
    }
    drop(queue);
    manager.shutdown().unwrap();
}

fn worker_blocks_on_get() {
    let ctx = worker_context();
    let manager = SyncManager::with_options(
        ManagerOptions::new()
            .address(ctx.address.clone())
            .authkey(&ctx.authkey),
    );
    manager.connect().unwrap();
    let queue: QueueProxy<i64> = manager
        .proxy_from_token(&tokens_from_text(&ctx.argument)[0])
        .unwrap();
    println!("{READY}");
    let _ = queue.get();
    std::thread::sleep(Duration::from_secs(60));
    panic!("the worker was not killed");
}

// ---------------------------------------------------------------------
// The server killed
// ---------------------------------------------------------------------

/// Faults: "The server killed: every in-flight call and every later call
/// fails within 1 second with the distinct 'server gone' error, never a
/// hang." Four blocking calls (four connections) and four async calls (one
/// multiplexed connection) are in `Gate::hold(30 s)` when the server
/// process gets SIGKILL; then blocking and async calls, object creation
/// and `number_of_objects()` are tried.
fn server_killed_fails_every_call_with_server_gone() {
    server_killed(ManagerOptions::new());
}

/// The same over loopback TCP.
fn server_killed_tcp_fails_every_call_with_server_gone() {
    server_killed(ManagerOptions::new().address("127.0.0.1:0"));
}

fn server_killed(options: ManagerOptions) {
    const LIMIT: Duration = Duration::from_secs(1);
    let manager = FaultManager::with_options(options);
    manager.start().unwrap();
    let gate = manager.gate().unwrap();
    let maths = manager.maths().unwrap();
    let async_maths = maths.to_async();
    assert_eq!(maths.add(1, 1).unwrap(), 2);
    let (tx, rx) = mpsc::channel::<(&str, Result<u64, Error>, Instant)>();
    for _ in 0..4 {
        let (gate, tx) = (gate.clone(), tx.clone());
        std::thread::spawn(move || {
            let result = gate.hold(30_000);
            let _ = tx.send(("blocking", result, Instant::now()));
        });
    }
    {
        let (gate, tx) = (gate.to_async(), tx.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let calls: Vec<_> = (0..4)
                    .map(|_| {
                        let (gate, tx) = (gate.clone(), tx.clone());
                        tokio::spawn(async move {
                            let result = gate.hold(30_000).await;
                            let _ = tx.send(("async", result, Instant::now()));
                        })
                    })
                    .collect();
                for call in calls {
                    let _ = call.await;
                }
            });
        });
    }
    drop(tx);
    wait_for(Duration::from_secs(10), "eight calls in flight", || {
        gate.entered().unwrap() >= 8
    });
    let pid = manager.server_pid().unwrap();
    let killed = Instant::now();
    sigkill(pid);

    let mut in_flight = Vec::new();
    for _ in 0..8 {
        let (kind, result, at) = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("an in-flight call hangs after the server was killed");
        let took = at.duration_since(killed);
        assert!(
            matches!(result, Err(Error::ServerGone { .. })),
            "{kind} in-flight call: {result:?}"
        );
        assert!(took < LIMIT, "{kind} in-flight call failed after {took:?}");
        in_flight.push(took);
    }

    // Later calls of every kind.
    let mut later = Vec::new();
    let mut raced = 0;
    let mut check = |what: &str, call: &mut dyn FnMut() -> Result<(), Error>| {
        let begun = Instant::now();
        let result = call();
        let took = begun.elapsed();
        if reconnect_raced(&result) {
            // Known runtime bug, reproduced by the ignored test
            // `reconnect_racing_a_killed_server_is_server_gone`.
            raced += 1;
        } else {
            assert!(
                matches!(result, Err(Error::ServerGone { .. })),
                "later {what}: {result:?}"
            );
        }
        assert!(took < LIMIT, "later {what} failed after {took:?}");
        later.push(took);
    };
    for _ in 0..3 {
        check("blocking call", &mut || maths.add(1, 2).map(drop));
        check("call on a clone", &mut || maths.clone().mul(1, 2).map(drop));
        check("async call", &mut || {
            runtime().block_on(async_maths.add(1, 2)).map(drop)
        });
        check("create", &mut || manager.maths().map(drop));
        check("number_of_objects", &mut || {
            manager.number_of_objects().map(drop)
        });
        check("slow call", &mut || gate.hold(10).map(drop));
    }
    println!(
        "    in-flight calls failed with ServerGone after {}; later calls after {} \
         ({raced} reconnects raced the dying listener)",
        stats(&in_flight),
        stats(&later)
    );
    drop((gate, maths, async_maths));
    manager.shutdown().unwrap();
    assert!(!alive(pid));
}

/// A reconnection that reaches a killed server's listener before the
/// kernel has closed it is reset during the handshake, and the client
/// reports `Error::Authentication("the server closed the connection")`
/// instead of `ServerGone`.
fn reconnect_raced(result: &Result<(), Error>) -> bool {
    matches!(result, Err(Error::Authentication(m)) if m.contains("closed the connection"))
}

/// The race `reconnect_raced` tolerates, made likely: a killed server with
/// 32 connections open is released by the kernel socket by socket, and a
/// client that reconnects meanwhile must still be told the server is gone.
fn reconnect_racing_a_killed_server_is_server_gone() {
    let mut raced = 0;
    let mut attempts = 0;
    for _ in 0..10 {
        let manager = FaultManager::new();
        manager.start().unwrap();
        let gate = manager.gate().unwrap();
        let maths = manager.maths().unwrap();
        let (tx, rx) = mpsc::channel();
        for _ in 0..32 {
            let (gate, tx) = (gate.clone(), tx.clone());
            std::thread::spawn(move || {
                let _ = tx.send(gate.hold(30_000));
            });
        }
        wait_for(Duration::from_secs(10), "32 calls in flight", || {
            gate.entered().unwrap() >= 32
        });
        sigkill(manager.server_pid().unwrap());
        rx.recv_timeout(Duration::from_secs(5))
            .unwrap()
            .unwrap_err();
        let begun = Instant::now();
        while begun.elapsed() < Duration::from_millis(50) {
            let result = maths.add(1, 1).map(drop);
            attempts += 1;
            if reconnect_raced(&result) {
                raced += 1;
            } else {
                assert!(
                    matches!(result, Err(Error::ServerGone { .. })),
                    "{result:?}"
                );
            }
        }
        drop((gate, maths));
        manager.shutdown().unwrap();
    }
    println!("    {raced} of {attempts} reconnects to a dying server were not ServerGone");
    assert_eq!(
        raced, 0,
        "a reconnect during the server's death is reported as an authentication failure"
    );
}

// ---------------------------------------------------------------------
// The parent of a server killed
// ---------------------------------------------------------------------

fn parent_mode() {
    let manager = FaultManager::new();
    manager.start().unwrap();
    println!("{}", manager.server_pid().unwrap());
    std::thread::sleep(Duration::from_secs(60));
}

/// Faults: "The parent of a started server killed: the server exits within
/// 1 second." Five times: a process starts a server, gets SIGKILL, and the
/// server's exit is timed.
fn killed_parent_server_exits_within_a_second() {
    let mut times = Vec::new();
    for _ in 0..5 {
        let mut parent = Killed(
            Command::new(std::env::current_exe().unwrap())
                .env(MODE, "parent")
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut line = String::new();
        BufReader::new(parent.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let server: u32 = line.trim().parse().expect("server pid");
        assert!(alive(server));
        // Kill the server too if the test fails.
        struct Reaper(u32);
        impl Drop for Reaper {
            fn drop(&mut self) {
                if alive(self.0) {
                    // SAFETY: kill(2) on the orphaned server's pid.
                    unsafe { kill(self.0 as i32, SIGKILL) };
                }
            }
        }
        let _reaper = Reaper(server);
        let killed = Instant::now();
        parent.0.kill().unwrap();
        parent.0.wait().unwrap();
        while alive(server) && killed.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let took = killed.elapsed();
        assert!(!alive(server), "the server outlived its parent by {took:?}");
        assert!(
            took < Duration::from_secs(1),
            "the server exited {took:?} after its parent"
        );
        times.push(took);
    }
    println!(
        "    server exit after its parent's SIGKILL: {}",
        stats(&times)
    );
}

// ---------------------------------------------------------------------
// A panic inside a method
// ---------------------------------------------------------------------

/// Faults: "A panic inside a method: that caller gets an error with the
/// message; other callers are unaffected." Two threads make a sync method
/// and an async method panic 100 times each while four threads make
/// ordinary calls on the same objects (and a slow call is in flight);
/// every panic is that caller's `RemoteError::Panic` with the message,
/// every other call succeeds.
fn panic_in_a_method_fails_only_that_call() {
    let manager = FaultManager::new();
    manager.start_with_initializer(quiet, ()).unwrap();
    let tool = manager.tool().unwrap();
    let gate = manager.gate().unwrap();
    let maths = manager.maths().unwrap();
    let slow = {
        let gate = gate.clone();
        std::thread::spawn(move || gate.hold(1_500))
    };
    let ok_calls = AtomicUsize::new(0);
    let panics = AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..100 {
                let err = tool.boom().unwrap_err();
                assert!(
                    matches!(&err, Error::Remote(RemoteError::Panic(m)) if m.contains("boom from the server")),
                    "{err}"
                );
                panics.fetch_add(1, Ordering::Relaxed);
            }
        });
        s.spawn(|| {
            for i in 0..100 {
                let message = format!("async panic number {i}");
                let err = gate.panic_later(message.clone()).unwrap_err();
                assert!(
                    matches!(&err, Error::Remote(RemoteError::Panic(m)) if *m == message),
                    "{err}"
                );
                panics.fetch_add(1, Ordering::Relaxed);
            }
        });
        for t in 0..4i64 {
            let (tool, maths, ok_calls) = (&tool, &maths, &ok_calls);
            s.spawn(move || {
                for i in 0..100i64 {
                    assert_eq!(maths.add(t, i).unwrap(), t + i);
                    assert_eq!(tool.f().unwrap(), "f()");
                    assert_eq!(tool.square_of(i).unwrap(), Ok(i * i));
                    ok_calls.fetch_add(3, Ordering::Relaxed);
                }
            });
        }
    });
    assert_eq!(
        slow.join().unwrap().unwrap(),
        1_500,
        "the slow call finished"
    );
    assert_eq!(tool.add(5).unwrap(), 5, "a &mut method after the panics");
    println!(
        "    {} panics, each its caller's error; {} other calls all succeeded",
        panics.into_inner(),
        ok_calls.into_inner()
    );
    drop((tool, gate, maths));
    assert_eq!(manager.number_of_objects().unwrap(), 0);
    manager.shutdown().unwrap();
    let status = manager.server_exit_status().unwrap();
    assert!(status.success(), "the server survived its panics: {status}");
}

// ---------------------------------------------------------------------
// shutdown() with calls in flight
// ---------------------------------------------------------------------

/// Faults: "shutdown() with 100 calls in flight, some blocked on a Queue or
/// Lock: every call returns (result or error) within the shutdown
/// timeout." 25 blocking `Queue::get()`, 25 blocking `Lock::acquire()` (the
/// lock is held), 25 blocking slow calls (`Event::wait(30 s)`), and 25
/// async calls of the three kinds on one connection; then `shutdown()`
/// with a 1 s shutdown timeout.
fn shutdown_with_100_calls_in_flight() {
    let timeout = Duration::from_secs(1);
    let margin = Duration::from_millis(500);
    let manager = SyncManager::with_options(ManagerOptions::new().shutdown_timeout(timeout));
    manager.start().unwrap();
    let queue = manager.queue::<i64>(0).unwrap();
    let lock = manager.lock().unwrap();
    let event = manager.event().unwrap();
    assert!(lock.acquire().unwrap());
    let (tx, rx) = mpsc::channel::<(&str, bool, Instant)>();
    let started = Arc::new(AtomicUsize::new(0));
    for i in 0..75 {
        let (queue, lock, event) = (queue.clone(), lock.clone(), event.clone());
        let (tx, started) = (tx.clone(), Arc::clone(&started));
        std::thread::spawn(move || {
            started.fetch_add(1, Ordering::SeqCst);
            let (kind, ok) = match i % 3 {
                0 => ("Queue::get", queue.get().is_ok()),
                1 => ("Lock::acquire", lock.acquire().is_ok()),
                _ => (
                    "Event::wait",
                    event.wait(Some(Duration::from_secs(30))).is_ok(),
                ),
            };
            let _ = tx.send((kind, ok, Instant::now()));
        });
    }
    {
        let queue = queue.to_async();
        let lock = lock.to_async();
        let event = event.to_async();
        let (tx, started) = (tx.clone(), Arc::clone(&started));
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let mut calls = tokio::task::JoinSet::new();
                for i in 0..25 {
                    let (queue, lock, event) = (queue.clone(), lock.clone(), event.clone());
                    let (tx, started) = (tx.clone(), Arc::clone(&started));
                    calls.spawn(async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        let (kind, ok) = match i % 3 {
                            0 => ("async Queue::get", queue.get_with(true, None).await.is_ok()),
                            1 => (
                                "async Lock::acquire",
                                lock.acquire_with(true, None).await.is_ok(),
                            ),
                            _ => (
                                "async Event::wait",
                                event.wait(Some(Duration::from_secs(30))).await.is_ok(),
                            ),
                        };
                        let _ = tx.send((kind, ok, Instant::now()));
                    });
                }
                while calls.join_next().await.is_some() {}
            });
        });
    }
    drop(tx);
    wait_for(Duration::from_secs(10), "100 calls started", || {
        started.load(Ordering::SeqCst) == 100
    });
    // No server-side count of waiters: give the requests time to arrive.
    std::thread::sleep(Duration::from_millis(500));
    assert!(rx.try_recv().is_err(), "a call returned before shutdown");
    assert_eq!(queue.qsize().unwrap(), 0);
    assert!(lock.locked().unwrap());

    let begun = Instant::now();
    manager.shutdown().unwrap();
    let shutdown_took = begun.elapsed();
    let deadline = begun + timeout + margin;
    let (mut errors, mut results) = (0, 0);
    let mut latest = Duration::ZERO;
    for n in 0..100 {
        let left = deadline.saturating_duration_since(Instant::now());
        let (kind, ok, at) = rx.recv_timeout(left).unwrap_or_else(|_| {
            panic!("only {n} of 100 calls returned within {timeout:?} + {margin:?}")
        });
        let took = at.duration_since(begun);
        assert!(took <= timeout + margin, "{kind} returned after {took:?}");
        latest = latest.max(took);
        if ok {
            results += 1;
        } else {
            errors += 1;
        }
    }
    let status = manager.server_exit_status();
    println!(
        "    shutdown() took {shutdown_took:.1?}; all 100 calls returned within {latest:.1?} \
         ({errors} errors, {results} results); server exit status {status:?}"
    );
    drop((queue, lock, event));
}
