//! Python's `Pipe()` and its `Connection`s: length-prefixed messages
//! between threads or processes of this program, through shared memory
//! (`lane.rs`: a ring each way beside a Unix socket pair) or, where that
//! cannot be had or is not wanted, through the socket pair alone.
//!
//! A message is a 4-byte little-endian length and the bytes; `send` and
//! `recv` carry one serde value (postcard), `send_bytes` and `recv_bytes`
//! raw bytes. Reads are buffered (a small message costs one copy out of
//! the lane, or one `read`); a reader expecting an answer soon spins
//! briefly before it sleeps (adaptively, as the client does: `wait.rs`).
//! A length over the receiver's limit is refused before anything is
//! allocated, and the message skipped: the connection stays usable. A peer
//! that closed is [`Error::Eof`], never a hang: the socket's end is the
//! peer's, whichever way the bytes go.
//!
//! The descriptors a message carries always go on the socket: through
//! lanes, the message's announcement goes in the lane first, then the
//! descriptors on the socket, then the message.
//!
//! Which ends may send and receive is in the type: `Connection<Duplex>`
//! does both, `Connection<RecvOnly>` and `Connection<SendOnly>` (from
//! [`Pipe::simplex`]) one each. A connection passed in a
//! [`Process`](super::Process)'s arguments moves to the child (its
//! descriptors cross the lifeline, with any bytes already buffered; its
//! lanes' positions are in the shared memory), and the parent's copy
//! closes once the child holds it.

use std::io::{IoSlice, Read, Write};
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::lane::{Lanes, Parked, Roles, WriteLock, CAPACITY};
use super::scm;
use crate::crossing::{self, Received, Route, ServerInfo};
use crate::error::{Error, Result};
use crate::wait::{Spin, Spun};

/// The default largest message a connection accepts (64 MiB, as a
/// manager's frames).
pub const DEFAULT_MAX_MESSAGE: u32 = 64 * 1024 * 1024;
const PREFIX: usize = 4;
/// Messages up to this size go out as one copy and one `write`.
const SMALL: usize = 64 * 1024;
/// A length prefix no message has: what follows is the attachments of the
/// next message (how many descriptors, the servers of its proxies), then
/// the descriptors' marker bytes (`scm.rs`).
const ATTACHED: u32 = u32::MAX;
/// Descriptors received and not yet claimed beyond which the peer is
/// sending ones no message announces.
const MAX_UNCLAIMED: usize = 4096;

/// Both directions (Python's `Pipe(duplex=True)`).
#[derive(Debug)]
pub enum Duplex {}
/// The receiving end of [`Pipe::simplex`].
#[derive(Debug)]
pub enum RecvOnly {}
/// The sending end of [`Pipe::simplex`].
#[derive(Debug)]
pub enum SendOnly {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Duplex {}
    impl Sealed for super::RecvOnly {}
    impl Sealed for super::SendOnly {}
}

/// Ends that can receive: [`Duplex`], [`RecvOnly`].
pub trait CanRecv: sealed::Sealed {}
impl CanRecv for Duplex {}
impl CanRecv for RecvOnly {}

/// Ends that can send: [`Duplex`], [`SendOnly`].
pub trait CanSend: sealed::Sealed {}
impl CanSend for Duplex {}
impl CanSend for SendOnly {}

/// Python's `multiprocessing.Pipe`.
#[derive(Debug)]
pub struct Pipe;

impl Pipe {
    /// Two connected ends, each able to send and receive (Python's
    /// `Pipe()`, `duplex=True`).
    ///
    /// Messages go through shared memory: a 64 KiB ring each way, in an
    /// anonymous memfd (`/memfd:managers-pipe`), with a Unix socket pair
    /// beside it that carries the descriptors a message holds and whose
    /// end is the other end's. Where shared memory cannot be had, the
    /// socket pair carries everything ([`duplex_socket`](Self::duplex_socket)).
    pub fn duplex() -> Result<(Connection, Connection)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        let (ours, theirs) = match Lanes::new(2, CAPACITY) {
            Ok(lanes) => Linked::pair(lanes, (Some(1), Some(0)), (Some(0), Some(1))),
            Err(_) => (None, None),
        };
        Ok((
            Connection::new(a.into(), ours),
            Connection::new(b.into(), theirs),
        ))
    }

    /// As [`duplex`](Self::duplex), every byte through the socket pair:
    /// for a caller that waits for messages by polling the connections'
    /// descriptors itself ([`AsFd`]).
    pub fn duplex_socket() -> Result<(Connection, Connection)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((
            Connection::new(a.into(), None),
            Connection::new(b.into(), None),
        ))
    }

    /// A one-way pipe: `(receiver, sender)`, in Python's order for
    /// `Pipe(duplex=False)`. The receiver cannot send nor the sender
    /// receive: neither compiles. Its messages go through shared memory
    /// as [`duplex`](Self::duplex)'s do.
    pub fn simplex() -> Result<(Connection<RecvOnly>, Connection<SendOnly>)> {
        let (read, write) = std::os::unix::net::UnixStream::pair()?;
        let Ok(lanes) = Lanes::new(1, CAPACITY) else {
            return Self::simplex_of(read, write);
        };
        let (reader, writer) = Linked::pair(lanes, (Some(0), None), (None, Some(0)));
        Ok((
            Connection::new(read.into(), reader),
            Connection::new(write.into(), writer),
        ))
    }

    /// As [`simplex`](Self::simplex), every byte through a socket pair
    /// (each end shut down one way): see [`duplex_socket`](Self::duplex_socket).
    pub fn simplex_socket() -> Result<(Connection<RecvOnly>, Connection<SendOnly>)> {
        let (read, write) = std::os::unix::net::UnixStream::pair()?;
        Self::simplex_of(read, write)
    }

    fn simplex_of(
        read: std::os::unix::net::UnixStream,
        write: std::os::unix::net::UnixStream,
    ) -> Result<(Connection<RecvOnly>, Connection<SendOnly>)> {
        read.shutdown(std::net::Shutdown::Write)?;
        write.shutdown(std::net::Shutdown::Read)?;
        Ok((
            Connection::new(read.into(), None),
            Connection::new(write.into(), None),
        ))
    }
}

