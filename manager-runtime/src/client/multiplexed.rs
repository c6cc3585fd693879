//! The tokio driver of a session: one connection carrying many calls in
//! flight, a writer task that sends whatever is queued in one write, a
//! reader task that routes each reply to its caller by request id.
//!
//! Calls wait in a slab: a request's id is its slot's index (low 32 bits)
//! and the slot's generation (high 32 bits), so a reply finds its caller
//! by indexing, and one lock covers the slab and the outgoing buffer.
//! Requests are encoded straight into that buffer, which the writer swaps
//! for its own empty one; replies are copied from the reader's inbox into
//! the slot's buffer, which the caller swaps for a spare of its thread's.
//! In steady state a call allocates nothing here.
//!
//! The connection is opened on first use and opened again after it fails
//! (a reader that saw the connection end fails only the calls then in
//! flight). Decrefs ride in front of the next request, as on the blocking
//! side.
//!
//! A call whose future is dropped before its result was taken is
//! *abandoned*: still waiting, it is withdrawn on the server (a `Cancel`
//! frame), so a cancelled `get()` takes no item and a cancelled
//! `acquire()` no lock. If the server did the call anyway (its reply was
//! on its way, or had arrived and was not yet taken), the call's *undo*,
//! registered by the proxy when it made the call ([`Undoable`]), gets the
//! result instead of the caller: an `acquire()` is released, a `get()`'s
//! item is put back at the head of its queue. Exactly one reply comes for
//! every request (the server answers a withdrawn call with `Cancelled`,
//! and a `Cancel` of a call already answered with nothing), so a slot is
//! freed when its reply is routed or taken, never earlier.
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::session::Session;
use crate::address::Address;
use crate::error::{Error, Result};
use crate::ring::{self, AsyncRing};
use crate::transport::{self, Socket};
use crate::wire::{self, Request};

/// Largest reply buffer a thread keeps for reuse.
const KEEP: usize = 64 * 1024;

/// What to do with the success payload of a call nobody takes any more.
pub(crate) type Undo = Box<dyn FnOnce(&[u8]) + Send>;

thread_local! {
    /// The undo of the call the current [`Undoable`] is polling.
    static UNDO: Cell<Option<Undo>> = const { Cell::new(None) };
    /// A reply buffer swapped for a slot's (see the module docs).
    static SPARE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The undo [`Undoable`] offers to the call it is polling, if any.
pub(super) fn take_undo() -> Option<Undo> {
    UNDO.with(Cell::take)
}

/// Run an undo's work: polled once here and now, so that the requests it
/// makes first leave before any call made after the drop that set it off
/// (an item put back is ahead of the next `get`), then finished on a task
/// of its own. Called inside the runtime of the connection.
pub(crate) fn start_undo<F: Future<Output = ()> + Send + 'static>(work: F) {
    let mut work = Box::pin(work);
    // The undo's own calls take no undo offered to an outer call.
    let outer = UNDO.with(Cell::take);
    let first = work.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    UNDO.with(|u| u.set(outer));
    if first.is_pending() {
        // Polled again on its task, with that task's waker (a future wakes
        // only the waker of its latest poll).
        tokio::spawn(work);
    }
}

/// A future making one async call whose result, if it is abandoned after
/// the server did the call, goes to an undo instead (see the module docs).
/// Built by [`ProxyBase::undo_if_dropped`](crate::proxy::ProxyBase::undo_if_dropped).
#[must_use = "futures do nothing unless polled"]
pub struct Undoable<F> {
    undo: Option<Undo>,
    call: Pin<Box<F>>,
}

impl<F> Undoable<F> {
    pub(crate) fn new(undo: Undo, call: F) -> Self {
        Undoable {
            undo: Some(undo),
            call: Box::pin(call),
        }
    }
}

impl<F: Future> Future for Undoable<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Offered for the length of this poll: the call takes it when it
        // sends its request (in its first poll, unless it waits for the
        // connection to open first); otherwise it is kept for the next.
        let offered = self.undo.take();
        let had = offered.is_some();
        let outer = UNDO.with(|u| u.replace(offered));
        let poll = self.call.as_mut().poll(cx);
        let left = UNDO.with(|u| u.replace(outer));
        if had {
            self.undo = left;
        }
        poll
    }
}

impl<F> std::fmt::Debug for Undoable<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Undoable").finish_non_exhaustive()
    }
}

