//! CPython clients against our server in pickle mode: every built-in from
//! `tests/python/client_suite.py` (nested proxies, a proxy in a child
//! process, a wrong key, a forbidden global), under each CPython found,
//! and a killed CPython client's references released.

mod python_common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use managers::sync::server::Queue;
use managers::sync::SyncManager;
use managers::{Address, BaseManager, Constructor, ManagerOptions, Registry, Serializer};
use python_common::{pythons, run, script};

const KEY: &str = "python interop key";

fn registry() -> Registry {
    let mut registry = SyncManager::registry();
    registry.register::<Queue>(
        "get_queue",
        None,
        Some(Constructor::singleton(|| Queue::new(0))),
    );
    registry
}

/// A pickle-mode server on loopback TCP, on a thread; stopped on drop.
struct PickleServer {
    address: std::net::SocketAddr,
    stopper: managers::ServerStopper,
    thread: Option<std::thread::JoinHandle<managers::Result<()>>>,
}

impl PickleServer {
    fn start() -> PickleServer {
        let options = ManagerOptions::new()
            .address("127.0.0.1:0")
            .authkey(KEY)
            .serializer(Serializer::Pickle);
        let server = BaseManager::new(registry, options).get_server().unwrap();
        let Address::Tcp(address) = server.address().clone() else {
            unreachable!("a TCP address")
        };
        let stopper = server.stopper();
        let thread = Some(std::thread::spawn(move || server.serve_forever()));
        PickleServer {
            address,
            stopper,
            thread,
        }
    }

    fn args(&self) -> Vec<String> {
        vec![
            self.address.ip().to_string(),
            self.address.port().to_string(),
            KEY.to_string(),
        ]
    }
}

impl Drop for PickleServer {
    fn drop(&mut self) {
        self.stopper.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn cpython_clients_use_every_builtin() {
    let server = PickleServer::start();
    for python in pythons() {
        let ran = run(
            &python,
            &script("client_suite.py"),
            &server.args(),
            b"",
            Duration::from_secs(90),
        );
        assert!(
            ran.ok && ran.stdout.starts_with("ok "),
            "CPython {}:\n{}\n{}",
            python.version,
            ran.stdout,
            ran.stderr
        );
        eprintln!("CPython {}: {}", python.version, ran.stdout.trim());
    }
}

#[test]
fn a_killed_cpython_client_releases_its_references() {
    let server = PickleServer::start();
    let Some(python) = pythons().into_iter().next() else {
        return;
    };
    let count = || -> usize {
        let ran = run(
            &python,
            &script("count_objects.py"),
            &server.args(),
            b"",
            Duration::from_secs(30),
        );
        assert!(ran.ok, "{}", ran.stderr);
        ran.stdout.trim().parse().expect("a count")
    };
    let baseline = count();
    let mut holder = Command::new(&python.path)
        .arg(script("hold_objects.py"))
        .args(server.args())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start python");
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let held: usize = line
        .strip_prefix("ready ")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| {
            let _ = holder.kill();
            panic!("the holder said {line:?}")
        });
    assert_eq!(held, baseline + 3, "three objects held");
    holder.kill().unwrap();
    holder.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = count();
        if now == baseline {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {now} objects, baseline {baseline}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
