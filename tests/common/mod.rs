//! Shared types and helpers for the integration tests.
//!
//! - [`check`]: assertions and timing checks (`expect_sync_error`,
//!   `takes_about`, `eventually`).
//! - [`sync`]: managers started in a thread, client sessions, worker
//!   connections, proxies rebuilt from tokens, object and thread counts.
//! - [`worker`]: child worker processes (also included on its own, with
//!   `#[path]`, by tests that need nothing else from here).
//! - [`harness`]: the runner of test binaries with their own `main`.
//! - [`redis`]: a `redis-server` of a test's own, on loopback.
#![allow(dead_code)]

pub mod check;
pub mod harness;
pub mod redis;
pub mod sync;
// Some tests also include worker.rs on its own (`#[path]`) beside `mod
// common;`: one declaration allowed is enough for clippy.
#[allow(clippy::duplicate_mod)]
pub mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use managers::{manager, shared};

/// The example `name`, which `cargo test` builds next to the test
/// binaries.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile.join("examples").join(name)
}

/// How many times the initializer ran in this process.
pub static INITIALIZED: AtomicUsize = AtomicUsize::new(0);

/// An initializer for `start_with_initializer`.
pub fn initializer() {
    INITIALIZED.fetch_add(1, Ordering::SeqCst);
}

/// An initializer with arguments (Python's `initargs`): adds `n`, or fails
/// when `n` is 0.
pub fn initializer_adding(n: usize, why: String) -> Result<(), String> {
    if n == 0 {
        return Err(why);
    }
    INITIALIZED.fetch_add(n, Ordering::SeqCst);
    Ok(())
}
use serde::{Deserialize, Serialize};

/// The seed's MathsClass.
#[derive(Default)]
pub struct MathsClass;

#[shared(typeid = "Maths")]
impl MathsClass {
    /// x + y
    pub fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }

    /// x * y
    pub fn mul(&self, x: i64, y: i64) -> i64 {
        x * y
    }

    /// Which process serves this object.
    pub fn pid(&self) -> u32 {
        std::process::id()
    }
}

/// Python's ValueError, as a typed error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueError(pub String);

/// CPython's `_TestMyManager` Foo: `exposed = (f, _h)` and friends.
#[derive(Default)]
pub struct Tool {
    total: i64,
}

#[shared(exposed(f, add, fail, boom, sleep, square_of, maths, _h, initialized))]
impl Tool {
    /// Callable through the proxy.
    pub fn f(&self) -> String {
        "f()".into()
    }

    /// Public in Rust but outside the exposed set.
    pub fn g(&self) -> String {
        "g()".into()
    }

    /// Underscore names are exposed only when named, as in Python.
    pub fn _h(&self) -> String {
        "_h()".into()
    }

    /// Serialized mutation.
    pub fn add(&mut self, n: i64) -> i64 {
        self.total += n;
        self.total
    }

    /// Always fails with a typed error.
    pub fn fail(&self, why: String) -> Result<i64, ValueError> {
        Err(ValueError(why))
    }

    /// Panics.
    pub fn boom(&self) -> i64 {
        panic!("boom from the server")
    }

    /// An async method that waits.
    pub async fn sleep(&self, ms: u64) -> u64 {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        ms
    }

    /// The square of `n`, or an error for negative input.
    pub fn square_of(&self, n: i64) -> Result<i64, ValueError> {
        if n < 0 {
            return Err(ValueError(format!("{n} is negative")));
        }
        Ok(n * n)
    }

    /// How many times the initializer ran in the serving process.
    pub fn initialized(&self) -> usize {
        INITIALIZED.load(Ordering::SeqCst)
    }

    /// Returns another shared object: the caller gets a proxy.
    #[proxy]
    pub fn maths(&self) -> MathsClass {
        MathsClass
    }
}

manager! {
    /// The manager of the integration tests.
    pub struct TestManager {
        Maths: MathsClass,
        Tool: Tool,
        #[exposed(add)]
        AddOnly: MathsClass,
    }
}

/// A `TestManager` whose server runs in a thread of this process.
pub fn started_test_manager() -> TestManager {
    sync::started_in_thread(TestManager::new())
}
