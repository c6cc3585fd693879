//! Assertions and timing checks shared by the integration tests.

use std::time::{Duration, Instant};

use managers::{Error, SyncError};

/// Python's `TIMEOUT1` style short timeout.
pub const SHORT: Duration = Duration::from_millis(100);

/// Assert `result` is exactly the `SyncError` `expected`.
pub fn expect_sync_error<T: std::fmt::Debug>(result: managers::Result<T>, expected: SyncError) {
    match result {
        Err(Error::Sync(e)) if e == expected => {}
        other => panic!("expected {expected:?}, got {other:?}"),
    }
}

/// Run `f` and check it took about `expected` (generous bounds).
pub fn takes_about<T>(expected: Duration, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let result = f();
    let took = start.elapsed();
    assert!(took >= expected.mul_f64(0.9), "returned after {took:?}");
    assert!(
        took < expected + Duration::from_secs(2),
        "returned after {took:?}"
    );
    result
}

/// Poll `f` until it returns true, at most `within`.
pub fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}
