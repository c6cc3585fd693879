//! CPython clients against our server in pickle mode: every built-in from
//! `tests/python/client_suite.py` (nested proxies, a proxy in a child
//! process, a wrong key, a forbidden global), under each CPython found,
//! and a killed CPython client's references released.

mod python_common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use python_common::{pythons, run, script, PickleServer};

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
