//! `Queue`, `JoinableQueue` and `SimpleQueue` between processes, with no
//! server: a ring of messages in shared memory.
//!
//! The ring lives in a memfd [`Region`]: a header (a robust process-shared
//! mutex, positions, counts, futex words) and then the bytes, each message
//! a 4-byte length and its postcard encoding, 4-byte aligned; a message
//! that does not fit before the end leaves a skip marker and starts again
//! at the beginning. `put` copies the item in under the mutex, so once it
//! returns the item is in memory every holder of the queue maps: it
//! survives its producer exiting (CPython's feeder thread may lose it).
//! Waiting is a futex on a sequence word (an event count) after a short
//! spin when another CPU can make progress meanwhile.
//!
//! A process can die anywhere, even holding the mutex. Payload bytes are
//! copied before anything is published, and every change of the header is
//! written first to a journal, then applied: the next owner, told by the
//! robust mutex that its owner died, replays a valid journal and finds the
//! queue exactly as it was before or after the dead process's operation.
//!
//! When the ring empties, its positions go back to the start, and pages
//! touched beyond the first megabyte are given back; an "unbounded" queue
//! holds at most its byte capacity (256 MiB of address space by default;
//! memory is used only as far as items fill it).

use std::marker::PhantomData;
use std::ptr::{addr_of, addr_of_mut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::shm::{atomic_u32, futex_wait, futex_wake, several_cpus, Locked, RawMutex, Region};
use crate::error::{Error, ProcessError, Result, SyncError};

/// The byte capacity of a queue made with `new`.
pub const DEFAULT_QUEUE_BYTES: usize = 256 * 1024 * 1024;
const MAGIC: u32 = 0x6d71_7565;
const SKIP: u32 = u32::MAX;
/// Pages beyond this are given back when the queue empties.
const KEEP: u64 = 1024 * 1024;
/// How long a waiter spins before sleeping, when it may.
const SPIN: Duration = Duration::from_micros(20);

/// Positions and counts; changed only through the journal.
#[repr(C)]
#[derive(Clone, Copy)]
struct State {
    head: u64,
    tail: u64,
    count: u64,
    unfinished: u64,
    /// The furthest byte written since the ring was last empty.
    high: u64,
}

#[repr(C)]
struct Header {
    mutex: libc::pthread_mutex_t,
    magic: u32,
    joinable: u32,
    capacity: u64,
    maxsize: u64,
    state: State,
    journal: State,
    journal_valid: u32,
    readers: u32,
    writers: u32,
    joiners: u32,
    /// Futex words: bumped when an item arrives, room is made, all tasks
    /// are done.
    not_empty: u32,
    not_full: u32,
    all_done: u32,
    /// `state.count`, readable without the mutex.
    count: u64,
}

const DATA: usize = (std::mem::size_of::<Header>() + 63) & !63;

/// The untyped ring all queue kinds share.
///
/// Every process holding the region can write anything into it, so what
/// is read from it is checked before it is used: the capacity, item limit
/// and kind are read once, when the ring is mapped, and kept here; the
/// positions and counts are read once per operation (volatile, so the
/// compiler reads them exactly once) and checked against each other and
/// the capacity ([`Ring::checked`]); a message's length is checked
/// against the positions before a byte is copied. A queue found corrupted
/// is an error, never an access outside the mapping, an absurd allocation
/// or a loop without end.
struct Ring {
    region: Region,
    capacity: u64,
    maxsize: u64,
    joinable: bool,
}

/// The mutex held; unlocks on drop.
struct Held<'a> {
    ring: &'a Ring,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.ring.mutex().unlock();
    }
}

fn deadline_of(block: bool, timeout: Option<Duration>) -> Option<Option<Instant>> {
    match (block, timeout) {
        (false, _) => None,
        (true, None) => Some(None),
        (true, Some(t)) => Some(Instant::now().checked_add(t)),
    }
}

fn round4(n: u64) -> u64 {
    (n + 3) & !3
}

/// The header field `$name` (a futex word or waiter count, a `u32`), as a
/// function from the header's address to the field's: address arithmetic
/// only, no access.
macro_rules! field {
    ($name:ident) => {
        |h: *mut Header| {
            h.wrapping_byte_add(std::mem::offset_of!(Header, $name))
                .cast::<u32>()
        }
    };
}

fn not_a_queue() -> Error {
    Error::ProcessStart("the shared memory passed is not a queue".into())
}

/// What another process wrote into a queue's memory is not a queue's.
fn corrupted(what: String) -> Error {
    Error::protocol(
        format!("the queue's shared memory is corrupted: {what}"),
        None,
    )
}

