//! Our managers on the workloads of `bench/compare`, in release mode.
//!
//! `ours [--quick] [--reps N] [--only op,op]` prints one JSON object
//! `{op: median}` in the units of bench/compare; `null` for an op whose
//! built-in type does not exist yet. Beside each timed op, `cpu_us:OP`:
//! the CPU time of this process and the server process together (every
//! thread, from their kernel CPU clocks) per op, the same medians. Every server is a child process started
//! with `start()` (hence `bootstrap()` first in `main`), shut down before
//! the next workload and killed by the runtime if this process dies.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use managers::{ManagerOptions, Result};
use managers_bench::{
    median_pair, per_op_cpu, vmrss_mib, wants, BenchManager, CpuClock, Scale, BUDGET,
};

/// Calls in flight for `call.add.pipelined`.
const IN_FLIGHT: u64 = 64;

type Results = BTreeMap<String, Option<f64>>;

/// The managers' options: the defaults, or with `--spin-us N` that spin
/// window (diagnosis: `--spin-us 0` is the runtime before issue 11).
fn options() -> ManagerOptions {
    let args: Vec<String> = std::env::args().collect();
    let spin = args
        .iter()
        .position(|a| a == "--spin-us")
        .and_then(|i| args.get(i + 1))
        .and_then(|us| us.parse().ok());
    // MANAGERS_BENCH_SOCKET=1: every row on the socket path (the
    // shared-memory ring off), to compare the two transports row by row.
    let socket = std::env::var_os("MANAGERS_BENCH_SOCKET").is_some_and(|v| v == "1");
    let options = ManagerOptions::new().shared_memory(!socket);
    match spin {
        Some(us) => options.spin(std::time::Duration::from_micros(us)),
        None => options,
    }
}

/// Record `op`'s figure and its CPU us per op.
fn record(results: &mut Results, op: &str, (figure, cpu): (f64, Option<f64>)) {
    results.insert(op.to_string(), Some(figure));
    results.insert(format!("cpu_us:{op}"), cpu);
}

fn maths_ops(scale: &Scale, only: &Option<Vec<String>>, results: &mut Results) -> Result<()> {
    if wants(only, "call.add") || wants(only, "call.add.pipelined") {
        let manager = BenchManager::with_options(options());
        manager.start()?;
        let maths = manager.maths()?;
        let server = manager.server_pid();
        if wants(only, "call.add") {
            let us = median_pair(scale.reps, || {
                per_op_cpu(scale.calls, 200, server, |i| {
                    let r = maths.add(i as i64, 1).expect("add");
                    debug_assert_eq!(r, i as i64 + 1);
                })
            });
            record(results, "call.add", us);
        }
        if wants(only, "call.add.pipelined") {
            let per_s = pipelined(&maths, server, scale)?;
            record(results, "call.add.pipelined", per_s);
        }
        drop(maths);
        manager.shutdown()?;
    }
    // The same calls on the Unix socket (the shared-memory ring off), and
    // over loopback TCP.
    for (op, options) in [
        ("call.add.socket", options().shared_memory(false)),
        ("call.add.tcp", options().address("127.0.0.1:0")),
    ] {
        if wants(only, op) {
            let manager = BenchManager::with_options(options);
            manager.start()?;
            let maths = manager.maths()?;
            let server = manager.server_pid();
            let us = median_pair(scale.reps, || {
                per_op_cpu(scale.calls, 200, server, |i| {
                    maths.add(i as i64, 1).expect("add");
                })
            });
            record(results, op, us);
            drop(maths);
            manager.shutdown()?;
        }
    }
    Ok(())
}

