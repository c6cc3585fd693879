//! Child worker processes for tests, with the ordinary test harness.
//!
//! A worker is an `#[ignore]`d test function of the same test binary; the
//! parent test runs it in a child process with [`spawn_worker`], handing it
//! the manager's address (environment) and authkey (standard input, never
//! argv or the environment). The worker calls [`worker_context`] to learn
//! them and connects like any remote client.
//!
//! Also the process helpers around them: [`Killed`] (a child killed however
//! the test ends), [`await_line`] (a child's ready line, bounded) and
//! [`alive`].
//!
//! This file stands alone (no `super::`), so tests may include it with
//! `#[path = "common/worker.rs"]` as well as through `common::worker`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use managers::Address;

const ADDRESS: &str = "MANAGERS_TEST_WORKER_ADDRESS";
const ARGUMENT: &str = "MANAGERS_TEST_WORKER_ARG";

/// What a worker process was given.
pub struct WorkerContext {
    /// The manager's address.
    pub address: Address,
    /// The manager's authkey.
    pub authkey: Vec<u8>,
    /// A free-form argument from the parent.
    pub argument: String,
}

/// Start `test_name` (an `#[ignore]`d test of this binary) in a child
/// process as a worker of the manager at `address`.
pub fn spawn_worker(test_name: &str, address: &Address, authkey: &[u8], argument: &str) -> Child {
    let mut child = Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            test_name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ADDRESS, address.to_string())
        .env(ARGUMENT, argument)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn worker");
    let hex: String = authkey.iter().map(|b| format!("{b:02x}")).collect();
    let mut stdin = child.stdin.take().expect("worker stdin");
    stdin.write_all(hex.as_bytes()).expect("send authkey");
    child
}

/// Wait for a worker, at most `limit`, and assert it succeeded. Kills it on
/// timeout so no test leaves a process behind.
pub fn expect_success(mut child: Child, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait worker") {
            let mut out = String::new();
            if let Some(mut stdout) = child.stdout.take() {
                let _ = stdout.read_to_string(&mut out);
            }
            assert!(status.success(), "worker failed ({status}): {out}");
            assert!(out.contains("1 passed"), "worker ran no test: {out}");
            return out;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("worker did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A child process that is killed (and reaped) however the test ends.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait, at most `limit`, for `child` to print a line containing `marker`
/// (its stdout is read, and drained, by a thread from now on).
pub fn await_line(child: &mut Child, marker: &str, limit: Duration) {
    let stdout = child.stdout.take().expect("worker stdout");
    let (tx, rx) = mpsc::channel();
    let wanted = marker.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains(&wanted) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("the worker never printed {marker:?}"));
}

/// Whether process `pid` runs (Linux `/proc`).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie (state Z) has exited; only its parent has not reaped it.
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The worker's instructions. Panics when the worker test is run directly
/// (`--ignored`), so it is never mistaken for a passing test.
pub fn worker_context() -> WorkerContext {
    let address = std::env::var(ADDRESS)
        .expect("this #[ignore]d test is a worker: it runs only inside spawn_worker");
    let mut hex = String::new();
    std::io::stdin()
        .read_to_string(&mut hex)
        .expect("read authkey");
    let authkey = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex authkey"))
        .collect();
    WorkerContext {
        address: address.parse().expect("worker address"),
        authkey,
        argument: std::env::var(ARGUMENT).unwrap_or_default(),
    }
}

/// Tokens as a worker argument: `typeid:id` pairs separated by `,`.
pub fn tokens_arg(tokens: &[&managers::proxy::Token]) -> String {
    tokens
        .iter()
        .map(|t| format!("{}:{}", t.typeid, t.id))
        .collect::<Vec<_>>()
        .join(",")
}

/// The tokens a parent passed with [`tokens_arg`], on the server at
/// `address`.
pub fn tokens_from_arg(address: &Address, arg: &str) -> Vec<managers::proxy::Token> {
    arg.split(',')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (typeid, id) = part.rsplit_once(':').expect("typeid:id");
            managers::proxy::Token {
                typeid: typeid.to_string(),
                address: address.clone(),
                id: id.parse().expect("object id"),
            }
        })
        .collect()
}
