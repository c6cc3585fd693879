//! A connection's bytes through shared memory: the same-host path of a
//! blocking client and the server thread dedicated to its connection.
//!
//! After the handshake on a Unix socket, a client that asks for it
//! (`Request::Hello { ring: true, .. }`) is offered a [`CAPACITY`]-byte
//! ring in each direction, in one memfd the server makes and passes with
//! SCM_RIGHTS, together with two eventfds by which the client wakes the
//! server. From then on every byte of the connection (the same frames as
//! on the socket) goes through the rings; the socket stays open as the
//! control channel: either side's death closes it, which the other sees
//! (the server in its reactor at once, a parked client within
//! [`CHECK_EVERY`]).
//!
//! Each ring is a single-producer single-consumer byte stream: the writer
//! owns `head`, the reader `tail`, both counting bytes since the start and
//! stored in shared memory for the other side; neither side trusts the
//! other's index (it must lie between what was last seen and what the
//! ring can hold, else the connection ends with an error). Bytes are
//! copied in and out with relaxed atomic accesses only, so a peer that
//! scribbles on the pages can give us wrong bytes (which the frame decoder
//! refuses) but never a data race of ours.
//!
//! Waiting: both sides spin first (adaptively, `wait.rs`). A parked client
//! sleeps on a futex word the server bumps when it publishes bytes or
//! frees room; a parked server waits in its reactor on an eventfd the
//! client writes. Each side says it is parked in a flag the other checks
//! after publishing (store then load, sequentially consistent on both
//! sides), so a wake-up is never lost and, while both are busy, none is
//! paid for.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::process::shm::{futex_wait, futex_wake, Region};
use crate::wait::{Spin, Spun};

/// The ring's memfd, as `/proc/PID/maps` names it (`/memfd:managers-ring`).
pub(crate) const MEMFD_NAME: &std::ffi::CStr = c"managers-ring";

/// Bytes of each direction's ring.
pub(crate) const CAPACITY: u64 = 64 * 1024;

/// How often a parked client looks at the control socket (a server killed
/// without a word is seen within this).
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(20);

// The layout of the region: a page of header, then the two rings.
const CLIENT_SEQ: usize = 0;
const CLIENT_PARKED: usize = 4;
const SERVER_CLOSED: usize = 8;
const SERVER_READING: usize = 64;
const SERVER_WRITING: usize = 128;
/// Where each lane's `head` is; its `tail` is a cache line further.
const LANE: [usize; 2] = [256, 512];
const TAIL: usize = 64;
const DATA: usize = 4096;
const SIZE: usize = DATA + 2 * CAPACITY as usize;

/// The two directions.
#[derive(Clone, Copy)]
enum Lane {
    /// Client to server.
    Requests = 0,
    /// Server to client.
    Replies = 1,
}

/// The mapped region, shared by both halves of one side.
struct Shared {
    region: Region,
}

impl Shared {
    fn word(&self, at: usize) -> &AtomicU32 {
        debug_assert!(at % 4 == 0 && at + 4 <= DATA);
        // SAFETY: `at` is a 4-aligned offset inside the header page of a
        // page-aligned mapping that lives as long as `self`; the header
        // is only ever accessed atomically, by both processes.
        unsafe { AtomicU32::from_ptr(self.region.ptr().add(at) as *mut u32) }
    }

    fn index(&self, at: usize) -> &AtomicU64 {
        debug_assert!(at % 8 == 0 && at + 8 <= DATA);
        // SAFETY: as in `word`, 8-aligned.
        unsafe { AtomicU64::from_ptr(self.region.ptr().add(at) as *mut u64) }
    }

    fn head(&self, lane: Lane) -> &AtomicU64 {
        self.index(LANE[lane as usize])
    }

    fn tail(&self, lane: Lane) -> &AtomicU64 {
        self.index(LANE[lane as usize] + TAIL)
    }

    /// The first byte of a lane's ring.
    fn data(&self, lane: Lane) -> *mut u8 {
        // SAFETY: both rings lie inside the mapping (`SIZE` bytes, checked
        // when it was mapped).
        unsafe {
            self.region
                .ptr()
                .add(DATA + lane as usize * CAPACITY as usize)
        }
    }

    /// The server tells a parked client that something changed.
    fn wake_client(&self) {
        if self.word(CLIENT_PARKED).load(Ordering::SeqCst) != 0 {
            let seq = self.word(CLIENT_SEQ);
            seq.fetch_add(1, Ordering::SeqCst);
            futex_wake(seq, 1);
        }
    }
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the shared-memory ring is corrupt ({what}): connection closed"),
    )
}

