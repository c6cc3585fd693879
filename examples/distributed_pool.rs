//! A `Pool` across machines: workers anywhere pull its tasks from Redis.
//!
//! ```text
//! cargo run --example distributed_pool -- worker REDIS_URL
//! cargo run --example distributed_pool -- map REDIS_URL N
//! ```
//!
//! `worker` runs a group of workers (one per CPU) on this machine until it
//! is killed; start it on as many machines as you like, all with the same
//! Redis. `map` squares `0..N` through whatever workers are connected,
//! prints the exact sum of the squares, then how many calls each worker
//! answered. A worker killed in the middle loses nothing: another one runs
//! its chunks again, and each result is taken once.

use managers::process::{worker, WorkerOptions};
use managers::Pool;

fn square(x: u64) -> u128 {
    u128::from(x) * u128::from(x)
}

const USAGE: &str = "usage: distributed_pool worker REDIS_URL | distributed_pool map REDIS_URL N";

fn main() -> managers::Result<()> {
    managers::bootstrap();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["worker", url] => worker(url, WorkerOptions::new()),
        ["map", url, n] => {
            let Ok(n) = n.parse::<u64>() else {
                eprintln!("N must be a whole number, not {n:?}\n{USAGE}");
                std::process::exit(2);
            };
            let pool = Pool::distributed(url)?;
            if pool.processes() == 0 {
                eprintln!(
                    "no worker is connected yet: waiting for `distributed_pool worker {url}`"
                );
            }
            let squares = pool.map(square, 0..n, None)?;
            println!("sum of squares: {}", squares.iter().sum::<u128>());
            for worker in pool.calls_by_worker() {
                println!("worker {}: {} tasks", worker.pid, worker.calls);
            }
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}
