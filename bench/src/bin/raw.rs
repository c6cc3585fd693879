//! The physical limit: what the same traffic costs with nothing but the
//! length prefix, between two processes, blocking reads and writes, each
//! frame read with as few `read` calls as the kernel allows.
//!
//! `raw [--quick] [--reps N]` prints one JSON object of medians:
//! - `call.add` / `call.add.tcp`: us per ping-pong of `call.add`-sized
//!   frames over a Unix socket / TCP loopback (also given for every
//!   sequential op, which is one such round trip; the lock pair is two);
//! - `call.add.pipelined`: calls/s with 64 requests in flight on one Unix
//!   connection, requests and replies written in batches;
//! - `value.1mib`: MB/s of a 1 MiB frame each way per round trip;
//! - `concurrent.dict.set.16`: round trips/s of 16 client threads, each
//!   with its own connection to a thread of the echo process.
//!
//! Each ping-pong figure is also measured with both ends spinning before
//! they block (keys `spin:OP`, the `raw.spin` column): after a write, the
//! reader polls the socket with non-blocking reads, yielding the CPU each
//! turn (`sched_yield`), for up to [`SPIN`], and only then makes a blocking
//! read. That is the issue's C ping-pong ("spin with `sched_yield()` 20–50
//! us then block, both ends"): the physical limit for a runtime that spins
//! before it parks, where the blocking column is the limit for one that
//! sleeps through every round trip.
//!
//! The echo side is this binary re-executed with `--echo unix|tcp` (and
//! `--spin` for the spinning echo): it binds, prints its address, serves
//! each connection on a thread, and exits when its stdin (the parent)
//! closes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use managers_bench::{call_add_sizes, median_of, per_op_us, Scale, BUDGET};

/// Frames longer than this are echoed at their own size (value.1mib).
const BIG_FROM: usize = 64 * 1024;

/// Replies in flight for the pipelined figure, as `call.add.pipelined`.
const IN_FLIGHT: usize = 64;

/// `--split-reads` (diagnosis): read each frame as prefix then body, two
/// `read` calls, as the runtime's blocking client does.
fn split_reads() -> bool {
    static SPLIT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SPLIT.get_or_init(|| std::env::args().any(|a| a == "--split-reads"))
}

/// How long a spinning reader polls before it blocks (both ends).
const SPIN: Duration = Duration::from_micros(50);

/// `--spin`: the echo spins before it blocks, as the spinning client does.
fn spin_mode() -> bool {
    static SPIN_MODE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SPIN_MODE.get_or_init(|| std::env::args().any(|a| a == "--spin"))
}

/// A socket read that can spin first: `Block` is a plain blocking `read`;
/// `Spin` polls with `MSG_DONTWAIT`, yielding the CPU between polls, for up
/// to [`SPIN`], then blocks.
struct Reader<'a, S> {
    stream: &'a mut S,
    spin: bool,
}

impl<S: Read + AsRawFd> Read for Reader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.spin {
            if let Some(n) = spin_read(self.stream.as_raw_fd(), buf)? {
                return Ok(n);
            }
        }
        self.stream.read(buf)
    }
}

/// Poll `fd` without blocking until data arrives or [`SPIN`] is over
/// (`None`: nothing came, block now).
fn spin_read(fd: RawFd, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    let start = Instant::now();
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::Interrupted
        {
            return Err(e);
        }
        if start.elapsed() > SPIN {
            return Ok(None);
        }
        // SAFETY: no arguments, no memory.
        unsafe { libc::sched_yield() };
    }
}

/// Length-prefixed frames read with as few `read` calls as the kernel
/// allows: one per frame in a ping-pong, one per batch when pipelined (the
/// limit, not the prefix-then-body pair of reads a protocol often does).
struct Frames {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Frames {
    fn new() -> Frames {
        Frames {
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
        }
    }

