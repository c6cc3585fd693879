//! The driver behind `bench/compare`: runs `raw`, `ours` and
//! `cpython_bench.py` pinned to one CPU (`taskset -c 0`) and unpinned,
//! interleaved over several rounds, and reports the median of each op.
//!
//! ```text
//! compare [--quick] [--rounds N] [--reps N] [--only op,op] [--modes pinned,unpinned]
//!         --bin-dir DIR --script cpython_bench.py --out compare.json [--pgid-file FILE]
//! ```
//!
//! Every child runs in its own process group, bounded in time: on a timeout
//! the whole group (servers included) is killed. Each group id is appended
//! to `--pgid-file` first, so the shell script's trap can kill whatever is
//! left if this driver itself is interrupted.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use managers_bench::median;
use serde_json::{json, Value};

/// Op, unit, and whether a bigger figure is better.
const OPS: &[(&str, &str, bool)] = &[
    ("call.add", "us/call", false),
    ("call.add.tcp", "us/call", false),
    ("call.add.pipelined", "calls/s", true),
    ("dict.set", "us/op", false),
    ("dict.get", "us/op", false),
    ("list.append", "us/op", false),
    ("queue.put", "us/op", false),
    ("queue.get", "us/op", false),
    ("lock.acquire_release", "us/op", false),
    ("create.dict", "us/proxy", false),
    ("value.1mib", "MB/s", true),
    ("concurrent.dict.set.16", "calls/s", true),
    ("start", "ms", false),
    ("rss.dict.1m", "MiB", false),
];

/// The issue's target for an op: (minimum speed-up over CPython, maximum
/// slow-down against raw, which modes the CPython target applies to).
fn target(op: &str) -> (Option<f64>, Option<f64>, &'static [&'static str]) {
    const PINNED: &[&str] = &["pinned"];
    const BOTH: &[&str] = &["pinned", "unpinned"];
    match op {
        "call.add" => (Some(3.0), Some(1.3), PINNED),
        "call.add.tcp"
        | "dict.set"
        | "dict.get"
        | "list.append"
        | "queue.put"
        | "queue.get"
        | "lock.acquire_release" => (Some(3.0), None, PINNED),
        "call.add.pipelined" | "create.dict" => (Some(50.0), None, BOTH),
        "value.1mib" => (Some(5.0), None, BOTH),
        "concurrent.dict.set.16" => (Some(10.0), None, BOTH),
        "start" | "rss.dict.1m" => (Some(1.0), None, BOTH),
        _ => (None, None, BOTH),
    }
}

struct Args {
    quick: bool,
    rounds: usize,
    reps: Option<String>,
    only: Option<String>,
    modes: Vec<String>,
    bin_dir: PathBuf,
    python: String,
    script: PathBuf,
    out: PathBuf,
    pgid_file: Option<PathBuf>,
}

fn parse_args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| -> Option<String> {
        let i = argv.iter().position(|a| a == name)?;
        argv.get(i + 1).cloned()
    };
    let quick = argv.iter().any(|a| a == "--quick");
    let need = |name: &str| {
        value(name).unwrap_or_else(|| {
            eprintln!("compare: missing {name}");
            std::process::exit(2)
        })
    };
    Args {
        quick,
        rounds: value("--rounds")
            .and_then(|r| r.parse().ok())
            .unwrap_or(if quick { 1 } else { 3 }),
        reps: value("--reps"),
        only: value("--only"),
        modes: value("--modes")
            .unwrap_or_else(|| "pinned,unpinned".into())
            .split(',')
            .map(str::to_string)
            .collect(),
        bin_dir: need("--bin-dir").into(),
        python: value("--python").unwrap_or_else(|| "python3".into()),
        script: need("--script").into(),
        out: need("--out").into(),
        pgid_file: value("--pgid-file").map(PathBuf::from),
    }
}

