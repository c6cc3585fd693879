//! Byte lanes in shared memory: what the manager's same-host connections
//! (`ring.rs`) and the process layer's [`Pipe`](super::Pipe)s stream their
//! bytes through.
//!
//! A lane is a single-producer single-consumer byte ring in a region of
//! shared memory ([`LaneRegion`]): the writer moves `head`, the reader
//! `tail`, both counting bytes since the start and stored in the region;
//! each step reads both and trusts neither (the tail may not pass the head
//! nor the head the tail by more than the ring holds, else the stream
//! ends with [`io::ErrorKind::InvalidData`]). Every access to a lane region
//! is atomic (bytes are copied with relaxed atomic loads and stores), so a
//! peer that scribbles on the pages can give us wrong bytes, which the
//! frame decoder above refuses, but never a data race of ours.
//!
//! Waiting is the users' business; [`Lanes`] is the blocking form a
//! `Pipe` uses: a reader (or a writer facing a full lane) spins briefly,
//! then raises its "parked" flag in the region and sleeps in `poll(2)` on
//! an eventfd the other side writes only when it sees the flag (store then
//! load, sequentially consistent on both sides: no lost wake-up, no
//! syscall while both are busy), and on the connection's socket, whose end
//! (`POLLRDHUP`) is the other side's.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::shm::Region;
use crate::error::{Error, Result};

/// A region of shared memory every access to which is atomic: only lanes
/// and their headers live in it.
pub(crate) struct LaneRegion(Region);

impl LaneRegion {
    /// A new region of `len` bytes (a sealed, anonymous memfd named `name`).
    pub(crate) fn new(len: usize, name: &std::ffi::CStr) -> Result<LaneRegion> {
        Ok(LaneRegion(Region::new_named(len, name)?))
    }

    /// A region another process made, mapped from its descriptor.
    pub(crate) fn from_fd(fd: OwnedFd) -> Result<LaneRegion> {
        Ok(LaneRegion(Region::from_fd(fd)?))
    }

    /// Its size in bytes.
    #[cfg_attr(not(feature = "manager"), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The atomic `u32` at byte `at`.
    ///
    /// # Panics
    /// If `at` is not 4-aligned or the word is not inside the region.
    pub(crate) fn word(&self, at: usize) -> &AtomicU32 {
        assert!(
            at % 4 == 0 && at + 4 <= self.0.len(),
            "a word outside the region"
        );
        // SAFETY: `at` is a 4-aligned offset (the mapping is page-aligned)
        // inside a mapping that lives as long as `self`; a lane region is
        // only ever accessed atomically, by every process holding it.
        unsafe { AtomicU32::from_ptr(self.0.ptr().add(at) as *mut u32) }
    }

    /// The atomic `u64` at byte `at`.
    ///
    /// # Panics
    /// If `at` is not 8-aligned or the word is not inside the region.
    pub(crate) fn index(&self, at: usize) -> &AtomicU64 {
        assert!(
            at % 8 == 0 && at + 8 <= self.0.len(),
            "an index outside the region"
        );
        // SAFETY: as in `word`, 8-aligned.
        unsafe { AtomicU64::from_ptr(self.0.ptr().add(at) as *mut u64) }
    }

    /// The memfd, to pass to the other side.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Where a lane lies in its region: its two indices and its ring.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Place {
    pub(crate) head: usize,
    pub(crate) tail: usize,
    pub(crate) data: usize,
    pub(crate) capacity: u64,
}

/// A stream end that found the region corrupt.
pub(crate) fn corrupt(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the shared-memory ring is corrupt ({what}): connection closed"),
    )
}

/// One side's end of one lane. Both indices are read from the region at
/// each step (so an end may be held by several processes, one of which
/// uses it at a time, as a Python pipe shared by producers under a lock),
/// and checked against each other and the capacity.
pub(crate) struct End {
    place: Place,
}

impl End {
    /// An end of the lane at `place` in `region`.
    ///
    /// # Panics
    /// If the place does not lie inside `region` (a bug of the layout).
    pub(crate) fn new(region: &LaneRegion, place: Place) -> End {
        region.index(place.head);
        region.index(place.tail);
        assert!(
            place.capacity > 0
                && place
                    .data
                    .checked_add(place.capacity as usize)
                    .is_some_and(|end| end <= region.0.len()),
            "a lane outside its region"
        );
        End { place }
    }

