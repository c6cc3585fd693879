//! Increment the shared counter of a running `remote_server` and print the
//! new value as the last line.
//!
//! `cargo run --example remote_client -- 127.0.0.1:50000 KEY`

use managers::ManagerOptions;

// The client is built from the same declarations as the server.
#[path = "remote_server.rs"]
#[allow(dead_code)]
mod server;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(address), Some(key)) = (args.next(), args.next()) else {
        eprintln!("usage: remote_client ADDRESS AUTHKEY");
        std::process::exit(2);
    };
    let run = || -> managers::Result<i64> {
        let options = ManagerOptions::new()
            .try_address(address.as_str())?
            .authkey(&key);
        let manager = server::CounterManager::with_options(options);
        manager.connect()?;
        let counter = manager.get_counter()?;
        counter.increment()
    };
    match run() {
        Ok(value) => println!("{value}"),
        Err(e) => {
            eprintln!("remote_client: {e}");
            std::process::exit(1);
        }
    }
}