/// An end's share of its pipe's lanes in shared memory.
struct Linked {
    lanes: Arc<Lanes>,
    roles: Roles,
}

impl Linked {
    /// Two ends' shares of new `lanes`: which lane each reads and writes.
    fn pair(
        lanes: Lanes,
        (a_reads, a_writes): (Option<u8>, Option<u8>),
        (b_reads, b_writes): (Option<u8>, Option<u8>),
    ) -> (Option<Linked>, Option<Linked>) {
        let lanes = Arc::new(lanes);
        let link = |reads, writes| Linked {
            lanes: Arc::clone(&lanes),
            roles: Roles { reads, writes },
        };
        (Some(link(a_reads, a_writes)), Some(link(b_reads, b_writes)))
    }

    /// The lane this end reads, or a protocol error (an end that came
    /// from another process without one).
    fn reads(&self) -> Result<u8> {
        self.roles
            .reads
            .ok_or_else(|| Error::protocol("a pipe end without a lane to read", None))
    }

    fn writes(&self) -> Result<u8> {
        self.roles
            .writes
            .ok_or_else(|| Error::protocol("a pipe end without a lane to write", None))
    }
}

/// Read what lane `lane` holds into `buf`, waiting for it (spinning
/// first, then parked): how many bytes, 0 once the other end closed and
/// nothing is left.
fn ring_read(
    lanes: &Lanes,
    lane: u8,
    spin: &mut Spin,
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
) -> Result<usize> {
    let n = lanes.read(lane, buf)?;
    if n > 0 || buf.is_empty() {
        return Ok(n);
    }
    let attempt = || lanes.read(lane, buf).map(|n| (n > 0).then_some(n));
    if let Spun::Read(n) = spin.read_with(attempt)? {
        return Ok(n);
    }
    let parked = Instant::now();
    loop {
        let n = lanes.read(lane, buf)?;
        if n > 0 {
            spin.parked(parked.elapsed());
            return Ok(n);
        }
        if let Parked::Closed = lanes.park_reader(lane, socket, None)? {
            return Ok(lanes.read(lane, buf)?);
        }
    }
}

/// Bytes read from the descriptor but not yet handed out.
struct Incoming {
    /// Initialised once; `start..end` holds the bytes not handed out.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes of a refused message still to be skipped.
    skip: u64,
    /// Spin briefly before blocking while answers come fast (`wait.rs`).
    spin: Spin,
    /// Descriptors that arrived with the bytes, not yet claimed by a
    /// message's attachments (in the order they came).
    fds: Vec<OwnedFd>,
    /// The attachments announced for the next message.
    attached: Option<(Vec<OwnedFd>, Vec<ServerInfo>)>,
}