    /// The lane's indices, `(head, tail)`, checked: the tail never passes
    /// the head, nor the head the tail by more than the capacity.
    fn indices(&self, region: &LaneRegion) -> io::Result<(u64, u64)> {
        let head = region.index(self.place.head).load(Ordering::SeqCst);
        let tail = region.index(self.place.tail).load(Ordering::SeqCst);
        if tail > head {
            return Err(corrupt("a reader's position past the writer's"));
        }
        if head - tail > self.place.capacity {
            return Err(corrupt("a writer's position out of range"));
        }
        Ok((head, tail))
    }

    /// Where `n` bytes from index `from` lie: the lane's ring, the offset
    /// of the first in it, and how many fit before it wraps.
    fn span(&self, region: &LaneRegion, from: u64, n: usize) -> (*mut u8, usize, usize) {
        let capacity = self.place.capacity;
        let at = (from % capacity) as usize;
        // SAFETY: the ring lies inside the mapping (checked in `new`).
        let data = unsafe { region.0.ptr().add(self.place.data) };
        (data, at, n.min(capacity as usize - at))
    }

    /// Copy as much of `bytes` as there is room for; how much.
    pub(crate) fn write(&self, region: &LaneRegion, bytes: &[u8]) -> io::Result<usize> {
        let (head, tail) = self.indices(region)?;
        let room = self.place.capacity - (head - tail);
        let n = (bytes.len() as u64).min(room) as usize;
        if n == 0 {
            return Ok(0);
        }
        let (data, at, first) = self.span(region, head, n);
        // SAFETY: `[at, at + first)` and `[0, n - first)` lie in the lane's
        // ring (`at < capacity`, `first <= capacity - at`, `n <= capacity`);
        // these bytes are free (between `head` and `tail + capacity`), so
        // a peer keeping to the protocol does not touch them now, and every
        // access to the region is atomic.
        unsafe {
            copy_out(&bytes[..first], data.add(at));
            copy_out(&bytes[first..n], data);
        }
        region
            .index(self.place.head)
            .store(head + n as u64, Ordering::SeqCst);
        Ok(n)
    }

    /// Copy out as many waiting bytes as `buf` holds; how many.
    pub(crate) fn read(&self, region: &LaneRegion, buf: &mut [u8]) -> io::Result<usize> {
        let (head, tail) = self.indices(region)?;
        let n = ((head - tail) as usize).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let (data, at, first) = self.span(region, tail, n);
        // SAFETY: as in `write`: both ranges lie in the ring; these bytes
        // were published (before `head`) and are not yet given back.
        unsafe {
            copy_in(data.add(at), &mut buf[..first]);
            copy_in(data, &mut buf[first..n]);
        }
        region
            .index(self.place.tail)
            .store(tail + n as u64, Ordering::SeqCst);
        Ok(n)
    }

    /// Whether a write would find room now.
    fn has_room(&self, region: &LaneRegion) -> bool {
        self.indices(region)
            .map_or(true, |(head, tail)| head - tail < self.place.capacity)
    }
}