/// Run one benchmark program in its own process group, at most `limit`;
/// its JSON object of op -> figure.
fn run(args: &Args, mode: &str, program: &str, limit: Duration) -> Option<BTreeMap<String, Value>> {
    let mut argv: Vec<String> = Vec::new();
    if mode == "pinned" {
        argv.extend(["taskset".into(), "-c".into(), "0".into()]);
    }
    match program {
        "cpython" => {
            argv.push(args.python.clone());
            argv.push(args.script.display().to_string());
        }
        bin => argv.push(args.bin_dir.join(bin).display().to_string()),
    }
    if args.quick {
        argv.push("--quick".into());
    }
    if let Some(reps) = &args.reps {
        argv.extend(["--reps".into(), reps.clone()]);
    }
    if let Some(only) = &args.only {
        argv.extend(["--only".into(), only.clone()]);
    }
    let started = Instant::now();
    let mut child = match Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("compare: cannot run {}: {e}", argv.join(" "));
            return None;
        }
    };
    let pgid = child.id() as i32;
    if let Some(file) = &args.pgid_file {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(file)
        {
            let _ = writeln!(f, "{pgid}");
        }
    }
    // Read stdout on a thread so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() < limit => std::thread::sleep(Duration::from_millis(20)),
            _ => break None,
        }
    };
    // Whatever the outcome, nothing of this run may survive it (servers
    // included: they share the group).
    // SAFETY: kill(2) on a process group we created; no memory involved.
    unsafe {
        libc_kill(-pgid, 9);
    }
    let _ = child.wait();
    let text = reader.join().unwrap_or_default();
    let elapsed = started.elapsed().as_secs_f64();
    match status {
        None => {
            eprintln!(
                "compare: {program} ({mode}) exceeded {limit:?}: killed, its figures are missing"
            );
            None
        }
        Some(status) if !status.success() => {
            eprintln!("compare: {program} ({mode}) failed ({status}): its figures are missing");
            None
        }
        Some(_) => {
            eprintln!("compare:   {program:<8} {mode:<8} {elapsed:6.1} s");
            let line = text
                .lines()
                .rev()
                .find(|l| l.trim_start().starts_with('{'))?;
            serde_json::from_str(line)
                .map_err(|e| eprintln!("compare: {program} printed bad JSON: {e}"))
                .ok()
        }
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

fn fmt(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(x) if x >= 100_000.0 => format!("{x:.3e}"),
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) if x >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
    }
}

