//! Issue 21: a `Pool` over Redis, with a real `redis-server` of each
//! test's own on loopback. "Machines" are groups of two worker processes
//! (`managers::process::worker` run in a child process; SIGKILLing that
//! child ends its workers with it, as a machine's loss would), all on this
//! host.
//!
//! Without `redis-server`, every test prints a SKIPPED line (a failure
//! when `MANAGERS_REQUIRE_REDIS` is set, as in CI). Every process a test
//! starts is killed however it ends: the groups and the caller processes
//! are `Process`es, terminated when dropped.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis::{RedisFailover, RedisServer};
use managers::error::EXIT_UNKNOWN;
use managers::process::{worker, WorkerOptions};
use managers::{Error, Pool, Process, ProcessError};

fn main() {
    managers::bootstrap();
    common::harness::run(named![
        a_map_survives_a_machine_killed_midway,
        imap_unordered_survives_a_machine_killed_midway,
        the_pool_api_over_redis,
        callbacks_run_exactly_once,
        a_poison_task_is_worker_died_not_a_hang,
        terminate_with_tasks_in_flight_returns_promptly,
        a_worker_of_another_image_is_refused,
        a_dead_callers_tasks_are_skipped_and_its_keys_go,
        bad_urls_and_options_are_errors,
        maxtasksperchild_replaces_workers,
        the_example_cli_prints_the_sum_and_the_workers,
        a_map_survives_a_redis_failover,
        a_redis_gone_for_the_lease_fails_pending_results,
        an_initializer_runs_in_each_worker,
    ]);
}

/// A chunk's idle time before another worker takes it, in the tests.
const RECLAIM_MS: u64 = 400;

/// A "machine": a group of `workers` worker processes for pool `pool`.
fn machine(url: String, pool: String, workers: usize, max_deliveries: u64) -> managers::Result<()> {
    worker(
        &url,
        WorkerOptions::new()
            .processes(workers)
            .pool(pool)
            .reclaim_after(Duration::from_millis(RECLAIM_MS))
            .max_deliveries(max_deliveries),
    )
}

/// A machine's process, killed (its workers with it) when dropped.
struct Machine(Process);

impl Machine {
    /// SIGKILL the group: its workers see their lifeline close and exit.
    fn kill(&self) {
        self.0.kill().unwrap();
        self.0.join().unwrap();
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.join();
    }
}

fn start_machine(redis: &RedisServer, pool: &str, workers: usize, max_deliveries: u64) -> Machine {
    start_machine_at(&redis.url(), pool, workers, max_deliveries)
}

fn start_machine_at(url: &str, pool: &str, workers: usize, max_deliveries: u64) -> Machine {
    let process = Process::new(
        machine,
        (url.to_string(), pool.to_string(), workers, max_deliveries),
    );
    process.start().expect("a machine starts");
    Machine(process)
}