impl Incoming {
    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Make room for at least [`SMALL`] more bytes at the buffer's end.
    fn make_room(&mut self) {
        if self.buf.len() - self.end < SMALL {
            // Move what is left to the front; grow (zeroing once) only if
            // that does not make room.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() - self.end < SMALL {
                self.buf.resize(self.end + SMALL, 0);
            }
        }
    }

    /// Read more from the lane `linked` reads into the buffer; `false` at
    /// end of file.
    fn fill_ring(&mut self, linked: &Linked, socket: BorrowedFd<'_>) -> Result<bool> {
        self.make_room();
        let Incoming { buf, end, spin, .. } = self;
        let n = ring_read(
            &linked.lanes,
            linked.reads()?,
            spin,
            socket,
            &mut buf[*end..],
        )?;
        *end += n;
        Ok(n > 0)
    }

    /// Read from the lane `linked` reads into `buf` (not the buffer).
    fn read_ring_into(
        &mut self,
        linked: &Linked,
        socket: BorrowedFd<'_>,
        buf: &mut [u8],
    ) -> Result<usize> {
        ring_read(&linked.lanes, linked.reads()?, &mut self.spin, socket, buf)
    }

    /// Read more from the socket into the buffer; `false` at end of file.
    fn fill(&mut self, fd: &std::fs::File) -> Result<bool> {
        self.make_room();
        // Every read is a recvmsg: descriptors may come with the bytes.
        let room = &mut self.buf[self.end..];
        let fds = &mut self.fds;
        let read = match self
            .spin
            .read_with(|| scm::recv(fd.as_fd(), room, true, fds))
        {
            Ok(Spun::Read(n)) => Ok(n),
            Err(e) => Err(e),
            Ok(Spun::Park) => {
                let parked = Instant::now();
                let read = loop {
                    match scm::recv(fd.as_fd(), room, false, fds) {
                        Ok(None) => continue,
                        Ok(Some(n)) => break Ok(n),
                        Err(e) => break Err(e),
                    }
                };
                self.spin.parked(parked.elapsed());
                read
            }
        };
        let n = read?;
        self.end += n;
        if self.fds.len() > MAX_UNCLAIMED {
            self.fds.clear();
            return Err(Error::protocol(
                "the peer sent file descriptors no message announced",
                None,
            ));
        }
        Ok(n > 0)
    }
}

/// One end of a [`Pipe`]: Python's `multiprocessing.connection.Connection`.
///
/// ```
/// # extern crate manager_runtime as managers;
/// use managers::process::Pipe;
///
/// let (a, b) = Pipe::duplex()?;
/// a.send(&("hello", 42u32))?;
/// let (text, n): (String, u32) = b.recv()?;
/// assert_eq!((text.as_str(), n), ("hello", 42));
/// drop(a);
/// assert!(matches!(b.recv::<u32>(), Err(managers::Error::Eof)));
/// # Ok::<(), managers::Error>(())
/// ```
pub struct Connection<D = Duplex> {
    /// The socket, as a `File` for its `Read`/`Write` on `&File`.
    file: std::fs::File,
    /// The pipe's lanes in shared memory, if it has them: then its bytes
    /// go through them, and the socket carries only descriptors (and its
    /// end says the other end's).
    linked: Option<Linked>,
    incoming: Mutex<Incoming>,
    outgoing: Mutex<Vec<u8>>,
    /// The other end was seen gone (through lanes: a send into them would
    /// otherwise succeed while there is room).
    gone: AtomicBool,
    max: u32,
    _end: PhantomData<fn() -> D>,
}

impl<D> Connection<D> {
    fn new(fd: OwnedFd, linked: Option<Linked>) -> Self {
        Self::with_buffered(fd, Vec::new(), linked)
    }

    fn with_buffered(fd: OwnedFd, buffered: Vec<u8>, linked: Option<Linked>) -> Self {
        Connection {
            file: std::fs::File::from(fd),
            linked,
            incoming: Mutex::new(Incoming {
                end: buffered.len(),
                buf: buffered,
                start: 0,
                skip: 0,
                spin: Spin::new(crate::wait::DEFAULT_SPIN),
                fds: Vec::new(),
                attached: None,
            }),
            outgoing: Mutex::new(Vec::new()),
            gone: AtomicBool::new(false),
            max: DEFAULT_MAX_MESSAGE,
            _end: PhantomData,
        }
    }

    /// Whether this end's messages go through shared memory.
    pub fn is_shared_memory(&self) -> bool {
        self.linked.is_some()
    }

    /// Refuse messages longer than `bytes` (default
    /// [`DEFAULT_MAX_MESSAGE`]), on both sending and receiving.
    pub fn with_max_message(mut self, bytes: u32) -> Self {
        self.max = bytes;
        self
    }

    /// Close this end (Python's `close()`); dropping it does the same.
    pub fn close(self) {}

    /// Another handle on this end, to hand to another process as well
    /// (Python passes one end to several processes: a `multiprocessing.Queue`
    /// is a pipe whose sending end every producer holds). The handles share
    /// one stream. Through shared memory, messages sent through several at
    /// once each arrive whole (the lane has a writers' lock; a holder
    /// SIGKILLed in the middle of a message leaves the pipe broken, which
    /// every later send reports); through a socket pair, only messages the
    /// socket takes in one write are. Receive through one handle at a time
    /// (under a [`Lock`](super::Lock), as Python's queue does): bytes a
    /// handle read ahead stay with it.
    pub fn try_clone(&self) -> Result<Self> {
        let fd = self.file.as_fd().try_clone_to_owned()?;
        let linked = self.linked.as_ref().map(|l| Linked {
            lanes: Arc::clone(&l.lanes),
            roles: l.roles,
        });
        Ok(Self::with_buffered(fd, Vec::new(), linked).with_max_message(self.max))
    }

    fn incoming(&self) -> MutexGuard<'_, Incoming> {
        self.incoming.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn eof_on_broken(e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => Error::Eof,
        _ => e.into(),
    }
}

