//! The pickle-mode server of the `py.*` rows of bench/compare (issue 10):
//! a `SyncManager` that CPython clients use unchanged, on a free loopback
//! port with the authkey given as the only argument. Prints
//! `serving HOST:PORT`, then serves until killed.

use managers::sync::SyncManager;
use managers::{Address, BaseManager, ManagerOptions, Serializer};

fn main() -> managers::Result<()> {
    let key = std::env::args().nth(1).unwrap_or_else(|| "bench".into());
    let options = ManagerOptions::new()
        .address("127.0.0.1:0")
        .authkey(key)
        .serializer(Serializer::Pickle);
    let server = BaseManager::new(SyncManager::registry, options).get_server()?;
    let Address::Tcp(address) = server.address().clone() else {
        unreachable!("a TCP address")
    };
    println!("serving {address}");
    server.serve_forever()
}
