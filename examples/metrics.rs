//! A manager's server reporting through the `metrics` facade
//! (`ManagerOptions::metrics`) into a Prometheus exporter, whose text is
//! served over HTTP for a scraper.
//!
//! `cargo run --example metrics` makes a few calls, prints
//! `metrics at http://127.0.0.1:PORT/metrics` and serves that page until
//! killed (`curl` it: `managers_calls_total`, `managers_call_seconds`,
//! `managers_objects`, `managers_sessions`; a gateway adds
//! `managers_backend_errors_total` and `managers_backend_reconnects_total`).
//! The recorder is installed in the server's process, here this one (the
//! server runs in a thread); for a server process, install it in an
//! initializer (`start_with_initializer`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use managers::sync::SyncManager;
use managers::ManagerOptions;
use metrics_exporter_prometheus::PrometheusBuilder;

fn main() -> managers::Result<()> {
    let prometheus = PrometheusBuilder::new()
        .install_recorder()
        .expect("the first recorder of this process");
    let manager = SyncManager::with_options(ManagerOptions::new().metrics(true));
    manager.start_in_thread()?;
    let scores = manager.dict::<String, u64>()?;
    for i in 0..100 {
        scores.set(format!("player{i}"), i)?;
    }
    assert_eq!(scores.get("player7")?, 7);

    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("metrics at http://{}/metrics", listener.local_addr()?);
    for stream in listener.incoming() {
        let mut stream = stream?;
        // The request's head, whatever it asks: every path is the page.
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        while reader.read_line(&mut line)? > 2 {
            line.clear();
        }
        let body = prometheus.render();
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
    }
    Ok(())
}
