//! Spin-then-park waits for a socket's next bytes (issue 11).
//!
//! On this kind of machine a thread that sleeps in `read` or `epoll_wait`
//! and is woken from the other CPU pays tens of microseconds for the
//! wake-up, twice per round trip. A reader that expects an answer soon
//! polls the socket with non-blocking reads for a short window instead,
//! yielding the CPU each turn (so a client and a server sharing one CPU
//! still take turns), and only then parks in the blocking wait.
//!
//! Spinning is adaptive, per connection ([`Spin`]): it spins only while
//! spinning recently paid off, so an idle connection, or one whose calls
//! take milliseconds, stops burning CPU after a few misses; a wait that
//! turns out short again (or a rare probe) turns it back on. It is bounded
//! by the window, and a process lets at most half its CPUs spin at once
//! ([`Gate`]): with more busy threads than CPUs, the others park at once
//! rather than steal the CPU from the threads doing the work.
//!
//! Sans-IO apart from the one `recv(MSG_DONTWAIT)` per turn: the callers
//! (the blocking client, the server's connection task) decide what to do
//! with the bytes.
// The sockets' spinning reads are the manager's; pipes use `read_with`.
#![cfg_attr(not(feature = "manager"), allow(dead_code))]

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Default spin window, measured on the 2-CPU machine of BENCHMARKS.md: 50
/// us covers a whole round trip of a small call with both ends awake.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// Misses in a row after which a connection stops spinning.
const CREDIT: u8 = 3;

/// Waits without spinning after which one wait spins anyway (a probe): a
/// connection whose blocking waits are all long still learns when calls
/// become fast again, at a cost of one window per this many calls.
const PROBE_EVERY: u16 = 64;

/// One connection's adaptive spinning state.
#[derive(Debug, Clone)]
pub(crate) struct Spin {
    window: Duration,
    credit: u8,
    since_spin: u16,
    /// Whether the process-wide [`Gate`] applies (off only in unit tests,
    /// which must not depend on what other tests spin meanwhile).
    gated: bool,
}

/// What a spinning wait saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spun {
    /// `n` bytes arrived while spinning (0: the peer closed).
    Read(usize),
    /// Nothing came in the window, or spinning was not worth it now: make
    /// the blocking wait (and time it with [`Spin::parked`]).
    Park,
}

impl Spin {
    /// A connection's state for a spin window of `window` (zero: never
    /// spin, today's behaviour before issue 11).
    pub(crate) fn new(window: Duration) -> Spin {
        Spin {
            window,
            credit: CREDIT,
            since_spin: 0,
            gated: true,
        }
    }

    /// Whether this wait should spin at all.
    fn worth_it(&mut self) -> bool {
        if self.window.is_zero() {
            return false;
        }
        if self.credit > 0 {
            return true;
        }
        self.since_spin += 1;
        self.since_spin >= PROBE_EVERY
    }

    /// Wait up to the window for bytes on `fd`, reading them into `buf`.
    /// Returns an error only for a failed read (not for "nothing yet").
    pub(crate) fn read(&mut self, fd: BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<Spun> {
        if buf.is_empty() {
            return Ok(Spun::Park);
        }
        self.read_with(|| try_read(fd, buf))
    }

    /// Wait up to the window for `attempt` (one non-blocking read: `Some(n)`
    /// bytes, `None` if nothing is there yet) to find something.
    pub(crate) fn read_with(
        &mut self,
        mut attempt: impl FnMut() -> std::io::Result<Option<usize>>,
    ) -> std::io::Result<Spun> {
        if !self.worth_it() {
            return Ok(Spun::Park);
        }
        let _turn = match self.gated {
            true => match Gate::enter() {
                Some(turn) => Some(turn),
                None => return Ok(Spun::Park),
            },
            false => None,
        };
        self.since_spin = 0;
        let start = Instant::now();
        loop {
            match attempt() {
                Ok(Some(n)) => {
                    self.credit = CREDIT;
                    return Ok(Spun::Read(n));
                }
                Ok(None) => {}
                Err(e) => return Err(e),
            }
            let spun = start.elapsed();
            if spun >= self.window {
                self.credit = self.credit.saturating_sub(1);
                return Ok(Spun::Park);
            }
            // The peer may be waiting for this very CPU (a Unix socket's
            // wake-up pulls the two ends together): give it up each turn.
            // (Polling without yielding left both ends spinning out their
            // windows on one CPU: 112 us per call instead of 13.)
            std::thread::yield_now();
        }
    }

    /// A blocking wait that took `waited` is over: if spinning would have
    /// caught it (it was shorter than two windows: a wake-up itself costs
    /// about one), spinning is worth trying again.
    pub(crate) fn parked(&mut self, waited: Duration) {
        if !self.window.is_zero() && waited < 2 * self.window {
            self.credit = CREDIT;
        }
    }
}

/// One non-blocking read: `Some(n)` bytes (0 at end of stream), `None` if
/// nothing is there yet.
pub(crate) fn try_read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
    // SAFETY: `fd` is open for the call (borrowed); `buf` is valid for
    // writes of `buf.len()` bytes.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n >= 0 {
        return Ok(Some(n as usize));
    }
    let e = std::io::Error::last_os_error();
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(None),
        _ => Err(e),
    }
}

