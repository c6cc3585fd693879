//! Issue 12, tracing: the server reports its start and stop, refused
//! connections, objects created and freed, panicking methods and calls, as
//! `tracing` events (nothing is printed unless a subscriber is installed).
//! This binary installs one that records every event's message and fields.

mod common;

use std::sync::{Mutex, OnceLock};

use common::started_test_manager;
use managers::ManagerOptions;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Every event seen: "LEVEL message field=value ...".
fn events() -> &'static Mutex<Vec<String>> {
    static EVENTS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    EVENTS.get_or_init(|| Mutex::new(Vec::new()))
}

struct Recorder;

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?} {}", self.0);
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(String::new());
        event.record(&mut line);
        events()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{} {}", event.metadata().level(), line.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Whether an event of `level` containing `text` was recorded, waiting up
/// to 5 s for it (a server thread may report it after the client has seen
/// the outcome, as the handshake's refusal).
fn seen(level: &str, text: &str) -> bool {
    let start = std::time::Instant::now();
    loop {
        let found = events()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|e| e.starts_with(level) && e.contains(text));
        if found || start.elapsed() > std::time::Duration::from_secs(5) {
            return found;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn the_server_reports_what_happens() {
    tracing::subscriber::set_global_default(Recorder).unwrap();
    let manager = started_test_manager();
    assert!(seen("INFO", "manager server started"));

    let tool = manager.tool().unwrap();
    assert!(seen("DEBUG", "object created"));
    assert_eq!(tool.f().unwrap(), "f()");
    assert!(seen("TRACE", r#"method="f""#));
    assert!(tool.boom().is_err());
    assert!(seen("ERROR", "a served method panicked"));
    drop(tool);
    assert_eq!(manager.number_of_objects().unwrap(), 0);
    assert!(seen("DEBUG", "object freed"));

    let intruder = common::TestManager::with_options(
        ManagerOptions::new()
            .address(manager.address().unwrap())
            .authkey(b"not the key"),
    );
    assert!(intruder.connect().is_err());
    assert!(seen("DEBUG", "connection accepted"));
    assert!(seen("WARN", "authentication failed"));

    manager.shutdown().unwrap();
    assert!(seen("INFO", "manager server stopped"));
}
