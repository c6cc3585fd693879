//! Processes, pipes, queues and shared memory (issue 8) on the workloads of
//! `bench/compare`, in release mode: ours, or with `--raw` the physical
//! limit of each (the same bytes through bare system calls).
//!
//! `procs [--raw] [--quick] [--reps N] [--only op,op]` prints one JSON
//! object `{op: median}` in the units of bench/compare. Children are this
//! binary re-executed (`bootstrap()` first in `main`), every one joined
//! before the next workload; `--exit-now` is the raw start-up's child.
//!
//! - `process.start_join` (ms): start a process running a function that
//!   returns, and join it. Raw: spawn this binary, which exits at once, and
//!   wait for it.
//! - `pipe.roundtrip` (us): a u64 to a child and back through a `Pipe`.
//!   Raw: the same frame bytes over a socket pair, `write` and `read`.
//! - `pipe.1mib` (MB/s): 1 MiB to a child and back (`send_bytes`);
//!   2 MiB moved per round trip.
//! - `mpqueue.transfer` (items/s): a child puts u64s on a `Queue`, this
//!   process gets them (1 producer, 1 consumer). Raw: one `write` per
//!   frame into a pipe, one `read` per frame out of it, no lock.
//!   `mpqueue.transfer.pipe` (not a table row): the CPython design
//!   measured with our parts, a one-way pipe under a process-shared write
//!   lock and read lock, to choose the mechanism by measurement.
//! - `shm.value.locked_increment` (increments/s): two children each add 1
//!   to one shared `Value` under its lock. Raw: two threads `fetch_add`
//!   one atomic (the cache line's limit, shared the same way by processes).
//!
//! Issue 9's pool rows (ours only, no raw): `pool.map.small` (calls/s:
//! `map` of `x*x` over 100,000 ints, default chunksize, a pool of 2),
//! `pool.map.chunk1` (calls/s: 10,000 calls, chunksize 1),
//! `pool.apply_async.roundtrip` (us: one `apply_async(...).get()` at a
//! time) and `pool.start` (ms: a pool of 2 built and its first result
//! received, then terminated), and `pool.tiny.1000` (ms: `map` of 1,000
//! tiny tasks, default chunksize, the pool started already).
//!
//! Issue 21's distributed pool rows (ours only): the same workloads
//! through a `redis-server` started here on a loopback port and a group of
//! 2 workers (`process::worker`) in a child: `dpool.map.small`,
//! `dpool.map.chunk1`, `dpool.tiny.1000` (ms: Ray's complaint, 1,000 tiny
//! tasks end to end). Without `redis-server` they are null (a note on
//! stderr).
//!
//! Issue 20's gateway rows, through a `redis-server` started here:
//! `redis.dict.set` / `redis.dict.get` (us: one call at a time through a
//! gateway, a `SyncManager` server process with `ManagerOptions::redis`;
//! raw: the same `HSET` / `HGET` from a blocking client on one TCP
//! connection, the engine's floor), `redis.queue.transfer` (items/s: 2
//! producer and 2 consumer processes moving 20,000 items through a queue
//! of one gateway) and `redis.queue.transfer.2gw` (the same, the clients
//! split over two gateways).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::time::Instant;

use managers::process::{Connection, Lock, Pipe, Queue, RecvOnly, SendOnly, SharedValue};
use managers::{Pool, Process, Result};
use managers_bench::{median_of, quick_and_reps, wants};

type Results = BTreeMap<&'static str, Option<f64>>;

struct Counts {
    reps: usize,
    map_items: u64,
    chunk1_items: u64,
    applies: u64,
    pool_starts: u64,
    starts: u64,
    pings: u64,
    big: u64,
    items: u64,
    increments: u64,
}

impl Counts {
    fn from_args() -> Counts {
        let (quick, reps) = quick_and_reps();
        let mut counts = if quick {
            Counts {
                reps: 3,
                starts: 20,
                pings: 10_000,
                big: 30,
                items: 200_000,
                increments: 500_000,
                map_items: 100_000,
                chunk1_items: 10_000,
                applies: 2_000,
                pool_starts: 5,
            }
        } else {
            Counts {
                reps: 5,
                starts: 100,
                pings: 50_000,
                big: 150,
                items: 1_000_000,
                increments: 2_000_000,
                map_items: 100_000,
                chunk1_items: 10_000,
                applies: 10_000,
                pool_starts: 20,
            }
        };
        if let Some(reps) = reps {
            counts.reps = reps;
        }
        counts
    }
}