/// Where one call stands.
enum State {
    Free,
    /// Sent; the caller's waker.
    Waiting(Option<Waker>),
    /// Answered and not yet taken: `Ok` with the payload in the slot's
    /// buffer, or the error.
    Done(Result<()>),
    /// Dropped before its reply: the reply is discarded when it comes
    /// (or undone).
    Abandoned,
}

struct Slot {
    generation: u32,
    state: State,
    undo: Option<Undo>,
    /// The reply's payload; kept for reuse.
    reply: Vec<u8>,
}

/// What callers, the writer and the reader share, under one lock.
struct Shared {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Frames the writer has not taken yet.
    out: Vec<u8>,
    writer: Option<Waker>,
    /// Why the connection ended, once it has.
    failed: Option<String>,
    /// The session dropped the connection: the writer flushes and stops.
    closing: bool,
}

impl Shared {
    fn wake_writer(&mut self) {
        if let Some(writer) = self.writer.take() {
            writer.wake();
        }
    }

    /// The slot `id` names, if that call is still outstanding.
    fn slot(&mut self, id: u64) -> Option<&mut Slot> {
        let slot = self.slots.get_mut(id as u32 as usize)?;
        (slot.generation == (id >> 32) as u32 && !matches!(slot.state, State::Free)).then_some(slot)
    }

    fn release(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        slot.state = State::Free;
        slot.undo = None;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
    }

    /// The connection ended: every waiting call fails with `reason`,
    /// abandoned ones are forgotten. Returns the wakers to wake.
    fn fail(&mut self, reason: &str) -> Vec<Waker> {
        if self.failed.is_none() {
            self.failed = Some(reason.to_string());
        }
        let mut wake = Vec::new();
        let mut abandoned = Vec::new();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            match &mut slot.state {
                State::Waiting(waker) => {
                    wake.extend(waker.take());
                    slot.state = State::Done(Err(Error::gone(reason.to_string(), None)));
                }
                State::Abandoned => abandoned.push(index as u32),
                _ => {}
            }
        }
        for index in abandoned {
            self.release(index);
        }
        wake.extend(self.writer.take());
        wake
    }
}

/// The session's current async connection, opened when needed.
#[derive(Default)]
pub(super) struct Link {
    current: Mutex<Option<Arc<Multiplexed>>>,
    /// Held while opening, so concurrent first calls open one connection.
    opening: tokio::sync::Mutex<()>,
}

impl Link {
    /// The live connection, opening one if there is none or it failed.
    async fn get(&self, session: &Session) -> Result<Arc<Multiplexed>> {
        if let Some(live) = self.live() {
            return Ok(live);
        }
        let _opening = self.opening.lock().await;
        if let Some(live) = self.live() {
            return Ok(live);
        }
        let reopening = self.current.lock().unwrap().is_some();
        let route = session.gateway();
        let opened = match Multiplexed::open(session, &route).await {
            Err(e) if !session.gateways.is_empty() && Session::lost(&e) => {
                Self::move_on(session, &route, e).await?
            }
            opened => opened?,
        };
        tracing::debug!(target: "managers::client", address = %session.gateway(), reopening, "async client connection opened");
        *self.current.lock().unwrap() = Some(Arc::clone(&opened));
        Ok(opened)
    }

    /// The session's gateway `failed` is lost (`e`): go on through the
    /// first other gateway that answers, and take the session's references
    /// again there (unless the session moved meanwhile, by its blocking
    /// calls: then through where it went). As the blocking pool does.
    async fn move_on(session: &Session, failed: &Address, e: Error) -> Result<Arc<Multiplexed>> {
        let now = session.gateway();
        if now != *failed {
            return Multiplexed::open(session, &now).await;
        }
        for address in session.alternatives(failed) {
            let Ok(opened) = Multiplexed::open(session, &address).await else {
                continue;
            };
            if !session.move_from(failed, address.clone()) {
                // Moved meanwhile by the blocking calls: go where they went.
                return Multiplexed::open(session, &session.gateway()).await;
            }
            tracing::warn!(target: "managers::client", %failed, to = %address, "gateway lost: the session moves");
            for (object, count) in session.ledger.held() {
                for _ in 0..count {
                    let incref = |id| Request::Incref { id, object };
                    let taken = match opened.send(session, incref, None::<&()>, None) {
                        Ok(call) => call.await.map(drop),
                        Err(e) => Err(e),
                    };
                    if let Err(e) = taken {
                        // Expired meanwhile, or made by the lost gateway's
                        // own memory: its proxies will say so when used.
                        tracing::warn!(target: "managers::client", object, error = %e, "a reference not taken again");
                        break;
                    }
                }
            }
            return Ok(opened);
        }
        Err(e)
    }

