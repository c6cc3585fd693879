//! The tokio driver of a session: one connection carrying many calls in
//! flight, a writer task that sends whatever is queued in one write, a
//! reader task that routes each reply to its caller by request id.
//!
//! The connection is opened on first use and opened again after it fails
//! (a reader that saw the connection end fails only the calls then in
//! flight). Decrefs ride in front of the next request, as on the blocking
//! side. Dropping a call's future before its reply withdraws the call on
//! the server (a `Cancel` frame), so a cancelled `get()` takes no item and
//! a cancelled `acquire()` takes no lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use super::session::Session;
use crate::address::Address;
use crate::error::{Error, Result};
use crate::transport::{self, Socket};
use crate::wire::{self, Request};

type Waiter = oneshot::Sender<Result<Vec<u8>>>;

/// Callers waiting for a reply, by request id; `None` once the connection
/// has failed.
type Waiters = Mutex<Option<HashMap<u64, Waiter>>>;

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
        let opened = Multiplexed::open(session).await?;
        tracing::debug!(address = %session.address, reopening, "async client connection opened");
        *self.current.lock().unwrap() = Some(Arc::clone(&opened));
        Ok(opened)
    }

    fn live(&self) -> Option<Arc<Multiplexed>> {
        let current = self.current.lock().unwrap();
        current.as_ref().filter(|m| m.is_open()).cloned()
    }

    /// One request on the session's async connection; its result payload.
    pub(super) async fn request<A: Serialize + ?Sized>(
        &self,
        session: &Session,
        id: u64,
        request: &Request<'_>,
        args: Option<&A>,
    ) -> Result<Vec<u8>> {
        let mut frame = Vec::new();
        session.encode(&mut frame, request, args)?;
        let connection = self.get(session).await?;
        connection.request(session, id, frame).await
    }
}

/// One multiplexed connection.
struct Multiplexed {
    /// Whole frames for the writer task, which writes everything queued in
    /// one go: calls in flight together leave together.
    outgoing: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    waiters: Arc<Waiters>,
}

impl Multiplexed {
    fn is_open(&self) -> bool {
        self.waiters.lock().unwrap().is_some() && !self.outgoing.is_closed()
    }

    async fn open(session: &Session) -> Result<Arc<Multiplexed>> {
        let established = true;
        let address = &session.address;
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
                Self::start(session, stream).await
            }
        }
    }

    async fn start<S: Socket>(session: &Session, mut stream: S) -> Result<Arc<Multiplexed>> {
        // Opened lazily, after the session's first connection succeeded.
        crate::auth::client_async(&mut stream, &session.authkey)
            .await
            .map_err(|e| Session::handshake_error(e, true))?;
        stream.write_all(&session.hello(false)?).await?;
        let (reader, mut writer) = stream.split_owned();
        let (outgoing, mut queued) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while let Some(frame) = queued.recv().await {
                batch.extend_from_slice(&frame);
                while let Ok(frame) = queued.try_recv() {
                    batch.extend_from_slice(&frame);
                }
                if writer.write_all(&batch).await.is_err() {
                    // The reader sees the connection fail and tells waiters.
                    break;
                }
                batch.clear();
            }
        });
        let waiters: Arc<Waiters> = Arc::new(Mutex::new(Some(HashMap::new())));
        let routes = Arc::clone(&waiters);
        let max = session.max_frame;
        tokio::spawn(async move {
            let mut inbox = wire::Inbox::new(max);
            let mut reader = reader;
            let failure = loop {
                let frame = match inbox.next_frame() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => match inbox.fill(&mut reader).await {
                        Ok(0) => break "the server closed the connection".to_string(),
                        Ok(_) => continue,
                        Err(e) => break e.to_string(),
                    },
                    Err(e) => break e.to_string(),
                };
                let Ok((id, result)) = Session::route(inbox.body(&frame)) else {
                    break "the server sent a malformed reply".to_string();
                };
                let result = result.map(<[u8]>::to_vec);
                inbox.consume(frame);
                let waiter = routes.lock().unwrap().as_mut().and_then(|w| w.remove(&id));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(result);
                }
            };
            tracing::debug!(reason = %failure, "async client connection ended");
            let orphans = routes.lock().unwrap().take().unwrap_or_default();
            for (_, waiter) in orphans {
                let _ = waiter.send(Err(Error::gone(failure.clone(), None)));
            }
        });
        Ok(Arc::new(Multiplexed { outgoing, waiters }))
    }

    async fn request(&self, session: &Session, id: u64, frame: Vec<u8>) -> Result<Vec<u8>> {
        let (tx, rx) = oneshot::channel();
        let closed = || Error::gone("the connection is closed", None);
        match self.waiters.lock().unwrap().as_mut() {
            Some(waiters) => waiters.insert(id, tx),
            None => return Err(closed()),
        };
        // From here until the reply, dropping this future withdraws the
        // call on the server.
        let mut pending = Pending {
            connection: self,
            id,
            cancel: session.cancel_frame(id).ok(),
        };
        if self.outgoing.send(frame).is_err() {
            pending.cancel = None;
            return Err(closed());
        }
        let reply = rx.await.unwrap_or_else(|_| Err(closed()));
        pending.cancel = None;
        reply
    }
}

/// A call in flight; withdrawn on the server if dropped before its reply.
struct Pending<'a> {
    connection: &'a Multiplexed,
    id: u64,
    /// The withdrawal to send on drop; `None` once answered.
    cancel: Option<Vec<u8>>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let Some(cancel) = self.cancel.take() else {
            return;
        };
        let waiting = self
            .connection
            .waiters
            .lock()
            .unwrap()
            .as_mut()
            .and_then(|w| w.remove(&self.id));
        // Still waiting: tell the server. (A reply already routed to the
        // dropped receiver is discarded with it.)
        if waiting.is_some() {
            let _ = self.connection.outgoing.send(cancel);
        }
    }
}
