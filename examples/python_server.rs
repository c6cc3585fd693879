//! A `SyncManager` that CPython clients use unchanged: pickle mode on
//! HOST:PORT with authkey KEY, registering the seed's `get_queue` (one
//! shared queue handed to every caller) beside the built-ins. Serves until
//! killed.
//!
//! `cargo run --example python_server -- 127.0.0.1:50000 KEY`, then in
//! Python:
//!
//! ```python
//! from multiprocessing.managers import SyncManager
//! SyncManager.register('get_queue')
//! m = SyncManager(address=('127.0.0.1', 50000), authkey=b'KEY')
//! m.connect()
//! d = m.dict(); d['x'] = 1; print(d['x'])
//! m.get_queue().put('hello')
//! ```

use managers::server::{Constructor, Registry};
use managers::sync::server::ManagedQueue;
use managers::sync::SyncManager;
use managers::{BaseManager, ManagerOptions, Serializer};

/// Every built-in, and `get_queue`.
fn registry() -> Registry {
    let mut registry = SyncManager::registry();
    registry.register::<ManagedQueue>(
        "get_queue",
        None,
        Some(Constructor::singleton(|| ManagedQueue::new(0))),
    );
    registry
}

fn main() -> managers::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(address), Some(key)) = (args.next(), args.next()) else {
        eprintln!("usage: python_server HOST:PORT AUTHKEY   (e.g. 127.0.0.1:50000 secret)");
        std::process::exit(2);
    };
    let options = ManagerOptions::new()
        .try_address(address.as_str())?
        .authkey(key)
        .serializer(Serializer::Pickle);
    let server = BaseManager::new(registry, options).get_server()?;
    println!("serving CPython clients on {}", server.address());
    server.serve_forever()
}