    fn live(&self) -> Option<Arc<Multiplexed>> {
        let current = self.current.lock().unwrap();
        current
            .as_ref()
            .filter(|m| m.open.load(Ordering::Acquire))
            .cloned()
    }

    /// One request on the session's async connection, `request` built for
    /// the id it gets; `decode` reads the result payload. The undo an
    /// [`Undoable`] offers goes with it.
    pub(super) async fn request<'r, A: Serialize + ?Sized, R>(
        &self,
        session: &Session,
        request: impl FnOnce(u64) -> Request<'r>,
        args: Option<&A>,
        decode: impl FnOnce(&[u8]) -> Result<R>,
    ) -> Result<R> {
        let undo = take_undo();
        let connection = self.get(session).await?;
        let call = connection.send(session, request, args, undo)?;
        let reply = match call.await {
            Ok(reply) => reply,
            // Among gateways, a connection lost after the request went out
            // leaves its outcome unknown; the next call moves on.
            Err(e) if !session.gateways.is_empty() && Session::lost(&e) => {
                return Err(Error::OutcomeUnknown {
                    reason: e.to_string(),
                })
            }
            Err(e) => return Err(e),
        };
        let result = decode(&reply);
        SPARE.with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.capacity() < reply.capacity() && reply.capacity() <= KEEP {
                *spare = reply;
            }
        });
        result
    }
}

/// One multiplexed connection.
struct Multiplexed {
    shared: Arc<Mutex<Shared>>,
    /// False once the connection failed.
    open: Arc<AtomicBool>,
    /// The runtime its tasks run on, where undos run too.
    runtime: tokio::runtime::Handle,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for Multiplexed {
    fn drop(&mut self) {
        // The writer sends what is queued and stops; its half closing ends
        // the connection on the server, then the reader ends.
        let mut shared = lock(&self.shared);
        shared.closing = true;
        shared.wake_writer();
    }
}

impl Multiplexed {
    /// A connection of `session` to `address` (where the session's
    /// connections go: [`Session::gateway`]).
    async fn open(session: &Session, address: &Address) -> Result<Arc<Multiplexed>> {
        let established = true;
        match address {
            Address::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| transport::connect_error(e, address, established))?;
                stream.set_nodelay(true)?;
                match &session.tls {
                    #[cfg(feature = "tls")]
                    Some(tls) => {
                        let stream = tls
                            .connector()
                            .connect(tls.server_name.clone(), stream)
                            .await?;
                        Self::start(session, stream).await
                    }
                    _ => Self::start(session, stream).await,
                }
            }
            Address::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| transport::connect_error(e, address, established))?;
                match session.shared_memory {
                    true => Self::start_ring(session, stream).await,
                    false => Self::start(session, stream).await,
                }
            }
        }
    }

    async fn start<S: Socket>(session: &Session, mut stream: S) -> Result<Arc<Multiplexed>> {
        Self::introduce(session, &mut stream, false).await?;
        Ok(Self::run(session, stream))
    }

    /// Authenticate and join the session, asking for a shared-memory
    /// `ring` or not.
    async fn introduce<S: Socket>(session: &Session, stream: &mut S, ring: bool) -> Result<()> {
        // Opened lazily, after the session's first connection succeeded.
        crate::auth::client_async(stream, &session.authkey)
            .await
            .map_err(|e| Session::handshake_error(e, true))?;
        stream.write_all(&session.hello(false, ring)?).await?;
        Ok(())
    }

    /// A connection to a server on this host: through a shared-memory
    /// ring if the server grants one, else on the socket.
    async fn start_ring(
        session: &Session,
        mut stream: tokio::net::UnixStream,
    ) -> Result<Arc<Multiplexed>> {
        Self::introduce(session, &mut stream, true).await?;
        let fds = tokio::time::timeout(ring::ANSWER_WITHIN, ring_answer(&stream))
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the server did not answer the request for a ring",
                )
            })??;
        if fds.is_empty() {
            return Ok(Self::run(session, stream));
        }
        // No spinning here: a poll that spun would hold up the tasks of
        // the caller's runtime that make the next requests.
        Ok(Self::run(
            session,
            AsyncRing::accept(fds, stream, std::time::Duration::ZERO)?,
        ))
    }

    /// Drive a connection that has joined the session.
    fn run<S: Socket>(session: &Session, stream: S) -> Arc<Multiplexed> {
        let (reader, writer) = stream.split_owned();
        let shared = Arc::new(Mutex::new(Shared {
            slots: Vec::new(),
            free: Vec::new(),
            out: Vec::with_capacity(4096),
            writer: None,
            failed: None,
            closing: false,
        }));
        let open = Arc::new(AtomicBool::new(true));
        let runtime = tokio::runtime::Handle::current();
        tokio::spawn(write_loop(Arc::clone(&shared), Arc::clone(&open), writer));
        tokio::spawn(read_loop(
            Arc::clone(&shared),
            Arc::clone(&open),
            reader,
            session.max_frame,
            runtime.clone(),
        ));
        Arc::new(Multiplexed {
            shared,
            open,
            runtime,
        })
    }

    /// Queue a request for the writer; the call that waits for its reply.
    fn send<'r, A: Serialize + ?Sized>(
        &self,
        session: &Session,
        request: impl FnOnce(u64) -> Request<'r>,
        args: Option<&A>,
        undo: Option<Undo>,
    ) -> Result<Call<'_>> {
        let mut shared = lock(&self.shared);
        if shared.failed.is_some() {
            return Err(Error::gone("the connection is closed", None));
        }
        let index = match shared.free.pop() {
            Some(index) => index,
            None => {
                let index = u32::try_from(shared.slots.len())
                    .map_err(|_| Error::gone("too many calls in flight", None))?;
                shared.slots.push(Slot {
                    generation: 0,
                    state: State::Free,
                    undo: None,
                    reply: Vec::new(),
                });
                index
            }
        };
        let id = (u64::from(shared.slots[index as usize].generation) << 32) | u64::from(index);
        let encoded = session.encode(&mut shared.out, &request(id), args);
        if let Err(e) = encoded {
            shared.release(index);
            return Err(e);
        }
        let slot = &mut shared.slots[index as usize];
        slot.state = State::Waiting(None);
        slot.undo = undo;
        shared.wake_writer();
        Ok(Call {
            connection: self,
            id,
            taken: false,
        })
    }
}

