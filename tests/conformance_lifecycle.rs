//! CONFORMANCE.md "Manager lifecycle" and the process lines of "Custom
//! managers", plus the start-up guarantees of the core issue (a killed
//! parent leaves no server, a forgotten `bootstrap()` is reported).
//!
//! These need real server processes. The server is this test binary,
//! re-executed by `start()`, so the file has its own `main` (harness = false)
//! whose first line is `managers::bootstrap()`, as in any user program.
//!
//! Modes (environment variable `PROCESS_TEST_MODE`, for the helper processes
//! the tests start): `parent` starts a manager, prints its server pid and
//! waits to be killed; `forgot` starts a manager without having called
//! `bootstrap()`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::sync::{client_options, current_thread_runtime};
use common::worker::alive;
use common::{initializer, initializer_adding, TestManager, INITIALIZED};
use managers::{Error, ManagerOptions};

const MODE: &str = "PROCESS_TEST_MODE";

fn main() {
    if std::env::var(MODE).as_deref() != Ok("forgot") {
        managers::bootstrap();
    }
    match std::env::var(MODE).as_deref() {
        Ok("parent") => return parent_mode(),
        Ok("forgot") => return forgot_mode(),
        _ => {}
    }
    let tests: &[(&str, fn())] = named![
        server_runs_in_another_process,
        three_ways_to_run_a_manager,
        rapid_restart_on_the_same_address,
        proxy_call_after_shutdown_fails_clearly,
        initializer_runs_once_in_the_server,
        initializer_takes_arguments_and_can_fail,
        start_twice_and_start_after_shutdown_fail,
        killed_parent_leaves_no_server_behind,
        forgotten_bootstrap_is_reported,
        remote_tcp_server_in_another_process,
    ];
    #[cfg(feature = "tls")]
    let tests = &[tests, named![tls_server_in_another_process]].concat();
    common::harness::run(tests);
}

// Custom managers: "MathsClass: add(4, 3) == 7, mul(7, 8) == 56."
// Custom managers: "Exit status of the server process is clean (0) after shutdown."
// Lifecycle: "Proxies dropped => number_of_objects() == 0."
fn server_runs_in_another_process() {
    let manager = TestManager::new();
    manager.start().unwrap();
    let maths = manager.maths().unwrap();
    assert_eq!(maths.add(4, 3).unwrap(), 7);
    assert_eq!(maths.mul(7, 8).unwrap(), 56);
    let server_pid = maths.pid().unwrap();
    assert_ne!(server_pid, std::process::id());
    assert_eq!(manager.server_pid(), Some(server_pid));
    drop(maths);
    assert_eq!(manager.number_of_objects().unwrap(), 0);
    manager.shutdown().unwrap();
    let status = manager.server_exit_status().expect("an exit status");
    assert!(status.success(), "server exit status {status}");
    assert!(!alive(server_pid), "the server process is gone");
}

/// Issue 5: TLS for a started server; its identity travels to the child
/// over the lifeline with the rest of the settings.
#[cfg(feature = "tls")]
fn tls_server_in_another_process() {
    use managers::tls::{TlsClient, TlsServer};
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (generated.cert.pem(), generated.signing_key.serialize_pem());
    let manager = TestManager::with_options(
        ManagerOptions::new()
            .address("127.0.0.1:0")
            .tls_server(TlsServer::from_pem(cert.as_bytes(), key.as_bytes()).unwrap())
            .tls_client(TlsClient::from_ca_pem(cert.as_bytes(), "localhost").unwrap()),
    );
    manager.start().unwrap();
    assert_eq!(manager.maths().unwrap().add(20, 22).unwrap(), 42);
    let plain = TestManager::with_options(client_options(&manager));
    assert!(plain.connect().is_err(), "the child serves TLS only");
    manager.shutdown().unwrap();
}

// Lifecycle: "An initializer runs exactly once in the server process before serving."
fn initializer_runs_once_in_the_server() {
    let manager = TestManager::new();
    manager.start_with_initializer(initializer, ()).unwrap();
    let tool = manager.tool().unwrap();
    assert_eq!(tool.initialized().unwrap(), 1, "ran once in the server");
    let again = manager.tool().unwrap();
    assert_eq!(again.initialized().unwrap(), 1, "and only once");
    assert_eq!(INITIALIZED.load(Ordering::SeqCst), 0, "not in this process");
    drop((tool, again));
    manager.shutdown().unwrap();
}

// Issue 12: "start_with_initializer takes initializer arguments (Python's
// initargs)"; an initializer that fails makes start() fail with its error.
fn initializer_takes_arguments_and_can_fail() {
    let manager = TestManager::new();
    manager
        .start_with_initializer(initializer_adding, (5, String::new()))
        .unwrap();
    assert_eq!(manager.tool().unwrap().initialized().unwrap(), 5);
    manager.shutdown().unwrap();
    let failing = TestManager::new();
    let err = failing
        .start_with_initializer(initializer_adding, (0, "no database".to_string()))
        .unwrap_err();
    assert!(err.to_string().contains("initializer failed"), "{err}");
    assert!(failing.maths().is_err(), "nothing serves");
}