/// One side's end of one lane: the index it owns and the last value of
/// the other's it saw.
struct End {
    lane: Lane,
    /// `head` for the writer, `tail` for the reader: ours, kept here, not
    /// read back from shared memory.
    mine: u64,
    /// The peer's index as last seen (it never goes back).
    seen: u64,
}

impl End {
    fn new(lane: Lane) -> End {
        End {
            lane,
            mine: 0,
            seen: 0,
        }
    }

    /// Copy as much of `bytes` as there is room for; how much.
    fn write(&mut self, shared: &Shared, bytes: &[u8]) -> io::Result<usize> {
        let tail = shared.tail(self.lane).load(Ordering::Acquire);
        if tail < self.seen || tail > self.mine {
            return Err(corrupt("a reader's position out of range"));
        }
        self.seen = tail;
        let room = CAPACITY - (self.mine - tail);
        let n = (bytes.len() as u64).min(room) as usize;
        if n == 0 {
            return Ok(0);
        }
        let at = (self.mine % CAPACITY) as usize;
        let first = n.min(CAPACITY as usize - at);
        let data = shared.data(self.lane);
        // SAFETY: `[at, at + first)` and `[0, n - first)` lie in the lane's
        // ring (`at < CAPACITY`, `first <= CAPACITY - at`, `n <= CAPACITY`);
        // these bytes are free (between `head` and `tail + CAPACITY`), so
        // a peer keeping to the protocol does not touch them now.
        unsafe {
            copy_out(&bytes[..first], data.add(at));
            copy_out(&bytes[first..n], data);
        }
        self.mine += n as u64;
        shared.head(self.lane).store(self.mine, Ordering::SeqCst);
        Ok(n)
    }

    /// Copy out as many waiting bytes as `buf` holds; how many.
    fn read(&mut self, shared: &Shared, buf: &mut [u8]) -> io::Result<usize> {
        let head = shared.head(self.lane).load(Ordering::SeqCst);
        if head < self.seen || head < self.mine || head - self.mine > CAPACITY {
            return Err(corrupt("a writer's position out of range"));
        }
        self.seen = head;
        let n = ((head - self.mine) as usize).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let at = (self.mine % CAPACITY) as usize;
        let first = n.min(CAPACITY as usize - at);
        let data = shared.data(self.lane);
        // SAFETY: as in `write`: both ranges lie in the ring; these bytes
        // were published (before `head`) and are not yet given back.
        unsafe {
            copy_in(data.add(at), &mut buf[..first]);
            copy_in(data, &mut buf[first..n]);
        }
        self.mine += n as u64;
        shared.tail(self.lane).store(self.mine, Ordering::SeqCst);
        Ok(n)
    }
}

/// Copy `src` into shared memory at `dst`, every access to it a relaxed
/// atomic store: bytes up to an 8-byte boundary, then whole words, then
/// the bytes left.
///
/// # Safety
/// `dst` must be valid for `src.len()` bytes of a live mapping that is
/// only ever accessed atomically.
unsafe fn copy_out(src: &[u8], dst: *mut u8) {
    let lead = dst.align_offset(8).min(src.len());
    let words = (src.len() - lead) / 8;
    // SAFETY: every address stored to is `dst + i` for `i < src.len()`,
    // inside the caller's range; the word stores are at 8-aligned
    // addresses (`dst + lead` is aligned) and cover `[lead, lead + 8 *
    // words)`, within `src.len()`.
    unsafe {
        for (i, &byte) in src[..lead].iter().enumerate() {
            AtomicU8::from_ptr(dst.add(i)).store(byte, Ordering::Relaxed);
        }
        let aligned = dst.add(lead) as *mut u64;
        let from = src.as_ptr().add(lead) as *const u64;
        for w in 0..words {
            AtomicU64::from_ptr(aligned.add(w))
                .store(from.add(w).read_unaligned(), Ordering::Relaxed);
        }
        let rest = lead + 8 * words;
        for (i, &byte) in src[rest..].iter().enumerate() {
            AtomicU8::from_ptr(dst.add(rest + i)).store(byte, Ordering::Relaxed);
        }
    }
}

