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
//! And the shared-memory limit (keys `shm:OP`, the `raw.shm` column, issue
//! 19): a page shared through a memfd, a sequence word each way and the
//! frame copied in and out, both ends spinning [`SPIN`] (`sched_yield`
//! each turn) and then sleeping on a futex of the sequence word (woken only
//! when the other end said it sleeps): what a shared-memory transport
//! could reach, where the socket columns are what a socket can.
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
use std::sync::atomic::{AtomicU32, Ordering};
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

/// The page of the shared-memory ping-pong. Each sequence word on a
/// cache line of its own with the flag saying its reader sleeps.
#[repr(C, align(64))]
struct Page {
    request_seq: AtomicU32,
    echo_sleeping: AtomicU32,
    _line0: [u8; 56],
    reply_seq: AtomicU32,
    client_sleeping: AtomicU32,
    _line1: [u8; 56],
    // Written through raw pointers by two processes in turn: cells.
    request: std::cell::UnsafeCell<[u8; 1024]>,
    reply: std::cell::UnsafeCell<[u8; 1024]>,
}

/// `futex(2)` on a word of shared memory (not PRIVATE: two processes).
fn futex(word: &AtomicU32, op: libc::c_int, value: u32) {
    let timeout = libc::timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    // SAFETY: `word` is a valid, aligned u32 in memory mapped in this
    // process for the duration of the call; a 1 s timeout bounds a wait.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op,
            value,
            &timeout as *const libc::timespec,
        );
    }
}

/// Wait until `word` is `target`: spin [`SPIN`] (yielding), then sleep on
/// the futex, saying so in `sleeping` first (checked again after, so a
/// wake-up is never missed).
fn wait_for(word: &AtomicU32, target: u32, sleeping: &AtomicU32) {
    let start = Instant::now();
    while word.load(Ordering::Acquire) != target {
        if start.elapsed() < SPIN {
            // SAFETY: no arguments, no memory.
            unsafe { libc::sched_yield() };
            continue;
        }
        sleeping.store(1, Ordering::SeqCst);
        let seen = word.load(Ordering::SeqCst);
        if seen != target {
            futex(word, libc::FUTEX_WAIT, seen);
        }
    }
    sleeping.store(0, Ordering::Relaxed);
}

/// Set `word` to `value`, waking its reader if it said it sleeps.
fn publish(word: &AtomicU32, value: u32, sleeping: &AtomicU32) {
    word.store(value, Ordering::SeqCst);
    if sleeping.load(Ordering::SeqCst) == 1 {
        futex(word, libc::FUTEX_WAKE, 1);
    }
}

/// A memfd holding a [`Page`], mapped; the mapping lives as long as the
/// process (one per run).
fn map_page(fd: RawFd) -> &'static Page {
    let len = std::mem::size_of::<Page>();
    // SAFETY: a shared mapping of `len` bytes of the memfd `fd`, which is
    // at least that long; never unmapped, so the reference is 'static.
    // Every field is an atomic or plain bytes, valid for any contents.
    unsafe {
        let at = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        );
        assert_ne!(at, libc::MAP_FAILED, "mmap the shared page");
        &*(at as *const Page)
    }
}

/// Copy `bytes` into the page's area at `area` (the other end reads it
/// only after the sequence word that follows says so).
fn put(area: &std::cell::UnsafeCell<[u8; 1024]>, bytes: &[u8]) {
    assert!(bytes.len() <= 1024);
    // SAFETY: the area is 1,024 bytes of the mapping, `bytes` is shorter,
    // and the other process does not touch it until it sees the sequence
    // word stored after this copy (Release/Acquire through the word).
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), area.get().cast::<u8>(), bytes.len()) }
}

/// Copy `out.len()` bytes out of the page's area at `area`.
fn take(area: &std::cell::UnsafeCell<[u8; 1024]>, out: &mut [u8]) {
    assert!(out.len() <= 1024);
    // SAFETY: as `put`, the other way: the writer stored the sequence word
    // after its copy, and writes again only after ours.
    unsafe { std::ptr::copy_nonoverlapping(area.get().cast::<u8>(), out.as_mut_ptr(), out.len()) }
}

/// The echo side of the shared-memory ping-pong: answer each request.
fn echo_shm(fd: RawFd) -> ! {
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    let page = map_page(fd);
    let (request_len, reply_len) = call_add_sizes();
    let mut request = vec![0u8; request_len];
    let reply = frame(reply_len);
    let mut seq = 0u32;
    loop {
        seq = seq.wrapping_add(1);
        wait_for(&page.request_seq, seq, &page.echo_sleeping);
        take(&page.request, &mut request);
        put(&page.reply, &reply);
        publish(&page.reply_seq, seq, &page.client_sleeping);
    }
}

/// us per round trip of `call.add`-sized frames through shared memory.
fn shm_ping_pong(scale: &Scale) -> f64 {
    let name = std::ffi::CString::new("managers-raw-shm").unwrap();
    // SAFETY: memfd_create(2) with a valid name; without CLOEXEC, so the
    // echo child inherits it.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create");
    // SAFETY: our own new descriptor.
    let size = unsafe { libc::ftruncate(fd, std::mem::size_of::<Page>() as libc::off_t) };
    assert_eq!(size, 0, "ftruncate the memfd");
    let page = map_page(fd);
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--echo-shm", &fd.to_string()])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn the shm echo");
    let _echo = Echo {
        child,
        address: String::new(),
    };
    let (request_len, reply_len) = call_add_sizes();
    let request = frame(request_len);
    let mut reply = vec![0u8; reply_len];
    let mut seq = 0u32;
    median_of(scale.reps, || {
        per_op_us(scale.pings, 1000, |_| {
            seq = seq.wrapping_add(1);
            put(&page.request, &request);
            publish(&page.request_seq, seq, &page.echo_sleeping);
            wait_for(&page.reply_seq, seq, &page.client_sleeping);
            take(&page.reply, &mut reply);
        })
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--echo-shm") {
        echo_shm(args[i + 1].parse().expect("a descriptor"));
    }
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
    let shm_us = shm_ping_pong(&scale);
    for (op, factor) in [
        ("call.add", 1.0),
        ("dict.set", 1.0),
        ("dict.get", 1.0),
        ("list.append", 1.0),
        ("queue.put", 1.0),
        ("queue.get", 1.0),
        ("lock.acquire_release", 2.0),
    ] {
        out.insert(format!("shm:{op}"), (factor * shm_us).into());
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
        ("call.add.socket", unix_us),
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
