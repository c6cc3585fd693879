//! One connection: authenticate, join a session, then read requests and
//! write replies until either side ends it.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::IoSlice;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

use super::dedicated::{Own, Seat};
use super::state::{RingSlot, ServerState, Slot};
use crate::error::RemoteError;
use crate::object::MethodRef;
use crate::object::{Host, Outcome};
use crate::ring::AsyncRing;
use crate::transport::{Movable, Socket};
use crate::wait::{Spin, Spun};
use crate::wire::{self, Request, Response};

type Writer<S> = Arc<tokio::sync::Mutex<<S as Socket>::Write>>;

/// Leaves the session when the connection ends, however it ends.
struct Membership {
    state: Arc<ServerState>,
    session: u128,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.state.core.leave(self.session);
    }
}

/// Serve one accepted connection until it ends.
pub(super) async fn serve_connection<S: Socket>(state: Arc<ServerState>, mut stream: S) {
    let (slot, live) = Slot::take(&state);
    if live > state.max_connections {
        tracing::warn!(target: "managers::server",
            limit = state.max_connections,
            "connection refused: too many connections"
        );
        let _ = tokio::time::timeout(
            state.handshake_timeout,
            crate::auth::refuse_busy_async(&mut stream),
        )
        .await;
        return;
    }
    let authenticated = tokio::time::timeout(
        state.handshake_timeout,
        crate::auth::server_async(&mut stream, &state.authkey),
    )
    .await;
    match authenticated {
        Ok(Ok(true)) => tracing::debug!(target: "managers::server", "connection authenticated"),
        Ok(Ok(false)) => {
            tracing::warn!(target: "managers::server", "connection refused: authentication failed (wrong authkey)");
            return;
        }
        Ok(Err(e)) => {
            tracing::warn!(target: "managers::server", error = %e, "connection refused: handshake failed");
            return;
        }
        Err(_) => {
            tracing::warn!(target: "managers::server",
                timeout = ?state.handshake_timeout,
                "connection refused: no handshake in time"
            );
            return;
        }
    }
    // Requests are decoded in place in the inbox; one read brings every
    // request that has arrived.
    let mut inbox = wire::Inbox::new(state.max_frame);
    let (session, blocking, ring) = loop {
        match inbox.next_frame() {
            Ok(Some(frame)) => match wire::decode_header::<Request>(inbox.body(&frame)) {
                Ok((
                    Request::Hello {
                        session,
                        blocking,
                        ring,
                    },
                    _,
                )) => {
                    inbox.consume(frame);
                    break (session, blocking, ring);
                }
                _ => return,
            },
            Ok(None) => {}
            Err(_) => return,
        }
        if !matches!(inbox.fill(&mut stream).await, Ok(n) if n > 0) {
            return;
        }
    };
    // A blocking client's connection carries one call at a time, back to
    // back: it gets a thread (and a reactor) of its own, where spinning for
    // the next request wakes nothing else (BENCHMARKS.md: on the shared
    // runtime each arrival also woke an idle worker, 19-24 us per call
    // instead of 10-12). Async clients' connections stay on the shared
    // runtime.
    //
    // A client that asked for a ring waits for the answer before it sends
    // anything else: a request already there breaks the protocol.
    if ring && inbox.partial() {
        return;
    }
    let granted = if ring { RingSlot::take(&state) } else { None };
    // An async client on this host: its ring is served on the shared
    // runtime, as its socket would be.
    let granted = match granted {
        Some(granted) if !blocking && S::MOVABLE => {
            let socket = match stream.into_movable() {
                Ok(Movable::Unix(socket)) => tokio::net::UnixStream::from_std(socket),
                Ok(Movable::Tcp(_)) => Err(std::io::Error::other("a ring asked for over TCP")),
                Err(e) => Err(e),
            };
            serve_ring(state, socket, granted, inbox, session, slot).await;
            return;
        }
        other => other,
    };
    if blocking && S::MOVABLE {
        if let Some(seat) = Seat::take(&state.dedicated) {
            if let Ok(socket) = stream.into_movable() {
                seat.run(socket, move |stream| async move {
                    match (stream, granted) {
                        // Same host: the bytes go through shared memory.
                        (Own::Unix(s), Some(granted)) => {
                            serve_ring(state, Ok(s), granted, inbox, session, slot).await
                        }
                        (Own::Unix(s), None) => {
                            serve_socket(state, s, ring, inbox, session, slot).await
                        }
                        (Own::Tcp(s), granted) => {
                            drop(granted);
                            serve_socket(state, s, ring, inbox, session, slot).await
                        }
                    }
                });
            }
            return;
        }
    }
    // No ring for it after all (no seat, TCP, TLS, or none granted).
    drop(granted);
    serve_socket(state, stream, ring, inbox, session, slot).await;
}