/// Whether the peer of the socket `fd` has closed it (a zero-byte peek),
/// without waiting or taking anything: an idle connection whose server is
/// gone, found before a request is written into it.
pub(crate) fn peer_closed(fd: BorrowedFd<'_>) -> bool {
    let mut byte = [0u8; 1];
    // SAFETY: `fd` is open for the call (borrowed); `byte` is valid for
    // writes of one byte; MSG_PEEK leaves whatever is there in the socket.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            byte.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n == 0
        || (n < 0
            && !matches!(
                std::io::Error::last_os_error().kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            ))
}

/// The process-wide count of spinning threads.
static SPINNING: AtomicUsize = AtomicUsize::new(0);

/// A turn to spin, given back on drop.
struct Gate;

impl Gate {
    /// Most threads of this process that spin at once: half the CPUs (the
    /// other half is for the peer process spinning too), at least one.
    fn limit() -> usize {
        static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *LIMIT.get_or_init(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get() / 2)
                .max(1)
        })
    }

    fn enter() -> Option<Gate> {
        let limit = Self::limit();
        SPINNING
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Gate)
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        SPINNING.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    fn ungated(window: Duration) -> Spin {
        Spin {
            gated: false,
            ..Spin::new(window)
        }
    }

    #[test]
    fn zero_window_never_spins() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut spin = Spin::new(Duration::ZERO);
        let mut buf = [0; 8];
        assert_eq!(spin.read(a.as_fd(), &mut buf).unwrap(), Spun::Park);
    }

    #[test]
    fn spinning_reads_what_is_there_and_gives_up_on_silence() {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut spin = ungated(Duration::from_micros(200));
        let mut buf = [0; 8];
        b.write_all(b"hi").unwrap();
        assert_eq!(spin.read(a.as_fd(), &mut buf).unwrap(), Spun::Read(2));
        assert_eq!(&buf[..2], b"hi");
        // Silence: each miss costs credit; after CREDIT misses it parks at
        // once, without polling, until a probe or a short wait.
        for _ in 0..CREDIT {
            assert_eq!(spin.read(a.as_fd(), &mut buf).unwrap(), Spun::Park);
        }
        assert_eq!(spin.credit, 0);
        b.write_all(b"x").unwrap();
        assert_eq!(
            spin.read(a.as_fd(), &mut buf).unwrap(),
            Spun::Park,
            "out of credit: no poll, even with bytes waiting"
        );
        spin.parked(Duration::from_micros(10));
        assert_eq!(spin.read(a.as_fd(), &mut buf).unwrap(), Spun::Read(1));
        drop(b);
        assert_eq!(spin.read(a.as_fd(), &mut buf).unwrap(), Spun::Read(0));
    }

    #[test]
    fn the_gate_lets_a_bounded_number_spin() {
        let turns: Vec<_> = std::iter::from_fn(Gate::enter).take(64).collect();
        assert!(!turns.is_empty() && turns.len() <= Gate::limit());
        assert!(Gate::enter().is_none());
        drop(turns);
    }

    #[test]
    fn a_long_park_keeps_spinning_off_until_a_probe() {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut spin = ungated(Duration::from_micros(100));
        spin.credit = 0;
        b.write_all(b"y").unwrap();
        let mut buf = [0; 8];
        for _ in 0..PROBE_EVERY - 1 {
            spin.parked(Duration::from_millis(5));
            assert_eq!(spin.read(a.as_fd(), &mut buf).unwrap(), Spun::Park);
        }
        assert_eq!(spin.read(a.as_fd(), &mut buf).unwrap(), Spun::Read(1));
    }
}
