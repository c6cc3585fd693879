//! The seed's queue client: `put MESSAGE` puts a message in the remote
//! queue; `get` takes one and prints it as its last line.
//!
//! ```text
//! cargo run --example queue_client -- [ADDRESS] put hello
//! cargo run --example queue_client -- [ADDRESS] get
//! ```

use managers::sync::QueueProxy;

#[path = "queue_server.rs"]
#[allow(dead_code)]
mod queue_server;

fn usage() -> ! {
    eprintln!("usage: queue_client [ADDRESS] put MESSAGE | queue_client [ADDRESS] get");
    std::process::exit(2);
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let address = match args.first() {
        Some(first) if first != "put" && first != "get" => args.remove(0),
        _ => queue_server::DEFAULT_ADDRESS.to_string(),
    };
    let run = || -> managers::Result<Option<String>> {
        let manager = queue_server::connect(&address)?;
        let queue: QueueProxy<String> = manager.get_queue()?.retype();
        match args.as_slice() {
            [command, message] if command == "put" => {
                queue.put(message.clone())?;
                Ok(None)
            }
            [command] if command == "get" => queue.get().map(Some),
            _ => usage(),
        }
    };
    match run() {
        Ok(Some(message)) => println!("{message}"),
        Ok(None) => println!("put"),
        Err(e) => {
            eprintln!("queue_client: {e}");
            std::process::exit(1);
        }
    }
}
