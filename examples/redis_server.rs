//! A gateway: a `SyncManager` in pickle mode on HOST:PORT with authkey
//! KEY whose built-ins keep their state in the Redis at REDIS_URL, so any
//! number of these, on any machines, serve the same objects. It registers
//! the singletons `get_queue` and `get_dict` (one queue and one dict for
//! every gateway) beside the built-ins. Serves until killed.
//!
//! `cargo run --example redis_server -- 127.0.0.1:50000 KEY redis://127.0.0.1:6379`,
//! then in Python (through this gateway or any other):
//!
//! ```python
//! from multiprocessing.managers import SyncManager
//! SyncManager.register('get_queue'); SyncManager.register('get_dict')
//! m = SyncManager(address=('127.0.0.1', 50000), authkey=b'KEY')
//! m.connect()
//! m.get_dict()['x'] = 1
//! m.get_queue().put('hello')
//! ```
//!
//! Served from Redis: every built-in but `Pool`, which is refused with an
//! error that says so.

use managers::server::{Constructor, Registry};
use managers::sync::server::{Dict, ManagedQueue};
use managers::sync::SyncManager;
use managers::{BaseManager, ManagerOptions, Serializer};

/// Every built-in, `get_queue` and `get_dict`.
fn registry() -> Registry {
    let mut registry = SyncManager::registry();
    registry.register::<ManagedQueue>(
        "get_queue",
        None,
        Some(Constructor::singleton(|| ManagedQueue::new(0))),
    );
    registry.register::<Dict>(
        "get_dict",
        None,
        Some(Constructor::singleton(Dict::default)),
    );
    registry
}

fn main() -> managers::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(address), Some(key), Some(redis)) = (args.next(), args.next(), args.next()) else {
        eprintln!(
            "usage: redis_server HOST:PORT AUTHKEY REDIS_URL   \
             (e.g. 127.0.0.1:50000 secret redis://127.0.0.1:6379)"
        );
        std::process::exit(2);
    };
    let options = ManagerOptions::new()
        .try_address(address.as_str())?
        .authkey(key)
        .serializer(Serializer::Pickle)
        .redis(redis);
    let server = BaseManager::new(registry, options).get_server()?;
    println!("serving {}", server.address());
    server.serve_forever()
}
