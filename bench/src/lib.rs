//! Shared pieces of the benchmark binaries: the seed's MathsClass and its
//! manager, the exact call frames it puts on the wire, and timing helpers.

use std::time::{Duration, Instant};

use managers::server::Shared;
use managers::wire::{self, Request, Response};
use managers::{manager, shared};

/// The seed's MathsClass, as in `examples/maths.rs`.
#[derive(Default)]
pub struct MathsClass;

#[shared(typeid = "Maths")]
impl MathsClass {
    /// x + y
    pub fn add(&self, x: i64, y: i64) -> i64 {
        x + y
    }

    /// x * y
    pub fn mul(&self, x: i64, y: i64) -> i64 {
        x * y
    }
}

manager! {
    /// A manager serving MathsClass objects.
    pub struct BenchManager {
        Maths: MathsClass,
    }
}

/// The index and fingerprint of `MathsClass::add` in the dispatch table.
pub fn add_method() -> (usize, u64) {
    let methods = <MathsClass as Shared>::METHODS;
    let index = methods
        .iter()
        .position(|m| m.name == "add")
        .expect("MathsClass exposes add");
    (index, methods[index].fingerprint)
}

/// The frame a blocking `maths.add(x, y)` sends: length prefix, `Call`
/// header, postcard argument tuple. Request id, object id and arguments as
/// a warm benchmark sends them (multi-byte varints).
pub fn call_add_frame(id: u64, object: u64, x: i64, y: i64) -> Vec<u8> {
    let (index, fingerprint) = add_method();
    let mut buf = Vec::new();
    wire::begin_frame(
        &mut buf,
        &Request::Call {
            id,
            object,
            method: "add",
            index: Some(index as u32),
            fingerprint,
        },
    )
    .unwrap();
    wire::append(&mut buf, &(x, y)).unwrap();
    wire::finish_frame(&mut buf, wire::DEFAULT_MAX_FRAME).unwrap();
    buf
}

/// The reply frame to [`call_add_frame`]: `Response` header and the result.
pub fn reply_add_frame(id: u64, result: i64) -> Vec<u8> {
    let mut buf = Vec::new();
    wire::begin_frame(&mut buf, &Response { id, result: Ok(()) }).unwrap();
    wire::append(&mut buf, &result).unwrap();
    wire::finish_frame(&mut buf, wire::DEFAULT_MAX_FRAME).unwrap();
    buf
}

/// Typical sizes (request, reply) of a warm `call.add` frame pair, used by
/// the raw ping-pong: request id ~ 10^4, object id 1, x ~ 10^4.
pub fn call_add_sizes() -> (usize, usize) {
    (
        call_add_frame(12_345, 1, 12_345, 1).len(),
        reply_add_frame(12_345, 12_346).len(),
    )
}

/// Longest any single measurement loop runs; past it the loop stops and the
/// figure is computed on the iterations done.
pub const BUDGET: Duration = Duration::from_secs(20);

/// Run `op(i)` for `warmup` iterations untimed, then `n` iterations (at
/// most [`BUDGET`]); microseconds per iteration.
pub fn per_op_us(n: u64, warmup: u64, mut op: impl FnMut(u64)) -> f64 {
    for i in 0..warmup {
        op(i);
    }
    let start = Instant::now();
    let mut done = 0;
    for i in 0..n {
        op(i);
        done += 1;
        if done & 63 == 0 && start.elapsed() > BUDGET {
            break;
        }
    }
    start.elapsed().as_secs_f64() * 1e6 / done as f64
}

/// CPU time (us) used so far by this process, plus process `other`'s if
/// given (a started server), all threads included, dead ones too. `None`
/// when `other`'s clock cannot be read (it has exited).
pub fn cpu_us(other: Option<u32>) -> Option<f64> {
    fn read(clock: libc::clockid_t) -> Option<f64> {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a valid timespec to write.
        (unsafe { libc::clock_gettime(clock, &mut t) } == 0)
            .then(|| t.tv_sec as f64 * 1e6 + t.tv_nsec as f64 / 1e3)
    }
    let mine = read(libc::CLOCK_PROCESS_CPUTIME_ID)?;
    let Some(pid) = other else {
        return Some(mine);
    };
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `clock` is a valid clockid_t to write.
    if unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) } != 0 {
        return None;
    }
    Some(mine + read(clock)?)
}

