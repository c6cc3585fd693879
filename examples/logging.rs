//! Watch the runtime at work: the server's and the client's `tracing`
//! events on standard error, chosen by `RUST_LOG`.
//!
//! ```sh
//! RUST_LOG=managers=debug cargo run --example logging
//! ```
//!
//! `managers=debug` shows the server starting and stopping, connections
//! accepted, objects created and freed, and the client's connections;
//! `managers=trace` adds every call; `managers::server=info` keeps the
//! server's start and stop only. Without `RUST_LOG` the library prints
//! nothing: it only emits events, and this program's subscriber
//! (`tracing-subscriber`'s `fmt` with an `EnvFilter`) decides what shows.

use managers::sync::SyncManager;
use tracing_subscriber::EnvFilter;

fn main() -> managers::Result<()> {
    // Reads RUST_LOG; unset or unreadable, nothing from us is shown.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    // The server in a thread of this process, so its events come out here
    // beside the client's.
    let manager = SyncManager::new();
    manager.start_in_thread()?;

    // A blocking call: one client connection, an object created.
    let stock = manager.dict::<String, u32>()?;
    stock.set("apples".into(), 3)?;
    println!("apples: {:?}", stock.get(&"apples".to_string())?);

    // An async call: the session's async connection.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let orders = manager.queue_async::<String>(0).await?;
        orders.put("pears".into()).await?;
        println!("order: {}", orders.get().await?);
        managers::Result::<()>::Ok(())
    })?;

    // Dropped proxies: the objects are freed.
    drop(stock);
    println!("objects left: {}", manager.number_of_objects()?);
    manager.shutdown()?;
    Ok(())
}