/// Serve a connection through a ring whose control channel is `socket`,
/// holding its place among the rings (`granted`) while it lasts.
async fn serve_ring(
    state: Arc<ServerState>,
    socket: std::io::Result<tokio::net::UnixStream>,
    granted: RingSlot,
    inbox: wire::Inbox,
    session: u128,
    slot: Slot,
) {
    let _granted = granted;
    match socket.and_then(|socket| AsyncRing::offer(socket, state.spin)) {
        Ok(ring) => serve_session(state, ring, inbox, session, slot).await,
        Err(e) => tracing::warn!(target: "managers::server",
            error = %e, "connection closed: no shared-memory ring for it"),
    }
}

/// Serve a connection on its socket, first answering no to the ring it
/// `asked` for, if it did (one byte without descriptors).
async fn serve_socket<S: Socket>(
    state: Arc<ServerState>,
    mut stream: S,
    asked: bool,
    inbox: wire::Inbox,
    session: u128,
    slot: Slot,
) {
    if asked && stream.write_all(&[0]).await.is_err() {
        return;
    }
    serve_session(state, stream, inbox, session, slot).await
}

/// Serve the requests of a connection that joined `session`, until it
/// ends. `slot` counts the connection meanwhile.
async fn serve_session<S: Socket>(
    state: Arc<ServerState>,
    stream: S,
    mut inbox: wire::Inbox,
    session: u128,
    _slot: Slot,
) {
    let (mut reader, writer) = stream.split_owned();
    let writer: Writer<S> = Arc::new(tokio::sync::Mutex::new(writer));
    let max = state.max_frame;
    state.core.join(session);
    let _membership = Membership {
        state: Arc::clone(&state),
        session,
    };
    let mut out = Vec::new();
    // After a reply the next request usually follows within microseconds:
    // spin for it before parking (adaptive; see `wait`).
    let mut spin = Spin::new(state.spin);
    // Calls still waiting when the connection ends are cancelled with it
    // (dropping the set aborts them): a dead client's pending `acquire()`
    // must not take the lock, nor its `get()` an item, after it is gone.
    let mut in_flight = tokio::task::JoinSet::new();
    // How to withdraw each waiting call, by request id (`Request::Cancel`).
    let mut cancels = Withdrawals::default();
    loop {
        while in_flight.try_join_next().is_some() {}
        let frame = match inbox.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                // Replies to requests that arrived together leave in one
                // write, as soon as no whole request is left to read.
                if !out.is_empty() {
                    if writer.lock().await.write_all(&out).await.is_err() {
                        break;
                    }
                    out.clear();
                }
                if !read_more(&mut inbox, &mut reader, S::read_fd, &mut spin).await {
                    break;
                }
                continue;
            }
            Err(_) => break,
        };
        let Ok((request, payload)) = wire::decode_header::<Request>(inbox.body(&frame)) else {
            break;
        };
        let (id, result) = match request {
            Request::Call {
                id,
                object,
                method,
                index,
                fingerprint,
            } => {
                tracing::trace!(target: "managers::server", id, object, method, "call");
                let method = MethodRef {
                    name: method,
                    fingerprint,
                    index,
                    python: &[],
                };
                match state.core.call(session, object, method, payload) {
                    Outcome::Ready(result) => (id, result),
                    Outcome::Pending(mut future) => {
                        // Most waits are already over (a free lock, a non-empty
                        // queue): one poll here answers them without a task.
                        let mut poll_cx = Context::from_waker(std::task::Waker::noop());
                        match future.as_mut().poll(&mut poll_cx) {
                            Poll::Ready(result) => (id, result),
                            Poll::Pending => {
                                let writer = Arc::clone(&writer);
                                let withdrawn = cancels.register(id);
                                in_flight.spawn(async move {
                                    // Withdrawn: the wait is dropped (no item,
                                    // no lock taken) and the caller told so.
                                    // The withdrawal first: a wait it ends
                                    // must not also finish (a lock released
                                    // meanwhile is not taken for a caller
                                    // that gave up).
                                    let result = tokio::select! {
                                        biased;
                                        Ok(()) = withdrawn => Err(RemoteError::Cancelled),
                                        result = future => result,
                                    };
                                    let mut out = Vec::new();
                                    let tail = push_reply(&mut out, id, result, max);
                                    let tail = tail.as_deref().unwrap_or_default();
                                    let _ = write_out(&mut *writer.lock().await, &out, tail).await;
                                });
                                inbox.consume(frame);
                                continue;
                            }
                        }
                    }
                }
            }
            Request::Create { id, typeid } => (id, state.core.create(session, typeid, payload)),
            Request::Incref { id, object } => {
                (id, state.core.incref(session, object).map(|()| Vec::new()))
            }
            Request::Decref { object, count } => {
                state.core.decref(session, object, count);
                inbox.consume(frame);
                continue;
            }
            Request::Cancel { id } => {
                // A call no longer waiting (answered, or never pending)
                // gets no second answer.
                cancels.withdraw(id);
                inbox.consume(frame);
                continue;
            }
            Request::Release { id } => {
                state.core.release_all(session);
                (id, Ok(Vec::new()))
            }
            Request::NumberOfObjects { id } => {
                (id, encode_reply(&(state.core.number_of_objects() as u64)))
            }
            Request::DebugInfo { id } => (id, encode_reply(&state.core.debug_info())),
            Request::Shutdown { id } => {
                push_reply(&mut out, id, Ok(Vec::new()), max);
                let _ = writer.lock().await.write_all(&out).await;
                state.request_stop();
                break;
            }
            Request::Hello { .. } => break,
        };
        inbox.consume(frame);
        if let Some(tail) = push_reply(&mut out, id, result, max) {
            // A large reply leaves at once, with those before it.
            if write_out(&mut *writer.lock().await, &out, &tail)
                .await
                .is_err()
            {
                break;
            }
            out.clear();
        }
    }
}

