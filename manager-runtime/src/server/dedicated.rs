//! Threads of their own for blocking clients' connections.
//!
//! A connection that carries one call at a time (a blocking client's, or
//! a CPython client thread's in pickle mode: `python/mod.rs`) is
//! served on a thread with a single-threaded runtime of its own: the same
//! request loop, but its spinning for the next request wakes no other
//! worker, and its replies leave without a hop to another thread. Pending
//! calls run on that runtime too. At most [`MAX_DEDICATED`] connections
//! get one; the rest stay on the shared runtime. When the server stops,
//! every dedicated connection's socket is shut down, which ends its loop:
//! through a duplicate of its descriptor that the seat owns, so a number
//! never outlives the socket it named.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::transport::Movable;

/// Most connections served on threads of their own at once.
pub(super) const MAX_DEDICATED: usize = 256;

/// The dedicated connections of one server, by key: a duplicate of each
/// socket's descriptor, to shut it down when the server stops.
#[derive(Default)]
pub(crate) struct Dedicated {
    sockets: Mutex<HashMap<u64, Option<OwnedFd>>>,
    next: AtomicU64,
    /// Set when the server stops: no more seats.
    closing: AtomicBool,
}

/// shutdown(2) both ways: the connection on the socket `fd` refers to
/// ends, whichever descriptor of it its loop reads.
fn shut_down(fd: &OwnedFd) {
    // SAFETY: `fd` is an open descriptor we own (borrowed for the call);
    // shutdown(2) touches no memory.
    unsafe {
        libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR);
    }
}

/// A place among the dedicated connections, held by one connection.
pub(super) struct Seat {
    dedicated: Arc<Dedicated>,
    key: u64,
}

impl Seat {
    /// A seat, if the server is not stopping and has one free.
    pub(super) fn take(dedicated: &Arc<Dedicated>) -> Option<Seat> {
        let mut sockets = dedicated.sockets.lock().unwrap();
        if sockets.len() >= MAX_DEDICATED || dedicated.closing.load(Ordering::SeqCst) {
            return None;
        }
        let key = dedicated.next.fetch_add(1, Ordering::Relaxed);
        sockets.insert(key, None);
        Some(Seat {
            dedicated: Arc::clone(dedicated),
            key,
        })
    }

    /// Serve `socket` with `serve` on a thread of its own, given back as a
    /// stream of that thread's runtime.
    pub(super) fn run<F, Fut>(self, socket: Movable, serve: F)
    where
        F: FnOnce(Own) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let fd = match &socket {
            Movable::Tcp(s) => s.as_fd().try_clone_to_owned(),
            Movable::Unix(s) => s.as_fd().try_clone_to_owned(),
        };
        {
            let mut sockets = self.dedicated.sockets.lock().unwrap();
            if let Ok(fd) = &fd {
                if self.dedicated.closing.load(Ordering::SeqCst) {
                    // The server began to stop after this seat was taken,
                    // maybe after it shut the others down: this one ends at
                    // once.
                    shut_down(fd);
                }
            }
            // Without a duplicate (out of descriptors) the connection still
            // ends when the server's runtime goes; it just is not hurried.
            sockets.insert(self.key, fd.ok());
        }
        let spawned = std::thread::Builder::new()
            .name("manager-conn".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(_) => return,
                };
                runtime.block_on(async move {
                    // Registered with this thread's reactor.
                    let stream = match socket {
                        Movable::Tcp(s) => tokio::net::TcpStream::from_std(s).map(Own::Tcp),
                        Movable::Unix(s) => tokio::net::UnixStream::from_std(s).map(Own::Unix),
                    };
                    if let Ok(stream) = stream {
                        serve(stream).await;
                    }
                });
                // The socket is closed by now; the seat goes last (drop).
                drop(runtime);
                drop(self);
            });
        // No thread to be had: the connection closes (its socket went with
        // the closure), as any connection the server cannot take.
        drop(spawned);
    }
}

/// A dedicated connection's socket, on its thread's runtime.
pub(super) enum Own {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.dedicated.sockets.lock().unwrap().remove(&self.key);
    }
}

impl Dedicated {
    /// The server stops: shut every dedicated connection's socket down (its
    /// loop then ends, failing its pending calls as any closed connection
    /// does) and wait, at most `patience`, for their threads to finish.
    pub(super) fn close_all(&self, patience: Duration) {
        {
            let sockets = self.sockets.lock().unwrap();
            self.closing.store(true, Ordering::SeqCst);
            for fd in sockets.values().flatten() {
                shut_down(fd);
            }
        }
        let start = Instant::now();
        while !self.sockets.lock().unwrap().is_empty() && start.elapsed() < patience {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