/// Whether the lane at `place` holds bytes not yet read (its indices
/// differ), asked without its reading end.
fn waiting(region: &LaneRegion, place: Place) -> bool {
    region.index(place.head).load(Ordering::SeqCst)
        != region.index(place.tail).load(Ordering::SeqCst)
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

/// A new non-blocking eventfd.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd(2) returns a new descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Add one to an eventfd's counter (a full counter is already a wake-up).
pub(crate) fn signal(fd: BorrowedFd<'_>) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: write(2) of 8 bytes from a live buffer to our descriptor.
    unsafe {
        libc::write(fd.as_raw_fd(), one.as_ptr() as *const libc::c_void, 8);
    }
}

/// Empty an eventfd's counter.
pub(crate) fn drain(fd: BorrowedFd<'_>) {
    let mut count = [0u8; 8];
    // SAFETY: read(2) of 8 bytes into a live buffer from our descriptor
    // (non-blocking: an empty counter is EAGAIN).
    unsafe {
        libc::read(fd.as_raw_fd(), count.as_mut_ptr() as *mut libc::c_void, 8);
    }
}

// The layout of a pipe's region: a page of header (each lane's indices
// and flags a cache line apart), then the lanes' rings.
const HEADER: usize = 4096;
const LANE_HEADER: usize = 256;
const HEAD: usize = 0;
const TAIL: usize = 64;
const READER_PARKED: usize = 128;
const WRITER_PARKED: usize = 192;
/// The writers' lock (the holder's pid, 0 when free) and how many wait for
/// it: one end may be held by several processes (Python hands one pipe end
/// to every producer), and each message must go into the lane whole.
const WRITE_LOCK: usize = 224;
const WRITE_WAITERS: usize = 228;
/// The writers' lock of a lane whose holder died mid-message: held for
/// ever, every later send fails.
const BROKEN: u32 = u32::MAX;
/// How often a writer waiting for the lock looks whether its holder died.
const LOCK_CHECK: Duration = Duration::from_millis(50);
/// Bytes of each lane of a pipe, by default.
pub(crate) const CAPACITY: u64 = 64 * 1024;
/// Bounds of a lane's size, as another process's region is checked.
const SMALLEST: u64 = 4096;
const LARGEST: u64 = 1 << 30;
/// A full lane's writer spins this long for room before it parks.
const ROOM_SPIN: Duration = Duration::from_micros(50);

/// The ring's memfd, as `/proc/PID/maps` names it.
const MEMFD_NAME: &std::ffi::CStr = c"managers-pipe";

fn region_len(lanes: usize, capacity: u64) -> usize {
    HEADER + lanes * capacity as usize
}

/// One lane's wake-ups: the reader's ("bytes came") and the writer's
/// ("room was made").
struct Wakes {
    data: OwnedFd,
    room: OwnedFd,
}

/// A pipe's lanes (one or two) in one region, shared by the ends that
/// live in this process (both, until one crosses to another process).
pub(crate) struct Lanes {
    region: LaneRegion,
    wakes: Vec<Wakes>,
    /// Each lane's end (where it lies), by lane.
    ends: Vec<End>,
}

/// Which lane an end reads, and which it writes.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) struct Roles {
    pub(crate) reads: Option<u8>,
    pub(crate) writes: Option<u8>,
}

/// How a wait on a lane ended.
pub(crate) enum Parked {
    /// Bytes came (a reader), room was made (a writer), or the wake-up
    /// was spurious: look again.
    Again,
    /// The other side closed its end.
    Closed,
    /// The time given ran out.
    TimedOut,
}