/// Wait until `n` workers of `pool` said they are alive.
fn wait_for_workers(redis: &RedisServer, pool: &str, n: i64) {
    let key = format!("managers:pool:{pool}:workers");
    let begun = Instant::now();
    while redis.number(&["ZCARD", &key]) < n {
        assert!(
            begun.elapsed() < Duration::from_secs(20),
            "{n} workers never came"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pool(redis: &RedisServer, name: &str) -> Pool {
    Pool::builder()
        .redis(redis.url())
        .pool_name(name)
        .build()
        .expect("a distributed pool")
}

fn square(x: u64) -> u64 {
    x * x
}

/// A square that takes a moment, so that a map is still running when a
/// machine is killed.
fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_micros(300));
    x * x
}

fn add(x: u64, y: u64) -> u64 {
    x + y
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn fail(x: u64) -> u64 {
    panic!("no {x}")
}

fn abort() {
    std::process::abort();
}

fn pid() -> u32 {
    std::process::id()
}

/// Two machines of two workers each, their workers all alive.
fn two_machines(redis: &RedisServer, name: &str) -> (Machine, Machine) {
    let a = start_machine(redis, name, 2, 3);
    let b = start_machine(redis, name, 2, 3);
    wait_for_workers(redis, name, 4);
    (a, b)
}

fn a_map_survives_a_machine_killed_midway() {
    let Some(redis) = RedisServer::start("a_map_survives_a_machine_killed_midway") else {
        return;
    };
    let (a, _b) = two_machines(&redis, "kill-map");
    let pool = pool(&redis, "kill-map");
    let pending = pool.map_async(slow_square, 0..10_000u64, Some(25)).unwrap();
    // Under way: some answers are in.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !pending.ready(),
        "the map ended before the machine could be killed"
    );
    a.kill();
    let squares = pending.get_timeout(Duration::from_secs(60)).unwrap();
    let expected: Vec<u64> = (0..10_000u64).map(|x| x * x).collect();
    assert_eq!(squares, expected, "every result correct, in order");
    // Each call's answer was taken once: the calls by worker add up to the
    // items exactly, and the killed machine's workers had answered some.
    let calls = pool.calls_by_worker();
    assert_eq!(calls.iter().map(|w| w.calls).sum::<u64>(), 10_000);
    assert!(calls.len() >= 3, "both machines worked: {calls:?}");
    assert!(calls.iter().all(|w| w.host.is_some()));
}

fn imap_unordered_survives_a_machine_killed_midway() {
    let Some(redis) = RedisServer::start("imap_unordered_survives_a_machine_killed_midway") else {
        return;
    };
    let (a, _b) = two_machines(&redis, "kill-imap");
    let pool = pool(&redis, "kill-imap");
    let mut results = pool
        .imap_unordered(slow_square, 0..10_000u64, Some(25))
        .unwrap();
    let mut seen = Vec::new();
    for result in results.by_ref().take(1000) {
        seen.push(result.unwrap());
    }
    a.kill();
    for result in results {
        seen.push(result.unwrap());
    }
    assert_eq!(seen.len(), 10_000, "each result exactly once");
    let distinct: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(distinct, (0..10_000u64).map(|x| x * x).collect());
    assert_eq!(
        pool.calls_by_worker().iter().map(|w| w.calls).sum::<u64>(),
        10_000
    );
}

fn the_pool_api_over_redis() {
    let Some(redis) = RedisServer::start("the_pool_api_over_redis") else {
        return;
    };
    let _a = start_machine(&redis, "api", 2, 3);
    wait_for_workers(&redis, "api", 2);
    let pool = pool(&redis, "api");
    assert_eq!(pool.processes(), 2, "the live workers");
    assert_eq!(pool.apply(square, (7,)).unwrap(), 49);
    assert_eq!(pool.apply_async(add, (2, 3)).unwrap().get().unwrap(), 5);
    assert_eq!(
        pool.map(square, 0..10u64, None).unwrap(),
        [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
    );
    assert_eq!(
        pool.map(square, Vec::<u64>::new(), None).unwrap(),
        Vec::<u64>::new()
    );
    assert_eq!(pool.starmap(add, [(1, 2), (3, 4)], None).unwrap(), [3, 7]);
    let ordered: Vec<u64> = pool
        .imap(square, 0..100u64, Some(3))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(ordered, (0..100u64).map(|x| x * x).collect::<Vec<_>>());
    // imap reads lazily: an endless iterator works.
    let first: Vec<u64> = pool
        .imap(square, 0u64.., None)
        .unwrap()
        .take(5)
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(first, [0, 1, 4, 9, 16]);
    // The workers are other processes.
    let pids: BTreeSet<u32> = (0..20)
        .map(|_| pool.apply_async(pid, ()).unwrap())
        .collect::<Vec<_>>()
        .into_iter()
        .map(|r| r.get().unwrap())
        .collect();
    assert!(!pids.contains(&std::process::id()));
    // A task's panic is its caller's error; the pool goes on.
    match pool.apply(fail, (3,)) {
        Err(Error::TaskPanicked(m)) => assert!(m.contains("no 3"), "{m}"),
        other => panic!("{other:?}"),
    }
    let slow = pool.apply_async(sleep_ms, (2_000,)).unwrap();
    assert!(matches!(
        slow.get_timeout(Duration::from_millis(50)),
        Err(Error::Timeout { .. })
    ));
    assert!(!slow.ready());
    pool.close();
    assert!(matches!(
        pool.apply(square, (1,)),
        Err(Error::Process(ProcessError::PoolNotRunning))
    ));
    let begun = Instant::now();
    pool.join().unwrap();
    assert!(
        begun.elapsed() >= Duration::from_millis(1_000),
        "join waited for the task"
    );
    assert_eq!(slow.get().unwrap(), 2_000);
    // The caller's keys are gone once its pool is over (its thread removes
    // them as it ends), even after the drop's terminate.
    drop(pool);
    assert_eq!(
        redis.keys("managers:pool:api:*"),
        ["managers:pool:api:tasks", "managers:pool:api:workers"],
        "only the task stream and the live workers remain"
    );
}

fn callbacks_run_exactly_once() {
    let Some(redis) = RedisServer::start("callbacks_run_exactly_once") else {
        return;
    };
    let _a = start_machine(&redis, "callbacks", 2, 3);
    wait_for_workers(&redis, "callbacks", 2);
    let pool = pool(&redis, "callbacks");
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut pending = Vec::new();
    for x in 0..50u64 {
        let (ok, failed) = (Arc::clone(&ok), Arc::clone(&failed));
        let on_ok = move |r: &u64| {
            assert_eq!(*r, x * x);
            ok.fetch_add(1, Ordering::SeqCst);
        };
        let on_err = move |_: &Error| {
            failed.fetch_add(1, Ordering::SeqCst);
        };
        pending.push(pool.apply_async_with(square, (x,), on_ok, on_err).unwrap());
    }
    let list = {
        let ok = Arc::clone(&ok);
        pool.map_async_with(
            square,
            0..1000u64,
            Some(7),
            move |v: &Vec<u64>| {
                assert_eq!(v.len(), 1000);
                ok.fetch_add(1000, Ordering::SeqCst);
            },
            |_| panic!("the map failed"),
        )
        .unwrap()
    };
    let bad = {
        let failed = Arc::clone(&failed);
        pool.apply_async_with(
            fail,
            (1,),
            |_| panic!("it succeeded"),
            move |_| {
                failed.fetch_add(1, Ordering::SeqCst);
            },
        )
        .unwrap()
    };
    for p in &pending {
        p.get_timeout(Duration::from_secs(20)).unwrap();
    }
    list.get_timeout(Duration::from_secs(20)).unwrap();
    assert!(bad.get_timeout(Duration::from_secs(20)).is_err());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(ok.load(Ordering::SeqCst), 1050);
    assert_eq!(failed.load(Ordering::SeqCst), 1);
}

fn a_poison_task_is_worker_died_not_a_hang() {
    let Some(redis) = RedisServer::start("a_poison_task_is_worker_died_not_a_hang") else {
        return;
    };
    // Each machine's worker that takes it dies; after two deaths the
    // caller is told.
    let _a = start_machine(&redis, "poison", 2, 2);
    wait_for_workers(&redis, "poison", 2);
    let pool = pool(&redis, "poison");
    let begun = Instant::now();
    match pool
        .apply_async(abort, ())
        .unwrap()
        .get_timeout(Duration::from_secs(30))
    {
        Err(Error::WorkerDied { pid, exitcode }) => {
            assert_ne!(pid, 0);
            assert_eq!(exitcode, EXIT_UNKNOWN);
        }
        other => panic!("{other:?}"),
    }
    assert!(begun.elapsed() < Duration::from_secs(30));
    // The machine replaced its workers and goes on.
    assert_eq!(pool.apply(square, (9,)).unwrap(), 81);
    assert_eq!(pool.map(square, 0..100u64, None).unwrap().len(), 100);
}

fn terminate_with_tasks_in_flight_returns_promptly() {
    let Some(redis) = RedisServer::start("terminate_with_tasks_in_flight_returns_promptly") else {
        return;
    };
    let _a = start_machine(&redis, "terminate", 2, 3);
    wait_for_workers(&redis, "terminate", 2);
    let pool = pool(&redis, "terminate");
    let map = pool
        .map_async(sleep_ms, vec![100u64; 200], Some(1))
        .unwrap();
    let one = pool.apply_async(sleep_ms, (5_000,)).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let begun = Instant::now();
    pool.terminate();
    assert!(
        begun.elapsed() < Duration::from_secs(3),
        "terminate took {:?}",
        begun.elapsed()
    );
    for result in [map.get().map(|_| ()), one.get().map(|_| ())] {
        assert!(
            matches!(result, Err(Error::Process(ProcessError::PoolTerminated))),
            "{result:?}"
        );
    }
    // The workers skip the terminated pool's queued tasks: another pool is
    // served long before 200 x 100 ms / 2 workers.
    let other = pool_named(&redis, "terminate");
    let begun = Instant::now();
    assert_eq!(
        other
            .apply_async(square, (3,))
            .unwrap()
            .get_timeout(Duration::from_secs(8))
            .unwrap(),
        9
    );
    assert!(begun.elapsed() < Duration::from_secs(8));
}

fn pool_named(redis: &RedisServer, name: &str) -> Pool {
    pool(redis, name)
}

fn a_worker_of_another_image_is_refused() {
    let Some(redis) = RedisServer::start("a_worker_of_another_image_is_refused") else {
        return;
    };
    // The example is another program: its workers serve the pool "default".
    let _foreign = ExampleWorkers::start(&redis);
    wait_for_workers(&redis, "default", 1);
    let pool = Pool::distributed(&redis.url()).unwrap();
    match pool
        .apply_async(square, (2,))
        .unwrap()
        .get_timeout(Duration::from_secs(20))
    {
        Err(Error::Process(ProcessError::ForeignImage)) => {}
        other => panic!("{other:?}"),
    }
    match pool.map(square, 0..10u64, None) {
        Err(Error::Process(ProcessError::ForeignImage)) => {}
        other => panic!("{other:?}"),
    }
}

/// A caller that submits slow work to pool "orphans" and waits forever.
fn doomed_caller(url: String) -> managers::Result<()> {
    let pool = Pool::builder()
        .redis(url)
        .pool_name("orphans")
        .lease(Duration::from_millis(300))
        .build()?;
    let _pending = pool.map_async(sleep_ms, vec![50u64; 400], Some(1))?;
    std::thread::sleep(Duration::from_secs(600));
    Ok(())
}

fn a_dead_callers_tasks_are_skipped_and_its_keys_go() {
    let Some(redis) = RedisServer::start("a_dead_callers_tasks_are_skipped_and_its_keys_go") else {
        return;
    };
    let _a = start_machine(&redis, "orphans", 2, 3);
    wait_for_workers(&redis, "orphans", 2);
    let caller = Process::new(doomed_caller, (redis.url(),));
    caller.start().unwrap();
    let caller = Machine(caller);
    let tasks = "managers:pool:orphans:tasks";
    let begun = Instant::now();
    while redis.number(&["XLEN", tasks]) < 300 {
        assert!(
            begun.elapsed() < Duration::from_secs(20),
            "the caller never submitted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    caller.kill();
    // Running them all would take 400 x 50 ms / 2 = 10 s; once the lease
    // is gone the workers drop them unrun.
    let killed = Instant::now();
    while redis.number(&["XLEN", tasks]) > 0 {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "{} tasks of a dead caller left",
            redis.number(&["XLEN", tasks])
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        redis.keys("managers:pool:orphans:alive:*").is_empty(),
        "the lease expired"
    );
    // The answers that came after its death expire.
    for key in redis.keys("managers:pool:orphans:results:*") {
        assert!(redis.number(&["PTTL", &key]) > 0, "{key} never expires");
    }
}

/// A machine of one worker that exits after 2 chunks.
fn short_lived(url: String) -> managers::Result<()> {
    worker(
        &url,
        WorkerOptions::new()
            .processes(1)
            .pool("short")
            .maxtasksperchild(2)
            .reclaim_after(Duration::from_millis(RECLAIM_MS)),
    )
}

fn maxtasksperchild_replaces_workers() {
    let Some(redis) = RedisServer::start("maxtasksperchild_replaces_workers") else {
        return;
    };
    let process = Process::new(short_lived, (redis.url(),));
    process.start().unwrap();
    let _machine = Machine(process);
    wait_for_workers(&redis, "short", 1);
    let pool = pool(&redis, "short");
    let pids: Vec<u32> = (0..10)
        .map(|_| {
            pool.apply_async(pid, ())
                .unwrap()
                .get_timeout(Duration::from_secs(20))
                .unwrap()
        })
        .collect();
    let distinct: BTreeSet<u32> = pids.iter().copied().collect();
    assert_eq!(distinct.len(), 5, "each worker ran 2 tasks: {pids:?}");
    // Each was a consumer of the group; the gone ones are removed once
    // idle 12 x reclaim_after (4.8 s here), not left to pile up.
    let consumers = || {
        redis
            .command(&["XINFO", "CONSUMERS", "managers:pool:short:tasks", "workers"])
            .unwrap()
            .parse::<usize>()
            .unwrap()
    };
    assert!(consumers() >= 5, "a consumer per worker process");
    let begun = Instant::now();
    while consumers() > 2 {
        assert!(
            begun.elapsed() < Duration::from_secs(20),
            "{} consumers left",
            consumers()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The example's binary (cargo test builds the examples).
fn example() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/distributed_pool")
}

/// `distributed_pool worker URL` (another program: the example), killed
/// when dropped (its workers see their lifeline close and exit).
struct ExampleWorkers(std::process::Child);

impl ExampleWorkers {
    fn start(redis: &RedisServer) -> ExampleWorkers {
        let example = example();
        assert!(
            example.exists(),
            "cargo test builds the examples: {}",
            example.display()
        );
        let child = std::process::Command::new(example)
            .args(["worker", &redis.url()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        ExampleWorkers(child)
    }
}

impl Drop for ExampleWorkers {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn the_example_cli_prints_the_sum_and_the_workers() {
    let Some(redis) = RedisServer::start("the_example_cli_prints_the_sum_and_the_workers") else {
        return;
    };
    let _group = ExampleWorkers::start(&redis);
    wait_for_workers(&redis, "default", 1);
    let map = std::process::Command::new(example())
        .args(["map", &redis.url(), "1000"])
        .output()
        .unwrap();
    assert!(
        map.status.success(),
        "{}",
        String::from_utf8_lossy(&map.stderr)
    );
    let stdout = String::from_utf8(map.stdout).unwrap();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("sum of squares: 332833500"));
    let mut total = 0;
    for line in lines {
        // worker PID: K tasks
        let (pid, tasks) = line
            .strip_prefix("worker ")
            .and_then(|l| l.strip_suffix(" tasks"))
            .and_then(|l| l.split_once(": "))
            .unwrap_or_else(|| panic!("{line:?}"));
        assert!(pid.parse::<u32>().is_ok(), "{line:?}");
        total += tasks.parse::<u64>().unwrap();
    }
    assert_eq!(total, 1000, "{stdout}");
    // A usage error is said, with a non-zero exit.
    let bad = std::process::Command::new(example())
        .args(["map", "x"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("usage"));
}

fn ms_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(1));
    x * x
}

fn a_map_survives_a_redis_failover() {
    let Some(mut redis) = RedisFailover::start("a_map_survives_a_redis_failover") else {
        return;
    };
    let url = redis.url();
    let _machine = start_machine_at(&url, "failover", 2, 3);
    wait_for_workers(&redis.primary, "failover", 2);
    let pool = Pool::builder()
        .redis(&url)
        .pool_name("failover")
        .build()
        .unwrap();
    // 300 chunks of 10 ms: about 1.5 s of work for 2 workers.
    let pending = pool.map_async(ms_square, 0..3000u64, Some(10)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!pending.ready());
    redis.primary.kill();
    let killed = Instant::now();
    let squares = pending.get_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(squares, (0..3000u64).map(|x| x * x).collect::<Vec<_>>());
    assert!(
        redis.replica_is_primary(),
        "the Sentinels promoted the replica"
    );
    assert_eq!(
        pool.calls_by_worker().iter().map(|w| w.calls).sum::<u64>(),
        3000
    );
    println!(
        "  (the map ended {:?} after the primary was killed)",
        killed.elapsed()
    );
    // And the pool goes on with the new primary.
    assert_eq!(pool.apply(square, (12,)).unwrap(), 144);
}

fn a_redis_gone_for_the_lease_fails_pending_results() {
    let Some(mut redis) = RedisServer::start("a_redis_gone_for_the_lease_fails_pending_results")
    else {
        return;
    };
    let pool = Pool::builder()
        .redis(redis.url())
        .pool_name("gone")
        .lease(Duration::from_millis(500))
        .build()
        .unwrap();
    // No worker: the task waits in Redis, which then dies.
    let pending = pool.apply_async(square, (2,)).unwrap();
    redis.kill();
    let killed = Instant::now();
    match pending.get_timeout(Duration::from_secs(10)) {
        Err(Error::Redis(m)) => assert!(m.contains("127.0.0.1"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "{:?}",
        killed.elapsed()
    );
    // New work fails the same way, within the lease, never a hang.
    let begun = Instant::now();
    let late = pool.apply_async(square, (3,));
    let late = late.and_then(|r| r.get_timeout(Duration::from_secs(10)));
    assert!(matches!(late, Err(Error::Redis(_))), "{late:?}");
    assert!(
        begun.elapsed() < Duration::from_secs(8),
        "{:?}",
        begun.elapsed()
    );
}

/// What the initializer stored in this worker process.
static INITIALIZED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn remember(n: u64) -> Result<(), String> {
    if n == 0 {
        return Err("0 is refused".into());
    }
    INITIALIZED.store(n, Ordering::SeqCst);
    Ok(())
}

fn initialized() -> u64 {
    INITIALIZED.load(Ordering::SeqCst)
}

fn initialized_machine(url: String) -> managers::Result<()> {
    worker(
        &url,
        WorkerOptions::new()
            .processes(2)
            .pool("init")
            .initializer(remember, (7u64,)),
    )
}

fn an_initializer_runs_in_each_worker() {
    let Some(redis) = RedisServer::start("an_initializer_runs_in_each_worker") else {
        return;
    };
    let process = Process::new(initialized_machine, (redis.url(),));
    process.start().unwrap();
    let _machine = Machine(process);
    wait_for_workers(&redis, "init", 2);
    let pool = pool(&redis, "init");
    let seen: Vec<(u32, u64)> = (0..20)
        .map(|_| pool.apply_async(pid_and_initialized, ()).unwrap())
        .collect::<Vec<_>>()
        .into_iter()
        .map(|r| r.get_timeout(Duration::from_secs(20)).unwrap())
        .collect();
    assert!(seen.iter().all(|&(_, n)| n == 7), "{seen:?}");
    // A failing initializer fails the group's start, with its error.
    let begun = Instant::now();
    match worker(
        &redis.url(),
        WorkerOptions::new()
            .processes(2)
            .pool("init-fails")
            .initializer(remember, (0u64,)),
    ) {
        Err(Error::Spawn(m)) => assert!(m.contains("exit code"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(begun.elapsed() < Duration::from_secs(20));
}

fn pid_and_initialized() -> (u32, u64) {
    (std::process::id(), initialized())
}

fn bad_urls_and_options_are_errors() {
    for url in ["localhost:6379", "redis://", "redis://h:notaport"] {
        match Pool::distributed(url) {
            Err(Error::Redis(m)) => assert!(m.contains("redis://"), "{m}"),
            other => panic!("{url}: {other:?}"),
        }
    }
    // Nobody listens there: an error at once, not a hang.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let begun = Instant::now();
    assert!(matches!(
        Pool::distributed(&format!("redis://127.0.0.1:{port}")),
        Err(Error::Redis(_))
    ));
    assert!(begun.elapsed() < Duration::from_secs(6));
    assert!(matches!(
        worker("redis://127.0.0.1:1", WorkerOptions::new().processes(0)),
        Err(Error::Process(ProcessError::NoProcesses))
    ));
    assert!(matches!(
        Pool::builder()
            .redis("redis://127.0.0.1:1")
            .maxtasksperchild(3)
            .build(),
        Err(Error::Redis(_))
    ));
}
