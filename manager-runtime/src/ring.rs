//! A connection's bytes through shared memory: the same-host path of a
//! client and the server.
//!
//! After the handshake on a Unix socket, a client that asks for it
//! (`Request::Hello { ring: true, .. }`) is offered a [`CAPACITY`]-byte
//! ring in each direction, in one memfd the server makes and passes with
//! SCM_RIGHTS, together with four eventfds (each side's "wake up, bytes
//! came" and "wake up, room was made"). From then on every byte of the
//! connection (the same frames as on the socket) goes through the rings;
//! the socket stays open as the control channel: either side's death
//! closes it, which the other sees (in the reactor at once, a parked
//! blocking client within [`CHECK_EVERY`]).
//!
//! Each ring is a single-producer single-consumer byte stream: the writer
//! owns `head`, the reader `tail`, both counting bytes since the start and
//! stored in shared memory for the other side; neither side trusts the
//! other's index (it must lie between what was last seen and what the
//! ring can hold, else the connection ends with an error). Bytes are
//! copied in and out with relaxed atomic accesses only, so a peer that
//! scribbles on the pages can give us wrong bytes (which the frame decoder
//! refuses) but never a data race of ours. The memfd is sealed against
//! shrinking (a peer cannot make our accesses fault) and anonymous: it
//! goes with the last process holding it, whatever killed it.
//!
//! Waiting: both sides spin first (adaptively, `wait.rs`). A parked
//! blocking client ([`ClientRing`]) sleeps on a futex word the server
//! bumps when it publishes bytes or frees room; a parked [`AsyncRing`]
//! (the server's side, an async client's) waits in its reactor on its
//! eventfd, which the peer writes. Each side says it is parked in a flag
//! the other checks after publishing (store then load, sequentially
//! consistent on both sides), so a wake-up is never lost and, while both
//! are busy, none is paid for.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::process::lane::{drain, eventfd, signal, End, LaneRegion, Place};
use crate::process::shm::{futex_wait, futex_wake};
use crate::wait::{Spin, Spun};

/// The ring's memfd, as `/proc/PID/maps` names it (`/memfd:managers-ring`).
pub(crate) const MEMFD_NAME: &std::ffi::CStr = c"managers-ring";

/// Bytes of each direction's ring.
pub(crate) const CAPACITY: u64 = 64 * 1024;

/// How long a client waits for the server's answer to its request for a
/// ring (the server answers at once; this only bounds a broken one).
pub(crate) const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// How often a parked client looks at the control socket (a server killed
/// without a word is seen within this).
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(20);

// The layout of the region: a page of header, then the two rings.
const CLIENT_SEQ: usize = 0;
const CLIENT_PARKED: usize = 4;
const SERVER_CLOSED: usize = 8;
const SERVER_READING: usize = 64;
const SERVER_WRITING: usize = 128;
/// Each side's "parked reading" and "parked writing" flags, by [`Side`]
/// (an async side parks in its reactor on its own eventfds).
const READING: [usize; 2] = [192, SERVER_READING];
const WRITING: [usize; 2] = [196, SERVER_WRITING];
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
    region: LaneRegion,
}

impl Shared {
    fn word(&self, at: usize) -> &AtomicU32 {
        self.region.word(at)
    }

    /// Where a lane lies in the region.
    fn place(lane: Lane) -> Place {
        Place {
            head: LANE[lane as usize],
            tail: LANE[lane as usize] + TAIL,
            data: DATA + lane as usize * CAPACITY as usize,
            capacity: CAPACITY,
        }
    }

    /// A new end of `lane`.
    fn end(&self, lane: Lane) -> End {
        End::new(&self.region, Self::place(lane))
    }

