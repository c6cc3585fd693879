//! CPython interpreters for the interop tests: which are installed, and
//! running a script under one with a time limit.
//!
//! `python3` (3.11 on every machine here) is required: without it the
//! tests fail, saying so, unless `MANAGERS_SKIP_PYTHON=1` is set, when they
//! print that they skipped. 3.12 and 3.13 run when found (on `PATH` as
//! `python3.12`/`python3.13` or under `~/.pyenv/versions/`, or named in
//! `MANAGERS_PYTHON_3_12`/`_3_13`); a missing one is reported on stderr.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use managers::server::{Constructor, Registry};
use managers::sync::server::ManagedQueue;
use managers::sync::SyncManager;
use managers::{Address, BaseManager, ManagerOptions, Serializer};

/// One interpreter.
#[derive(Debug, Clone)]
pub struct Python {
    /// `3.11`, `3.12`, `3.13`.
    pub version: &'static str,
    /// The executable.
    pub path: PathBuf,
}

fn works(path: &Path, version: &str) -> bool {
    Command::new(path)
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .is_ok_and(|out| {
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == version
        })
}

fn find(version: &'static str) -> Option<Python> {
    let env = format!("MANAGERS_PYTHON_{}", version.replace('.', "_"));
    let mut candidates: Vec<PathBuf> = std::env::var_os(&env)
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if version == "3.11" {
        candidates.push("python3".into());
    }
    candidates.push(format!("python{version}").into());
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into());
    if let Ok(entries) = std::fs::read_dir(home.join(".pyenv/versions")) {
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for dir in dirs.into_iter().rev() {
            let name = dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if name == version || name.starts_with(&format!("{version}.")) {
                candidates.push(dir.join("bin/python"));
            }
        }
    }
    candidates
        .into_iter()
        .find(|path| works(path, version))
        .map(|path| Python { version, path })
}

/// Every interpreter found, 3.11 first. Fails (or skips, see the module
/// docs) without 3.11; reports the others' absence.
pub fn pythons() -> Vec<Python> {
    let mut found = Vec::new();
    for version in ["3.11", "3.12", "3.13"] {
        match find(version) {
            Some(python) => found.push(python),
            None if version == "3.11" => {
                if std::env::var_os("MANAGERS_SKIP_PYTHON").is_some() {
                    eprintln!("SKIPPED: no CPython 3.11 (python3) and MANAGERS_SKIP_PYTHON is set");
                    return Vec::new();
                }
                panic!(
                    "these tests need CPython 3.11 as `python3` (set MANAGERS_SKIP_PYTHON=1 to \
                     skip them, saying so)"
                );
            }
            None => eprintln!("NOT RUN under CPython {version}: no interpreter found"),
        }
    }
    found
}

/// The output of a finished script.
#[derive(Debug)]
pub struct Ran {
    /// Whether it exited 0.
    pub ok: bool,
    /// What it printed.
    pub stdout: String,
    /// Its errors.
    pub stderr: String,
}

/// Run `python script args...` with `stdin`, killing it after `limit`.
pub fn run(python: &Python, script: &Path, args: &[String], stdin: &[u8], limit: Duration) -> Ran {
    let mut child = Command::new(&python.path)
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{} {} timed out after {limit:?}\nstdout:\n{}\nstderr:\n{}",
                python.version,
                script.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A script of `tests/python/`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// Every interpreter loads each of `pickles` (our encoding) to a value
/// whose rendering is the expected text.
pub fn cpython_loads_our_pickles(pickles: &[(Vec<u8>, String)]) {
    let mut input = String::new();
    for (bytes, expected) in pickles {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        input.push_str(&format!("{hex}\t{expected}\n"));
    }
    for python in pythons() {
        let ran = run(
            &python,
            &script("load_pickles.py"),
            &[],
            input.as_bytes(),
            Duration::from_secs(60),
        );
        assert!(
            ran.ok,
            "CPython {} refused our pickles:\n{}{}",
            python.version, ran.stdout, ran.stderr
        );
        assert!(
            ran.stdout.contains(&format!("{} loaded", pickles.len())),
            "{}",
            ran.stdout
        );
    }
}

/// The authkey of [`PickleServer`].
pub const KEY: &str = "python interop key";

/// Every built-in, and the seed's `get_queue`.
pub fn registry() -> Registry {
    let mut registry = SyncManager::registry();
    registry.register::<ManagedQueue>(
        "get_queue",
        None,
        Some(Constructor::singleton(|| ManagedQueue::new(0))),
    );
    registry
}

/// A pickle-mode server on loopback TCP, on a thread; stopped on drop.
pub struct PickleServer {
    address: std::net::SocketAddr,
    stopper: managers::server::ServerStopper,
    thread: Option<std::thread::JoinHandle<managers::Result<()>>>,
}

impl PickleServer {
    /// Serve [`registry`] on a free loopback port.
    pub fn start() -> PickleServer {
        PickleServer::serving(registry)
    }

    /// Serve `registry` on a free loopback port.
    pub fn serving(
        registry: impl managers::process::Function<(), Output = Registry>,
    ) -> PickleServer {
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

    /// `HOST PORT KEY`, the arguments of the scripts.
    pub fn args(&self) -> Vec<String> {
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