fn main() {
    let args = parse_args();
    let limit = Duration::from_secs(if args.quick { 50 } else { 240 });
    let programs = ["raw", "ours", "cpython"];
    // figures[(mode, program, op)] = one value per round
    let mut figures: BTreeMap<(String, &str, String), Vec<f64>> = BTreeMap::new();
    let t0 = Instant::now();
    for round in 0..args.rounds {
        for mode in &args.modes {
            eprintln!("compare: round {}/{} {mode}", round + 1, args.rounds);
            for program in programs {
                let Some(result) = run(&args, mode, program, limit) else {
                    continue;
                };
                for (op, value) in result {
                    if let Some(v) = value.as_f64() {
                        figures
                            .entry((mode.clone(), program, op))
                            .or_default()
                            .push(v);
                    }
                }
            }
        }
    }
    let get = |mode: &str, program: &str, op: &str| {
        figures
            .get(&(mode.to_string(), program, op.to_string()))
            .filter(|v| !v.is_empty())
            .map(|v| median(v.clone()))
    };

    let mut rows = Vec::new();
    let mut table = Vec::new();
    let mut misses = Vec::new();
    for mode in &args.modes {
        for &(op, unit, bigger_better) in OPS {
            if args
                .only
                .as_ref()
                .is_some_and(|o| !o.split(',').any(|x| x == op))
            {
                continue;
            }
            let ours = get(mode, "ours", op);
            let cpython = get(mode, "cpython", op);
            let raw = get(mode, "raw", op);
            rows.push(json!({"op": op, "mode": mode, "unit": unit,
                             "ours": ours, "cpython": cpython, "raw": raw}));
            // Speed-up over CPython (>1: we are better) and slow-down
            // against raw (>1: we are slower than the limit).
            let speedup = match (ours, cpython) {
                (Some(o), Some(c)) if o > 0.0 && c > 0.0 => {
                    Some(if bigger_better { o / c } else { c / o })
                }
                _ => None,
            };
            let over_raw = match (ours, raw) {
                (Some(o), Some(r)) if o > 0.0 && r > 0.0 => {
                    Some(if bigger_better { r / o } else { o / r })
                }
                _ => None,
            };
            let (min_speedup, max_over_raw, modes) = target(op);
            let mut verdict = Vec::new();
            if let Some(min) = min_speedup.filter(|_| modes.contains(&mode.as_str())) {
                match speedup {
                    Some(s) if s >= min => verdict.push(format!("ok >={min}x CPy")),
                    Some(s) => {
                        verdict.push(format!("MISS >={min}x CPy"));
                        misses.push(format!("{op} {mode}: {s:.2}x CPython, target >= {min}x"));
                    }
                    None => verdict.push(format!("n/a >={min}x CPy")),
                }
            }
            if let Some(max) = max_over_raw {
                match over_raw {
                    Some(s) if s <= max => verdict.push(format!("ok <={max}x raw")),
                    Some(s) => {
                        verdict.push(format!("MISS <={max}x raw"));
                        misses.push(format!("{op} {mode}: {s:.2}x raw, target <= {max}x"));
                    }
                    None => verdict.push(format!("n/a <={max}x raw")),
                }
            }
            table.push([
                op.to_string(),
                mode.clone(),
                unit.to_string(),
                fmt(ours),
                fmt(cpython),
                fmt(raw),
                speedup.map_or("-".into(), |s| format!("{s:.2}x")),
                over_raw.map_or("-".into(), |s| format!("{s:.2}x")),
                verdict.join(", "),
            ]);
        }
    }

    let header = [
        "op",
        "mode",
        "unit",
        "ours",
        "CPython",
        "raw",
        "vs CPython",
        "vs raw",
        "target",
    ];
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].len())
                .chain([header[c].len()])
                .max()
                .unwrap()
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (c, cell) in cells.iter().enumerate() {
            if c < 3 || c == 8 {
                s += &format!("{:<w$}  ", cell, w = widths[c]);
            } else {
                s += &format!("{:>w$}  ", cell, w = widths[c]);
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for row in &table {
        line(row.iter().map(String::as_str).collect());
    }
    println!();
    println!(
        "medians of {} round(s); vs CPython = times better than CPython \
         (time: CPython/ours, throughput: ours/CPython, MiB: CPython/ours); \
         vs raw = times slower than the raw ping-pong.",
        args.rounds
    );
    if misses.is_empty() {
        println!("every target with figures on both sides is met");
    } else {
        println!("targets missed:");
        for m in &misses {
            println!("  {m}");
        }
    }
    if args.rounds > 1 {
        // The spread behind each median, for judging the noise.
        eprintln!("compare: per-round figures (ours | CPython | raw):");
        let rounds = |mode: &str, program: &str, op: &str| {
            figures
                .get(&(mode.to_string(), program, op.to_string()))
                .map_or("-".to_string(), |v| {
                    v.iter()
                        .map(|x| fmt(Some(*x)))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
        };
        for mode in &args.modes {
            for &(op, _, _) in OPS {
                if args
                    .only
                    .as_ref()
                    .is_some_and(|o| !o.split(',').any(|x| x == op))
                {
                    continue;
                }
                eprintln!(
                    "compare:   {op:<22} {mode:<8} {} | {} | {}",
                    rounds(mode, "ours", op),
                    rounds(mode, "cpython", op),
                    rounds(mode, "raw", op)
                );
            }
        }
    }
    if let Some(dir) = args.out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let document = json!({ "rows": rows });
    std::fs::write(
        &args.out,
        serde_json::to_string_pretty(&document).unwrap() + "\n",
    )
    .expect("write compare.json");
    println!(
        "wrote {} ({:.0} s)",
        args.out.display(),
        t0.elapsed().as_secs_f64()
    );
}