/// A call in flight; abandoned if dropped before its result is taken.
struct Call<'a> {
    connection: &'a Multiplexed,
    id: u64,
    taken: bool,
}

impl Future for Call<'_> {
    /// The reply's payload.
    type Output = Result<Vec<u8>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut shared = lock(&self.connection.shared);
        let id = self.id;
        let Some(slot) = shared.slot(id) else {
            drop(shared);
            self.taken = true;
            return Poll::Ready(Err(Error::protocol(
                format!("request {id} has no waiting call"),
                None,
            )));
        };
        match &mut slot.state {
            State::Waiting(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            State::Done(_) => {
                let State::Done(result) = std::mem::replace(&mut slot.state, State::Free) else {
                    unreachable!("matched Done");
                };
                let reply = SPARE.with(|spare| {
                    let mut spare = spare.borrow_mut();
                    spare.clear();
                    std::mem::replace(&mut slot.reply, std::mem::take(&mut *spare))
                });
                shared.release(id as u32);
                drop(shared);
                self.taken = true;
                Poll::Ready(result.map(|()| reply))
            }
            State::Abandoned | State::Free => unreachable!("a live call's slot"),
        }
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        let mut shared = lock(&self.connection.shared);
        let Some(slot) = shared.slot(self.id) else {
            return;
        };
        match &slot.state {
            State::Waiting(_) => {
                // Withdraw it on the server; its one reply (`Cancelled`,
                // or the result if it was done first) frees the slot.
                slot.state = State::Abandoned;
                if shared.failed.is_none() {
                    let cancel = Request::Cancel { id: self.id };
                    let out = &mut shared.out;
                    if wire::push_request(out, &cancel, None::<&()>, u32::MAX).is_ok() {
                        shared.wake_writer();
                    }
                }
            }
            State::Done(result) => {
                // Answered, but nobody took it: undo a success.
                let undo = match result {
                    Ok(()) => slot
                        .undo
                        .take()
                        .map(|undo| (undo, std::mem::take(&mut slot.reply))),
                    Err(_) => None,
                };
                shared.release(self.id as u32);
                drop(shared);
                if let Some((undo, payload)) = undo {
                    let _entered = self.connection.runtime.enter();
                    undo(&payload);
                }
            }
            State::Abandoned | State::Free => {}
        }
    }
}

