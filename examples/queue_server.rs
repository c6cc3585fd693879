//! The seed's remote queue server: one queue, registered as `get_queue`,
//! served on 127.0.0.1:50000 with authkey `abracadabra`.
//!
//! ```text
//! cargo run --example queue_server                 # or: -- 127.0.0.1:50001
//! cargo run --example queue_client -- put hello    # in another terminal
//! cargo run --example queue_client -- get          # prints hello
//! ```
//!
//! It also starts a local worker process that uses the same queue.

use managers::sync::server::ManagedQueue;
use managers::sync::QueueProxy;
use managers::{manager, ManagerOptions};

/// The authkey of the seed.
pub const AUTHKEY: &[u8] = b"abracadabra";
/// The seed's address.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:50000";

manager! {
    /// Serves one queue: every `get_queue()` returns the same object, as the
    /// seed's `register('get_queue', callable=lambda: queue)`.
    pub struct QueueManager {
        #[singleton]
        get_queue: ManagedQueue = || ManagedQueue::new(0),
    }
}

/// Connect to the queue server at `address`.
pub fn connect(address: &str) -> managers::Result<QueueManager> {
    let options = ManagerOptions::new().try_address(address)?.authkey(AUTHKEY);
    let manager = QueueManager::with_options(options);
    manager.connect()?;
    Ok(manager)
}

fn local_worker(address: &str) -> managers::Result<()> {
    let manager = connect(address)?;
    let queue: QueueProxy<String> = manager.get_queue()?.retype();
    // Use the queue without disturbing what clients put in it: put a
    // marker and take it back at once.
    let marker = format!("local worker {}", std::process::id());
    queue.put(marker.clone())?;
    let mut seen = Vec::new();
    loop {
        let item = queue.get()?;
        if item == marker {
            break;
        }
        seen.push(item);
    }
    for item in seen {
        queue.put(item)?;
    }
    println!("local worker (pid {}) used the queue", std::process::id());
    Ok(())
}

fn main() -> managers::Result<()> {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--local-worker") {
        let address = args.next().unwrap_or_else(|| DEFAULT_ADDRESS.to_string());
        return local_worker(&address);
    }
    let address = first.unwrap_or_else(|| DEFAULT_ADDRESS.to_string());
    let options = ManagerOptions::new()
        .try_address(address.as_str())?
        .authkey(AUTHKEY);
    let server = QueueManager::with_options(options).get_server()?;
    println!("queue server on {} (authkey abracadabra)", server.address());

    // The server listens already: a local worker can connect while we serve.
    let worker = std::process::Command::new(std::env::current_exe()?)
        .args(["--local-worker", &server.address().to_string()])
        .spawn()?;
    std::thread::spawn(move || {
        let mut worker = worker;
        let _ = worker.wait();
    });
    server.serve_forever()
}