impl Ring {
    fn new(capacity: usize, maxsize: usize, joinable: bool) -> Result<Ring> {
        let capacity = (capacity.max(64) + 3) & !3;
        let region = Region::new(DATA + capacity)?.named("a Queue");
        let h = region.ptr() as *mut Header;
        // SAFETY: fresh zeroed memory of at least DATA bytes, page aligned,
        // that no one else maps yet.
        unsafe {
            RawMutex::init(addr_of_mut!((*h).mutex) as *mut u8, false)?;
            (*h).capacity = capacity as u64;
            (*h).maxsize = maxsize as u64;
            (*h).joinable = joinable as u32;
            (*h).magic = MAGIC;
        }
        Ok(Ring {
            region,
            capacity: capacity as u64,
            maxsize: maxsize as u64,
            joinable,
        })
    }

    fn from_region(region: Region) -> Result<Ring> {
        let region = region.named("a Queue");
        if region.len() <= DATA {
            return Err(not_a_queue());
        }
        let h = region.ptr() as *const Header;
        // SAFETY: the region holds more than DATA bytes, a header's worth,
        // page aligned; each field is read once (volatile) and checked.
        let (magic, capacity, maxsize, joinable) = unsafe {
            (
                std::ptr::read_volatile(addr_of!((*h).magic)),
                std::ptr::read_volatile(addr_of!((*h).capacity)),
                std::ptr::read_volatile(addr_of!((*h).maxsize)),
                std::ptr::read_volatile(addr_of!((*h).joinable)),
            )
        };
        let fits = capacity as usize == region.len() - DATA && capacity >= 64 && capacity % 4 == 0;
        if magic != MAGIC || !fits || joinable > 1 {
            return Err(not_a_queue());
        }
        Ok(Ring {
            region,
            capacity,
            maxsize,
            joinable: joinable == 1,
        })
    }

    fn header(&self) -> *mut Header {
        self.region.ptr() as *mut Header
    }