impl<D> Connection<D> {
    /// Write all of `bytes` to the other end: into the lane this end
    /// writes, or the socket.
    ///
    /// `take_in`: while waiting for room in the lane, take what comes the
    /// other way into the read buffer (unless another thread is reading).
    fn write_out(&self, bytes: &[u8], take_in: bool) -> Result<()> {
        let Some(linked) = &self.linked else {
            return (&self.file).write_all(bytes).map_err(eof_on_broken);
        };
        if self.gone.load(Ordering::Relaxed) {
            return Err(Error::Eof);
        }
        // What comes the other way, taken into the read buffer without
        // waiting.
        let take_from = |lane: u8| -> Result<()> {
            let mut incoming = match self.incoming.try_lock() {
                Ok(incoming) => incoming,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return Ok(()),
            };
            loop {
                incoming.make_room();
                let Incoming { buf, end, .. } = &mut *incoming;
                match linked.lanes.read(lane, &mut buf[*end..])? {
                    0 => return Ok(()),
                    n => *end += n,
                }
            }
        };
        let reads = linked.roles.reads.filter(|_| take_in);
        let mut take = || reads.map_or(Ok(()), take_from);
        let drain = reads.map(|lane| (lane, &mut take as &mut dyn FnMut() -> Result<()>));
        let written = linked
            .lanes
            .write_all(linked.writes()?, bytes, self.file.as_fd(), drain);
        if let Err(Error::Eof) = written {
            self.gone.store(true, Ordering::Relaxed);
        }
        written
    }

    /// Through lanes, the writers' lock of the lane this end writes, for
    /// one message.
    fn lock_lane(&self) -> Result<Option<WriteLock<'_>>> {
        match &self.linked {
            Some(linked) => Ok(Some(linked.lanes.lock_writer(linked.writes()?)?)),
            None => Ok(None),
        }
    }

    /// Read more into `incoming`'s buffer; `false` at end of file.
    fn fill(&self, incoming: &mut Incoming) -> Result<bool> {
        let more = match &self.linked {
            Some(linked) => incoming.fill_ring(linked, self.file.as_fd())?,
            None => return incoming.fill(&self.file),
        };
        if !more {
            self.gone.store(true, Ordering::Relaxed);
        }
        Ok(more)
    }
}

impl<D: CanSend> Connection<D> {
    /// Send one value (Python's `send(obj)`, with serde instead of pickle).
    /// The bytes do not name their type: the receiver must ask for the
    /// type that was sent (send a [`Value`](crate::value::Value) for
    /// dynamically typed data, as Python's pickles are).
    ///
    /// The value may hold what another process needs more than bytes for
    /// (`process/crossing.rs`): connections, queues, locks and shared
    /// memory go with it as file descriptors, proxies as tokens the
    /// receiver takes its own reference with (through a session opened the
    /// way the sender's was). As with Python, the object a proxy names must
    /// still be alive (some proxy holding it) when the receiver gets it.
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        let mut out = self.outgoing.lock().unwrap_or_else(|e| e.into_inner());
        out.clear();
        out.extend_from_slice(&[0; PREFIX]);
        let ((), attachments) =
            crossing::encoding(Route::Pipe, || crate::codec::append(&mut out, value))?;
        let len = self.checked_len(out.len() - PREFIX)?;
        out[..PREFIX].copy_from_slice(&len.to_le_bytes());
        // The message (its descriptors too) whole, before or after another
        // process's on the same end.
        let _lane = self.lock_lane()?;
        if !attachments.fds.is_empty() || !attachments.servers.is_empty() {
            let info = crate::codec::encode(&(attachments.fds.len() as u32, &attachments.servers))?;
            let mut head = ATTACHED.to_le_bytes().to_vec();
            head.extend_from_slice(&self.checked_len(info.len())?.to_le_bytes());
            head.extend_from_slice(&info);
            self.write_out(&head, false)?;
            scm::send_fds(self.file.as_fd(), &attachments.borrowed_fds())?;
        }
        self.write_out(&out, false)?;
        if out.capacity() > 4 * SMALL {
            // Do not keep a large message's buffer around.
            *out = Vec::new();
        }
        Ok(())
    }

    /// Send `bytes` as one message (Python's `send_bytes(buf)`; for its
    /// offset and size, send a slice: `send_bytes(&buf[offset..offset + size])`).
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.send_parts(&[bytes], false)
    }

    /// Send `parts`, one after the other, as one message.
    fn send_parts(&self, parts: &[&[u8]], take_in: bool) -> Result<()> {
        let total = parts.iter().map(|p| p.len()).sum();
        let len = self.checked_len(total)?.to_le_bytes();
        let mut out = self.outgoing.lock().unwrap_or_else(|e| e.into_inner());
        if self.linked.is_some() {
            // Into a lane, each piece is copied once, whatever its size;
            // the locks keep another sender's message out (another
            // thread's, another process's).
            let _lane = self.lock_lane()?;
            self.write_out(&len, take_in)?;
            for part in parts {
                self.write_out(part, take_in)?;
            }
            return Ok(());
        }
        if total <= SMALL {
            out.clear();
            out.extend_from_slice(&len);
            for part in parts {
                out.extend_from_slice(part);
            }
            return self.write_out(&out, false);
        }
        // Large: no copy; the lock keeps another sender's message out.
        let mut slices: Vec<IoSlice<'_>> = std::iter::once(&len[..])
            .chain(parts.iter().copied())
            .map(IoSlice::new)
            .collect();
        let mut slices = &mut slices[..];
        while !slices.is_empty() {
            match (&self.file).write_vectored(slices) {
                Ok(0) => return Err(Error::Eof),
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(eof_on_broken(e)),
            }
        }
        Ok(())
    }

    fn checked_len(&self, len: usize) -> Result<u32> {
        u32::try_from(len)
            .ok()
            .filter(|&n| n <= self.max && n != ATTACHED)
            .ok_or(Error::FrameTooLarge {
                size: len as u64,
                max: self.max,
            })
    }
}