fn noop() {}

fn echo_u64(conn: Connection) -> Result<()> {
    loop {
        match conn.recv::<u64>() {
            Ok(n) => conn.send(&n)?,
            Err(managers::Error::Eof) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

fn echo_bytes(conn: Connection) -> Result<()> {
    loop {
        match conn.recv_bytes() {
            Ok(b) => conn.send_bytes(&b)?,
            Err(managers::Error::Eof) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// The connection's descriptor as a plain file, for the raw loops.
fn file_of<D>(conn: &Connection<D>) -> std::fs::File {
    std::fs::File::from(conn.as_fd().try_clone_to_owned().expect("dup"))
}

/// Raw echo: frames of `len` bytes back as they came.
fn raw_echo(conn: Connection, len: usize) -> Result<()> {
    let mut file = file_of(&conn);
    drop(conn);
    let mut buf = vec![0u8; len];
    while file.read_exact(&mut buf).is_ok() {
        file.write_all(&buf)?;
    }
    Ok(())
}

fn produce(go: Connection<RecvOnly>, queue: Queue<u64>, n: u64) -> Result<()> {
    go.recv::<u8>()?;
    for i in 0..n {
        queue.put(i)?;
    }
    Ok(())
}

/// The CPython design with our parts: a one-way pipe, producers writing
/// under a process-shared write lock (consumers read under a read lock).
fn produce_pipe(
    go: Connection<RecvOnly>,
    writer: Connection<SendOnly>,
    write_lock: Lock,
    n: u64,
) -> Result<()> {
    go.recv::<u8>()?;
    for i in 0..n {
        let _held = write_lock.guard()?;
        writer.send(&i)?;
    }
    Ok(())
}

fn raw_produce(go: Connection<RecvOnly>, writer: Connection<SendOnly>, n: u64) -> Result<()> {
    go.recv::<u8>()?;
    let mut file = file_of(&writer);
    let frame = [8u8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    for _ in 0..n {
        file.write_all(&frame)?;
    }
    Ok(())
}

fn increment(go: Queue<u8>, counter: SharedValue<u64>, n: u64) -> Result<()> {
    go.get()?;
    for _ in 0..n {
        let held = counter.lock()?;
        held.set(held.get() + 1);
    }
    Ok(())
}

fn start_join(counts: &Counts, raw: bool) -> f64 {
    median_of(counts.reps, || {
        let begun = Instant::now();
        for _ in 0..counts.starts {
            if raw {
                let status = std::process::Command::new("/proc/self/exe")
                    .arg("--exit-now")
                    .status()
                    .expect("spawn");
                assert!(status.success());
            } else {
                let p = Process::new(noop, ());
                p.start().expect("start");
                p.join().expect("join");
                assert_eq!(p.exitcode(), Some(0));
            }
        }
        begun.elapsed().as_secs_f64() * 1e3 / counts.starts as f64
    })
}

fn pipe_roundtrip(counts: &Counts, raw: bool) -> Result<f64> {
    let (ours, theirs) = Pipe::duplex()?;
    let frame_len = 4 + managers::wire::encode(&(u64::MAX / 3))?.len();
    let p = if raw {
        Process::new(raw_echo, (theirs, frame_len))
    } else {
        Process::new(echo_u64, (theirs,))
    };
    p.start()?;
    let mut file = file_of(&ours);
    let mut frame = vec![0u8; frame_len];
    frame[0] = (frame_len - 4) as u8;
    let figure = median_of(counts.reps, || {
        let begun = Instant::now();
        for i in 0..counts.pings {
            if raw {
                file.write_all(&frame).unwrap();
                file.read_exact(&mut frame).unwrap();
            } else {
                ours.send(&(u64::MAX / 3 + i)).unwrap();
                let back: u64 = ours.recv().unwrap();
                debug_assert_eq!(back, u64::MAX / 3 + i);
            }
        }
        begun.elapsed().as_secs_f64() * 1e6 / counts.pings as f64
    });
    drop((ours, file));
    p.join()?;
    Ok(figure)
}

fn pipe_1mib(counts: &Counts, raw: bool) -> Result<f64> {
    const MIB: usize = 1 << 20;
    let (ours, theirs) = Pipe::duplex()?;
    let p = if raw {
        Process::new(raw_echo, (theirs, MIB))
    } else {
        Process::new(echo_bytes, (theirs,))
    };
    p.start()?;
    let file = file_of(&ours);
    let mut buf = vec![7u8; MIB];
    let figure = median_of(counts.reps, || {
        let begun = Instant::now();
        for _ in 0..counts.big {
            if raw {
                // The echo writes back only once all of it arrived, so the
                // write must not wait for the read: a thread writes.
                std::thread::scope(|s| {
                    let mut writer = &file;
                    let out = &buf;
                    s.spawn(move || writer.write_all(out).unwrap());
                    let mut back = vec![0u8; MIB];
                    (&file).read_exact(&mut back).unwrap();
                });
            } else {
                ours.send_bytes(&buf).unwrap();
                buf = ours.recv_bytes().unwrap();
            }
        }
        (2 * MIB) as f64 * counts.big as f64 / begun.elapsed().as_secs_f64() / 1e6
    });
    drop((ours, file));
    p.join()?;
    Ok(figure)
}

/// Items per second got by this process from a producer child started
/// by `start` (which is told to go through the returned connection).
fn transfer(counts: &Counts, kind: &str) -> Result<f64> {
    Ok(median_of(counts.reps, || {
        let (go_rx, go_tx) = Pipe::simplex().unwrap();
        let n = counts.items;
        let (p, get): (Process, Box<dyn FnMut() -> u64>) = match kind {
            "ours" => {
                let queue = Queue::new(0).unwrap();
                let p = Process::new(produce, (go_rx, queue.clone(), n));
                (p, Box::new(move || queue.get().unwrap()))
            }
            "pipe" => {
                let (reader, writer) = Pipe::simplex().unwrap();
                let (read_lock, write_lock) = (Lock::new().unwrap(), Lock::new().unwrap());
                let p = Process::new(produce_pipe, (go_rx, writer, write_lock, n));
                (
                    p,
                    Box::new(move || {
                        let _held = read_lock.guard().unwrap();
                        reader.recv().unwrap()
                    }),
                )
            }
            _ => {
                let (reader, writer) = Pipe::simplex().unwrap();
                let p = Process::new(raw_produce, (go_rx, writer, n));
                let mut file = std::io::BufReader::with_capacity(1 << 16, file_of(&reader));
                let mut frame = [0u8; 12];
                (
                    p,
                    Box::new(move || {
                        file.read_exact(&mut frame).unwrap();
                        frame[4] as u64
                    }),
                )
            }
        };
        p.start().unwrap();
        let mut get = get;
        let begun = Instant::now();
        go_tx.send(&1u8).unwrap();
        let mut last = 0;
        for _ in 0..n {
            last = get();
        }
        let rate = n as f64 / begun.elapsed().as_secs_f64();
        assert!(kind == "raw" || last == n - 1);
        p.join().unwrap();
        rate
    }))
}

fn locked_increments(counts: &Counts, raw: bool) -> Result<f64> {
    let per = counts.increments / 2;
    if raw {
        // The limit: two threads `fetch_add` one atomic, the cache line
        // bouncing between the cores as it would between two processes.
        return Ok(median_of(counts.reps, || {
            let word = std::sync::atomic::AtomicU64::new(0);
            let begun = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        for _ in 0..per {
                            word.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                        }
                    });
                }
            });
            (2 * per) as f64 / begun.elapsed().as_secs_f64()
        }));
    }
    Ok(median_of(counts.reps, || {
        let go = Queue::new(0).unwrap();
        let counter = SharedValue::new(0u64).unwrap();
        let workers: Vec<Process> = (0..2)
            .map(|_| Process::new(increment, (go.clone(), counter.clone(), per)))
            .collect();
        for w in &workers {
            w.start().unwrap();
        }
        let begun = Instant::now();
        go.put(1).unwrap();
        go.put(1).unwrap();
        for w in &workers {
            w.join().unwrap();
            assert_eq!(w.exitcode(), Some(0));
        }
        let rate = (2 * per) as f64 / begun.elapsed().as_secs_f64();
        assert_eq!(counter.value().unwrap(), 2 * per, "no lost update");
        rate
    }))
}

fn square(x: i64) -> i64 {
    x * x
}

fn pool_rows(counts: &Counts, only: &Option<Vec<String>>, results: &mut Results) -> Result<()> {
    let pool = Pool::new(2)?;
    if wants(only, "pool.map.small") {
        results.insert(
            "pool.map.small",
            Some(map_rate(counts, &pool, counts.map_items, None)),
        );
    }
    if wants(only, "pool.map.chunk1") {
        let rate = map_rate(counts, &pool, counts.chunk1_items, Some(1));
        results.insert("pool.map.chunk1", Some(rate));
    }
    if wants(only, "pool.apply_async.roundtrip") {
        let us = median_of(counts.reps, || {
            let begun = Instant::now();
            for i in 0..counts.applies as i64 {
                let r = pool
                    .apply_async(square, (i,))
                    .expect("apply")
                    .get()
                    .expect("get");
                debug_assert_eq!(r, i * i);
            }
            begun.elapsed().as_secs_f64() * 1e6 / counts.applies as f64
        });
        results.insert("pool.apply_async.roundtrip", Some(us));
    }
    if wants(only, "pool.tiny.1000") {
        results.insert("pool.tiny.1000", Some(tiny_1000(counts, &pool)));
    }
    drop(pool);
    if wants(only, "pool.start") {
        let ms = median_of(counts.reps, || {
            let begun = Instant::now();
            for _ in 0..counts.pool_starts {
                let pool = Pool::new(2).expect("pool");
                assert_eq!(pool.apply(square, (3,)).expect("apply"), 9);
                drop(pool);
            }
            begun.elapsed().as_secs_f64() * 1e3 / counts.pool_starts as f64
        });
        results.insert("pool.start", Some(ms));
    }
    Ok(())
}

/// Calls/s of a `map` of `x*x` over `0..n` on `pool` (checked).
fn map_rate(counts: &Counts, pool: &Pool, n: u64, chunksize: Option<usize>) -> f64 {
    let n = n as i64;
    median_of(counts.reps, || {
        let begun = Instant::now();
        let squares = pool.map(square, 0..n, chunksize).expect("map");
        let rate = n as f64 / begun.elapsed().as_secs_f64();
        assert_eq!(squares.len(), n as usize);
        assert_eq!(squares[n as usize - 1], (n - 1) * (n - 1));
        rate
    })
}

/// Milliseconds for a `map` of 1,000 tiny tasks on `pool`.
fn tiny_1000(counts: &Counts, pool: &Pool) -> f64 {
    median_of(counts.reps, || {
        let begun = Instant::now();
        let squares = pool.map(square, 0..1000i64, None).expect("map");
        assert_eq!(squares[999], 999 * 999);
        begun.elapsed().as_secs_f64() * 1e3
    })
}

/// A group of distributed pool workers (a "machine") for the dpool rows.
fn dpool_workers(url: String) -> Result<()> {
    managers::process::worker(&url, managers::process::WorkerOptions::new().processes(2))
}

/// A `redis-server` of this run's own on a loopback port, killed on drop.
struct RedisServer(std::process::Child);

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `redis-server` of this run's own and its URL, once it answers; `None`
/// (a note on stderr) if it is not installed.
fn start_redis(rows: &str) -> Result<Option<(RedisServer, String)>> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let server = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn();
    let Ok(server) = server else {
        eprintln!("procs: redis-server is not installed: the {rows} rows are null");
        return Ok(None);
    };
    let server = RedisServer(server);
    let begun = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(begun.elapsed().as_secs() < 10, "redis-server did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(Some((server, format!("redis://127.0.0.1:{port}"))))
}

/// Issue 21's rows: the pool workloads through Redis and 2 workers.
fn dpool_rows(counts: &Counts, only: &Option<Vec<String>>, results: &mut Results) -> Result<()> {
    let Some((_server, url)) = start_redis("dpool")? else {
        return Ok(());
    };
    let begun = Instant::now();
    let pool = loop {
        match Pool::distributed(&url) {
            Ok(pool) => break pool,
            Err(_) if begun.elapsed().as_secs() < 10 => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => return Err(e),
        }
    };
    let workers = Process::new(dpool_workers, (url.clone(),));
    workers.start()?;
    while pool.processes() < 2 {
        assert!(begun.elapsed().as_secs() < 20, "the workers never came");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if wants(only, "dpool.map.small") {
        let rate = map_rate(counts, &pool, counts.map_items, None);
        results.insert("dpool.map.small", Some(rate));
    }
    if wants(only, "dpool.map.chunk1") {
        let rate = map_rate(counts, &pool, counts.chunk1_items, Some(1));
        results.insert("dpool.map.chunk1", Some(rate));
    }
    if wants(only, "dpool.tiny.1000") {
        results.insert("dpool.tiny.1000", Some(tiny_1000(counts, &pool)));
    }
    drop(pool);
    let _ = workers.kill();
    let _ = workers.join();
    Ok(())
}

/// Issue 20's rows (see the top of this file).
mod gateway {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    use managers::proxy::Token;
    use managers::sync::{QueueProxy, SyncManager};
    use managers::{ManagerOptions, Process, Proxy, Result};
    use managers_bench::{median_of, per_op_us, wants};

    use super::{start_redis, Counts, Results};

    /// Items moved by `redis.queue.transfer`.
    const ITEMS: u64 = 20_000;

    fn gateway(url: &str) -> Result<SyncManager> {
        let manager = SyncManager::with_options(ManagerOptions::new().redis(url));
        manager.start()?;
        Ok(manager)
    }

    /// One RESP exchange on `stream` (non-blocking): `args` out, then the
    /// reply read by spinning on `read` (yielding between tries), as our
    /// clients wait for replies, so the floor is the engine's and not the
    /// wake-up of a blocked reader.
    fn exchange(stream: &mut TcpStream, buf: &mut Vec<u8>, args: &[&[u8]]) {
        buf.clear();
        buf.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            buf.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            buf.extend_from_slice(arg);
            buf.extend_from_slice(b"\r\n");
        }
        let mut written = 0;
        while written < buf.len() {
            match stream.write(&buf[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("write to redis: {e}"),
            }
        }
        buf.clear();
        let mut chunk = [0u8; 512];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => panic!("redis closed the connection"),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::yield_now();
                    continue;
                }
                Err(e) => panic!("read from redis: {e}"),
            }
            if complete(buf) {
                return;
            }
        }
    }

    /// Whether `buf` holds one whole reply: a line, or a bulk string's
    /// length line and body.
    fn complete(buf: &[u8]) -> bool {
        let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
            return false;
        };
        if buf[0] != b'$' {
            return true;
        }
        let len: i64 = std::str::from_utf8(&buf[1..end]).unwrap().parse().unwrap();
        len < 0 || buf.len() >= end + 2 + len as usize + 2
    }

    /// Put `n` items.
    fn producer(queue: QueueProxy<u64>, n: u64) {
        for i in 0..n {
            queue.put(i).expect("put");
        }
    }

    /// Get `n` items.
    fn consumer(queue: QueueProxy<u64>, n: u64) {
        for _ in 0..n {
            queue.get().expect("get");
        }
    }

    /// `token` re-addressed to `gateway`'s server.
    fn on(gateway: &SyncManager, token: &Token) -> QueueProxy<u64> {
        let mut token = token.clone();
        token.address = gateway.address().expect("started");
        gateway.proxy_from_token(&token).expect("proxy")
    }

    /// Items/s through a queue, 2 producers and 2 consumers, each on the
    /// gateway `gateways[i % len]`.
    fn transfer(gateways: &[&SyncManager]) -> Result<f64> {
        let queue = gateways[0].queue::<u64>(0)?;
        let per = ITEMS / 2;
        let begun = Instant::now();
        let mut processes = Vec::new();
        for i in 0..4 {
            let proxy = on(gateways[i % gateways.len()], queue.token());
            let process = if i < 2 {
                Process::new(producer, (proxy, per))
            } else {
                Process::new(consumer, (proxy, per))
            };
            process.start()?;
            processes.push(process);
        }
        for process in &processes {
            process.join()?;
        }
        Ok(ITEMS as f64 / begun.elapsed().as_secs_f64())
    }

    pub(super) fn rows(
        counts: &Counts,
        raw: bool,
        only: &Option<Vec<String>>,
        results: &mut Results,
    ) -> Result<()> {
        let Some((_server, url)) = start_redis("redis")? else {
            return Ok(());
        };
        let calls = counts.pings / 2;
        if raw {
            let port = url.rsplit(':').next().unwrap().parse::<u16>().unwrap();
            let mut stream = TcpStream::connect(("127.0.0.1", port))?;
            stream.set_nodelay(true)?;
            stream.set_nonblocking(true)?;
            let mut out = Vec::new();
            let set = median_of(counts.reps, || {
                per_op_us(calls, 200, |i| {
                    let key = i.to_string();
                    exchange(
                        &mut stream,
                        &mut out,
                        &[b"HSET", b"h", key.as_bytes(), b"1"],
                    )
                })
            });
            results.insert("redis.dict.set", Some(set));
            let get = median_of(counts.reps, || {
                per_op_us(calls, 200, |_| {
                    exchange(&mut stream, &mut out, &[b"HGET", b"h", b"7"])
                })
            });
            results.insert("redis.dict.get", Some(get));
            return Ok(());
        }
        let a = gateway(&url)?;
        if wants(only, "redis.dict.set") || wants(only, "redis.dict.get") {
            let dict = a.dict::<i64, i64>()?;
            let set = median_of(counts.reps, || {
                per_op_us(calls, 200, |i| dict.set(i as i64, 1).expect("set"))
            });
            results.insert("redis.dict.set", Some(set));
            dict.set(7, 7)?;
            let get = median_of(counts.reps, || {
                per_op_us(calls, 200, |_| assert_eq!(dict.get(&7i64).expect("get"), 7))
            });
            results.insert("redis.dict.get", Some(get));
        }
        if wants(only, "redis.queue.transfer") || wants(only, "redis.queue.transfer.2gw") {
            let b = gateway(&url)?;
            let one = median_of(counts.reps, || transfer(&[&a]).expect("transfer"));
            results.insert("redis.queue.transfer", Some(one));
            let two = median_of(counts.reps, || transfer(&[&a, &b]).expect("transfer"));
            results.insert("redis.queue.transfer.2gw", Some(two));
            b.shutdown()?;
        }
        a.shutdown()?;
        Ok(())
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--exit-now") {
        return;
    }
    managers::bootstrap();
    let raw = std::env::args().any(|a| a == "--raw");
    let counts = Counts::from_args();
    let only = managers_bench::Scale::only();
    let run = || -> Result<Results> {
        let mut results = Results::new();
        if wants(&only, "process.start_join") || wants(&only, "process.start_join.spawn") {
            let ms = start_join(&counts, raw);
            results.insert("process.start_join", Some(ms));
            results.insert("process.start_join.spawn", Some(ms));
        }
        if wants(&only, "pipe.roundtrip") {
            results.insert("pipe.roundtrip", Some(pipe_roundtrip(&counts, raw)?));
        }
        if wants(&only, "pipe.1mib") {
            results.insert("pipe.1mib", Some(pipe_1mib(&counts, raw)?));
        }
        if wants(&only, "mpqueue.transfer") {
            let kind = if raw { "raw" } else { "ours" };
            results.insert("mpqueue.transfer", Some(transfer(&counts, kind)?));
        }
        if !raw && wants(&only, "mpqueue.transfer.pipe") {
            results.insert("mpqueue.transfer.pipe", Some(transfer(&counts, "pipe")?));
        }
        if wants(&only, "shm.value.locked_increment") {
            results.insert(
                "shm.value.locked_increment",
                Some(locked_increments(&counts, raw)?),
            );
        }
        let pool_ops = [
            "pool.map.small",
            "pool.map.chunk1",
            "pool.apply_async.roundtrip",
            "pool.start",
            "pool.tiny.1000",
        ];
        if !raw && pool_ops.iter().any(|op| wants(&only, op)) {
            pool_rows(&counts, &only, &mut results)?;
        }
        let dpool_ops = ["dpool.map.small", "dpool.map.chunk1", "dpool.tiny.1000"];
        if !raw && dpool_ops.iter().any(|op| wants(&only, op)) {
            dpool_rows(&counts, &only, &mut results)?;
        }
        let redis_ops = [
            "redis.dict.set",
            "redis.dict.get",
            "redis.queue.transfer",
            "redis.queue.transfer.2gw",
        ];
        if redis_ops.iter().any(|op| wants(&only, op)) {
            gateway::rows(&counts, raw, &only, &mut results)?;
        }
        Ok(results)
    };
    match run() {
        Ok(results) => println!("{}", serde_json::to_string(&results).unwrap()),
        Err(e) => {
            eprintln!("procs: {e}");
            std::process::exit(1);
        }
    }
}
