//! What a server reports through the `metrics` facade when
//! [`ManagerOptions::metrics`](crate::ManagerOptions::metrics) is on:
//! calls, their errors and latency, objects and sessions, each labelled
//! with the server's address (several servers may share a process). The
//! handles are taken once, when the server is made, so the recorder
//! (a Prometheus exporter, say) must be installed in the server's process
//! before that; with the option off nothing is measured at all.
//!
//! | name | kind | what |
//! | --- | --- | --- |
//! | `managers_calls_total` | counter | method calls served |
//! | `managers_call_errors_total` | counter | calls that failed (the method's error or the server's) |
//! | `managers_call_seconds` | histogram | time from dispatch to the result, waits included |
//! | `managers_objects` | gauge | objects served now |
//! | `managers_sessions` | gauge | client sessions connected now |
//! | `managers_backend_errors_total` | counter | Redis exchanges that failed (a gateway; `backend/`) |
//! | `managers_backend_reconnects_total` | counter | connections to Redis made again (a gateway; `backend/`) |
#![forbid(unsafe_code)]

use std::time::Instant;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

/// A server's metric handles.
pub(crate) struct Metrics {
    calls: Counter,
    errors: Counter,
    latency: Histogram,
    objects: Gauge,
    sessions: Gauge,
}

impl Metrics {
    /// The handles of the server at `address`.
    pub(crate) fn new(address: &str) -> Metrics {
        let server = address.to_string();
        Metrics {
            calls: counter!("managers_calls_total", "server" => server.clone()),
            errors: counter!("managers_call_errors_total", "server" => server.clone()),
            latency: histogram!("managers_call_seconds", "server" => server.clone()),
            objects: gauge!("managers_objects", "server" => server.clone()),
            sessions: gauge!("managers_sessions", "server" => server),
        }
    }

    /// A call begun at `started` ended, well or not.
    pub(crate) fn call_done(&self, started: Instant, ok: bool) {
        self.calls.increment(1);
        if !ok {
            self.errors.increment(1);
        }
        self.latency.record(started.elapsed().as_secs_f64());
    }

    /// The counts of the object table now.
    pub(crate) fn table(&self, objects: usize, sessions: usize) {
        self.objects.set(objects as f64);
        self.sessions.set(sessions as f64);
    }
}