/// Send whatever callers queued, in one write per wake-up: calls made
/// together leave together.
async fn write_loop<W: tokio::io::AsyncWrite + Unpin>(
    shared: Arc<Mutex<Shared>>,
    open: Arc<AtomicBool>,
    mut writer: W,
) {
    let mut ended = Ended {
        shared: Arc::clone(&shared),
        open,
        reason: "the connection's writer stopped".to_string(),
    };
    let mut batch = Vec::with_capacity(4096);
    loop {
        let more = std::future::poll_fn(|cx| {
            let mut shared = lock(&shared);
            if !shared.out.is_empty() {
                std::mem::swap(&mut shared.out, &mut batch);
                return Poll::Ready(true);
            }
            if shared.failed.is_some() || shared.closing {
                return Poll::Ready(false);
            }
            match &shared.writer {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => shared.writer = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await;
        if !more {
            break;
        }
        if let Err(e) = writer.write_all(&batch).await {
            ended.reason = format!("writing to the server failed: {e}");
            break;
        }
        batch.clear();
    }
    // Dropping the write half tells the server this connection is done.
}

/// Ends the connection when the task holding it ends, however it ends:
/// also when its runtime shuts down and drops it half way, so that a call
/// never waits for a task that is gone and the next one reconnects.
struct Ended {
    shared: Arc<Mutex<Shared>>,
    open: Arc<AtomicBool>,
    reason: String,
}

impl Drop for Ended {
    fn drop(&mut self) {
        self.open.store(false, Ordering::Release);
        let wake = lock(&self.shared).fail(&self.reason);
        wake.into_iter().for_each(Waker::wake);
    }
}

/// Route each reply to its call; undo the successes of abandoned ones.
async fn read_loop<R: tokio::io::AsyncRead + Unpin>(
    shared: Arc<Mutex<Shared>>,
    open: Arc<AtomicBool>,
    mut reader: R,
    max: u32,
    runtime: tokio::runtime::Handle,
) {
    let mut ended = Ended {
        shared: Arc::clone(&shared),
        open,
        reason: "the connection's runtime shut down".to_string(),
    };
    let mut inbox = wire::Inbox::new(max);
    let mut wake: Vec<Waker> = Vec::new();
    let mut undos: Vec<(Undo, Vec<u8>)> = Vec::new();
    let failure = 'read: loop {
        {
            let mut shared = lock(&shared);
            loop {
                let frame = match inbox.next_frame() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(e) => break 'read e.to_string(),
                };
                let Ok((id, result)) = Session::route(inbox.body(&frame)) else {
                    break 'read "the server sent a malformed reply".to_string();
                };
                // A reply to no outstanding call (there is none such
                // today) is dropped.
                if let Some(slot) = shared.slot(id) {
                    match &mut slot.state {
                        State::Waiting(waker) => {
                            wake.extend(waker.take());
                            slot.state = State::Done(result.map(|payload| {
                                slot.reply.clear();
                                slot.reply.extend_from_slice(payload);
                            }));
                        }
                        State::Abandoned => {
                            if let (Ok(payload), Some(undo)) = (result, slot.undo.take()) {
                                undos.push((undo, payload.to_vec()));
                            }
                            shared.release(id as u32);
                        }
                        State::Done(_) | State::Free => {}
                    }
                }
                inbox.consume(frame);
            }
        }
        wake.drain(..).for_each(Waker::wake);
        if !undos.is_empty() {
            let _entered = runtime.enter();
            for (undo, payload) in undos.drain(..) {
                undo(&payload);
            }
        }
        match inbox.fill(&mut reader).await {
            Ok(0) => break "the server closed the connection".to_string(),
            Ok(_) => {}
            Err(e) => break e.to_string(),
        }
    };
    tracing::debug!(target: "managers::client", reason = %failure, "async client connection ended");
    wake.into_iter().for_each(Waker::wake);
    ended.reason = failure;
}

/// The server's answer to a request for a ring: one byte, with the ring's
/// descriptors attached if granted (none: refused).
async fn ring_answer(stream: &tokio::net::UnixStream) -> Result<Vec<std::os::fd::OwnedFd>> {
    use std::os::fd::AsFd;
    let mut fds = Vec::new();
    loop {
        stream.readable().await?;
        let mut byte = [0u8; 1];
        let read = stream.try_io(
            tokio::io::Interest::READABLE,
            || match crate::process::scm::recv(stream.as_fd(), &mut byte, true, &mut fds) {
                Ok(Some(n)) => Ok(n),
                Ok(None) => Err(std::io::ErrorKind::WouldBlock.into()),
                Err(e) => Err(e),
            },
        );
        match read {
            Ok(0) => return Err(Error::Eof),
            Ok(_) => return Ok(fds),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