/// Copy `dst.len()` bytes of shared memory at `src` into `dst`, every
/// access to it a relaxed atomic load (as [`copy_out`] splits it).
///
/// # Safety
/// As [`copy_out`], for `src`.
unsafe fn copy_in(src: *const u8, dst: &mut [u8]) {
    let src = src as *mut u8;
    let lead = src.align_offset(8).min(dst.len());
    let words = (dst.len() - lead) / 8;
    // SAFETY: as in `copy_out`, loading instead of storing.
    unsafe {
        for (i, byte) in dst[..lead].iter_mut().enumerate() {
            *byte = AtomicU8::from_ptr(src.add(i)).load(Ordering::Relaxed);
        }
        let aligned = src.add(lead) as *mut u64;
        let to = dst.as_mut_ptr().add(lead) as *mut u64;
        for w in 0..words {
            to.add(w)
                .write_unaligned(AtomicU64::from_ptr(aligned.add(w)).load(Ordering::Relaxed));
        }
        let rest = lead + 8 * words;
        for (i, byte) in dst[rest..].iter_mut().enumerate() {
            *byte = AtomicU8::from_ptr(src.add(rest + i)).load(Ordering::Relaxed);
        }
    }
}

/// `fd` registered with this thread's reactor for readability.
fn readable(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the descriptor, which stays open and the
    // same until it drops.
    Ok(unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?)
}

fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd(2) returns a new descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Add one to an eventfd's counter (a full counter is already a wake-up).
fn signal(fd: BorrowedFd<'_>) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: write(2) of 8 bytes from a live buffer to our descriptor.
    unsafe {
        libc::write(fd.as_raw_fd(), one.as_ptr() as *const libc::c_void, 8);
    }
}

/// Empty an eventfd's counter.
fn drain(fd: BorrowedFd<'_>) {
    let mut count = [0u8; 8];
    // SAFETY: read(2) of 8 bytes into a live buffer from our descriptor
    // (non-blocking: an empty counter is EAGAIN).
    unsafe {
        libc::read(fd.as_raw_fd(), count.as_mut_ptr() as *mut libc::c_void, 8);
    }
}

/// The client's side: a byte stream over the rings, blocking.
pub(crate) struct ClientRing {
    shared: Shared,
    requests: End,
    replies: End,
    /// Written when requests are published while the server is parked.
    wake_reader: OwnedFd,
    /// Written when room is made while the server is parked on a full ring.
    wake_writer: OwnedFd,
    control: UnixStream,
    timeout: Option<Duration>,
    spin: Spin,
}

impl ClientRing {
    /// Take the server's offer: the region and its two eventfds, in the
    /// order [`ServerRing::offer`] sends them.
    pub(crate) fn accept(
        fds: Vec<OwnedFd>,
        control: UnixStream,
        spin: Duration,
    ) -> io::Result<ClientRing> {
        let [memory, wake_reader, wake_writer]: [OwnedFd; 3] = fds.try_into().map_err(|_| {
            io::Error::other("the server offered a ring without its three descriptors")
        })?;
        let region = Region::from_fd(memory).map_err(io::Error::other)?;
        if region.len() != SIZE {
            return Err(io::Error::other(format!(
                "the server offered a ring of {} bytes, not {SIZE}",
                region.len()
            )));
        }
        Ok(ClientRing {
            shared: Shared { region },
            requests: End::new(Lane::Requests),
            replies: End::new(Lane::Replies),
            wake_reader,
            wake_writer,
            control,
            timeout: None,
            spin: Spin::new(spin),
        })
    }

    /// Bound how long a read may wait (`None`: for ever).
    pub(crate) fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Whether the server is gone: it said so, or the control socket
    /// reads end of file (the server never writes on it).
    fn server_gone(&self) -> bool {
        if self.shared.word(SERVER_CLOSED).load(Ordering::SeqCst) != 0 {
            return true;
        }
        let mut poll = libc::pollfd {
            fd: self.control.as_raw_fd(),
            events: libc::POLLIN | libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: poll(2) on one live pollfd, without waiting.
        let ready = unsafe { libc::poll(&mut poll, 1, 0) };
        ready != 0
    }

    /// Try `attempt` until it moves bytes: spin, then park on the futex,
    /// looking at the control socket every [`CHECK_EVERY`]. `Ok(0)` once
    /// the server is gone; `TimedOut` past `deadline`.
    fn wait(
        &mut self,
        deadline: Option<Instant>,
        mut attempt: impl FnMut(&mut Self) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let n = attempt(self)?;
        if n > 0 {
            return Ok(n);
        }
        let mut spin = std::mem::replace(&mut self.spin, Spin::new(Duration::ZERO));
        let spun = spin.read_with(|| attempt(self).map(|n| (n > 0).then_some(n)));
        self.spin = spin;
        if let Spun::Read(n) = spun? {
            return Ok(n);
        }
        let parked = Instant::now();
        let result = loop {
            self.shared.word(CLIENT_PARKED).store(1, Ordering::SeqCst);
            let seq = self.shared.word(CLIENT_SEQ).load(Ordering::SeqCst);
            match attempt(self) {
                Ok(0) => {}
                other => break other,
            }
            if self.server_gone() {
                break Ok(0);
            }
            let mut slice = CHECK_EVERY;
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break Err(io::ErrorKind::TimedOut.into());
                }
                slice = slice.min(left);
            }
            futex_wait(self.shared.word(CLIENT_SEQ), seq, Some(slice));
        };
        self.shared.word(CLIENT_PARKED).store(0, Ordering::SeqCst);
        self.spin.parked(parked.elapsed());
        result
    }
}

