//! CPython's own manager tests (`test._test_multiprocessing`: the
//! `WithManagerTest*` classes, `TestSyncManagerTypes`, and the plain
//! classes using `Manager()`) against our pickle-mode server, through the
//! shim `tests/python/cpython_manager_tests.py`, under every CPython found
//! (the versions run at the same time: their tests mostly wait).
//!
//! CI runs the bounded form (`--quick`: every family, without the tests
//! that sleep on purpose for seconds); `MANAGERS_CPYTHON_FULL=1` runs
//! every test (INTEROP.md has the figures of the full run).

mod python_common;

use std::time::Duration;

use python_common::{pythons, run, script, PickleServer};

/// What one interpreter's run reported (the shim's JSON summary, read
/// without a JSON dependency: its counters are flat integers).
#[derive(Debug)]
struct Summary {
    run: u64,
    passed: u64,
    failed: u64,
    errors: u64,
    skipped: u64,
    refused: u64,
}

fn counter(json: &str, name: &str) -> u64 {
    let key = format!("\"{name}\": ");
    let at = json
        .find(&key)
        .unwrap_or_else(|| panic!("no {name:?} in the summary {json}"))
        + key.len();
    json[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("{name:?} is not a count in {json}"))
}

fn summary(stdout: &str) -> Summary {
    let json = stdout.lines().last().unwrap_or_default();
    Summary {
        run: counter(json, "run"),
        passed: counter(json, "passed"),
        failed: counter(json, "failed"),
        errors: counter(json, "errors"),
        skipped: counter(json, "skipped"),
        refused: counter(json, "refused"),
    }
}

#[test]
fn cpython_manager_tests_pass_against_our_server() {
    let server = PickleServer::start();
    let full = std::env::var_os("MANAGERS_CPYTHON_FULL").is_some();
    let mut args = server.args();
    if !full {
        args.push("--quick".into());
    }
    let limit = Duration::from_secs(if full { 600 } else { 150 });
    let runs: Vec<_> = pythons()
        .into_iter()
        .map(|python| {
            let args = args.clone();
            std::thread::spawn(move || {
                let ran = run(
                    &python,
                    &script("cpython_manager_tests.py"),
                    &args,
                    b"",
                    limit,
                );
                (python, ran)
            })
        })
        .collect();
    for handle in runs {
        let (python, ran) = handle.join().expect("a runner thread");
        let figures = summary(&ran.stdout);
        let failures: String = ran
            .stderr
            .lines()
            .filter(|line| line.starts_with("FAIL:") || line.starts_with("ERROR:"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            ran.ok && figures.failed == 0 && figures.errors == 0,
            "CPython {}: {figures:?}\n{failures}\n{}",
            python.version,
            ran.stderr
        );
        // The shim ran the tests (a broken import would run none) and the
        // one test asking the server to call a Python function was
        // refused the way it should be.
        assert!(
            figures.passed >= 35,
            "CPython {}: {figures:?}",
            python.version
        );
        assert_eq!(figures.refused, 1, "CPython {}", python.version);
        assert_eq!(
            figures.run,
            figures.passed + figures.skipped + figures.refused,
            "CPython {}: every test run is accounted for",
            python.version
        );
        eprintln!(
            "CPython {} ({}): {figures:?}",
            python.version,
            if full { "full" } else { "quick" }
        );
    }
}