    fn mutex(&self) -> RawMutex<'_> {
        // SAFETY: the header's mutex, made by `new`, lives as long as the
        // mapping.
        unsafe { RawMutex::at(addr_of_mut!((*self.header()).mutex) as *mut u8) }
    }

    fn word(&self, word: fn(*mut Header) -> *mut u32) -> &std::sync::atomic::AtomicU32 {
        // SAFETY: an aligned u32 of the header, used only atomically (the
        // futex words), mapped while `self` lives.
        unsafe { atomic_u32(word(self.header())) }
    }

    fn count_hint(&self) -> &AtomicU64 {
        // SAFETY: as for `word`: the header's `count`, aligned, atomic only.
        unsafe { AtomicU64::from_ptr(addr_of_mut!((*self.header()).count)) }
    }

    #[inline]
    fn lock(&self) -> Result<Held<'_>> {
        match self.mutex().lock(None)? {
            Some(Locked::Yes) => {}
            Some(Locked::OwnerDied) => self.recover(),
            None => unreachable!("an untimed lock always returns the lock"),
        }
        Ok(Held { ring: self })
    }

    /// The owner died holding the mutex: finish what its journal says, if
    /// the journal is a state the ring can be in (else leave the state as
    /// it was before the dead owner's operation).
    fn recover(&self) {
        let h = self.header();
        // SAFETY: we hold the mutex; the header's fields are read and
        // written whole (volatile), and a journal is applied only checked.
        unsafe {
            if std::ptr::read_volatile(addr_of!((*h).journal_valid)) != 0 {
                let journal = std::ptr::read_volatile(addr_of!((*h).journal));
                if self.checked(journal).is_ok() {
                    std::ptr::write_volatile(addr_of_mut!((*h).state), journal);
                }
                std::ptr::write_volatile(addr_of_mut!((*h).journal_valid), 0);
            }
            let state = std::ptr::read_volatile(addr_of!((*h).state));
            self.count_hint().store(state.count, Ordering::Release);
        }
    }

    /// The state, read once under the mutex and checked.
    #[inline]
    fn state(&self, _held: &Held<'_>) -> Result<State> {
        // SAFETY: we hold the mutex; the state is read whole, once.
        let state = unsafe { std::ptr::read_volatile(addr_of!((*self.header()).state)) };
        self.checked(state)
    }

    /// `state` if the ring can be in it: positions in order and at most a
    /// capacity apart, 4-byte aligned, every message at least 4 bytes, the
    /// count zero exactly when the ring is empty, the high mark within the
    /// capacity.
    #[inline]
    fn checked(&self, state: State) -> Result<State> {
        let used = state.tail.checked_sub(state.head);
        let ok = used.is_some_and(|used| {
            used <= self.capacity
                && state.head % 4 == 0
                && state.tail % 4 == 0
                && state.count <= used / 4
                && (state.count == 0) == (used == 0)
                && state.high <= self.capacity
        });
        if ok {
            Ok(state)
        } else {
            Err(corrupted(format!(
                "positions {}..{}, {} items, high mark {} in {} bytes",
                state.head, state.tail, state.count, state.high, self.capacity
            )))
        }
    }

    /// Publish `new`: journal first, so that dying half-way is undone or
    /// finished by the next owner, never half-applied.
    fn commit(&self, _held: &Held<'_>, new: State) {
        let h = self.header();
        // SAFETY: we hold the mutex. The volatile writes keep the order
        // journal, flag, state, flag (a killed process's completed stores
        // are in the shared pages already).
        unsafe {
            std::ptr::write_volatile(addr_of_mut!((*h).journal), new);
            std::ptr::write_volatile(addr_of_mut!((*h).journal_valid), 1);
            std::ptr::write_volatile(addr_of_mut!((*h).state), new);
            std::ptr::write_volatile(addr_of_mut!((*h).journal_valid), 0);
        }
        self.count_hint().store(new.count, Ordering::Release);
    }

    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn maxsize(&self) -> u64 {
        self.maxsize
    }

    fn joinable(&self) -> bool {
        self.joinable
    }

    fn data(&self) -> *mut u8 {
        // SAFETY: DATA is within the region (checked at construction).
        unsafe { self.region.ptr().add(DATA) }
    }

    /// Change a waiter count by `delta` (under the mutex).
    fn waiting(&self, _held: &Held<'_>, field: fn(*mut Header) -> *mut u32, delta: i32) {
        // SAFETY: we hold the mutex, which guards the waiter counts.
        unsafe {
            let count = field(self.header());
            *count = (*count).wrapping_add_signed(delta);
        }
    }

    fn waiters(&self, _held: &Held<'_>, field: fn(*mut Header) -> *mut u32) -> u32 {
        // SAFETY: as above.
        unsafe { *field(self.header()) }
    }

    /// Where a message of `len` bytes would go: the bytes skipped before it
    /// and its offset; `None` if there is no room now.
    fn place(&self, state: &State, len: u64) -> Option<(u64, u64)> {
        let cap = self.capacity();
        let record = 4 + round4(len);
        let pos = state.tail % cap;
        let skip = if pos + record <= cap { 0 } else { cap - pos };
        let used = state.tail - state.head;
        (used + skip + record <= cap).then_some((skip, (pos + skip) % cap))
    }

    /// Put `bytes`, waiting for room until `deadline` (`None`: do not wait;
    /// `Some(None)`: forever).
    fn push(&self, bytes: &[u8], deadline: Option<Option<Instant>>) -> Result<()> {
        let len = bytes.len() as u64;
        if 4 + round4(len) > self.capacity() {
            return Err(Error::FrameTooLarge {
                size: len,
                max: (self.capacity() - 4).min(u32::MAX as u64) as u32,
            });
        }
        let mut registered = false;
        loop {
            let held = self.lock()?;
            if registered {
                self.waiting(&held, field!(writers), -1);
            }
            let state = self.state(&held)?;
            let maxsize = self.maxsize();
            let room = if maxsize > 0 && state.count >= maxsize {
                None
            } else {
                self.place(&state, len)
            };
            if let Some((skip, at)) = room {
                // Positions grow without bound between resets: one written
                // near the top of the range is the ring's corruption.
                let tail = state
                    .tail
                    .checked_add(skip + 4 + round4(len))
                    .ok_or_else(|| corrupted(format!("a tail of {}", state.tail)))?;
                // SAFETY: [at, at + 4 + len) and the skip marker lie in free
                // space of the ring (place checked it), which we own while
                // holding the mutex; nothing is published until `commit`.
                unsafe {
                    if skip > 0 {
                        let marker = self.data().add((state.tail % self.capacity()) as usize);
                        std::ptr::write_unaligned(marker as *mut u32, SKIP);
                    }
                    let record = self.data().add(at as usize);
                    std::ptr::write_unaligned(record as *mut u32, len as u32);
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), record.add(4), bytes.len());
                }
                let new = State {
                    tail,
                    count: state.count + 1,
                    unfinished: state.unfinished.saturating_add(self.joinable() as u64),
                    high: state.high.max(at + 4 + round4(len)),
                    ..state
                };
                self.commit(&held, new);
                let wake = self.waiters(&held, field!(readers)) > 0;
                if wake {
                    self.word(field!(not_empty)).fetch_add(1, Ordering::Release);
                }
                drop(held);
                if wake {
                    futex_wake(self.word(field!(not_empty)), 1);
                }
                return Ok(());
            }
            let Some(deadline) = deadline else {
                return Err(SyncError::Full.into());
            };
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Err(SyncError::Full.into());
            }
            let word = self.word(field!(not_full));
            let seen = word.load(Ordering::Acquire);
            self.waiting(&held, field!(writers), 1);
            registered = true;
            drop(held);
            futex_wait(word, seen, left);
        }
    }

    /// Take the oldest message, waiting until `deadline` as for `push`.
    fn pop(&self, deadline: Option<Option<Instant>>) -> Result<Vec<u8>> {
        let mut registered = false;
        loop {
            if !registered && deadline.is_some() {
                self.spin_while_empty();
            }
            let held = self.lock()?;
            if registered {
                self.waiting(&held, field!(readers), -1);
            }
            let state = self.state(&held)?;
            if state.count > 0 {
                return self.take(&held, state);
            }
            let Some(deadline) = deadline else {
                return Err(SyncError::Empty.into());
            };
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Err(SyncError::Empty.into());
            }
            let word = self.word(field!(not_empty));
            let seen = word.load(Ordering::Acquire);
            self.waiting(&held, field!(readers), 1);
            registered = true;
            drop(held);
            futex_wait(word, seen, left);
        }
    }

    /// The length word at `pos` of the data area (4-byte aligned, at most
    /// `capacity - 4`), read once.
    fn length_at(&self, pos: u64) -> u32 {
        debug_assert!(pos % 4 == 0 && pos + 4 <= self.capacity());
        // SAFETY: `pos + 4 <= capacity`, so the word lies in the data area
        // of the mapping; it is read once into a local.
        unsafe { std::ptr::read_volatile(self.data().add(pos as usize) as *const u32) }
    }

    /// Copy out the message at the head of a non-empty `state` and publish
    /// its removal. A length that does not fit the published messages is
    /// the queue's corruption, reported before anything is copied.
    fn take(&self, held: &Held<'_>, state: State) -> Result<Vec<u8>> {
        let cap = self.capacity();
        let used = state.tail - state.head;
        let mut pos = state.head % cap;
        let mut skipped = 0;
        let mut len = self.length_at(pos);
        if len == SKIP {
            skipped = cap - pos;
            pos = 0;
            len = self.length_at(0);
        }
        let record = 4 + round4(u64::from(len));
        if len == SKIP || skipped + record > used || pos + record > cap {
            return Err(corrupted(format!(
                "a message of {len} bytes at {pos} of {cap}, {used} bytes published"
            )));
        }
        // SAFETY: [pos + 4, pos + 4 + len) lies within the data area (just
        // checked) and within the published messages, which only the
        // holder of the mutex changes; it is copied into a fresh vector.
        let bytes = unsafe {
            let start = self.data().add(pos as usize + 4);
            std::slice::from_raw_parts(start, len as usize).to_vec()
        };
        let count = state.count - 1;
        let mut new = State {
            head: state.head + skipped + 4 + round4(bytes.len() as u64),
            count,
            ..state
        };
        if count == 0 {
            // Empty: start again at the beginning, and give back what a
            // burst touched beyond the first megabyte.
            if new.high > KEEP {
                self.region
                    .discard(DATA + KEEP as usize, (new.high - KEEP) as usize);
            }
            new = State {
                head: 0,
                tail: 0,
                high: 0,
                ..new
            };
        }
        self.commit(held, new);
        let wake = self.waiters(held, field!(writers)) > 0;
        if wake {
            let word = self.word(field!(not_full));
            word.fetch_add(1, Ordering::Release);
            futex_wake(word, i32::MAX);
        }
        Ok(bytes)
    }

    /// Spin briefly while the ring is empty, if another CPU may fill it.
    fn spin_while_empty(&self) {
        if !several_cpus() {
            return;
        }
        let begun = Instant::now();
        let count = self.count_hint();
        while count.load(Ordering::Acquire) == 0 {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
            if begun.elapsed() > SPIN {
                return;
            }
        }
    }

    fn task_done(&self) -> Result<()> {
        let held = self.lock()?;
        let state = self.state(&held)?;
        if state.unfinished == 0 {
            return Err(SyncError::ValueError("task_done() called too many times".into()).into());
        }
        let unfinished = state.unfinished - 1;
        self.commit(
            &held,
            State {
                unfinished,
                ..state
            },
        );
        if unfinished == 0 && self.waiters(&held, field!(joiners)) > 0 {
            let word = self.word(field!(all_done));
            word.fetch_add(1, Ordering::Release);
            drop(held);
            futex_wake(word, i32::MAX);
        }
        Ok(())
    }

    fn join(&self) -> Result<()> {
        let mut registered = false;
        loop {
            let held = self.lock()?;
            if registered {
                self.waiting(&held, field!(joiners), -1);
            }
            if self.state(&held)?.unfinished == 0 {
                return Ok(());
            }
            let word = self.word(field!(all_done));
            let seen = word.load(Ordering::Acquire);
            self.waiting(&held, field!(joiners), 1);
            registered = true;
            drop(held);
            futex_wait(word, seen, None);
        }
    }

    /// The count, as the last operation published it (at most what the
    /// capacity can hold, whatever another process wrote there).
    fn qsize(&self) -> usize {
        let count = self.count_hint().load(Ordering::Acquire);
        count.min(self.capacity() / 4) as usize
    }
}

