//! The async tour (examples/async_tour.rs) runs to the end: it asserts
//! what it prints (a cancelled get takes nothing, a deadline passes as
//! `Error::Timeout`, the lock guard releases, nothing leaks).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::example;
use common::worker::Killed;

/// Run example `name` with `RUST_LOG` as given (unset: `None`), bounded
/// in time; its status, standard output and standard error.
fn run(name: &str, rust_log: Option<&str>) -> (std::process::ExitStatus, String, String) {
    let path = example(name);
    assert!(path.exists(), "{} was not built", path.display());
    let mut command = Command::new(&path);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    match rust_log {
        Some(filter) => command.env("RUST_LOG", filter),
        None => command.env_remove("RUST_LOG"),
    };
    let mut child = command.spawn().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("example {name} did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(status.success(), "{status}: {stdout}\n{stderr}");
    (status, stdout, stderr)
}

#[test]
fn the_async_tour_runs() {
    let (_, stdout, _) = run("async_tour", None);
    for line in [
        "sold one of the apples, 2 left",
        "the next get still receives: pears",
        "no order within 50ms",
        "objects left: 0",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
}

/// The README's `RUST_LOG=managers=debug cargo run --example logging`:
/// the server's and the client's events show, and only with `RUST_LOG`.
#[test]
fn the_logging_example_shows_events_with_rust_log() {
    const EVENTS: [&str; 6] = [
        "manager server started",
        "connection accepted",
        "object created",
        "object freed",
        "client connection opened",
        "async client connection opened",
    ];
    let (_, stdout, stderr) = run("logging", Some("managers=debug"));
    assert!(stdout.contains("objects left: 0"), "{stdout}");
    for event in EVENTS {
        assert!(stderr.contains(event), "{event:?} missing from:\n{stderr}");
    }
    assert!(stderr.contains("managers::server") && stderr.contains("managers::client"));
    assert!(
        !stderr.contains(" call "),
        "calls are at trace level:\n{stderr}"
    );
    // The server only: no client events.
    let (_, _, server) = run("logging", Some("managers::server=debug"));
    assert!(server.contains("object created") && !server.contains("client connection opened"));
    // Without RUST_LOG, nothing.
    let (_, stdout, quiet) = run("logging", None);
    assert!(stdout.contains("objects left: 0"));
    assert!(quiet.is_empty(), "printed without RUST_LOG:\n{quiet}");
}

/// `cargo run --example metrics`: a scraper reads the server's calls,
/// latency and objects over HTTP in Prometheus's text format.
#[test]
fn the_metrics_example_serves_prometheus_text() {
    use std::io::{BufRead, BufReader, Read, Write};
    let path = example("metrics");
    assert!(path.exists(), "{} was not built", path.display());
    let mut child = Command::new(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _child = Killed(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the example prints where its metrics are");
    let url = line.trim().strip_prefix("metrics at http://").unwrap();
    let (host, path) = url.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET /{path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    let calls: f64 = response
        .lines()
        .find(|l| l.starts_with("managers_calls_total{"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no managers_calls_total in:\n{response}"));
    assert!(calls >= 101.0, "100 sets and a get were served: {calls}");
    for name in [
        "managers_call_seconds",
        "managers_objects{",
        "managers_sessions{",
    ] {
        assert!(response.contains(name), "{name} missing from:\n{response}");
    }
    let objects = response
        .lines()
        .find(|l| l.starts_with("managers_objects{"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert_eq!(objects, Some(1.0), "the one dict:\n{response}");
}