impl Connection<Duplex> {
    /// `parts` as one message (as [`send_bytes`](Connection::send_bytes)
    /// of them joined), taking what comes the other way into the read
    /// buffer while it waits for room: a pool worker's answer, which must
    /// not wait on a pool that waits to send it tasks.
    pub(crate) fn send_parts_taking_in(&self, parts: &[&[u8]]) -> Result<()> {
        self.send_parts(parts, true)
    }
}

impl<D: CanRecv> Connection<D> {
    /// Receive one value sent with [`send`](Connection::send) (Python's
    /// `recv()`); [`Error::Eof`] once the other end is closed.
    ///
    /// What the value holds beyond bytes arrives with it (see
    /// [`send`](Connection::send)): descriptors become this process's,
    /// proxies take references of their own.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T> {
        self.with_attached(|message, (fds, servers)| {
            let received = Received::new(fds, servers, false);
            crossing::decoding(received, || crate::codec::decode(message.bytes())).0
        })
    }

    /// Receive one message's bytes (Python's `recv_bytes()`).
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        self.with_message(|message| Ok(message.into_vec()))
    }

    /// Receive one message into `buf` (Python's `recv_bytes_into`; for its
    /// offset, pass `&mut buf[offset..]`); its length. A message longer
    /// than `buf` is [`Error::BufferTooShort`], which holds it whole.
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.with_message(|message| match buf.get_mut(..message.bytes().len()) {
            Some(dest) => {
                dest.copy_from_slice(message.bytes());
                Ok(dest.len())
            }
            None => Err(Error::BufferTooShort(message.into_vec())),
        })
    }

    /// Whether a whole message is buffered already (read with one before).
    pub(crate) fn has_message(&self) -> bool {
        let incoming = self.incoming();
        let buffered = incoming.buffered();
        incoming.skip == 0
            && buffered.len() >= PREFIX
            && buffered.len() - PREFIX
                >= u32::from_le_bytes(buffered[..PREFIX].try_into().unwrap()) as usize
    }

    /// Whether a message can be read without waiting (Python's `poll()`).
    pub fn poll(&self) -> Result<bool> {
        self.poll_timeout(Duration::ZERO)
    }

    /// Wait at most `timeout` for something to read (Python's
    /// `poll(timeout)`); end of file counts, as `recv` then returns at once.
    pub fn poll_timeout(&self, timeout: Duration) -> Result<bool> {
        let incoming = self.incoming();
        if incoming.skip == 0 && !incoming.buffered().is_empty() {
            return Ok(true);
        }
        drop(incoming);
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if self.readable_within(left)? {
                return Ok(true);
            }
            if left.is_some_and(|l| l.is_zero()) || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
        }
    }

    /// The lanes and the lane this end reads, if it reads through lanes.
    fn read_lane(&self) -> Option<(&Lanes, u8)> {
        let linked = self.linked.as_ref()?;
        Some((&linked.lanes, linked.roles.reads?))
    }

    /// For a thread waiting on many connections at once (the pool's):
    /// what to `poll(2)` for this one: bytes on the socket, or the lane's
    /// wake-up and the socket's end.
    pub(crate) fn pollfds(&self) -> [libc::pollfd; 2] {
        let socket = |events| libc::pollfd {
            fd: self.file.as_raw_fd(),
            events,
            revents: 0,
        };
        let none = libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        };
        match self.read_lane() {
            Some((lanes, lane)) => [lanes.pollfd(lane), socket(libc::POLLRDHUP)],
            None => [socket(libc::POLLIN), none],
        }
    }

    /// Before sleeping on [`pollfds`](Self::pollfds): the other end wakes
    /// them from now on; whether there is something to read already.
    pub(crate) fn watch(&self) -> bool {
        match self.read_lane() {
            Some((lanes, lane)) => lanes.watch(lane) || self.has_message(),
            None => self.has_message(),
        }
    }

    /// After the sleep: no more wake-ups wanted.
    pub(crate) fn unwatch(&self) {
        if let Some((lanes, lane)) = self.read_lane() {
            lanes.unwatch(lane);
        }
    }

    /// Whether something can be read (or the end is there), known without
    /// a system call: bytes in the lane, or a whole message buffered.
    pub(crate) fn pending(&self) -> bool {
        self.has_message()
            || self.gone.load(Ordering::Relaxed)
            || self
                .read_lane()
                .is_some_and(|(lanes, lane)| lanes.waiting(lane))
    }

    /// After a `poll(2)` on [`pollfds`](Self::pollfds) that saw `revents`:
    /// whether a receive finds a message's start or the end (a lane's
    /// wake-up may be left from an earlier one: the lane itself says).
    pub(crate) fn polled(&self, revents: [i16; 2]) -> bool {
        match self.linked {
            Some(_) => revents[1] != 0 || self.pending(),
            None => revents[0] != 0 || self.has_message(),
        }
    }

    /// Whether bytes (or the end) come within `timeout` (`None`: wait
    /// for them); `false` early on a signal or a spurious wake-up.
    fn readable_within(&self, timeout: Option<Duration>) -> Result<bool> {
        let Some(linked) = &self.linked else {
            return readable(self.file.as_fd(), timeout);
        };
        let lane = linked.reads()?;
        if self.gone.load(Ordering::Relaxed) || linked.lanes.waiting(lane) {
            return Ok(true);
        }
        Ok(
            match linked.lanes.park_reader(lane, self.file.as_fd(), timeout)? {
                Parked::Closed => true,
                Parked::Again | Parked::TimedOut => linked.lanes.waiting(lane),
            },
        )
    }

    /// Read one whole message and hand it to `f` (what was attached to it
    /// is closed).
    fn with_message<R>(&self, f: impl FnOnce(Message<'_>) -> Result<R>) -> Result<R> {
        self.with_attached(|message, _| f(message))
    }

    /// Read one whole message and hand it to `f` with its attachments.
    fn with_attached<R>(
        &self,
        f: impl FnOnce(Message<'_>, (Vec<OwnedFd>, Vec<ServerInfo>)) -> Result<R>,
    ) -> Result<R> {
        let mut incoming = self.incoming();
        self.skip_refused(&mut incoming)?;
        let len = loop {
            self.buffer(&mut incoming, PREFIX)?;
            let prefix: [u8; PREFIX] = incoming.buffered()[..PREFIX].try_into().unwrap();
            match u32::from_le_bytes(prefix) {
                ATTACHED => self.read_attachments(&mut incoming)?,
                len => break len,
            }
        };
        let attached = incoming.attached.take().unwrap_or_default();
        let f = |message: Message<'_>| f(message, attached);
        if len > self.max {
            incoming.consume(PREFIX);
            incoming.skip = u64::from(len);
            return Err(Error::FrameTooLarge {
                size: u64::from(len),
                max: self.max,
            });
        }
        let len = len as usize;
        let have = incoming.buffered().len() - PREFIX;
        if have >= len {
            let result = f(Message::Buffered(
                &incoming.buffered()[PREFIX..PREFIX + len],
            ));
            incoming.consume(PREFIX + len);
            return result;
        }
        if len <= SMALL {
            while incoming.buffered().len() < PREFIX + len {
                if !self.fill(&mut incoming)? {
                    return Err(Error::Eof);
                }
            }
            let result = f(Message::Buffered(
                &incoming.buffered()[PREFIX..PREFIX + len],
            ));
            incoming.consume(PREFIX + len);
            return result;
        }
        // A large message: read the rest straight into its own buffer.
        let mut message = Vec::with_capacity(len);
        message.extend_from_slice(&incoming.buffered()[PREFIX..]);
        let taken = incoming.buffered().len();
        incoming.consume(taken);
        if let Some(linked) = &self.linked {
            message.resize(len, 0);
            let mut at = have;
            while at < len {
                match incoming.read_ring_into(linked, self.file.as_fd(), &mut message[at..])? {
                    0 => {
                        self.gone.store(true, Ordering::Relaxed);
                        return Err(Error::Eof);
                    }
                    n => at += n,
                }
            }
        } else {
            // Straight into the spare capacity (no zeroing first): `take`
            // stops at the message's end, so nothing of the next is read.
            let rest = (len - have) as u64;
            (&self.file).take(rest).read_to_end(&mut message)?;
            if message.len() < len {
                return Err(Error::Eof);
            }
        }
        drop(incoming);
        f(Message::Owned(message))
    }

    /// Read until `n` bytes are buffered.
    fn buffer(&self, incoming: &mut Incoming, n: usize) -> Result<()> {
        while incoming.buffered().len() < n {
            if !self.fill(incoming)? {
                return Err(Error::Eof);
            }
        }
        Ok(())
    }

    /// Read the attachments announced for the next message (after the
    /// `ATTACHED` prefix): how many descriptors and the servers, then the
    /// descriptors' marker bytes, with which the descriptors came.
    fn read_attachments(&self, incoming: &mut Incoming) -> Result<()> {
        self.buffer(incoming, 2 * PREFIX)?;
        let len = u32::from_le_bytes(incoming.buffered()[PREFIX..2 * PREFIX].try_into().unwrap());
        if len > self.max || len as usize > SMALL {
            return Err(Error::protocol(
                format!("a message's attachments announced as {len} bytes"),
                None,
            ));
        }
        let len = len as usize;
        self.buffer(incoming, 2 * PREFIX + len)?;
        let (count, servers): (u32, Vec<ServerInfo>) =
            crate::codec::decode(&incoming.buffered()[2 * PREFIX..2 * PREFIX + len])?;
        let count = count as usize;
        incoming.consume(2 * PREFIX + len);
        if self.linked.is_some() {
            // Through lanes, the descriptors and their markers come on the
            // socket, sent after the announcement.
            let fds = scm::recv_fds(self.file.as_fd(), count)?;
            incoming.attached = Some((fds, servers));
            return Ok(());
        }
        self.buffer(incoming, scm::markers(count))?;
        incoming.consume(scm::markers(count));
        if incoming.fds.len() < count {
            return Err(Error::protocol(
                format!(
                    "{count} file descriptors announced with a message, {} arrived",
                    incoming.fds.len()
                ),
                None,
            ));
        }
        let fds: Vec<OwnedFd> = incoming.fds.drain(..count).collect();
        incoming.attached = Some((fds, servers));
        Ok(())
    }

    /// Drop what is left of a refused message.
    fn skip_refused(&self, incoming: &mut Incoming) -> Result<()> {
        while incoming.skip > 0 {
            if incoming.buffered().is_empty() && !self.fill(incoming)? {
                return Err(Error::Eof);
            }
            let n = (incoming.buffered().len() as u64).min(incoming.skip) as usize;
            incoming.consume(n);
            incoming.skip -= n as u64;
        }
        Ok(())
    }
}

/// A received message: still in the read buffer, or a large one read into
/// a buffer of its own (handed over without a copy).
enum Message<'a> {
    Buffered(&'a [u8]),
    Owned(Vec<u8>),
}

impl Message<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Message::Buffered(bytes) => bytes,
            Message::Owned(bytes) => bytes,
        }
    }

    fn into_vec(self) -> Vec<u8> {
        match self {
            Message::Buffered(bytes) => bytes.to_vec(),
            Message::Owned(bytes) => bytes,
        }
    }
}