/// A queue handle's shared parts.
struct Shared {
    ring: Ring,
    /// `close()` of this process's handles (Python's is per process too).
    closed: AtomicBool,
}

/// Python's `multiprocessing.Queue`: a multi-producer, multi-consumer FIFO
/// between processes of this program, typed, with no server. Pass it in a
/// [`Process`](super::Process)'s arguments; clones share it.
///
/// ```
/// # extern crate manager_runtime as managers;
/// use managers::process::Queue;
///
/// let queue: Queue<String> = Queue::new(0)?; // 0: no item limit
/// queue.put("hello".to_string())?;
/// assert_eq!(queue.qsize(), 1);
/// assert_eq!(queue.get()?, "hello");
/// assert!(queue.get_nowait().is_err()); // Empty
/// # Ok::<(), managers::Error>(())
/// ```
pub struct Queue<T> {
    shared: Arc<Shared>,
    _items: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            shared: Arc::clone(&self.shared),
            _items: PhantomData,
        }
    }
}

impl<T> Queue<T> {
    fn with_ring(ring: Ring) -> Self {
        Queue {
            shared: Arc::new(Shared {
                ring,
                closed: AtomicBool::new(false),
            }),
            _items: PhantomData,
        }
    }

    fn ring(&self) -> &Ring {
        &self.shared.ring
    }