    /// Write the eventfd `wake` if the peer's `flag` says it is parked for
    /// it (after this side moved bytes it may wait for).
    fn wake_if(&self, flag: usize, wake: BorrowedFd<'_>) {
        if self.word(flag).load(Ordering::SeqCst) != 0 {
            signal(wake);
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

/// `fd` registered with this thread's reactor for readability.
fn readable(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the descriptor, which stays open and the
    // same until it drops.
    Ok(unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?)
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
    /// Take the server's offer (the descriptors [`AsyncRing::offer`]
    /// sends); a blocking client waits on a futex, not on its eventfds.
    pub(crate) fn accept(
        fds: Vec<OwnedFd>,
        control: UnixStream,
        spin: Duration,
    ) -> io::Result<ClientRing> {
        let Offer {
            shared,
            server_reading: wake_reader,
            server_writing: wake_writer,
            ..
        } = Offer::take(fds)?;
        Ok(ClientRing {
            requests: shared.end(Lane::Requests),
            replies: shared.end(Lane::Replies),
            shared,
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
            let n = this.replies.read(&this.shared.region, buf)?;
            if n > 0 {
                this.shared
                    .wake_if(SERVER_WRITING, this.wake_writer.as_fd());
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
            let n = this.requests.write(&this.shared.region, bytes)?;
            if n > 0 {
                this.shared
                    .wake_if(SERVER_READING, this.wake_reader.as_fd());
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

/// Which end of the connection a side of the ring is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Client = 0,
    Server = 1,
}

impl Side {
    fn peer(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }

    /// The lane this side reads (the other it writes).
    fn reads(self) -> Lane {
        match self {
            Side::Client => Lane::Replies,
            Side::Server => Lane::Requests,
        }
    }

    fn writes(self) -> Lane {
        match self {
            Side::Client => Lane::Requests,
            Side::Server => Lane::Replies,
        }
    }
}

/// What the server sends: the region, then the eventfds each side waits
/// on when parked reading or writing (a blocking client does not use its
/// own two: it waits on the futex).
struct Offer {
    shared: Shared,
    server_reading: OwnedFd,
    server_writing: OwnedFd,
    client_reading: OwnedFd,
    client_writing: OwnedFd,
}

impl Offer {
    fn new() -> io::Result<Offer> {
        Ok(Offer {
            shared: Shared {
                region: LaneRegion::new(SIZE, MEMFD_NAME).map_err(io::Error::other)?,
            },
            server_reading: eventfd()?,
            server_writing: eventfd()?,
            client_reading: eventfd()?,
            client_writing: eventfd()?,
        })
    }

    /// Send it on `control`, with one marker byte.
    fn send(&self, control: BorrowedFd<'_>) -> io::Result<()> {
        let fds = [
            self.shared.region.fd(),
            self.server_reading.as_fd(),
            self.server_writing.as_fd(),
            self.client_reading.as_fd(),
            self.client_writing.as_fd(),
        ];
        crate::process::scm::send_fds(control, &fds).map_err(io::Error::other)
    }

    /// What the client received, checked.
    fn take(fds: Vec<OwnedFd>) -> io::Result<Offer> {
        let [memory, server_reading, server_writing, client_reading, client_writing]: [OwnedFd; 5] =
            fds.try_into().map_err(|_| {
                io::Error::other("the server offered a ring without its five descriptors")
            })?;
        let region = LaneRegion::from_fd(memory).map_err(io::Error::other)?;
        if region.len() != SIZE {
            return Err(io::Error::other(format!(
                "the server offered a ring of {} bytes, not {SIZE}",
                region.len()
            )));
        }
        Ok(Offer {
            shared: Shared { region },
            server_reading,
            server_writing,
            client_reading,
            client_writing,
        })
    }

    /// `side`'s two halves, on this thread's reactor; `control` is the
    /// Unix socket under the ring.
    fn into_async(self, side: Side, control: OwnedFd, spin: Duration) -> io::Result<AsyncRing> {
        let Offer {
            shared,
            server_reading,
            server_writing,
            client_reading,
            client_writing,
        } = self;
        // Each half waits on its own eventfd and signals the peer's other.
        let (read_wake, write_wake, read_signal, write_signal) = match side {
            Side::Server => (
                server_reading,
                server_writing,
                client_writing,
                client_reading,
            ),
            Side::Client => (
                client_reading,
                client_writing,
                server_writing,
                server_reading,
            ),
        };
        let shared = Arc::new(shared);
        let watch = control.try_clone()?;
        Ok(AsyncRing {
            read: RingRead {
                half: Half::new(
                    &shared,
                    side,
                    side.reads(),
                    read_wake,
                    read_signal,
                    control,
                    spin,
                )?,
            },
            write: RingWrite {
                half: Half::new(
                    &shared,
                    side,
                    side.writes(),
                    write_wake,
                    write_signal,
                    watch,
                    spin,
                )?,
            },
        })
    }
}

/// One side of a connection through the ring, async: the server's, or an
/// async client's. It is a socket like any other to the code that serves
/// or drives the connection.
pub(crate) struct AsyncRing {
    read: RingRead,
    write: RingWrite,
}

impl AsyncRing {
    /// The server's side: make a ring and send it to the client on
    /// `control`. Waits for bytes or room spin up to `spin` before they
    /// park.
    pub(crate) fn offer(control: tokio::net::UnixStream, spin: Duration) -> io::Result<AsyncRing> {
        let control = OwnedFd::from(control.into_std()?);
        let offer = Offer::new()?;
        offer.send(control.as_fd())?;
        offer.into_async(Side::Server, control, spin)
    }

    /// An async client's side, from the descriptors the server sent on
    /// `control`.
    pub(crate) fn accept(
        fds: Vec<OwnedFd>,
        control: tokio::net::UnixStream,
        spin: Duration,
    ) -> io::Result<AsyncRing> {
        let control = OwnedFd::from(control.into_std()?);
        Offer::take(fds)?.into_async(Side::Client, control, spin)
    }

    /// Its reading and writing halves.
    pub(crate) fn split(self) -> (RingRead, RingWrite) {
        (self.read, self.write)
    }
}

impl AsyncRead for AsyncRing {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().read).poll_read(cx, buf)
    }
}

impl AsyncWrite for AsyncRing {
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

/// Whether the control socket `fd` has ended (or carries bytes, which
/// neither side sends on it once the ring is taken): a peek, nothing
/// consumed.
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

/// What both halves of an async side hold: one lane's end, how to wait
/// for it and how to wake the peer.
struct Half {
    shared: Arc<Shared>,
    side: Side,
    end: End,
    /// The eventfd the peer writes when this half is parked.
    wake: AsyncFd<OwnedFd>,
    /// The peer's eventfd for the other direction: written when this half
    /// moved bytes the peer may be parked for.
    signal: OwnedFd,
    /// The control socket (a descriptor of it per half, each registered
    /// on its own: both halves may wait at once, and one registration
    /// wakes one task).
    control: AsyncFd<OwnedFd>,
    /// Bytes or room usually come within microseconds (the rest of a large
    /// frame, the next reply): spinning for them saves a wake-up.
    spin: Spin,
    /// When the last wait parked.
    parked: Option<Instant>,
}

/// Whether a half is waiting for bytes or for room.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Moving {
    In,
    Out,
}

impl Half {
    fn new(
        shared: &Arc<Shared>,
        side: Side,
        lane: Lane,
        wake: OwnedFd,
        signal: OwnedFd,
        control: OwnedFd,
        spin: Duration,
    ) -> io::Result<Half> {
        Ok(Half {
            shared: Arc::clone(shared),
            side,
            end: shared.end(lane),
            wake: readable(wake)?,
            signal,
            control: readable(control)?,
            spin: Spin::new(spin),
            parked: None,
        })
    }

    /// The flag this half raises when it parks, and the peer's flag for
    /// the other direction (which this half's progress may end).
    fn flags(&self, moving: Moving) -> (usize, usize) {
        let (me, peer) = (self.side as usize, self.side.peer() as usize);
        match moving {
            Moving::In => (READING[me], WRITING[peer]),
            Moving::Out => (WRITING[me], READING[peer]),
        }
    }

    /// Move what can be moved now (`Ok(None)`: nothing), and wake the
    /// peer if it waits for what moved.
    fn now(&mut self, moving: Moving, read: &mut [u8], write: &[u8]) -> io::Result<Option<usize>> {
        let n = match moving {
            Moving::In => self.end.read(&self.shared.region, read)?,
            Moving::Out => self.end.write(&self.shared.region, write)?,
        };
        if n == 0 {
            return Ok(None);
        }
        let (_, peer_flag) = self.flags(moving);
        self.shared.wake_if(peer_flag, self.signal.as_fd());
        if self.side == Side::Server {
            self.shared.wake_client();
        }
        if let Some(parked) = self.parked.take() {
            self.spin.parked(parked.elapsed());
        }
        Ok(Some(n))
    }

    /// Whether the peer is gone: the server said so, or the control socket
    /// ended (or broke protocol).
    fn peer_gone(&self, cx: &mut Context<'_>) -> io::Result<bool> {
        if self.side == Side::Client && self.shared.word(SERVER_CLOSED).load(Ordering::SeqCst) != 0
        {
            return Ok(true);
        }
        loop {
            match self.control.poll_read_ready(cx) {
                Poll::Pending => return Ok(false),
                Poll::Ready(ready) => {
                    let mut guard = ready?;
                    if control_ended(self.control.get_ref().as_fd())? {
                        return Ok(true);
                    }
                    guard.clear_ready();
                }
            }
        }
    }

    /// Move bytes one way: what is there now, or after spinning, or once
    /// the peer wakes this half. `Ready(Ok(0))` once the peer is gone.
    fn poll_move(
        &mut self,
        cx: &mut Context<'_>,
        moving: Moving,
        read: &mut [u8],
        write: &[u8],
    ) -> Poll<io::Result<usize>> {
        if read.is_empty() && write.is_empty() {
            return Poll::Ready(Ok(0));
        }
        match self.now(moving, read, write) {
            Ok(Some(n)) => return Poll::Ready(Ok(n)),
            Ok(None) => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
        if self.parked.is_none() {
            let mut spin = std::mem::replace(&mut self.spin, Spin::new(Duration::ZERO));
            let spun = spin.read_with(|| self.now(moving, read, write));
            self.spin = spin;
            match spun {
                Ok(Spun::Read(n)) => return Poll::Ready(Ok(n)),
                Ok(Spun::Park) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            self.parked = Some(Instant::now());
        }
        let shared = Arc::clone(&self.shared);
        let flag = shared.word(self.flags(moving).0);
        loop {
            match self.peer_gone(cx) {
                Ok(true) => return Poll::Ready(Ok(0)),
                Ok(false) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            flag.store(1, Ordering::SeqCst);
            match self.now(moving, read, write) {
                Ok(None) => {}
                done => {
                    flag.store(0, Ordering::SeqCst);
                    return Poll::Ready(done.map(|n| n.unwrap_or(0)));
                }
            }
            match self.wake.poll_read_ready(cx) {
                Poll::Ready(Ok(mut guard)) => {
                    drain(self.wake.get_ref().as_fd());
                    guard.clear_ready();
                    flag.store(0, Ordering::SeqCst);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // Parked, flagged: the peer's next move writes the eventfd.
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for Half {
    fn drop(&mut self) {
        if self.side == Side::Server {
            // A client parked on either of its waits sees the end at once.
            self.shared.word(SERVER_CLOSED).store(1, Ordering::SeqCst);
            let seq = self.shared.word(CLIENT_SEQ);
            seq.fetch_add(1, Ordering::SeqCst);
            futex_wake(seq, 1);
            signal(self.signal.as_fd());
        }
    }
}

/// The reading half of an [`AsyncRing`].
pub(crate) struct RingRead {
    half: Half,
}

impl AsyncRead for RingRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this
            .half
            .poll_move(cx, Moving::In, buf.initialize_unfilled(), &[])
        {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The writing half of an [`AsyncRing`].
pub(crate) struct RingWrite {
    half: Half,
}

impl Drop for RingWrite {
    /// A client done writing says so on the control socket, as a socket's
    /// write half would: the server ends the connection, and with it the
    /// client's reading half. (The reading half's descriptor keeps the
    /// socket open, so closing this one alone would tell the server
    /// nothing, and the connection, its ring and its session on the
    /// server would stay.)
    fn drop(&mut self) {
        if self.half.side == Side::Client {
            // SAFETY: shutdown(2) of a socket descriptor this half owns
            // (open until the half drops, after this); no memory is passed.
            unsafe { libc::shutdown(self.half.control.get_ref().as_raw_fd(), libc::SHUT_WR) };
        }
    }
}

impl AsyncWrite for RingWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        if bytes.is_empty() {
            return Poll::Ready(Ok(0));
        }
        match self
            .get_mut()
            .half
            .poll_move(cx, Moving::Out, &mut [], bytes)
        {
            Poll::Ready(Ok(0)) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared {
            region: LaneRegion::new(SIZE, MEMFD_NAME).unwrap(),
        }
    }

    #[test]
    fn bytes_cross_in_order_through_every_wrap_of_the_ring() {
        let shared = shared();
        let (writer, reader) = (shared.end(Lane::Requests), shared.end(Lane::Requests));
        let message: Vec<u8> = (0..100_003u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut got = Vec::new();
        let mut sent = 0;
        let mut buf = vec![0u8; 9_999];
        // Odd sizes on both sides: every alignment, every wrap.
        while got.len() < message.len() * 5 {
            let at = sent % message.len();
            let chunk = &message[at..(at + 12_345).min(message.len())];
            sent += writer.write(&shared.region, chunk).unwrap();
            let n = reader.read(&shared.region, &mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        for (i, pass) in got.chunks(message.len()).enumerate() {
            assert_eq!(pass, &message[..pass.len()], "pass {i}");
        }
    }

    #[test]
    fn a_full_ring_takes_nothing_more_and_an_empty_one_gives_nothing() {
        let shared = shared();
        let (writer, reader) = (shared.end(Lane::Replies), shared.end(Lane::Replies));
        let big = vec![1u8; CAPACITY as usize + 10];
        assert_eq!(
            writer.write(&shared.region, &big).unwrap(),
            CAPACITY as usize
        );
        assert_eq!(writer.write(&shared.region, &big).unwrap(), 0);
        let mut buf = vec![0u8; CAPACITY as usize * 2];
        assert_eq!(
            reader.read(&shared.region, &mut buf).unwrap(),
            CAPACITY as usize
        );
        assert_eq!(reader.read(&shared.region, &mut buf).unwrap(), 0);
    }

    #[test]
    fn a_peers_position_out_of_range_is_an_error_not_a_read_out_of_bounds() {
        let shared = shared();
        let reader = shared.end(Lane::Requests);
        let mut buf = [0u8; 64];
        // A head beyond what the ring holds.
        shared
            .region
            .index(LANE[Lane::Requests as usize])
            .store(CAPACITY + 1, Ordering::SeqCst);
        assert_eq!(
            reader.read(&shared.region, &mut buf).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // A head that goes back.
        let reader = shared.end(Lane::Requests);
        shared.region.index(LANE[0]).store(10, Ordering::SeqCst);
        assert_eq!(reader.read(&shared.region, &mut buf).unwrap(), 10);
        shared.region.index(LANE[0]).store(5, Ordering::SeqCst);
        assert!(reader.read(&shared.region, &mut buf).is_err());
        // A reader's position past what was written.
        let writer = shared.end(Lane::Replies);
        shared
            .region
            .index(LANE[1] + TAIL)
            .store(1, Ordering::SeqCst);
        assert!(writer.write(&shared.region, b"x").is_err());
    }
}
