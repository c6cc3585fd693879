//! One connection: authenticate, join a session, then read requests and
//! write replies until either side ends it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::state::ServerState;
use crate::error::RemoteError;
use crate::object::{Host, Outcome};
use crate::transport::Socket;
use crate::wire::{self, Request, Response};

/// Counts a live connection for as long as it exists.
struct Slot(Arc<ServerState>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

type Writer<S> = Arc<tokio::sync::Mutex<<S as Socket>::Write>>;

/// Leaves the session when the connection ends, however it ends.
struct Membership {
    state: Arc<ServerState>,
    session: u128,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.state.leave(self.session);
    }
}

/// Serve one accepted connection until it ends.
pub(super) async fn serve_connection<S: Socket>(state: Arc<ServerState>, mut stream: S) {
    let live = state.connections.fetch_add(1, Ordering::Relaxed) + 1;
    let _slot = Slot(Arc::clone(&state));
    if live > state.max_connections {
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
    if !matches!(authenticated, Ok(Ok(true))) {
        return;
    }
    let (reader, writer) = stream.split_owned();
    // One read brings every request that has arrived, not one per frame.
    let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, reader);
    let writer: Writer<S> = Arc::new(tokio::sync::Mutex::new(writer));
    let mut frame = Vec::new();
    let max = state.max_frame;
    let session = match wire::read_frame_async(&mut reader, &mut frame, max).await {
        Ok(true) => match wire::decode_header::<Request>(&frame) {
            Ok((Request::Hello { session }, _)) => session,
            _ => return,
        },
        _ => return,
    };
    state.join(session);
    let _membership = Membership {
        state: Arc::clone(&state),
        session,
    };
    let mut out = Vec::new();
    // Calls still waiting when the connection ends are cancelled with it
    // (dropping the set aborts them): a dead client's pending `acquire()`
    // must not take the lock, nor its `get()` an item, after it is gone.
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        while in_flight.try_join_next().is_some() {}
        // Replies to requests that arrived together leave in one write, as
        // soon as no whole request is left to read without waiting.
        if !out.is_empty() && !wire::holds_frame(reader.buffer()) {
            if writer.lock().await.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
        if !matches!(
            wire::read_frame_async(&mut reader, &mut frame, max).await,
            Ok(true)
        ) {
            break;
        }
        let Ok((request, payload)) = wire::decode_header::<Request>(&frame) else {
            break;
        };
        let (id, result) = match request {
            Request::Call {
                id,
                object,
                method,
                fingerprint,
            } => match state.call(session, object, method, fingerprint, payload) {
                Outcome::Ready(result) => (id, result),
                Outcome::Pending(mut future) => {
                    // Most waits are already over (a free lock, a non-empty
                    // queue): one poll here answers them without a task.
                    let mut poll_cx = Context::from_waker(std::task::Waker::noop());
                    match future.as_mut().poll(&mut poll_cx) {
                        Poll::Ready(result) => (id, result),
                        Poll::Pending => {
                            let writer = Arc::clone(&writer);
                            in_flight.spawn(async move {
                                let result = future.await;
                                let mut out = Vec::new();
                                push_reply(&mut out, id, result, max);
                                let _ = writer.lock().await.write_all(&out).await;
                            });
                            continue;
                        }
                    }
                }
            },
            Request::Create { id, typeid } => (id, state.create(session, typeid, payload)),
            Request::Incref { id, object } => {
                (id, state.incref(session, object).map(|()| Vec::new()))
            }
            Request::Decref { object, count } => {
                state.decref(session, object, count);
                continue;
            }
            Request::Release { id } => {
                state.release_all(session);
                (id, Ok(Vec::new()))
            }
            Request::NumberOfObjects { id } => {
                (id, encode_reply(&(state.number_of_objects() as u64)))
            }
            Request::DebugInfo { id } => (id, encode_reply(&state.debug_info())),
            Request::Shutdown { id } => {
                push_reply(&mut out, id, Ok(Vec::new()), max);
                let _ = writer.lock().await.write_all(&out).await;
                state.request_stop();
                break;
            }
            Request::Hello { .. } => break,
        };
        push_reply(&mut out, id, result, max);
    }
}

fn encode_reply<T: Serialize>(value: &T) -> Result<Vec<u8>, RemoteError> {
    wire::encode(value).map_err(|e| RemoteError::Encode(e.to_string()))
}

/// Append the reply frame for request `id` to `out`; a result too large
/// for a frame becomes an error reply.
fn push_reply(out: &mut Vec<u8>, id: u64, result: Result<Vec<u8>, RemoteError>, max: u32) {
    let pushed = match result {
        Ok(payload) => wire::push_frame(out, &Response { id, result: Ok(()) }, &payload, max)
            .map_err(|e| RemoteError::Encode(format!("the result does not fit in a frame: {e}"))),
        Err(e) => Err(e),
    };
    if let Err(e) = pushed {
        let refusal = Response { id, result: Err(e) };
        wire::push_frame(out, &refusal, &[], u32::MAX).expect("an error reply always encodes");
    }
}
