//! Serve a manager holding one shared counter over TCP until stopped.
//!
//! `cargo run --example remote_server -- 127.0.0.1:50000 KEY`
//! then, in other terminals, `cargo run --example remote_client -- 127.0.0.1:50000 KEY`.

use std::sync::atomic::{AtomicI64, Ordering};

use managers::{manager, shared, ManagerOptions};

/// A counter every client shares.
#[derive(Default)]
pub struct Counter {
    value: AtomicI64,
}

#[shared]
impl Counter {
    /// Add one and return the new value.
    pub fn increment(&self) -> i64 {
        self.value.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The current value.
    pub fn value(&self) -> i64 {
        self.value.load(Ordering::SeqCst)
    }
}

manager! {
    /// Hands every client the same counter (the seed's `get_queue` pattern).
    pub struct CounterManager {
        #[singleton]
        get_counter: Counter,
    }
}

fn main() -> managers::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(address), Some(key)) = (args.next(), args.next()) else {
        eprintln!("usage: remote_server ADDRESS AUTHKEY   (e.g. 127.0.0.1:50000 secret)");
        std::process::exit(2);
    };
    let options = ManagerOptions::new()
        .try_address(address.as_str())?
        .authkey(key);
    let server = CounterManager::with_options(options).get_server()?;
    println!("serving a shared counter on {}", server.address());
    server.serve_forever()
}