/// Wall and CPU time of one measured stretch, both sides counted.
pub struct CpuClock {
    server: Option<u32>,
    wall: Instant,
    cpu: Option<f64>,
}

impl CpuClock {
    /// Start timing this process and `server` (its pid) from now.
    pub fn start(server: Option<u32>) -> CpuClock {
        CpuClock {
            server,
            wall: Instant::now(),
            cpu: cpu_us(server),
        }
    }

    /// (wall us, CPU us of both processes) since `start`, each divided by
    /// `ops`.
    pub fn per_op(&self, ops: f64) -> (f64, Option<f64>) {
        let wall = self.wall.elapsed().as_secs_f64() * 1e6 / ops;
        let cpu = self
            .cpu
            .zip(cpu_us(self.server))
            .map(|(before, after)| (after - before) / ops);
        (wall, cpu)
    }
}

/// [`per_op_us`] that also reports CPU us per iteration of this process
/// and `server` together.
pub fn per_op_cpu(
    n: u64,
    warmup: u64,
    server: Option<u32>,
    mut op: impl FnMut(u64),
) -> (f64, Option<f64>) {
    for i in 0..warmup {
        op(i);
    }
    let clock = CpuClock::start(server);
    let mut done = 0;
    for i in 0..n {
        op(i);
        done += 1;
        if done & 63 == 0 && clock.wall.elapsed() > BUDGET {
            break;
        }
    }
    clock.per_op(done as f64)
}

/// Medians of `reps` runs of `measure`, which gives (figure, CPU us per
/// op): each column's own median.
pub fn median_pair(
    reps: usize,
    mut measure: impl FnMut() -> (f64, Option<f64>),
) -> (f64, Option<f64>) {
    let runs: Vec<_> = (0..reps.max(1)).map(|_| measure()).collect();
    let cpu: Vec<f64> = runs.iter().filter_map(|r| r.1).collect();
    (
        median(runs.iter().map(|r| r.0).collect()),
        (!cpu.is_empty()).then(|| median(cpu)),
    )
}

/// The median of `values` (mean of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    assert!(!values.is_empty(), "median of nothing");
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Median of `reps` runs of `measure`.
pub fn median_of(reps: usize, mut measure: impl FnMut() -> f64) -> f64 {
    median((0..reps.max(1)).map(|_| measure()).collect())
}

/// Resident memory of process `pid` in MiB (VmRSS of /proc/PID/status).
pub fn vmrss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Workload sizes of one run.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Repetitions of each measurement (the median is reported).
    pub reps: usize,
    /// Calls per sequential measurement.
    pub calls: u64,
    /// Proxies per `create.dict` measurement.
    pub creates: u64,
    /// Set+get pairs per `value.1mib` measurement.
    pub big: u64,
    /// Calls per thread in `concurrent.dict.set.16`.
    pub per_thread: u64,
    /// Calls per `call.add.pipelined` measurement.
    pub pipelined: u64,
    /// Round trips per raw ping-pong measurement.
    pub pings: u64,
}

impl Scale {
    /// From the command line: `--quick` and `--reps N`.
    pub fn from_args() -> Scale {
        let (quick, reps) = quick_and_reps();
        let mut scale = if quick {
            Scale {
                reps: 3,
                calls: 2_000,
                creates: 200,
                big: 10,
                per_thread: 200,
                pipelined: 20_000,
                pings: 20_000,
            }
        } else {
            Scale {
                reps: 5,
                calls: 10_000,
                creates: 1_000,
                big: 40,
                per_thread: 1_000,
                pipelined: 100_000,
                pings: 50_000,
            }
        };
        if let Some(reps) = reps {
            scale.reps = reps;
        }
        scale
    }

    /// The value of `--only` (comma-separated op names), if given.
    pub fn only() -> Option<Vec<String>> {
        let args: Vec<String> = std::env::args().collect();
        let i = args.iter().position(|a| a == "--only")?;
        Some(args.get(i + 1)?.split(',').map(str::to_string).collect())
    }
}

/// The command line's `--quick` (whether given) and `--reps N` (if given),
/// which every bench program takes.
pub fn quick_and_reps() -> (bool, Option<usize>) {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let reps = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok());
    (quick, reps)
}

/// Whether `op` is selected by `--only` (everything when it is absent).
pub fn wants(only: &Option<Vec<String>>, op: &str) -> bool {
    only.as_ref().is_none_or(|ops| ops.iter().any(|o| o == op))
}