/// Whether `fd` is readable within `timeout` (`None`: wait forever); a
/// signal ends the wait early (`false`).
pub(crate) fn readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> Result<bool> {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.map_or(-1, |t| {
        t.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
    });
    // SAFETY: one pollfd, valid for the call.
    match unsafe { libc::poll(&mut poll, 1, ms) } {
        n if n > 0 => Ok(true),
        0 => Ok(false),
        _ => {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e.into())
            }
        }
    }
}

impl<D> AsFd for Connection<D> {
    /// The connection's socket. Through shared memory (the default) its
    /// messages do not pass there: it becomes readable only when the
    /// other end closes. To wait for messages by polling descriptors, make
    /// the pipe with [`Pipe::duplex_socket`] or [`Pipe::simplex_socket`].
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl<D> AsRawFd for Connection<D> {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl<D> std::fmt::Debug for Connection<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<Connection fd={} {}>",
            self.file.as_raw_fd(),
            std::any::type_name::<D>().rsplit("::").next().unwrap_or("")
        )
    }
}

impl<D> Serialize for Connection<D> {
    /// As a process's argument only: the descriptor crosses the lifeline,
    /// with any bytes this end had read but not yet handed out.
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(serialize_with = "fd")]
            fd: BorrowedFd<'a>,
            buffered: &'a [u8],
            max: u32,
            lanes: Option<(&'a Lanes, Roles)>,
        }
        fn fd<S: serde::Serializer>(
            fd: &BorrowedFd<'_>,
            s: S,
        ) -> std::result::Result<S::Ok, S::Error> {
            crate::crossing::serialize_fd(*fd, "a Connection", s)
        }
        let incoming = self.incoming();
        if incoming.skip > 0 {
            return Err(crate::error::ser_error(
                "this connection is skipping a refused message; receive once before passing it on",
            ));
        }
        if !incoming.fds.is_empty() || incoming.attached.is_some() {
            return Err(crate::error::ser_error(
                "this connection holds file descriptors of a message not yet received; \
                 receive it before passing the connection on",
            ));
        }
        Wire {
            fd: self.file.as_fd(),
            buffered: incoming.buffered(),
            max: self.max,
            lanes: self.linked.as_ref().map(|l| (&*l.lanes, l.roles)),
        }
        .serialize(serializer)
    }
}