impl Lanes {
    /// New lanes, `count` of them (1 or 2), of `capacity` bytes each
    /// (a multiple of 4096, at most 1 GiB).
    pub(crate) fn new(count: usize, capacity: u64) -> Result<Lanes> {
        assert!(
            (SMALLEST..=LARGEST).contains(&capacity) && capacity % SMALLEST == 0,
            "a lane of {capacity} bytes"
        );
        let region = LaneRegion::new(region_len(count, capacity), MEMFD_NAME)?;
        let wakes = (0..count)
            .map(|_| {
                Ok(Wakes {
                    data: eventfd()?,
                    room: eventfd()?,
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self::of(region, wakes, capacity))
    }

    /// Lanes of `capacity` bytes in `region`, one per wake-up pair.
    fn of(region: LaneRegion, wakes: Vec<Wakes>, capacity: u64) -> Lanes {
        let ends = (0..wakes.len())
            .map(|lane| {
                let base = lane * LANE_HEADER;
                let place = Place {
                    head: base + HEAD,
                    tail: base + TAIL,
                    data: HEADER + lane * capacity as usize,
                    capacity,
                };
                End::new(&region, place)
            })
            .collect();
        Lanes {
            region,
            wakes,
            ends,
        }
    }

    fn end(&self, lane: u8) -> &End {
        &self.ends[lane as usize]
    }

    fn wakes(&self, lane: u8) -> &Wakes {
        &self.wakes[lane as usize]
    }

    fn flag(&self, lane: u8, which: usize) -> &AtomicU32 {
        self.region.word(lane as usize * LANE_HEADER + which)
    }

    /// Read what is waiting into `buf` (none: 0), waking a writer parked
    /// for room.
    pub(crate) fn read(&self, lane: u8, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.end(lane).read(&self.region, buf)?;
        if n > 0 && self.flag(lane, WRITER_PARKED).load(Ordering::SeqCst) != 0 {
            signal(self.wakes(lane).room.as_fd());
        }
        Ok(n)
    }

    /// Write what there is room for (none: 0), waking a parked reader.
    pub(crate) fn write(&self, lane: u8, bytes: &[u8]) -> io::Result<usize> {
        let n = self.end(lane).write(&self.region, bytes)?;
        if n > 0 && self.flag(lane, READER_PARKED).load(Ordering::SeqCst) != 0 {
            signal(self.wakes(lane).data.as_fd());
        }
        Ok(n)
    }

    /// Take lane `lane`'s writers' lock for one message: another process
    /// holding the same end writes its messages before or after, never
    /// into the middle of this one. A holder that died with it (seen by
    /// its pid being gone) leaves half a message in the lane: the lock is
    /// taken over and the pipe reported broken.
    pub(crate) fn lock_writer(&self, lane: u8) -> Result<WriteLock<'_>> {
        let word = self.flag(lane, WRITE_LOCK);
        let me = std::process::id();
        loop {
            let holder = match word.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => {
                    return Ok(WriteLock {
                        word,
                        waiters: self.flag(lane, WRITE_WAITERS),
                    })
                }
                Err(BROKEN) => return Err(broken()),
                Err(holder) => holder,
            };
            let waiters = self.flag(lane, WRITE_WAITERS);
            waiters.fetch_add(1, Ordering::SeqCst);
            super::shm::futex_wait(word, holder, Some(LOCK_CHECK));
            waiters.fetch_sub(1, Ordering::SeqCst);
            let dead = holder != me && word.load(Ordering::SeqCst) == holder && !alive(holder);
            let taken = dead
                && word
                    .compare_exchange(holder, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok();
            if taken {
                word.store(BROKEN, Ordering::SeqCst);
                super::shm::futex_wake(word, i32::MAX);
                return Err(broken());
            }
        }
    }

    /// Whether lane `lane` holds bytes not yet read.
    pub(crate) fn waiting(&self, lane: u8) -> bool {
        waiting(&self.region, self.end(lane).place)
    }

    /// Write all of `bytes`, waiting for room while the lane is full; the
    /// other side's end (`socket` closed) is [`Error::Eof`].
    ///
    /// With `drain` (a lane this side reads, and what takes its bytes
    /// without waiting), what comes in is taken while this side waits for
    /// room: two sides that each send more than a lane holds before they
    /// read do not wait for each other for ever (a pool's worker and its
    /// pool).
    pub(crate) fn write_all(
        &self,
        lane: u8,
        mut bytes: &[u8],
        socket: BorrowedFd<'_>,
        mut drain: Option<(u8, &mut dyn FnMut() -> Result<()>)>,
    ) -> Result<()> {
        while !bytes.is_empty() {
            let n = self.write(lane, bytes)?;
            if n > 0 {
                bytes = &bytes[n..];
                continue;
            }
            if let Some((_, take)) = &mut drain {
                take()?;
            }
            // Full: the reader is at work on it; wait a little, then sleep.
            if super::shm::several_cpus() {
                let begun = Instant::now();
                while !self.has_room(lane) && begun.elapsed() < ROOM_SPIN {
                    std::thread::yield_now();
                }
                if self.has_room(lane) {
                    continue;
                }
            }
            let incoming = drain.as_ref().map(|(read, _)| *read);
            let ready = || Ok(self.has_room(lane) || incoming.is_some_and(|l| self.waiting(l)));
            let mut waits = vec![(lane, WRITER_PARKED)];
            waits.extend(incoming.map(|l| (l, READER_PARKED)));
            if let Parked::Closed = self.park(&waits, socket, None, ready)? {
                return Err(Error::Eof);
            }
        }
        Ok(())
    }

    fn has_room(&self, lane: u8) -> bool {
        self.end(lane).has_room(&self.region)
    }

    /// Sleep until the other side signals one of `waits` (a lane and its
    /// reader's or writer's flag: after raising the flags, `ready` is
    /// asked once more, so a change made before they were raised is seen
    /// there), `socket`'s peer is gone, or `timeout` runs out.
    fn park(
        &self,
        waits: &[(u8, usize)],
        socket: BorrowedFd<'_>,
        timeout: Option<Duration>,
        ready: impl FnOnce() -> io::Result<bool>,
    ) -> Result<Parked> {
        let wake = |&(lane, flag): &(u8, usize)| match flag {
            READER_PARKED => &self.wakes(lane).data,
            _ => &self.wakes(lane).room,
        };
        for &(lane, flag) in waits {
            self.flag(lane, flag).store(1, Ordering::SeqCst);
        }
        let parked = (|| {
            if ready()? {
                return Ok(Parked::Again);
            }
            let mut fds: Vec<libc::pollfd> = waits
                .iter()
                .map(|w| libc::pollfd {
                    fd: wake(w).as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            fds.push(libc::pollfd {
                fd: socket.as_raw_fd(),
                events: libc::POLLRDHUP,
                revents: 0,
            });
            let ms = timeout.map_or(-1, |t| {
                t.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
            });
            // SAFETY: a live array of `fds.len()` pollfds, for the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e.into());
                }
                return Ok(Parked::Again);
            }
            for (w, fd) in waits.iter().zip(&fds) {
                if fd.revents != 0 {
                    drain(wake(w).as_fd());
                }
            }
            Ok(if fds[waits.len()].revents != 0 {
                Parked::Closed
            } else if n == 0 {
                Parked::TimedOut
            } else {
                Parked::Again
            })
        })();
        for &(lane, flag) in waits {
            self.flag(lane, flag).store(0, Ordering::SeqCst);
        }
        parked
    }

    /// Sleep until lane `lane` has bytes to read (see [`park`](Self::park)).
    pub(crate) fn park_reader(
        &self,
        lane: u8,
        socket: BorrowedFd<'_>,
        timeout: Option<Duration>,
    ) -> Result<Parked> {
        self.park(&[(lane, READER_PARKED)], socket, timeout, || {
            Ok(self.waiting(lane))
        })
    }

    /// For a caller polling many connections: raise lane `lane`'s reader
    /// flag (the writer signals its wake-up from now on, [`pollfd`](Self::pollfd));
    /// whether bytes are waiting already.
    pub(crate) fn watch(&self, lane: u8) -> bool {
        self.flag(lane, READER_PARKED).store(1, Ordering::SeqCst);
        self.waiting(lane)
    }

    /// What to poll for lane `lane`'s wake-up.
    pub(crate) fn pollfd(&self, lane: u8) -> libc::pollfd {
        libc::pollfd {
            fd: self.wakes(lane).data.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }
    }

    /// Lower the flag [`watch`](Self::watch) raised, and empty the wake-up.
    pub(crate) fn unwatch(&self, lane: u8) {
        self.flag(lane, READER_PARKED).store(0, Ordering::SeqCst);
        drain(self.wakes(lane).data.as_fd());
    }

    /// What crosses to another process with an end: the region and every
    /// lane's wake-ups.
    fn descriptors(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds = vec![self.region.fd()];
        for wakes in &self.wakes {
            fds.push(wakes.data.as_fd());
            fds.push(wakes.room.as_fd());
        }
        fds
    }

    /// Lanes that crossed from another process: the region and wake-ups
    /// [`descriptors`](Self::descriptors) listed.
    fn from_descriptors(fds: Vec<OwnedFd>) -> Result<Lanes> {
        let count = fds.len().saturating_sub(1) / 2;
        if !(1..=2).contains(&count) || fds.len() != 1 + 2 * count {
            return Err(Error::protocol(
                format!("a pipe's shared memory came with {} descriptors", fds.len()),
                None,
            ));
        }
        let mut fds = fds.into_iter();
        let region = LaneRegion::from_fd(fds.next().expect("counted"))?;
        let capacity = (region.0.len().saturating_sub(HEADER) / count) as u64;
        if !(SMALLEST..=LARGEST).contains(&capacity)
            || capacity % SMALLEST != 0
            || region.0.len() != region_len(count, capacity)
        {
            return Err(Error::protocol(
                format!(
                    "a pipe's shared memory of {} bytes for {count} lanes",
                    region.0.len()
                ),
                None,
            ));
        }
        let mut wakes = Vec::with_capacity(count);
        while let (Some(data), Some(room)) = (fds.next(), fds.next()) {
            wakes.push(Wakes { data, room });
        }
        Ok(Self::of(region, wakes, capacity))
    }

    /// How many lanes.
    pub(crate) fn count(&self) -> usize {
        self.wakes.len()
    }

    /// Set lane `lane`'s head as a misbehaving writer would.
    #[cfg(test)]
    pub(crate) fn scribble_head(&self, lane: u8, head: u64) {
        self.region
            .index(self.end(lane).place.head)
            .store(head, Ordering::SeqCst);
    }
}

/// A lane's writers' lock, held for one message (see
/// [`Lanes::lock_writer`]); let go when dropped.
pub(crate) struct WriteLock<'a> {
    word: &'a AtomicU32,
    waiters: &'a AtomicU32,
}

impl Drop for WriteLock<'_> {
    fn drop(&mut self) {
        self.word.store(0, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) != 0 {
            super::shm::futex_wake(self.word, 1);
        }
    }
}