// Lifecycle: "start() twice fails; start after shutdown fails; shutdown twice is fine."
fn start_twice_and_start_after_shutdown_fail() {
    let manager = TestManager::new();
    manager.start().unwrap();
    assert!(matches!(manager.start(), Err(Error::AlreadyStarted)));
    manager.shutdown().unwrap();
    manager.shutdown().unwrap();
    assert!(matches!(manager.start(), Err(Error::ShutDown)));
}

// Custom managers: "The same three ways to run it: plain start/shutdown, as
// a scope, and connecting to an already started server."
fn three_ways_to_run_a_manager() {
    // 1. plain start and shutdown
    let plain = TestManager::new();
    plain.start().unwrap();
    assert_eq!(plain.maths().unwrap().mul(7, 8).unwrap(), 56);
    plain.shutdown().unwrap();
    assert!(plain.server_exit_status().unwrap().success());

    // 2. as a scope: the server goes when the manager does
    let pid = {
        let scoped = TestManager::new();
        scoped.start().unwrap();
        assert_eq!(scoped.maths().unwrap().add(4, 3).unwrap(), 7);
        scoped.server_pid().unwrap()
    };
    assert!(!alive(pid), "the scope's server outlived it");

    // 3. connect to a server someone else started
    let owner = TestManager::new();
    owner.start().unwrap();
    let client = TestManager::with_options(client_options(&owner));
    client.connect().unwrap();
    assert_eq!(client.maths().unwrap().add(40, 2).unwrap(), 42);
    assert_eq!(
        client.server_pid(),
        None,
        "a connected manager owns no process"
    );
    drop(client);
    owner.shutdown().unwrap();
}

// Lifecycle: "Rapid restart: shut down, then start a new manager on the same
// address (one address-in-use retry tolerated)."
fn rapid_restart_on_the_same_address() {
    let first = TestManager::with_options(ManagerOptions::new().address("127.0.0.1:0"));
    first.start().unwrap();
    let address = first.address().unwrap();
    assert_eq!(first.maths().unwrap().add(1, 1).unwrap(), 2);
    first.shutdown().unwrap();
    let start_again = || {
        let again = TestManager::with_options(ManagerOptions::new().address(address.clone()));
        again.start().map(|()| again)
    };
    let again = start_again()
        .or_else(|_| {
            std::thread::sleep(Duration::from_millis(200));
            start_again()
        })
        .unwrap();
    assert_eq!(again.address().unwrap(), address);
    assert_eq!(again.maths().unwrap().add(2, 2).unwrap(), 4);
    again.shutdown().unwrap();
}

// Lifecycle: "After shutdown, a proxy call fails with a clear error (not a hang)."
fn proxy_call_after_shutdown_fails_clearly() {
    let manager = TestManager::new();
    manager.start().unwrap();
    let maths = manager.maths().unwrap();
    let async_maths = maths.to_async();
    manager.shutdown().unwrap();
    let begun = Instant::now();
    let err = maths.add(1, 1).unwrap_err();
    assert!(matches!(err, Error::ServerGone { .. }), "{err}");
    let runtime = current_thread_runtime();
    let err = runtime.block_on(async_maths.add(1, 1)).unwrap_err();
    assert!(matches!(err, Error::ServerGone { .. }), "{err}");
    assert!(begun.elapsed() < Duration::from_secs(2));
}

fn parent_mode() {
    let manager = TestManager::new();
    manager.start().unwrap();
    println!("{}", manager.server_pid().unwrap());
    std::thread::sleep(Duration::from_secs(60));
}

fn killed_parent_leaves_no_server_behind() {
    let mut parent = Command::new(std::env::current_exe().unwrap())
        .env(MODE, "parent")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(parent.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let server_pid: u32 = line.trim().parse().expect("server pid");
    assert!(alive(server_pid));
    parent.kill().unwrap();
    parent.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while alive(server_pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !alive(server_pid),
        "server {server_pid} outlived its parent"
    );
}

fn forgot_mode() {
    common::harness::forgot_mode(|| TestManager::new().start());
}

fn forgotten_bootstrap_is_reported() {
    common::harness::assert_forgotten_bootstrap_reported(MODE);
}

// Remote manager: "A wrong authkey is refused with an authentication error
// on the client, and the server goes on serving others."
fn remote_tcp_server_in_another_process() {
    // Started as a process, reached over TCP loopback by address and key,
    // as a client on another machine would.
    let owner = TestManager::with_options(
        ManagerOptions::new()
            .address("127.0.0.1:0")
            .authkey(b"abracadabra"),
    );
    owner.start().unwrap();
    let address = owner.address().unwrap();
    let client = TestManager::with_options(
        ManagerOptions::new()
            .address(address.clone())
            .authkey(b"abracadabra"),
    );
    client.connect().unwrap();
    assert_eq!(client.maths().unwrap().add(1, 2).unwrap(), 3);
    let intruder =
        TestManager::with_options(ManagerOptions::new().address(address).authkey(b"nope"));
    assert!(matches!(intruder.connect(), Err(Error::Authentication(_))));
    assert_eq!(
        client.maths().unwrap().add(2, 2).unwrap(),
        4,
        "still serving"
    );
    owner.shutdown().unwrap();
}
