//! A tour of SyncManager: a dict, a list, a queue, a lock and a barrier
//! shared by several worker processes, each printing what it did.
//!
//! `cargo run --example sync_manager`

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use managers::sync::{BarrierProxy, DictProxy, ListProxy, LockProxy, QueueProxy, SyncManager};
use managers::{ManagerOptions, Proxy, Token};

const WORKERS: usize = 4;
const INCREMENTS: i64 = 50;

/// What a worker reports: its number, pid, barrier index.
type Report = (usize, u32, usize);

fn main() -> managers::Result<()> {
    managers::bootstrap();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        return worker(&args[1..]);
    }

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

    // Workers get the address in argv, the authkey on stdin (never in argv
    // or the environment) and each object's token as text.
    let tokens = [
        tally.raw().token(),
        log.raw().token(),
        reports.raw().token(),
        lock.raw().token(),
        barrier.raw().token(),
    ]
    .map(Token::to_text);
    let address = manager.address().expect("started").to_string();
    let mut children = Vec::new();
    for n in 0..WORKERS {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--worker")
            .arg(n.to_string())
            .arg(&address)
            .args(&tokens)
            .stdin(Stdio::piped())
            .spawn()?;
        let key: String = managers::default_authkey()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(key.as_bytes())?;
        children.push(child);
    }

    for _ in 0..WORKERS {
        let (n, pid, index) = reports.get()?;
        println!("worker {n} (pid {pid}) passed the barrier with index {index}");
    }
    for mut child in children {
        child.wait()?;
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
    drop((tally, log, reports, lock, barrier));
    println!(
        "objects left on the server: {}",
        manager.number_of_objects()?
    );
    manager.shutdown()
}

fn worker(args: &[String]) -> managers::Result<()> {
    let [n, address, tally, log, reports, lock, barrier] = args else {
        eprintln!("worker: bad arguments");
        std::process::exit(2);
    };
    let mut key = String::new();
    std::io::stdin().read_to_string(&mut key)?;
    let key: Vec<u8> = (0..key.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&key[i..i + 2], 16).ok())
        .collect();
    let manager = SyncManager::with_options(
        ManagerOptions::new()
            .try_address(address.as_str())?
            .authkey(key),
    );
    manager.connect()?;
    let tally: DictProxy<String, i64> = manager.proxy_from_token(&Token::from_text(tally)?)?;
    let log: ListProxy<String> = manager.proxy_from_token(&Token::from_text(log)?)?;
    let reports: QueueProxy<Report> = manager.proxy_from_token(&Token::from_text(reports)?)?;
    let lock: LockProxy = manager.proxy_from_token(&Token::from_text(lock)?)?;
    let barrier: BarrierProxy = manager.proxy_from_token(&Token::from_text(barrier)?)?;
    let n: usize = n.parse().expect("worker number");
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
