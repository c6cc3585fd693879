//! Issue 19's design question for the async side of the shared-memory
//! ring: how should a task wait for its peer's next bytes? (a) on an
//! eventfd registered with tokio's reactor, which the peer writes when the
//! task said it sleeps (what `ring.rs` does), or (b) through a helper
//! thread blocked on a futex of the peer's sequence word, which wakes the
//! task's `Waker`.
//!
//! A client task on a current-thread runtime and an echo thread ping-pong a
//! sequence word (one process: the question is the wait, not the crossing).
//! The client does not spin (as our async client); the echo spins up to
//! 50 us, yielding, then sleeps on a futex. Prints one JSON line: the
//! median round trip of each way, in us, over 5 repetitions of 20,000.
//!
//! ```text
//! bench/target/release/async_wait                 # unpinned
//! taskset -c 0 bench/target/release/async_wait    # both on one CPU
//! ```

use std::future::poll_fn;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;

const ROUNDS: u32 = 20_000;
const REPS: usize = 5;
const SPIN: Duration = Duration::from_micros(50);

#[derive(Clone, Copy, PartialEq)]
enum Way {
    EventFd,
    FutexThread,
}

struct Shared {
    request: AtomicU32,
    reply: AtomicU32,
    echo_parked: AtomicU32,
    client_parked: AtomicU32,
    done: AtomicBool,
    /// Way (a): written by the echo when the client said it sleeps.
    event: OwnedFd,
    /// Way (b): the task to wake, left by the client when it sleeps.
    waker: Mutex<Option<Waker>>,
    way: Way,
}

fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT on a live, aligned u32 of this process.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a live, aligned u32 of this process.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

fn signal(fd: &OwnedFd) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: an 8-byte write from a live buffer to our eventfd.
    unsafe { libc::write(fd.as_raw_fd(), one.as_ptr().cast(), 8) };
}

fn drain(fd: &OwnedFd) {
    let mut count = [0u8; 8];
    // SAFETY: an 8-byte read into a live buffer from our non-blocking eventfd.
    unsafe { libc::read(fd.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
}

/// Answer each request: spin, then sleep on the request word.
fn echo(shared: &Shared) {
    let mut seen = 0u32;
    while !shared.done.load(Ordering::SeqCst) {
        let begun = Instant::now();
        let mut now = shared.request.load(Ordering::SeqCst);
        while now == seen && begun.elapsed() < SPIN {
            std::thread::yield_now();
            now = shared.request.load(Ordering::SeqCst);
        }
        if now == seen {
            shared.echo_parked.store(1, Ordering::SeqCst);
            if shared.request.load(Ordering::SeqCst) == seen && !shared.done.load(Ordering::SeqCst)
            {
                futex_wait(&shared.request, seen);
            }
            shared.echo_parked.store(0, Ordering::SeqCst);
            continue;
        }
        seen = now;
        shared.reply.store(now, Ordering::SeqCst);
        if shared.client_parked.load(Ordering::SeqCst) != 0 {
            match shared.way {
                Way::EventFd => signal(&shared.event),
                Way::FutexThread => futex_wake(&shared.reply),
            }
        }
    }
}

/// Way (b)'s helper: sleep on the reply word, wake the task when it moves.
fn helper(shared: &Shared) {
    // The word's first value, not what it holds when this thread starts:
    // a reply that came before would otherwise never wake the task.
    let mut seen = 0;
    while !shared.done.load(Ordering::SeqCst) {
        let now = shared.reply.load(Ordering::SeqCst);
        if now == seen {
            futex_wait(&shared.reply, seen);
            continue;
        }
        seen = now;
        if let Some(waker) = shared.waker.lock().unwrap().take() {
            waker.wake();
        }
    }
}

async fn round_trips(shared: &Shared, event: &AsyncFd<OwnedFd>, first: u32) -> f64 {
    let begun = Instant::now();
    for seq in first..first + ROUNDS {
        shared.request.store(seq, Ordering::SeqCst);
        if shared.echo_parked.load(Ordering::SeqCst) != 0 {
            futex_wake(&shared.request);
        }
        match shared.way {
            Way::EventFd => loop {
                if shared.reply.load(Ordering::SeqCst) == seq {
                    break;
                }
                shared.client_parked.store(1, Ordering::SeqCst);
                if shared.reply.load(Ordering::SeqCst) == seq {
                    shared.client_parked.store(0, Ordering::SeqCst);
                    break;
                }
                let mut guard = event.readable().await.expect("reactor");
                drain(&shared.event);
                guard.clear_ready();
                shared.client_parked.store(0, Ordering::SeqCst);
            },
            Way::FutexThread => {
                poll_fn(|cx| {
                    if shared.reply.load(Ordering::SeqCst) == seq {
                        return Poll::Ready(());
                    }
                    *shared.waker.lock().unwrap() = Some(cx.waker().clone());
                    shared.client_parked.store(1, Ordering::SeqCst);
                    if shared.reply.load(Ordering::SeqCst) == seq {
                        shared.client_parked.store(0, Ordering::SeqCst);
                        return Poll::Ready(());
                    }
                    Poll::Pending
                })
                .await;
                shared.client_parked.store(0, Ordering::SeqCst);
            }
        }
    }
    begun.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS)
}

fn measure(way: Way) -> f64 {
    // SAFETY: eventfd(2) returns a new descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    assert!(fd >= 0, "eventfd");
    let shared = Arc::new(Shared {
        request: AtomicU32::new(0),
        reply: AtomicU32::new(0),
        echo_parked: AtomicU32::new(0),
        client_parked: AtomicU32::new(0),
        done: AtomicBool::new(false),
        // SAFETY: a new descriptor nothing else owns.
        event: unsafe { OwnedFd::from_raw_fd(fd) },
        waker: Mutex::new(None),
        way,
    });
    let echo_thread = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || echo(&shared))
    };
    let helper_thread = (way == Way::FutexThread).then(|| {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || helper(&shared))
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    let mut figures: Vec<f64> = runtime.block_on(async {
        let dup = shared.event.try_clone().expect("dup the eventfd");
        // SAFETY: the AsyncFd owns the descriptor, which stays open and the
        // same until it drops (as `ring.rs` registers its eventfds).
        let event = unsafe { AsyncFd::register_with_interest(dup, tokio::io::Interest::READABLE) }
            .expect("register");
        let mut figures = Vec::new();
        for rep in 0..=REPS as u32 {
            let us = round_trips(&shared, &event, 1 + rep * ROUNDS).await;
            if rep > 0 {
                figures.push(us); // the first is a warm-up
            }
        }
        figures
    });
    shared.done.store(true, Ordering::SeqCst);
    shared.request.fetch_add(1, Ordering::SeqCst);
    futex_wake(&shared.request);
    shared.reply.fetch_add(1, Ordering::SeqCst);
    futex_wake(&shared.reply);
    echo_thread.join().unwrap();
    if let Some(helper) = helper_thread {
        helper.join().unwrap();
    }
    figures.sort_by(f64::total_cmp);
    figures[figures.len() / 2]
}

fn main() {
    let eventfd = measure(Way::EventFd);
    let futex_thread = measure(Way::FutexThread);
    println!("{{\"eventfd_us\":{eventfd:.3},\"futex_thread_us\":{futex_thread:.3}}}");
}
