//! The runner of test binaries with their own `main` (`harness = false`):
//! those that start child processes of this very binary, whose first line
//! of `main` must be `managers::bootstrap()`, as in any user program.
//!
//! It follows libtest's conventions: positional arguments select tests by
//! name, `--skip NAME` leaves them out, other flags are ignored. Each test
//! runs in turn, a panic fails it, and the process exits non-zero if any
//! failed.

/// `(name, function)` pairs for [`run`], each test named as written:
/// `named![first_test, second_test]`.
#[macro_export]
macro_rules! named {
    ($($test:ident),* $(,)?) => { &[$((stringify!($test), $test as fn())),*] };
}

/// Run `tests` (name, function) as selected by the command line.
pub fn run(tests: &[(&str, fn())]) {
    let (mut wanted, mut skipped) = (Vec::new(), Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--skip" {
            skipped.extend(args.next());
        } else if !arg.starts_with('-') {
            wanted.push(arg);
        }
    }
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in tests {
        let selected = wanted.is_empty() || wanted.iter().any(|w| name.contains(w.as_str()));
        if !selected || skipped.iter().any(|s| name.contains(s.as_str())) {
            continue;
        }
        match std::panic::catch_unwind(test) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

/// The `forgot` mode of such a binary: `start` something (a manager, a
/// process) without `bootstrap()` having run; exit 4 with the error on
/// stderr, 0 if it (wrongly) started.
pub fn forgot_mode(start: impl FnOnce() -> managers::Result<()>) {
    match start() {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(4);
        }
    }
}

/// Run this binary with `variable=forgot` (see [`forgot_mode`]) and assert
/// the missing `bootstrap()` is reported, promptly.
pub fn assert_forgotten_bootstrap_reported(variable: &str) {
    let begun = std::time::Instant::now();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .env(variable, "forgot")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("bootstrap()"), "{stderr}");
    assert!(begun.elapsed() < std::time::Duration::from_secs(20));
}