impl io::Read for ClientRing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let deadline = self.timeout.map(|t| Instant::now() + t);
        self.wait(deadline, |this| {
            let n = this.replies.read(&this.shared, buf)?;
            if n > 0 && this.shared.word(SERVER_WRITING).load(Ordering::SeqCst) != 0 {
                signal(this.wake_writer.as_fd());
            }
            Ok(n)
        })
    }
}

impl io::Write for ClientRing {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if bytes.is_empty() {
            return Ok(0);
        }
        let n = self.wait(None, |this| {
            let n = this.requests.write(&this.shared, bytes)?;
            if n > 0 && this.shared.word(SERVER_READING).load(Ordering::SeqCst) != 0 {
                signal(this.wake_reader.as_fd());
            }
            Ok(n)
        })?;
        if n == 0 {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The server's side, before it is split into its two halves.
pub(crate) struct ServerRing {
    read: ServerRingRead,
    write: ServerRingWrite,
}

impl ServerRing {
    /// Make a ring and send it to the client on `control` (the region and
    /// the two eventfds, with one marker byte). A reply waiting for room
    /// spins up to `spin` for it before it parks.
    pub(crate) fn offer(control: tokio::net::UnixStream, spin: Duration) -> io::Result<ServerRing> {
        let region = Region::new_named(SIZE, MEMFD_NAME).map_err(io::Error::other)?;
        let (wake_reader, wake_writer) = (eventfd()?, eventfd()?);
        let fds = [region.as_fd(), wake_reader.as_fd(), wake_writer.as_fd()];
        crate::process::scm::send_fds(control.as_fd(), &fds).map_err(io::Error::other)?;
        let shared = Arc::new(Shared { region });
        let watch = readable(control.as_fd().try_clone_to_owned()?)?;
        Ok(ServerRing {
            read: ServerRingRead {
                shared: Arc::clone(&shared),
                end: End::new(Lane::Requests),
                wake: readable(wake_reader)?,
                control,
                spin: Spin::new(spin),
                parked: None,
            },
            write: ServerRingWrite {
                shared,
                end: End::new(Lane::Replies),
                wake: readable(wake_writer)?,
                control: watch,
                spin: Spin::new(spin),
                parked: None,
            },
        })
    }

    /// Its reading and writing halves.
    pub(crate) fn split(self) -> (ServerRingRead, ServerRingWrite) {
        (self.read, self.write)
    }
}

impl AsyncRead for ServerRing {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().read).poll_read(cx, buf)
    }
}

impl AsyncWrite for ServerRing {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().write).poll_write(cx, bytes)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().write).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().write).poll_shutdown(cx)
    }
}

/// The server's reading half: requests, and the control socket's end.
pub(crate) struct ServerRingRead {
    shared: Arc<Shared>,
    end: End,
    wake: AsyncFd<OwnedFd>,
    control: tokio::net::UnixStream,
    /// The rest of a large request follows a ring's worth at a time:
    /// spinning for it saves a wake-up each time.
    spin: Spin,
    /// When the last wait for bytes parked.
    parked: Option<Instant>,
}

impl ServerRingRead {
    /// Read what is there now, without waiting (`Ok(None)`: nothing yet),
    /// for spinning.
    pub(crate) fn try_read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let n = self.end.read(&self.shared, buf)?;
        if n > 0 {
            self.shared.wake_client();
            if let Some(parked) = self.parked.take() {
                self.spin.parked(parked.elapsed());
            }
        }
        Ok((n > 0).then_some(n))
    }
}