/// The async proxy on one connection, IN_FLIGHT tasks each making its share
/// of the calls back to back, so IN_FLIGHT calls are always in flight.
/// (calls/s, CPU us per call).
fn pipelined(
    maths: &managers_bench::MathsClassProxy,
    server: Option<u32>,
    scale: &Scale,
) -> Result<(f64, Option<f64>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let maths = maths.to_async();
    runtime.block_on(async {
        // Warm up: opens the session's multiplexed connection.
        for i in 0..200 {
            maths.add(i, 1).await?;
        }
        let mut runs = Vec::new();
        for _ in 0..scale.reps.max(1) {
            let per_task = scale.pipelined / IN_FLIGHT;
            let start = Instant::now();
            let clock = CpuClock::start(server);
            let mut tasks = tokio::task::JoinSet::new();
            for t in 0..IN_FLIGHT {
                let maths = maths.clone();
                tasks.spawn(async move {
                    let mut done = 0u64;
                    for i in 0..per_task {
                        let x = (t * per_task + i) as i64;
                        let r = maths.add(x, 1).await?;
                        assert_eq!(r, x + 1);
                        done += 1;
                        if done & 63 == 0 && start.elapsed() > BUDGET {
                            break;
                        }
                    }
                    Ok::<u64, managers::Error>(done)
                });
            }
            let mut done = 0;
            while let Some(joined) = tasks.join_next().await {
                done += joined.expect("pipelined task")?;
            }
            let (us, cpu) = clock.per_op(done as f64);
            runs.push((1e6 / us, cpu));
        }
        let mut runs = runs.into_iter();
        Ok(median_pair(runs.len(), || {
            runs.next().expect("one run per rep")
        }))
    })
}

fn start_op(scale: &Scale, only: &Option<Vec<String>>, results: &mut Results) -> Result<()> {
    if !wants(only, "start") {
        return Ok(());
    }
    let mut times = Vec::new();
    for _ in 0..scale.reps.max(1) {
        let manager = BenchManager::with_options(options());
        let t0 = Instant::now();
        manager.start()?;
        let maths = manager.maths()?;
        assert_eq!(maths.add(1, 2)?, 3);
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        drop(maths);
        manager.shutdown()?;
    }
    results.insert("start".into(), Some(managers_bench::median(times)));
    Ok(())
}

mod builtins {
    //! The SyncManager workloads.

    use super::*;
    use managers::sync::SyncManager;
    use serde_bytes::ByteBuf;

    pub fn run(scale: &Scale, only: &Option<Vec<String>>, results: &mut Results) -> Result<()> {
        let manager = SyncManager::with_options(options());
        manager.start()?;
        let server = manager.server_pid();
        if wants(only, "dict.set") || wants(only, "dict.get") {
            let dict = manager.dict::<i64, i64>()?;
            let us = median_pair(scale.reps, || {
                per_op_cpu(scale.calls, 200, server, |i| {
                    dict.set(i as i64, i as i64).expect("set")
                })
            });
            record(results, "dict.set", us);
            dict.set(7, 7)?;
            let us = median_pair(scale.reps, || {
                per_op_cpu(scale.calls, 200, server, |_| {
                    assert_eq!(dict.get(&7i64).expect("get"), 7);
                })
            });
            record(results, "dict.get", us);
        }
        if wants(only, "list.append") {
            let list = manager.list::<i64>()?;
            let us = median_pair(scale.reps, || {
                let us = per_op_cpu(scale.calls, 200, server, |i| {
                    list.append(i as i64).expect("append")
                });
                list.clear().expect("clear");
                us
            });
            record(results, "list.append", us);
        }
        if wants(only, "queue.put") || wants(only, "queue.get") {
            let queue = manager.queue::<i64>(0)?;
            let (mut puts, mut gets) = (Vec::new(), Vec::new());
            for _ in 0..scale.reps.max(1) {
                // put n (+ the warm-up), then get them all back.
                puts.push(per_op_cpu(scale.calls, 200, server, |i| {
                    queue.put(i as i64).expect("put")
                }));
                gets.push(per_op_cpu(scale.calls, 200, server, |_| {
                    queue.get().expect("get");
                }));
            }
            let (mut puts, mut gets) = (puts.into_iter(), gets.into_iter());
            record(
                results,
                "queue.put",
                median_pair(puts.len(), || puts.next().expect("one per rep")),
            );
            record(
                results,
                "queue.get",
                median_pair(gets.len(), || gets.next().expect("one per rep")),
            );
        }
        if wants(only, "lock.acquire_release") {
            let lock = manager.lock()?;
            let us = median_pair(scale.reps, || {
                per_op_cpu(scale.calls, 200, server, |_| {
                    assert!(lock.acquire().expect("acquire"));
                    lock.release().expect("release");
                })
            });
            record(results, "lock.acquire_release", us);
        }
        if wants(only, "create.dict") {
            let us = median_pair(scale.reps, || {
                per_op_cpu(scale.creates, 20, server, |_| {
                    let dict = manager.dict::<i64, i64>().expect("dict");
                    drop(dict);
                })
            });
            record(results, "create.dict", us);
        }
        if wants(only, "value.1mib") {
            let data = ByteBuf::from((0..1usize << 20).map(|i| i as u8).collect::<Vec<u8>>());
            let value = manager.value(&ByteBuf::new())?;
            // CPU per set+get pair.
            let mb_s = median_pair(scale.reps, || {
                let (us, cpu) = per_op_cpu(scale.big, 2, server, |_| {
                    value.set(&data).expect("set");
                    let got = value.get().expect("get");
                    assert_eq!(got.len(), data.len());
                });
                (2.0 * data.len() as f64 / us, cpu) // bytes per us == MB/s
            });
            record(results, "value.1mib", mb_s);
        }
        if wants(only, "concurrent.dict.set.16") {
            let per_s = median_pair(scale.reps, || {
                concurrent_sets(&manager, server, 16, scale.per_thread)
            });
            record(results, "concurrent.dict.set.16", per_s);
        }
        let _ = manager.number_of_objects()?;
        manager.shutdown()?;
        if wants(only, "rss.dict.1m") {
            results.insert("rss.dict.1m".into(), rss_dict_1m()?);
        }
        Ok(())
    }