    /// Wait for the next whole frame and consume it; its length.
    fn next(&mut self, r: &mut (impl Read + ?Sized)) -> std::io::Result<usize> {
        if split_reads() {
            // Diagnosis: the prefix, then the body, as two `read_exact`s.
            let mut prefix = [0u8; 4];
            r.read_exact(&mut prefix)?;
            let len = u32::from_le_bytes(prefix) as usize;
            if self.buf.len() < len {
                self.buf.resize(len, 0);
            }
            r.read_exact(&mut self.buf[..len])?;
            return Ok(4 + len);
        }
        loop {
            let avail = self.end - self.start;
            if avail >= 4 {
                let prefix: [u8; 4] = self.buf[self.start..self.start + 4].try_into().unwrap();
                let len = 4 + u32::from_le_bytes(prefix) as usize;
                if avail >= len {
                    self.start += len;
                    return Ok(len);
                }
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            let n = r.read(&mut self.buf[self.end..])?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.end += n;
        }
    }
}

impl Frames {
    /// Whether a whole frame is already buffered (no `read` needed).
    fn complete(&self) -> bool {
        let avail = self.end - self.start;
        avail >= 4 && {
            let prefix: [u8; 4] = self.buf[self.start..self.start + 4].try_into().unwrap();
            avail >= 4 + u32::from_le_bytes(prefix) as usize
        }
    }
}

fn frame(len: usize) -> Vec<u8> {
    let mut f = vec![0x5a; len];
    f[..4].copy_from_slice(&((len - 4) as u32).to_le_bytes());
    f
}

/// Answer every request frame on `stream` until it closes: a `call.add`
/// sized reply, or for a large frame a frame as large.
fn serve<S: Read + Write + AsRawFd>(stream: &mut S) -> std::io::Result<()> {
    let spin = spin_mode();
    let (_, reply_len) = call_add_sizes();
    let reply = frame(reply_len);
    // Replies to every request that arrived together go out in one write.
    let mut frames = Frames::new();
    let mut out = Vec::with_capacity(64 * 1024);
    let mut big = Vec::new();
    while let Ok(len) = frames.next(&mut Reader {
        stream: &mut *stream,
        spin,
    }) {
        if len > BIG_FROM {
            // value.1mib: the value comes back, as large as it went.
            if big.len() != len {
                big = frame(len);
            }
            out.extend_from_slice(&big);
        } else {
            out.extend_from_slice(&reply);
        }
        if split_reads() || !frames.complete() {
            stream.write_all(&out)?;
            out.clear();
        }
    }
    Ok(())
}

/// The echo process: binds, prints its address, serves every connection on
/// a thread of its own.
fn echo(kind: &str) -> std::io::Result<()> {
    // Exit when the parent goes away.
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    match kind {
        "unix" => {
            let path =
                std::env::temp_dir().join(format!("managers-raw-{}.sock", std::process::id()));
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path)?;
            let _cleanup = RemoveOnDrop(path.clone());
            println!("{}", path.display());
            std::io::stdout().flush()?;
            // A thread per connection (the concurrent figure opens many).
            loop {
                let (mut stream, _) = listener.accept()?;
                std::thread::spawn(move || serve(&mut stream));
            }
        }
        _ => {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            println!("{}", listener.local_addr()?);
            std::io::stdout().flush()?;
            loop {
                let (mut stream, _) = listener.accept()?;
                stream.set_nodelay(true)?;
                std::thread::spawn(move || serve(&mut stream));
            }
        }
    }
}

/// Removes the echo's socket file however the echo ends.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// An echo child; killed and reaped when dropped.
struct Echo {
    child: Child,
    address: String,
}

impl Echo {
    fn spawn(kind: &str, spin: bool) -> Echo {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--echo", kind])
            .args(split_reads().then_some("--split-reads"))
            .args(spin.then_some("--spin"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the echo process");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the echo address");
        Echo {
            child,
            address: line.trim().to_string(),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.address.starts_with('/') {
            let _ = std::fs::remove_file(&self.address);
        }
    }
}

fn ping_pong<S: Read + Write + AsRawFd>(stream: &mut S, spin: bool, n: u64) -> f64 {
    let (request_len, _) = call_add_sizes();
    let request = frame(request_len);
    let mut frames = Frames::new();
    per_op_us(n, 1000, |_| {
        stream.write_all(&request).unwrap();
        frames
            .next(&mut Reader {
                stream: &mut *stream,
                spin,
            })
            .unwrap();
    })
}

/// value.1mib's limit: a 1 MiB frame each way per round trip; MB/s.
fn bulk<S: Read + Write + AsRawFd>(stream: &mut S, spin: bool, n: u64) -> f64 {
    let request = frame(4 + (1 << 20));
    let mut frames = Frames::new();
    let us = per_op_us(n, 2, |_| {
        stream.write_all(&request).unwrap();
        let len = frames
            .next(&mut Reader {
                stream: &mut *stream,
                spin,
            })
            .unwrap();
        assert_eq!(len, request.len());
    });
    2.0 * (1 << 20) as f64 / us
}

/// concurrent.dict.set.16's limit: `threads` client threads, each with its
/// own connection to a thread of the echo process, ping-pong `per_thread`
/// times; total round trips/s.
fn concurrent(address: &str, spin: bool, threads: usize, per_thread: u64) -> f64 {
    let (request_len, _) = call_add_sizes();
    let ready = std::sync::Arc::new(std::sync::Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let ready = ready.clone();
            let mut stream = UnixStream::connect(address).expect("connect to the echo");
            std::thread::spawn(move || {
                let request = frame(request_len);
                let mut frames = Frames::new();
                let mut next = |stream: &mut UnixStream| {
                    stream.write_all(&request).unwrap();
                    frames.next(&mut Reader { stream, spin }).unwrap();
                };
                next(&mut stream);
                ready.wait();
                let start = Instant::now();
                let mut done = 0u64;
                for _ in 0..per_thread {
                    next(&mut stream);
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
    let start = Instant::now();
    let done: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    done as f64 / start.elapsed().as_secs_f64()
}

/// `n` requests with up to IN_FLIGHT outstanding over one connection: a
/// writer thread sends as many as it has credits for in one write, this
/// thread reads replies in as few reads as possible and hands credits back
/// in batches; calls/s.
fn pipelined(mut writer: UnixStream, mut reader: UnixStream, n: u64) -> f64 {
    let (request_len, _) = call_add_sizes();
    let (credit_tx, credit_rx) = mpsc::channel::<usize>();
    credit_tx.send(IN_FLIGHT).unwrap();
    let start = Instant::now();
    let sender = std::thread::spawn(move || {
        let request = frame(request_len);
        let mut batch = Vec::with_capacity(request_len * IN_FLIGHT);
        let mut sent = 0u64;
        while sent < n {
            let Ok(mut credits) = credit_rx.recv() else {
                break;
            };
            while let Ok(more) = credit_rx.try_recv() {
                credits += more;
            }
            let k = (credits as u64).min(n - sent);
            batch.clear();
            for _ in 0..k {
                batch.extend_from_slice(&request);
            }
            writer.write_all(&batch).unwrap();
            sent += k;
        }
    });
    let mut frames = Frames::new();
    let mut done = 0;
    let mut owed = 0;
    for _ in 0..n {
        frames.next(&mut reader).unwrap();
        done += 1;
        owed += 1;
        if done & 1023 == 0 && start.elapsed() > BUDGET {
            break;
        }
        if !frames.complete() {
            let _ = credit_tx.send(owed);
            owed = 0;
        }
    }
    drop(credit_tx);
    let elapsed = start.elapsed().as_secs_f64();
    // Bounded: the writer stops when its credits run out.
    let _ = sender.join();
    done as f64 / elapsed
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--echo") {
        if let Err(e) = echo(&args[i + 1]) {
            eprintln!("raw echo: {e}");
            std::process::exit(1);
        }
        return;
    }
    let scale = Scale::from_args();
    let blocking = limits(&scale, false);
    let spinning = limits(&scale, true);
    let (request_len, reply_len) = call_add_sizes();
    let mut out = serde_json::Map::new();
    for (prefix, figures) in [("", &blocking), ("spin:", &spinning)] {
        for (op, figure) in figures {
            out.insert(format!("{prefix}{op}"), (*figure).into());
        }
    }
    out.insert("frame.request.bytes".into(), request_len.into());
    out.insert("frame.reply.bytes".into(), reply_len.into());
    println!("{}", serde_json::Value::Object(out));
}

/// Every limit, with both ends blocking or both spinning first: op -> figure.
fn limits(scale: &Scale, spin: bool) -> Vec<(&'static str, f64)> {
    let echo = Echo::spawn("unix", spin);
    let mut unix = UnixStream::connect(&echo.address).expect("connect to the echo");
    let unix_us = median_of(scale.reps, || ping_pong(&mut unix, spin, scale.pings));
    let bulk_mb_s = median_of(scale.reps, || bulk(&mut unix, spin, scale.big));
    drop(unix);
    let concurrent_per_s = median_of(scale.reps, || {
        concurrent(&echo.address, spin, 16, scale.per_thread)
    });
    drop(echo);

    // Pipelined reads never wait for one frame at a time: the same figure
    // applies to both columns, measured once.
    let pipelined_per_s = (!spin).then(|| {
        let echo = Echo::spawn("unix", false);
        let unix = UnixStream::connect(&echo.address).expect("connect to the echo");
        let reader = unix.try_clone().unwrap();
        let writer = unix.try_clone().unwrap();
        // Each run uses fresh clones of the one connection, fully drained.
        median_of(scale.reps, || {
            pipelined(
                writer.try_clone().unwrap(),
                reader.try_clone().unwrap(),
                scale.pipelined,
            )
        })
    });

    let echo = Echo::spawn("tcp", spin);
    let mut tcp = TcpStream::connect(&echo.address).expect("connect to the echo");
    tcp.set_nodelay(true).unwrap();
    let tcp_us = median_of(scale.reps, || ping_pong(&mut tcp, spin, scale.pings));
    drop(tcp);
    drop(echo);

    let mut figures = vec![
        ("call.add", unix_us),
        // Every sequential op is one round trip of about this size (the
        // lock pair two): the same limit applies.
        ("dict.set", unix_us),
        ("dict.get", unix_us),
        ("list.append", unix_us),
        ("queue.put", unix_us),
        ("queue.get", unix_us),
        ("lock.acquire_release", 2.0 * unix_us),
        ("call.add.tcp", tcp_us),
        ("value.1mib", bulk_mb_s),
        ("concurrent.dict.set.16", concurrent_per_s),
    ];
    figures.extend(pipelined_per_s.map(|p| ("call.add.pipelined", p)));
    figures
}
