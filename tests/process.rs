//! CONFORMANCE.md "Processes and shared memory", the Process lines (CPython
//! _TestProcess), and issue 8's lifecycle tests: exit codes, joins with a
//! timeout, names, daemons, a killed parent, grandchildren.
//!
//! Children are this test binary re-executed, so the file has its own
//! `main` (harness = false) whose first line is `managers::bootstrap()`.
//! Every test ends its children however it ends: a `Process` dropped while
//! the thread panics kills its child, helper processes are `Killed`.
//!
//! Modes (environment variable `PROCESS_TEST_MODE`, for helper processes):
//! `daemon-parent` starts a daemon child, prints its pid and returns from
//! main; `killed-parent` starts an ordinary and a detached child, prints
//! both pids and waits to be killed; `forgot` starts a process without
//! having called `bootstrap()`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::check::eventually;
use common::worker::{alive, Killed};
use managers::{active_children, current_process, Error, Process, ProcessError};

const MODE: &str = "PROCESS_TEST_MODE";

fn main() {
    if std::env::var(MODE).as_deref() == Ok("forgot") {
        return forgot_mode();
    }
    managers::bootstrap();
    match std::env::var(MODE).as_deref() {
        Ok("daemon-parent") => return daemon_parent_mode(),
        Ok("killed-parent") => return killed_parent_mode(),
        _ => {}
    }
    common::harness::run(named![
        before_start_nothing_runs,
        start_twice_fails,
        exit_codes_follow_python,
        join_timeout_returns_with_the_child_alive,
        names_count_up_and_the_child_sees_its_own,
        arguments_arrive_whole,
        a_closure_is_refused_and_a_fn_item_runs,
        grandchildren_run_and_are_named_after_their_parent,
        active_children_lists_the_running_ones,
        close_refuses_a_running_process,
        dropping_a_handle_joins_its_child,
        daemon_children_end_with_their_parent,
        a_killed_parent_leaves_no_child_unless_detached,
        a_forgotten_bootstrap_is_reported,
    ]);
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn noop() {}

fn exit_with(code: i32) {
    std::process::exit(code);
}

fn panics(message: String) {
    panic!("{message}");
}

fn fails() -> Result<(), String> {
    Err("the target failed".into())
}

fn expect_process_error<T: std::fmt::Debug>(result: managers::Result<T>, expected: ProcessError) {
    match result {
        Err(Error::Process(e)) if e == expected => {}
        other => panic!("expected {expected:?}, got {other:?}"),
    }
}

// "before start, exitcode is None and is_alive() false; pid is None;
// join() before start fails"
fn before_start_nothing_runs() {
    let p = Process::new(noop, ());
    assert_eq!(p.exitcode(), None);
    assert!(!p.is_alive());
    assert_eq!(p.pid(), None);
    expect_process_error(p.join(), ProcessError::NotStarted);
    expect_process_error(
        p.join_timeout(Duration::from_millis(1)),
        ProcessError::NotStarted,
    );
    expect_process_error(p.terminate(), ProcessError::NotStarted);
}

// "a second start() fails"
fn start_twice_fails() {
    let p = Process::new(noop, ());
    p.start().unwrap();
    expect_process_error(p.start(), ProcessError::StartedTwice);
    p.join().unwrap();
    expect_process_error(p.start(), ProcessError::StartedTwice);
    assert_eq!(p.exitcode(), Some(0));
}

// "after a target that returns, exitcode == 0; a target that exits with n
// gives n; a panicking target gives 1; terminate() gives -SIGTERM, kill()
// gives -SIGKILL; join() may be called many times"
fn exit_codes_follow_python() {
    let returns = Process::new(noop, ());
    let exits = Process::new(exit_with, (7,));
    let panicking = Process::new(panics, ("on purpose".to_string(),));
    let failing = Process::new(fails, ());
    for p in [&returns, &exits, &panicking, &failing] {
        p.start().unwrap();
    }
    for (p, code) in [(&returns, 0), (&exits, 7), (&panicking, 1), (&failing, 1)] {
        p.join().unwrap();
        p.join().unwrap();
        assert_eq!(p.exitcode(), Some(code), "{p:?}");
        assert!(!p.is_alive());
    }
    let terminated = Process::new(sleep_ms, (60_000,));
    let killed = Process::new(sleep_ms, (60_000,));
    terminated.start().unwrap();
    killed.start().unwrap();
    assert!(terminated.is_alive() && killed.is_alive());
    terminated.terminate().unwrap();
    killed.kill().unwrap();
    terminated.join().unwrap();
    killed.join().unwrap();
    assert_eq!(terminated.exitcode(), Some(-libc::SIGTERM));
    assert_eq!(killed.exitcode(), Some(-libc::SIGKILL));
    // Signalling an ended process does nothing.
    killed.kill().unwrap();
    assert_eq!(killed.exitcode(), Some(-libc::SIGKILL));
}

// "join(timeout) on a sleeping child returns after about the timeout with
// the child still alive"
fn join_timeout_returns_with_the_child_alive() {
    let p = Process::new(sleep_ms, (60_000,));
    p.start().unwrap();
    let begun = Instant::now();
    assert!(!p.join_timeout(Duration::from_millis(200)).unwrap());
    let waited = begun.elapsed();
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    assert!(p.is_alive());
    assert_eq!(p.exitcode(), None);
    p.kill().unwrap();
    assert!(p.join_timeout(Duration::from_secs(10)).unwrap());
    assert_eq!(p.exitcode(), Some(-libc::SIGKILL));
}

fn expect_identity(name: String, authkey: Vec<u8>, parent: u32, daemon: bool) {
    let me = current_process();
    assert_eq!(me.name(), name);
    assert_eq!(me.authkey(), &authkey[..]);
    assert_eq!(me.parent_pid(), Some(parent));
    assert_eq!(me.is_daemon(), daemon);
    assert_ne!(me.pid(), parent);
}

fn number(name: &str) -> u32 {
    name.strip_prefix("Process-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("`{name}` is not a default name"))
}

// "The child sees its own name (default Process-N, N counting up), the
// parent's authkey, and its arguments"
fn names_count_up_and_the_child_sees_its_own() {
    assert_eq!(current_process().name(), "MainProcess");
    assert_eq!(current_process().parent_pid(), None);
    let probe = Process::new(noop, ());
    let next = format!("Process-{}", number(probe.name()) + 1);
    let authkey = current_process().authkey().to_vec();
    let me = std::process::id();
    let p = Process::new(expect_identity, (next.clone(), authkey.clone(), me, false));
    assert_eq!(p.name(), next);
    let named = Process::new(
        expect_identity,
        ("worker".to_string(), authkey.clone(), me, true),
    )
    .with_name("worker")
    .with_daemon(true);
    assert_eq!((named.name(), named.is_daemon()), ("worker", true));
    for p in [&p, &named] {
        p.start().unwrap();
        p.join().unwrap();
        assert_eq!(p.exitcode(), Some(0), "{p:?}");
    }
    // A child that sees another name fails.
    let wrong = Process::new(expect_identity, ("nobody".to_string(), authkey, me, false));
    wrong.start().unwrap();
    wrong.join().unwrap();
    assert_eq!(wrong.exitcode(), Some(1));
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Job {
    id: u64,
    tags: Vec<String>,
    weights: BTreeMap<String, f64>,
}

fn check_arguments(text: String, numbers: Vec<i32>, maybe: Option<f64>, job: Job, bytes: Vec<u8>) {
    assert_eq!(text, "héllo");
    assert_eq!(numbers, (0..1000).collect::<Vec<_>>());
    assert_eq!(maybe, Some(2.25));
    assert_eq!(job, sample_job());
    assert_eq!(bytes.len(), 1 << 20);
    assert!(bytes.iter().enumerate().all(|(i, b)| *b == i as u8));
}

fn sample_job() -> Job {
    Job {
        id: 42,
        tags: vec!["a".into(), "b".into()],
        weights: [("x".to_string(), 0.5), ("y".to_string(), -1.0)].into(),
    }
}

// "... and its arguments"
fn arguments_arrive_whole() {
    let bytes: Vec<u8> = (0..1 << 20).map(|i| i as u8).collect();
    let p = Process::new(
        check_arguments,
        (
            "héllo".to_string(),
            (0..1000).collect::<Vec<i32>>(),
            Some(2.25),
            sample_job(),
            bytes,
        ),
    );
    p.start().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(0));
}

fn product_is_15(a: i32, b: i32) -> Result<(), i32> {
    if a * b == 15 {
        Ok(())
    } else {
        Err(a * b)
    }
}

// Issue 17: only fn items cross; a closure, even one that captures
// nothing, is refused at start (it could hold zero-sized captured values).
fn a_closure_is_refused_and_a_fn_item_runs() {
    let check = |a: i32, b: i32| if a * b == 15 { Ok(()) } else { Err(a * b) };
    let closure = Process::new(check, (3, 5));
    match closure.start() {
        Err(Error::Process(ProcessError::Closure(name))) => {
            assert!(name.contains("{{closure}}"), "{name}")
        }
        other => panic!("a closure target started: {other:?}"),
    }
    let right = Process::new(product_is_15, (3, 5));
    let wrong = Process::new(product_is_15, (2, 2));
    for p in [&right, &wrong] {
        p.start().unwrap();
        p.join().unwrap();
    }
    assert_eq!(right.exitcode(), Some(0));
    assert_eq!(wrong.exitcode(), Some(1));
}

fn grandparent(code: i32) -> Result<(), String> {
    let me = current_process().name().to_string();
    let child = Process::new(expect_grandchild_name, (format!("{me}:1"),));
    child.start().map_err(|e| e.to_string())?;
    child.join().map_err(|e| e.to_string())?;
    match child.exitcode() {
        Some(0) => std::process::exit(code),
        other => Err(format!("the grandchild ended with {other:?}")),
    }
}

fn expect_grandchild_name(name: String) {
    assert_eq!(current_process().name(), name);
}

// "Everything here works from a Process started by a Process"
fn grandchildren_run_and_are_named_after_their_parent() {
    let p = Process::new(grandparent, (33,));
    p.start().unwrap();
    assert!(p.join_timeout(Duration::from_secs(30)).unwrap());
    assert_eq!(p.exitcode(), Some(33));
}

// "active_children() lists started, unjoined children"
fn active_children_lists_the_running_ones() {
    let p = Process::new(sleep_ms, (60_000,)).with_name("sleeper");
    assert!(!active_children().iter().any(|c| c.name == "sleeper"));
    p.start().unwrap();
    let pid = p.pid().unwrap();
    let listed = active_children();
    assert!(
        listed.iter().any(|c| c.name == "sleeper" && c.pid == pid),
        "{listed:?}"
    );
    p.kill().unwrap();
    p.join().unwrap();
    assert!(!active_children().iter().any(|c| c.pid == pid));
}

// Python's close(): "ValueError if the process is still running".
fn close_refuses_a_running_process() {
    let p = Process::new(sleep_ms, (60_000,));
    p.close()
        .unwrap_or_else(|e| panic!("an unstarted process closes: {e}"));
    expect_process_error(p.start(), ProcessError::Closed);
    let p = Process::new(sleep_ms, (60_000,));
    p.start().unwrap();
    expect_process_error(p.close(), ProcessError::StillRunning);
    p.kill().unwrap();
    p.join().unwrap();
    p.close().unwrap();
    expect_process_error(p.join(), ProcessError::Closed);
}

// Issue 8: "non-daemon children are joined when the parent's Process
// handles drop".
fn dropping_a_handle_joins_its_child() {
    let p = Process::new(sleep_ms, (300,));
    p.start().unwrap();
    let pid = p.pid().unwrap();
    let begun = Instant::now();
    drop(p);
    assert!(
        begun.elapsed() >= Duration::from_millis(100),
        "the drop waited"
    );
    assert!(!alive(pid));
}

fn daemon_parent_mode() {
    let p = Process::new(sleep_ms, (60_000,)).with_daemon(true);
    p.start().unwrap();
    println!("{}", p.pid().unwrap());
    // Returning drops the handle (a daemon is not joined) and ends this
    // process: the daemon must end with it.
}

/// Run this binary in `mode`, read the pids it prints on its first line.
fn helper(mode: &str) -> (Killed, Vec<u32>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(MODE, mode)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let helper = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let pids = line
        .split_whitespace()
        .map(|p| p.parse().expect("a pid"))
        .collect();
    (helper, pids)
}

// "a daemon child is terminated when its parent exits"
fn daemon_children_end_with_their_parent() {
    let (mut helper, pids) = helper("daemon-parent");
    let daemon = pids[0];
    let status = helper.0.wait().unwrap();
    assert!(status.success(), "the parent returned from main: {status}");
    eventually(
        "the daemon ends with its parent",
        Duration::from_secs(5),
        || !alive(daemon),
    );
}

fn killed_parent_mode() {
    let ordinary = Process::new(sleep_ms, (60_000,));
    let detached = Process::new(sleep_ms, (60_000,));
    ordinary.start().unwrap();
    detached.start().unwrap();
    println!("{} {}", ordinary.pid().unwrap(), detached.pid().unwrap());
    detached.detach().unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

// "A child is never left running when its parent dies by SIGKILL unless
// the user asked for that."
fn a_killed_parent_leaves_no_child_unless_detached() {
    let (mut helper, pids) = helper("killed-parent");
    let (ordinary, detached) = (pids[0], pids[1]);
    // The detached child outlives the parent; end it however this test ends.
    struct KillPid(u32);
    impl Drop for KillPid {
        fn drop(&mut self) {
            // SAFETY: kill(2) on a pid this test started (reparented to
            // init by now, so nobody else reaps and reuses it meanwhile).
            unsafe {
                libc::kill(self.0 as libc::pid_t, libc::SIGKILL);
            }
        }
    }
    let _detached_guard = KillPid(detached);
    // The parent detaches after printing: give it the moment it needs.
    std::thread::sleep(Duration::from_millis(200));
    assert!(alive(ordinary) && alive(detached));
    helper.0.kill().unwrap();
    helper.0.wait().unwrap();
    eventually(
        "the ordinary child ends with its killed parent",
        Duration::from_secs(5),
        || !alive(ordinary),
    );
    assert!(alive(detached), "the detached child goes on");
}

fn forgot_mode() {
    common::harness::forgot_mode(|| Process::new(noop, ()).start());
}

// Issue 8 (as for managers): "a forgotten bootstrap() is detected and
// reported, never a fork bomb".
fn a_forgotten_bootstrap_is_reported() {
    common::harness::assert_forgotten_bootstrap_reported(MODE);
}