    /// `threads` threads share one dict proxy (the blocking client opens a
    /// connection per concurrently busy thread) and set distinct keys;
    /// (total calls/s, CPU us per call).
    fn concurrent_sets(
        manager: &SyncManager,
        server: Option<u32>,
        threads: usize,
        per_thread: u64,
    ) -> (f64, Option<f64>) {
        let dict = manager.dict::<i64, i64>().expect("dict");
        let ready = Arc::new(Barrier::new(threads + 1));
        let start = Instant::now();
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let dict = dict.clone();
                let ready = Arc::clone(&ready);
                std::thread::spawn(move || {
                    dict.set(-1 - t as i64, 0).expect("warm-up set");
                    ready.wait();
                    let base = t as u64 * per_thread;
                    let mut done = 0u64;
                    for i in 0..per_thread {
                        dict.set((base + i) as i64, i as i64).expect("set");
                        done += 1;
                        if done & 63 == 0 && start.elapsed() > BUDGET {
                            break;
                        }
                    }
                    done
                })
            })
            .collect();
        ready.wait();
        let clock = CpuClock::start(server);
        let done: u64 = workers.into_iter().map(|w| w.join().expect("worker")).sum();
        let (us, cpu) = clock.per_op(done as f64);
        (1e6 / us, cpu)
    }

    /// Server RSS (MiB) holding a 1,000,000-entry int -> int dict, filled
    /// with `update` in chunks, on a server of its own.
    fn rss_dict_1m() -> Result<Option<f64>> {
        let manager = SyncManager::with_options(options());
        manager.start()?;
        let dict = manager.dict::<i64, i64>()?;
        let chunk = 50_000i64;
        let mut k = 0;
        while k < 1_000_000 {
            dict.update((k..k + chunk).map(|i| (i, i)))?;
            k += chunk;
        }
        assert_eq!(dict.len()?, 1_000_000);
        let rss = manager.server_pid().and_then(vmrss_mib);
        drop(dict);
        manager.shutdown()?;
        Ok(rss)
    }
}

fn main() {
    // A started server process runs here and never returns.
    managers::bootstrap();
    let scale = Scale::from_args();
    let only = Scale::only();
    let mut results = Results::new();
    let outcome = maths_ops(&scale, &only, &mut results)
        .and_then(|()| builtins::run(&scale, &only, &mut results))
        .and_then(|()| start_op(&scale, &only, &mut results));
    if let Err(e) = outcome {
        eprintln!("ours: {e}");
        std::process::exit(1);
    }
    println!("{}", serde_json::to_string(&results).unwrap());
}