    fn open(&self) -> Result<()> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(ProcessError::QueueClosed.into());
        }
        Ok(())
    }

    /// How many items it holds (Python's `qsize()`; as there, another
    /// process may change it at once).
    pub fn qsize(&self) -> usize {
        self.ring().qsize()
    }

    /// Whether it holds no item.
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether it holds `maxsize` items (never, for an unbounded queue).
    pub fn full(&self) -> bool {
        let maxsize = self.ring().maxsize();
        maxsize > 0 && self.qsize() as u64 >= maxsize
    }

    /// This process will put and get no more (Python's `close()`): later
    /// calls on this handle and its clones fail; other processes go on.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
    }

    /// Python's `join_thread()`: there is no feeder thread here (`put`
    /// returns once the item is in shared memory), so there is nothing to
    /// wait for; as in Python, an error unless the queue was closed.
    pub fn join_thread(&self) -> Result<()> {
        if self.shared.closed.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(ProcessError::QueueNotClosed.into())
        }
    }

    /// Python's `cancel_join_thread()`: nothing to cancel (no item is ever
    /// buffered in this process); does nothing.
    pub fn cancel_join_thread(&self) {}
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// A queue holding at most `maxsize` items (0: no limit but its bytes,
    /// [`DEFAULT_QUEUE_BYTES`]).
    pub fn new(maxsize: usize) -> Result<Self> {
        Self::with_capacity(maxsize, DEFAULT_QUEUE_BYTES)
    }

    /// A queue of at most `maxsize` items (0: no limit) in `bytes` of
    /// shared memory (an item takes its encoded size plus 4 to 7 bytes).
    pub fn with_capacity(maxsize: usize, bytes: usize) -> Result<Self> {
        Ok(Self::with_ring(Ring::new(bytes, maxsize, false)?))
    }

    /// Put `item`, waiting for room as long as it takes.
    pub fn put(&self, item: T) -> Result<()> {
        self.put_with(item, true, None)
    }

    /// Put `item`, waiting at most `timeout` for room; then
    /// [`SyncError::Full`].
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<()> {
        self.put_with(item, true, Some(timeout))
    }

    /// Put `item` if there is room now, else [`SyncError::Full`].
    pub fn put_nowait(&self, item: T) -> Result<()> {
        self.put_with(item, false, None)
    }

    /// Python's `put(item, block, timeout)`.
    pub fn put_with(&self, item: T, block: bool, timeout: Option<Duration>) -> Result<()> {
        self.open()?;
        // Proxies in the item cross as tokens (the receiver takes its own
        // reference); descriptors cannot live in shared memory.
        let (bytes, _proxies) = crate::crossing::encoding(crate::crossing::Route::Queue, || {
            crate::codec::encode(&item)
        })?;
        self.ring().push(&bytes, deadline_of(block, timeout))
    }

    /// Take the oldest item, waiting as long as it takes.
    pub fn get(&self) -> Result<T> {
        self.get_with(true, None)
    }

    /// Take the oldest item, waiting at most `timeout`; then
    /// [`SyncError::Empty`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_with(true, Some(timeout))
    }

    /// Take the oldest item if there is one, else [`SyncError::Empty`].
    pub fn get_nowait(&self) -> Result<T> {
        self.get_with(false, None)
    }

    /// Python's `get(block, timeout)`.
    pub fn get_with(&self, block: bool, timeout: Option<Duration>) -> Result<T> {
        self.open()?;
        let bytes = self.ring().pop(deadline_of(block, timeout))?;
        let received = crate::crossing::Received::bare();
        crate::crossing::decoding(received, || crate::codec::decode(&bytes)).0
    }
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<Queue qsize={} maxsize={}>",
            self.qsize(),
            self.ring().maxsize()
        )
    }
}

