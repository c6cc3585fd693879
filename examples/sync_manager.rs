//! A tour of SyncManager: a dict, a list, a queue, a lock and a barrier
//! shared by several worker processes, each printing what it did.
//!
//! `cargo run --example sync_manager`

use managers::sync::{BarrierProxy, DictProxy, ListProxy, LockProxy, QueueProxy, SyncManager};
use managers::Process;

const WORKERS: usize = 4;
const INCREMENTS: i64 = 50;

/// What a worker reports: its number, pid, barrier index.
type Report = (usize, u32, usize);

/// The shared objects every worker gets (as Python passes proxies in a
/// Process's args).
type Shared = (
    DictProxy<String, i64>,
    ListProxy<String>,
    QueueProxy<Report>,
    LockProxy,
    BarrierProxy,
);

fn main() -> managers::Result<()> {
    managers::bootstrap();
    let manager = SyncManager::new();
    manager.start()?;
    println!(
        "server process {} started by {}",
        manager.server_pid().unwrap_or(0),
        std::process::id()
    );
    let tally: DictProxy<String, i64> = manager.dict()?;
    let log: ListProxy<String> = manager.list()?;
    let reports: QueueProxy<Report> = manager.queue(0)?;
    let lock = manager.lock()?;
    let barrier = manager.barrier(WORKERS)?;
    let shared: Shared = (tally, log, reports, lock, barrier);

    let workers: Vec<Process> = (0..WORKERS)
        .map(|n| Process::new(worker, (n, shared.clone())))
        .collect();
    for w in &workers {
        w.start()?;
    }
    let (tally, log, reports, _, _) = &shared;
    for _ in 0..WORKERS {
        let (n, pid, index) = reports.get()?;
        println!("worker {n} (pid {pid}) passed the barrier with index {index}");
    }
    for w in &workers {
        w.join()?;
    }
    println!(
        "total = {} ({} workers x {INCREMENTS} locked increments)",
        tally.get("total")?,
        WORKERS
    );
    let mut entries = log.to_vec()?;
    entries.sort();
    for entry in entries {
        println!("log: {entry}");
    }
    drop(shared);
    println!(
        "objects left on the server: {}",
        manager.number_of_objects()?
    );
    manager.shutdown()
}

fn worker(n: usize, (tally, log, reports, lock, barrier): Shared) -> managers::Result<()> {
    let pid = std::process::id();
    log.append(format!("worker {n} (pid {pid}) is waiting at the barrier"))?;
    let index = barrier.wait(None)?;
    for _ in 0..INCREMENTS {
        // Read-modify-write under the shared lock: no update is lost.
        let _held = lock.guard()?;
        let total = tally.get_or("total", 0)?;
        tally.set("total".into(), total + 1)?;
    }
    log.append(format!(
        "worker {n} (pid {pid}) did {INCREMENTS} increments"
    ))?;
    reports.put((n, pid, index))?;
    Ok(())
}