impl<'de, D> Deserialize<'de> for Connection<D> {
    fn deserialize<De: serde::Deserializer<'de>>(
        deserializer: De,
    ) -> std::result::Result<Self, De::Error> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(deserialize_with = "connection_fd")]
            fd: OwnedFd,
            buffered: Vec<u8>,
            max: u32,
            lanes: Option<(Lanes, Roles)>,
        }
        fn connection_fd<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> std::result::Result<OwnedFd, D::Error> {
            crate::crossing::deserialize_fd(d, "a Connection")
        }
        let wire = Wire::deserialize(deserializer)?;
        let linked = match wire.lanes {
            Some((lanes, roles)) => {
                let count = lanes.count();
                let fits = |lane: Option<u8>| lane.is_none_or(|l| (l as usize) < count);
                if !fits(roles.reads) || !fits(roles.writes) {
                    return Err(crate::error::de_error(
                        "a pipe end naming a lane it has not",
                    ));
                }
                Some(Linked {
                    lanes: Arc::new(lanes),
                    roles,
                })
            }
            None => None,
        };
        Ok(Connection::with_buffered(wire.fd, wire.buffered, linked).with_max_message(wire.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_bytes_go_both_ways_in_order() {
        let (a, b) = Pipe::duplex().unwrap();
        for i in 0..100u32 {
            a.send(&i).unwrap();
        }
        b.send_bytes(b"back").unwrap();
        for i in 0..100u32 {
            assert_eq!(b.recv::<u32>().unwrap(), i);
        }
        assert_eq!(a.recv_bytes().unwrap(), b"back");
    }

    #[test]
    fn a_short_buffer_keeps_the_message() {
        let (a, b) = Pipe::duplex().unwrap();
        a.send_bytes(b"0123456789").unwrap();
        let mut small = [0u8; 4];
        match b.recv_bytes_into(&mut small) {
            Err(Error::BufferTooShort(message)) => assert_eq!(message, b"0123456789"),
            other => panic!("{other:?}"),
        }
        a.send_bytes(b"abc").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(b.recv_bytes_into(&mut buf[2..]).unwrap(), 3);
        assert_eq!(&buf, b"\0\0abc\0\0\0");
    }

    #[test]
    fn an_oversized_message_is_refused_and_skipped() {
        let (a, b) = Pipe::duplex().unwrap();
        let b = b.with_max_message(1000);
        let big = vec![7u8; 200_000];
        let writer = std::thread::spawn(move || {
            a.send_bytes(&big).unwrap();
            a.send(&"after").unwrap();
            a
        });
        assert!(matches!(
            b.recv_bytes(),
            Err(Error::FrameTooLarge {
                size: 200_000,
                max: 1000
            })
        ));
        assert_eq!(b.recv::<String>().unwrap(), "after");
        let a = writer.join().unwrap();
        assert!(
            matches!(a.send_bytes(&[0; 2000]), Ok(())),
            "the sender's own limit is its own"
        );
        let a = a.with_max_message(10);
        assert!(matches!(
            a.send_bytes(&[0; 11]),
            Err(Error::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn large_messages_cross_whole() {
        let (a, b) = Pipe::simplex().unwrap();
        let message: Vec<u8> = (0..16 << 20).map(|i: u32| (i % 251) as u8).collect();
        let expected = message.clone();
        let writer = std::thread::spawn(move || b.send_bytes(&message).unwrap());
        assert_eq!(a.recv_bytes().unwrap(), expected);
        writer.join().unwrap();
    }

    #[test]
    fn a_scribbled_lane_is_an_error_not_a_hang() {
        let (a, b) = Pipe::duplex().unwrap();
        a.send(&1u32).unwrap();
        assert_eq!(b.recv::<u32>().unwrap(), 1);
        // The lane b reads (a writes) claims more bytes than it holds.
        let linked = b.linked.as_ref().unwrap();
        linked
            .lanes
            .scribble_head(linked.roles.reads.unwrap(), 1 << 40);
        let e = b.recv::<u32>().unwrap_err();
        assert!(e.to_string().contains("corrupt"), "{e}");
        // The other direction is untouched.
        b.send(&2u32).unwrap();
        assert_eq!(a.recv::<u32>().unwrap(), 2);
    }

    #[test]
    fn poll_sees_messages_and_end_of_file() {
        let (a, b) = Pipe::duplex().unwrap();
        assert!(!b.poll().unwrap());
        let begun = Instant::now();
        assert!(!b.poll_timeout(Duration::from_millis(100)).unwrap());
        assert!(begun.elapsed() >= Duration::from_millis(100));
        a.send(&1u8).unwrap();
        assert!(b.poll_timeout(Duration::from_secs(5)).unwrap());
        assert_eq!(b.recv::<u8>().unwrap(), 1);
        drop(a);
        assert!(b.poll().unwrap(), "end of file is readable");
        assert!(matches!(b.recv::<u8>(), Err(Error::Eof)));
        assert!(matches!(b.send(&1u8), Err(Error::Eof)));
    }
}