impl<T> Serialize for Queue<T> {
    /// As a process's argument only: its shared memory crosses the lifeline.
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        self.ring().region.serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let region = Region::deserialize(deserializer)?;
        let ring = Ring::from_region(region).map_err(crate::error::de_error)?;
        Ok(Queue::with_ring(ring))
    }
}

/// Python's `multiprocessing.JoinableQueue`: a [`Queue`] (it derefs to one)
/// that counts unfinished tasks: each `put` adds one, each
/// [`task_done`](Self::task_done) removes one, [`join`](Self::join) waits
/// for none.
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// A joinable queue of at most `maxsize` items (0: no limit).
    pub fn new(maxsize: usize) -> Result<Self> {
        Self::with_capacity(maxsize, DEFAULT_QUEUE_BYTES)
    }

    /// As [`Queue::with_capacity`].
    pub fn with_capacity(maxsize: usize, bytes: usize) -> Result<Self> {
        Ok(JoinableQueue {
            queue: Queue::with_ring(Ring::new(bytes, maxsize, true)?),
        })
    }
}

impl<T> JoinableQueue<T> {
    /// One item taken with `get` is done; an error when every put item is
    /// done already (Python's ValueError).
    pub fn task_done(&self) -> Result<()> {
        self.queue.open()?;
        self.queue.ring().task_done()
    }

    /// Wait until every item put has been marked done.
    pub fn join(&self) -> Result<()> {
        self.queue.open()?;
        self.queue.ring().join()
    }
}

impl<T> std::ops::Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T> std::fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<JoinableQueue qsize={}>", self.queue.qsize())
    }
}

impl<T> Serialize for JoinableQueue<T> {
    /// As a process's argument only.
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        self.queue.serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let queue = Queue::deserialize(deserializer)?;
        if !queue.ring().joinable() {
            return Err(crate::error::de_error("the queue passed is not joinable"));
        }
        Ok(JoinableQueue { queue })
    }
}

/// Python's `multiprocessing.SimpleQueue`: an unbounded queue with only
/// `put`, `get`, `empty` and `close`.
pub struct SimpleQueue<T> {
    queue: Queue<T>,
}

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        SimpleQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// A new, empty queue.
    pub fn new() -> Result<Self> {
        Ok(SimpleQueue {
            queue: Queue::new(0)?,
        })
    }

    /// Put `item` (waits only if its bytes do not fit).
    pub fn put(&self, item: T) -> Result<()> {
        self.queue.put(item)
    }

    /// Take the oldest item, waiting as long as it takes.
    pub fn get(&self) -> Result<T> {
        self.queue.get()
    }
}

impl<T> SimpleQueue<T> {
    /// Whether it holds no item.
    pub fn empty(&self) -> bool {
        self.queue.empty()
    }

    /// This process will put and get no more.
    pub fn close(&self) {
        self.queue.close()
    }
}

impl<T> std::fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<SimpleQueue empty={}>", self.empty())
    }
}

impl<T> Serialize for SimpleQueue<T> {
    /// As a process's argument only.
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        self.queue.serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for SimpleQueue<T> {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        Ok(SimpleQueue {
            queue: Queue::deserialize(deserializer)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_back_in_order_across_wraps() {
        let queue: Queue<Vec<u8>> = Queue::with_capacity(0, 1000).unwrap();
        let mut expected = std::collections::VecDeque::new();
        // One item more in than out: the ring never empties (and resets),
        // so it must wrap, with skip markers, many times.
        queue.put(vec![255; 10]).unwrap();
        expected.push_back(vec![255; 10]);
        for round in 0..200u32 {
            for i in 0..5u32 {
                let item = vec![(round ^ i) as u8; 37 + (round * 7 + i) as usize % 60];
                queue.put(item.clone()).unwrap();
                expected.push_back(item);
            }
            for _ in 0..5 {
                assert_eq!(queue.get().unwrap(), expected.pop_front().unwrap());
            }
        }
        assert_eq!(queue.qsize(), 1);
    }

    #[test]
    fn full_and_empty_follow_python() {
        let queue: Queue<u32> = Queue::new(2).unwrap();
        assert!(queue.empty() && !queue.full());
        queue.put(1).unwrap();
        queue.put(2).unwrap();
        assert!(queue.full());
        assert!(matches!(
            queue.put_nowait(3),
            Err(Error::Sync(SyncError::Full))
        ));
        let begun = Instant::now();
        assert!(matches!(
            queue.put_timeout(3, Duration::from_millis(100)),
            Err(Error::Sync(SyncError::Full))
        ));
        assert!(begun.elapsed() >= Duration::from_millis(100));
        assert_eq!((queue.get().unwrap(), queue.get().unwrap()), (1, 2));
        assert!(matches!(
            queue.get_nowait(),
            Err(Error::Sync(SyncError::Empty))
        ));
        let begun = Instant::now();
        assert!(matches!(
            queue.get_timeout(Duration::from_millis(100)),
            Err(Error::Sync(SyncError::Empty))
        ));
        assert!(begun.elapsed() >= Duration::from_millis(100));
    }

    #[test]
    fn an_item_larger_than_the_ring_is_refused() {
        let queue: Queue<Vec<u8>> = Queue::with_capacity(0, 1024).unwrap();
        assert!(matches!(
            queue.put(vec![0; 2000]),
            Err(Error::FrameTooLarge { .. })
        ));
        queue.put(vec![1; 500]).unwrap();
        assert_eq!(queue.get().unwrap(), vec![1; 500]);
    }

    #[test]
    fn threads_wait_for_each_other() {
        let queue: Queue<u64> = Queue::with_capacity(4, 4096).unwrap();
        let producer = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                for i in 0..10_000 {
                    queue.put(i).unwrap();
                }
            })
        };
        let sum: u64 = (0..10_000).map(|_| queue.get().unwrap()).sum();
        producer.join().unwrap();
        assert_eq!(sum, (0..10_000).sum::<u64>());
    }