/// What a send on a lane whose writer died mid-message is told.
fn broken() -> Error {
    Error::protocol(
        "a process died while it sent on this pipe: half a message is in it, \
         the pipe is broken",
        None,
    )
}

/// Whether process `pid` still exists (a zombie counts until reaped).
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 sends nothing; it only checks.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// A descriptor of a pipe's lanes as it crosses to another process.
struct Crossing<'a>(BorrowedFd<'a>);

impl Serialize for Crossing<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        crate::crossing::serialize_fd(self.0, "a Pipe's shared memory", serializer)
    }
}

/// A descriptor of a pipe's lanes as it arrives.
struct Crossed(OwnedFd);

impl<'de> Deserialize<'de> for Crossed {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        crate::crossing::deserialize_fd(deserializer, "a Pipe's shared memory").map(Crossed)
    }
}

impl Serialize for Lanes {
    /// Only to another process, by a route that passes descriptors: the
    /// region and every lane's wake-ups.
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_seq(self.descriptors().into_iter().map(Crossing))
    }
}

impl<'de> Deserialize<'de> for Lanes {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let fds: Vec<Crossed> = Vec::deserialize(deserializer)?;
        Lanes::from_descriptors(fds.into_iter().map(|fd| fd.0).collect())
            .map_err(crate::error::de_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_cross_a_lane_in_order_and_wrap() {
        let lanes = Lanes::new(1, CAPACITY).unwrap();
        let mut next = 0u8;
        let mut expect = 0u8;
        let mut buf = vec![0u8; 7000];
        for _ in 0..100 {
            let chunk: Vec<u8> = (0..5000)
                .map(|_| {
                    next = next.wrapping_add(1);
                    next
                })
                .collect();
            let mut sent = 0;
            while sent < chunk.len() {
                sent += lanes.write(0, &chunk[sent..]).unwrap();
                let n = lanes.read(0, &mut buf).unwrap();
                for &b in &buf[..n] {
                    expect = expect.wrapping_add(1);
                    assert_eq!(b, expect);
                }
            }
        }
        while lanes.waiting(0) {
            let n = lanes.read(0, &mut buf).unwrap();
            for &b in &buf[..n] {
                expect = expect.wrapping_add(1);
                assert_eq!(b, expect);
            }
        }
        assert_eq!(expect, next);
    }

    #[test]
    fn a_full_lane_takes_nothing_more_and_a_scribbled_index_is_refused() {
        let lanes = Lanes::new(1, CAPACITY).unwrap();
        let big = vec![1u8; CAPACITY as usize + 10];
        assert_eq!(lanes.write(0, &big).unwrap(), CAPACITY as usize);
        assert_eq!(lanes.write(0, &big).unwrap(), 0);
        lanes
            .region
            .index(lanes.end(0).place.head)
            .store(CAPACITY * 3, Ordering::SeqCst);
        let mut buf = [0u8; 16];
        let e = lanes.read(0, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        lanes
            .region
            .index(lanes.end(0).place.tail)
            .store(CAPACITY * 5, Ordering::SeqCst);
        let e = lanes.write(0, b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