impl AsyncRead for ServerRingRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let shared = Arc::clone(&this.shared);
        let reading = shared.word(SERVER_READING);
        if this.parked.is_none() {
            let unfilled = buf.initialize_unfilled();
            let mut spin = std::mem::replace(&mut this.spin, Spin::new(Duration::ZERO));
            let spun = spin.read_with(|| this.try_read(unfilled));
            this.spin = spin;
            if let Spun::Read(n) = spun? {
                buf.advance(n);
                return Poll::Ready(Ok(()));
            }
            this.parked = Some(Instant::now());
        }
        loop {
            if let Some(n) = this.try_read(buf.initialize_unfilled())? {
                buf.advance(n);
                return Poll::Ready(Ok(()));
            }
            // The client never writes on the control socket: anything
            // readable there is its end (or a breach of protocol, which
            // ends the connection as well).
            if let Poll::Ready(ready) = this.control.poll_read_ready(cx) {
                ready?;
                match this.control.try_read(&mut [0u8; 1]) {
                    Ok(_) => return Poll::Ready(Ok(())),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            reading.store(1, Ordering::SeqCst);
            if let Some(n) = this.try_read(buf.initialize_unfilled())? {
                reading.store(0, Ordering::SeqCst);
                buf.advance(n);
                return Poll::Ready(Ok(()));
            }
            match this.wake.poll_read_ready(cx) {
                Poll::Ready(Ok(mut guard)) => {
                    drain(this.wake.get_ref().as_fd());
                    guard.clear_ready();
                    reading.store(0, Ordering::SeqCst);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // Parked, flagged: the client's next request writes the
                // eventfd.
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for ServerRingRead {
    fn drop(&mut self) {
        self.shared.word(SERVER_CLOSED).store(1, Ordering::SeqCst);
        let seq = self.shared.word(CLIENT_SEQ);
        seq.fetch_add(1, Ordering::SeqCst);
        futex_wake(seq, 1);
    }
}

/// The server's writing half: replies.
pub(crate) struct ServerRingWrite {
    shared: Arc<Shared>,
    end: End,
    wake: AsyncFd<OwnedFd>,
    /// A duplicate of the control socket, registered on its own: a writer
    /// waiting for room sees the client's end too (the reading half may
    /// be waiting at the same time, and one registration wakes one task).
    control: AsyncFd<OwnedFd>,
    /// A large reply fills the ring many times over while the client
    /// empties it: spinning for room saves a wake-up per ring's worth.
    spin: Spin,
    /// When the last wait for room parked.
    parked: Option<Instant>,
}

impl ServerRingWrite {
    /// Write what fits now; the client is woken if it waits.
    fn write_now(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.end.write(&self.shared, bytes)?;
        if n > 0 {
            self.shared.wake_client();
            if let Some(parked) = self.parked.take() {
                self.spin.parked(parked.elapsed());
            }
        }
        Ok(n)
    }
}

/// Whether the control socket `fd` has ended (or carries bytes, which
/// the client never sends): a peek, nothing consumed.
fn control_ended(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut byte = [0u8; 1];
    // SAFETY: recv(2) of at most one byte into a live buffer, peeking,
    // without waiting.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            byte.as_mut_ptr() as *mut libc::c_void,
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n >= 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(false),
        _ => Err(e),
    }
}

impl AsyncWrite for ServerRingWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        if bytes.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = self.get_mut();
        let shared = Arc::clone(&this.shared);
        let writing = shared.word(SERVER_WRITING);
        let n = this.write_now(bytes)?;
        if n > 0 {
            return Poll::Ready(Ok(n));
        }
        if this.parked.is_none() {
            let mut spin = std::mem::replace(&mut this.spin, Spin::new(Duration::ZERO));
            let spun = spin.read_with(|| this.write_now(bytes).map(|n| (n > 0).then_some(n)));
            this.spin = spin;
            if let Spun::Read(n) = spun? {
                return Poll::Ready(Ok(n));
            }
            this.parked = Some(Instant::now());
        }
        loop {
            writing.store(1, Ordering::SeqCst);
            let n = this.write_now(bytes)?;
            if n > 0 {
                writing.store(0, Ordering::SeqCst);
                return Poll::Ready(Ok(n));
            }
            if let Poll::Ready(ready) = this.control.poll_read_ready(cx) {
                let mut guard = ready?;
                if control_ended(this.control.get_ref().as_fd())? {
                    writing.store(0, Ordering::SeqCst);
                    return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
                }
                guard.clear_ready();
                continue;
            }
            match this.wake.poll_read_ready(cx) {
                Poll::Ready(Ok(mut guard)) => {
                    drain(this.wake.get_ref().as_fd());
                    guard.clear_ready();
                    writing.store(0, Ordering::SeqCst);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Drop for ServerRingWrite {
    fn drop(&mut self) {
        self.shared.word(SERVER_CLOSED).store(1, Ordering::SeqCst);
        let seq = self.shared.word(CLIENT_SEQ);
        seq.fetch_add(1, Ordering::SeqCst);
        futex_wake(seq, 1);
    }
}