    #[test]
    fn close_and_join_thread_follow_python() {
        let queue: Queue<u8> = Queue::new(0).unwrap();
        assert!(matches!(
            queue.join_thread(),
            Err(Error::Process(ProcessError::QueueNotClosed))
        ));
        queue.close();
        assert!(matches!(
            queue.put(1),
            Err(Error::Process(ProcessError::QueueClosed))
        ));
        assert!(matches!(
            queue.get_nowait(),
            Err(Error::Process(ProcessError::QueueClosed))
        ));
        queue.join_thread().unwrap();
    }

    #[test]
    fn joinable_counts_tasks() {
        let queue: JoinableQueue<u8> = JoinableQueue::new(0).unwrap();
        assert!(matches!(
            queue.task_done(),
            Err(Error::Sync(SyncError::ValueError(_)))
        ));
        queue.put(1).unwrap();
        queue.put(2).unwrap();
        let worker = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                for _ in 0..2 {
                    queue.get().unwrap();
                    std::thread::sleep(Duration::from_millis(20));
                    queue.task_done().unwrap();
                }
            })
        };
        queue.join().unwrap();
        assert!(queue.empty());
        worker.join().unwrap();
    }

    /// Another mapping of `queue`'s memory, as another process has it.
    fn scribbler<T>(queue: &Queue<T>) -> Region {
        use std::os::fd::AsFd;
        let fd = queue.ring().region.as_fd().try_clone_to_owned().unwrap();
        Region::from_fd(fd).unwrap()
    }

    /// Write `value` at byte `offset` of `region`.
    fn scribble<V: Copy>(region: &Region, offset: usize, value: V) {
        assert!(offset + std::mem::size_of::<V>() <= region.len());
        // SAFETY: in bounds of the mapping (asserted); the queue's handles
        // in this test are not in an operation meanwhile.
        unsafe { std::ptr::write_unaligned(region.ptr().add(offset) as *mut V, value) }
    }

    fn offset_of_state() -> usize {
        std::mem::offset_of!(Header, state)
    }

    /// Every operation on a corrupted queue returns (an error or a sane
    /// answer): none reads or writes outside the mapping, allocates what a
    /// length says, or waits.
    fn survives(queue: &Queue<Vec<u8>>) -> usize {
        let begun = Instant::now();
        let mut errors = 0;
        for _ in 0..4 {
            errors += usize::from(queue.get_nowait().is_err());
            errors += usize::from(queue.put_nowait(vec![9; 10]).is_err());
        }
        assert!(queue.qsize() <= (queue.ring().capacity() / 4) as usize);
        let _ = queue.empty();
        let _ = queue.full();
        assert!(begun.elapsed() < Duration::from_secs(5));
        errors
    }

    #[test]
    fn a_scribbled_ring_is_an_error_not_a_crash() {
        // Issue 17: the ring trusted the lengths and positions it read from
        // shared memory that any holder of the queue can write.
        let state_at = offset_of_state();
        let word = 8;
        type Scribbling = Box<dyn Fn(&Region, usize)>;
        let cases: Vec<(&str, Scribbling)> = vec![
            (
                "a huge message length",
                Box::new(|r: &Region, _| scribble(r, DATA, u32::MAX - 1)),
            ),
            (
                "a length past the end",
                Box::new(|r: &Region, _| scribble(r, DATA, 1000u32)),
            ),
            (
                "a length past the published bytes",
                Box::new(|r: &Region, _| scribble(r, DATA, 60u32)),
            ),
            (
                "a skip marker at the start",
                Box::new(|r: &Region, _| scribble(r, DATA, SKIP)),
            ),
            (
                "head beyond tail",
                Box::new(move |r: &Region, _| scribble(r, state_at, 1u64 << 40)),
            ),
            (
                "tail beyond the capacity",
                Box::new(move |r: &Region, _| scribble(r, state_at + word, 1u64 << 20)),
            ),
            (
                "an odd tail",
                Box::new(move |r: &Region, _| scribble(r, state_at + word, 13u64)),
            ),
            (
                "a count the bytes cannot hold",
                Box::new(move |r: &Region, _| scribble(r, state_at + 2 * word, 1000u64)),
            ),
            (
                "a zero count with bytes",
                Box::new(move |r: &Region, _| scribble(r, state_at + 2 * word, 0u64)),
            ),
            (
                "positions at the top of their range",
                Box::new(move |r: &Region, _| {
                    scribble(r, state_at, u64::MAX - 3);
                    scribble(r, state_at + word, u64::MAX - 3);
                    scribble(r, state_at + 2 * word, 0u64);
                }),
            ),
            (
                "a high mark past the end",
                Box::new(move |r: &Region, _| scribble(r, state_at + 4 * word, u64::MAX)),
            ),
            (
                "the capacity changed",
                Box::new(|r: &Region, _| {
                    scribble(r, std::mem::offset_of!(Header, capacity), 1u64 << 40)
                }),
            ),
            (
                "garbage everywhere",
                Box::new(move |r: &Region, seed| {
                    let mut x = seed as u64 | 1;
                    for at in (DATA..DATA + 512).step_by(4) {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        scribble(r, at, x as u32);
                    }
                    scribble(r, state_at, x % 300 * 4);
                    scribble(r, state_at + word, x % 700 * 4);
                }),
            ),
        ];
        for (seed, (name, scribbling)) in cases.iter().enumerate() {
            let queue: Queue<Vec<u8>> = Queue::with_capacity(0, 512).unwrap();
            for i in 0..3u8 {
                queue.put(vec![i; 11]).unwrap();
            }
            let other = scribbler(&queue);
            scribbling(&other, seed);
            let errors = survives(&queue);
            assert!(
                errors > 0 || *name == "the capacity changed",
                "{name}: nothing noticed"
            );
        }
        // A fresh mapping of a queue whose capacity or magic is wrong is
        // refused.
        let queue: Queue<u8> = Queue::with_capacity(0, 512).unwrap();
        let other = scribbler(&queue);
        scribble(&other, std::mem::offset_of!(Header, capacity), 4096u64);
        assert!(Ring::from_region(scribbler(&queue)).is_err());
    }

    #[test]
    fn a_bogus_journal_is_not_replayed() {
        let queue: Queue<Vec<u8>> = Queue::with_capacity(0, 512).unwrap();
        queue.put(vec![1; 5]).unwrap();
        let other = scribbler(&queue);
        let journal_at = std::mem::offset_of!(Header, journal);
        scribble(&other, journal_at, 0u64);
        scribble(&other, journal_at + 8, 1u64 << 30);
        scribble(&other, journal_at + 16, 7u64);
        scribble(&other, std::mem::offset_of!(Header, journal_valid), 1u32);
        // An owner dies holding the mutex: the next owner recovers.
        let ring = queue.clone();
        std::thread::spawn(move || std::mem::forget(ring.ring().lock().unwrap()))
            .join()
            .unwrap();
        assert_eq!(
            queue.get_nowait().unwrap(),
            vec![1; 5],
            "the state as it was"
        );
        assert!(queue.empty());
        queue.put(vec![2; 3]).unwrap();
        assert_eq!(queue.get().unwrap(), vec![2; 3]);
    }

    #[test]
    fn a_dead_owner_leaves_the_queue_whole() {
        let queue: Queue<u32> = Queue::new(0).unwrap();
        queue.put(7).unwrap();
        // A thread that ends holding the mutex, its journal written but not
        // applied: the next owner finishes the put it journaled.
        let ring = queue.clone();
        std::thread::spawn(move || {
            let ring = ring.ring();
            let held = ring.lock().unwrap();
            let state = ring.state(&held).unwrap();
            let h = ring.header();
            // SAFETY: we hold the mutex.
            unsafe {
                let record = ring.data().add(state.tail as usize);
                let bytes = crate::codec::encode(&8u32).unwrap();
                std::ptr::write_unaligned(record as *mut u32, bytes.len() as u32);
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), record.add(4), bytes.len());
                (*h).journal = State {
                    tail: state.tail + 4 + round4(bytes.len() as u64),
                    count: 2,
                    ..state
                };
                (*h).journal_valid = 1;
            }
            std::mem::forget(held);
        })
        .join()
        .unwrap();
        assert_eq!(queue.get().unwrap(), 7);
        assert_eq!(queue.get().unwrap(), 8);
        assert!(queue.empty());
    }
}