/// Write `head` then `tail` as one stream of bytes, without joining them:
/// vectored writes, so a large reply payload is not copied behind its
/// header first.
async fn write_out<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut head: &[u8],
    mut tail: &[u8],
) -> std::io::Result<()> {
    while !head.is_empty() {
        let n = w
            .write_vectored(&[IoSlice::new(head), IoSlice::new(tail)])
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        tail = &tail[n - from_head..];
    }
    w.write_all(tail).await
}

/// Wait for more bytes of the next request: spin for them first if that
/// pays on this connection, then park in the reactor. Whether the
/// connection is still open.
async fn read_more<R: tokio::io::AsyncRead + Unpin>(
    inbox: &mut wire::Inbox,
    reader: &mut R,
    fd_of: fn(&R) -> Option<std::os::fd::BorrowedFd<'_>>,
    spin: &mut Spin,
) -> bool {
    // Only between requests: inside one, the rest is already on its way.
    // (A ring's reads spin by themselves; TLS cannot be read so.)
    if let (Some(fd), false) = (fd_of(reader), inbox.partial()) {
        match spin.read(fd, inbox.spare()) {
            Ok(Spun::Read(0)) | Err(_) => return false,
            Ok(Spun::Read(n)) => {
                inbox.filled(n);
                return true;
            }
            Ok(Spun::Park) => {}
        }
    }
    let parked = Instant::now();
    let open = matches!(inbox.fill(reader).await, Ok(n) if n > 0);
    spin.parked(parked.elapsed());
    open
}

/// The withdrawal signals of a connection's waiting calls.
#[derive(Default)]
struct Withdrawals {
    by_id: HashMap<u64, oneshot::Sender<()>>,
    /// Size at which finished calls are swept out next.
    sweep_at: usize,
}

impl Withdrawals {
    /// A waiting call `id`; the receiver resolves if it is withdrawn.
    fn register(&mut self, id: u64) -> oneshot::Receiver<()> {
        if self.by_id.len() >= self.sweep_at {
            // A finished call dropped its receiver.
            self.by_id.retain(|_, signal| !signal.is_closed());
            self.sweep_at = (2 * self.by_id.len()).max(64);
        }
        let (signal, withdrawn) = oneshot::channel();
        self.by_id.insert(id, signal);
        withdrawn
    }

    fn withdraw(&mut self, id: u64) {
        if let Some(signal) = self.by_id.remove(&id) {
            let _ = signal.send(());
        }
    }
}

fn encode_reply<T: Serialize>(value: &T) -> Result<Vec<u8>, RemoteError> {
    wire::encode(value).map_err(|e| RemoteError::Encode(e.to_string()))
}

/// Reply payloads at least this large are not copied into the
/// connection's outgoing buffer: they follow it in a vectored write.
const LARGE_REPLY: usize = 64 * 1024;

/// Append the reply frame for request `id` to `out`; a result too large
/// for a frame becomes an error reply. A large payload is returned instead
/// of copied: `out` then ends with its frame's head, and the payload must
/// be written right after `out` ([`write_out`]).
fn push_reply(
    out: &mut Vec<u8>,
    id: u64,
    result: Result<Vec<u8>, RemoteError>,
    max: u32,
) -> Option<Vec<u8>> {
    let header = Response { id, result: Ok(()) };
    let pushed = match result {
        Ok(payload) if payload.len() >= LARGE_REPLY => {
            match wire::push_frame_head(out, &header, payload.len(), max) {
                Ok(()) => return Some(payload),
                Err(e) => Err(e),
            }
        }
        Ok(payload) => wire::push_frame(out, &header, &payload, max),
        Err(e) => {
            push_refusal(out, id, e);
            return None;
        }
    };
    if let Err(e) = pushed {
        push_refusal(
            out,
            id,
            RemoteError::Encode(format!("the result does not fit in a frame: {e}")),
        );
    }
    None
}

fn push_refusal(out: &mut Vec<u8>, id: u64, e: RemoteError) {
    let refusal = Response { id, result: Err(e) };
    wire::push_frame(out, &refusal, &[], u32::MAX).expect("an error reply always encodes");
}
