//! The blocking driver of a session: a pool of connections, each doing one
//! request and its reply at a time on the calling thread (no runtime, no
//! thread hop), spinning briefly for the reply before it parks.
#![forbid(unsafe_code)]

use std::io::Read;
use std::os::fd::AsFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::session::Session;
use crate::address::Address;
use crate::error::{Error, Result};
use crate::ring::{self, ClientRing};
use crate::transport::{self, Stream};
use crate::wait::{peer_closed, Spin, Spun};
use crate::wire::{self, Request};

/// How long a call past its deadline waits for the server to confirm the
/// withdrawal (or deliver the result that beat it) before the connection
/// is dropped, which withdraws the call too.
const CANCEL_GRACE: Duration = Duration::from_secs(1);

/// One blocking connection and its buffers.
pub(super) struct Connection {
    stream: Stream,
    /// The request being written.
    buf: Vec<u8>,
    /// The reply being read.
    reply: Vec<u8>,
    /// Whether a read timeout is set on the socket now.
    timed: bool,
    spin: Spin,
}

/// Idle connections of one session.
#[derive(Default)]
pub(super) struct Pool {
    idle: Mutex<Vec<Connection>>,
    /// Connections that timed out without the server confirming the
    /// withdrawal: never reused, kept open (at most [`SET_ASIDE`]) so the
    /// session they belong to does not end with them.
    aside: Mutex<std::collections::VecDeque<Connection>>,
}

/// Most connections a session keeps aside.
const SET_ASIDE: usize = 16;

impl Pool {
    /// Open, authenticate and introduce a new blocking connection.
    pub(super) fn open(session: &Session, established: bool) -> Result<Connection> {
        Self::open_at(session, &session.gateway(), established)
    }

    /// [`open`](Self::open) to the server at `address`.
    fn open_at(session: &Session, address: &Address, established: bool) -> Result<Connection> {
        let mut stream = transport::connect(address, &session.tls)
            .map_err(|e| transport::connect_error(e, address, established))?;
        crate::auth::client_blocking(&mut stream, &session.authkey)
            .map_err(|e| Session::handshake_error(e, established))?;
        let ring = session.shared_memory && matches!(stream, Stream::Unix(_));
        wire::write_frame(&mut stream, &session.hello(true, ring)?)?;
        if ring {
            stream = take_ring(stream, session.spin)?;
        }
        tracing::debug!(target: "managers::client", %address, established,
            ring = matches!(stream, Stream::Ring(_)), "client connection opened");
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(256),
            reply: Vec::new(),
            timed: false,
            spin: Spin::new(session.spin),
        })
    }

    pub(super) fn put(&self, connection: Connection) {
        self.idle.lock().unwrap().push(connection);
    }

    fn set_aside(&self, connection: Connection) {
        let mut aside = self.aside.lock().unwrap();
        if aside.len() == SET_ASIDE {
            aside.pop_front();
        }
        aside.push_back(connection);
    }

    fn take(&self, session: &Session) -> Result<Connection> {
        let gateways = !session.gateways.is_empty();
        while let Some(connection) = self.idle.lock().unwrap().pop() {
            // Among gateways, an idle connection whose gateway is gone is
            // found now, before a request goes into it (and its outcome
            // would be unknown).
            let closed = gateways && connection.stream.borrowed_fd().is_some_and(peer_closed);
            if !closed {
                return Ok(connection);
            }
        }
        let route = session.gateway();
        match Self::open_at(session, &route, true) {
            Err(e) if gateways && Session::lost(&e) => self.move_on(session, &route, e),
            opened => opened,
        }
    }

    /// The session's gateway `failed` is lost (`e`): go on through the
    /// first other gateway that answers, and take the session's references
    /// again there (unless another thread moved the session meanwhile:
    /// then through where it went).
    fn move_on(&self, session: &Session, failed: &Address, e: Error) -> Result<Connection> {
        let now = session.gateway();
        if now != *failed {
            return Self::open_at(session, &now, true);
        }
        for address in session.alternatives(failed) {
            let Ok(mut connection) = Self::open_at(session, &address, false) else {
                continue;
            };
            if !session.move_from(failed, address.clone()) {
                // Moved meanwhile by another caller: go where it went.
                return Self::open_at(session, &session.gateway(), true);
            }
            tracing::warn!(target: "managers::client", %failed, to = %address, "gateway lost: the session moves");
            self.idle.lock().unwrap().clear();
            for (object, count) in session.ledger.held() {
                for _ in 0..count {
                    if let Err(e) = connection.incref(session, object) {
                        // Expired meanwhile, or made by the lost gateway's
                        // own memory: its proxies will say so when used.
                        tracing::warn!(target: "managers::client", object, error = %e, "a reference not taken again");
                        break;
                    }
                }
            }
            return Ok(connection);
        }
        Err(e)
    }

    /// Send pending decrefs now if a connection is idle; otherwise the next
    /// request carries them.
    pub(super) fn flush_decrefs_idle(&self, session: &Session) {
        let Some(mut connection) = self.idle.lock().unwrap().pop() else {
            return;
        };
        connection.buf.clear();
        let sent = session
            .encode_decrefs(&mut connection.buf)
            .and_then(|any| match any {
                true => wire::write_frame(&mut connection.stream, &connection.buf),
                false => Ok(()),
            });
        if sent.is_ok() {
            self.put(connection);
        }
    }

    /// Bound the reads of an idle connection (a session's last message,
    /// which must not hang on a server that stopped answering); whether
    /// there was an idle connection to bound.
    pub(super) fn with_read_timeout(&self, timeout: Duration) -> bool {
        let mut idle = self.idle.lock().unwrap();
        let Some(connection) = idle.last_mut() else {
            return false;
        };
        if connection.stream.set_read_timeout(Some(timeout)).is_ok() {
            connection.timed = true;
        }
        true
    }

    /// One request and its reply on a pooled connection; `decode` reads
    /// the result payload in place. Past `timeout` the call is withdrawn
    /// on the server and is [`Error::Timeout`], unless its result beat
    /// the withdrawal.
    pub(super) fn roundtrip<A: Serialize + ?Sized, R>(
        &self,
        session: &Session,
        id: u64,
        request: &Request<'_>,
        args: Option<&A>,
        timeout: Option<Duration>,
        decode: impl FnOnce(&[u8]) -> Result<R>,
    ) -> Result<R> {
        let mut connection = self.take(session)?;
        connection.buf.clear();
        if let Err(e) = session.encode(&mut connection.buf, request, args) {
            self.put(connection);
            return Err(e);
        }
        let end = match connection.exchange(session, id, timeout) {
            Ok(end) => end,
            Err(e @ Error::Timeout { withdrawn, .. }) => {
                tracing::debug!(target: "managers::client", id, withdrawn, "call timed out");
                if withdrawn {
                    // Confirmed: nothing more will come for this call.
                    self.put(connection);
                } else {
                    // A late reply may still come on it, so it cannot be
                    // reused; closing it could end the session on the
                    // server (and with it every reference the session
                    // holds) if it is the last one. Keep it aside.
                    self.set_aside(connection);
                }
                return Err(e);
            }
            // Among gateways, a connection lost after the request went out
            // leaves its outcome unknown; the next call moves on.
            Err(e) if !session.gateways.is_empty() && Session::lost(&e) => {
                return Err(Error::OutcomeUnknown {
                    reason: e.to_string(),
                })
            }
            // Any other failure leaves the connection unusable: it closes.
            Err(e) => return Err(e),
        };
        let result =
            Session::parse_reply(id, &connection.reply[wire::PREFIX..end]).and_then(decode);
        self.put(connection);
        result
    }
}

impl Connection {
    /// One more reference to `object` for the session, on this connection.
    fn incref(&mut self, session: &Session, object: u64) -> Result<()> {
        let id = session.next_request();
        self.buf.clear();
        session.encode(&mut self.buf, &Request::Incref { id, object }, None::<&()>)?;
        let end = self.exchange(session, id, None)?;
        Session::parse_reply(id, &self.reply[wire::PREFIX..end]).map(drop)
    }

    /// Write the request in `buf`, read the reply to `id` into `reply`;
    /// the reply frame's end.
    fn exchange(&mut self, session: &Session, id: u64, timeout: Option<Duration>) -> Result<usize> {
        let deadline = timeout.map(|t| Instant::now() + t);
        self.set_timeout(timeout)?;
        wire::write_frame(&mut self.stream, &self.buf)?;
        match self.read_reply(session.max_frame) {
            Err(Error::Io(e)) if deadline.is_some() && timed_out(&e) => {}
            other => return other,
        }
        // Past the deadline: withdraw the call, then take whatever answers
        // it (the result, if it beat the withdrawal; or the confirmation).
        self.set_timeout(Some(CANCEL_GRACE))?;
        wire::write_frame(&mut self.stream, &session.cancel_frame(id)?)?;
        let end = match self.read_reply(session.max_frame) {
            Err(Error::Io(e)) if timed_out(&e) => {
                return Err(Error::Timeout {
                    after: timeout.unwrap_or_default(),
                    withdrawn: false,
                })
            }
            other => other?,
        };
        let (got, result) = Session::route(&self.reply[wire::PREFIX..end])?;
        match result {
            Err(Error::Remote(crate::error::RemoteError::Cancelled)) if got == id => {
                Err(Error::Timeout {
                    after: timeout.unwrap_or_default(),
                    withdrawn: true,
                })
            }
            _ => Ok(end),
        }
    }

    /// Set or clear the socket's read timeout if it is not as wanted.
    fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        if timeout.is_some() || self.timed {
            self.stream.set_read_timeout(timeout)?;
            self.timed = timeout.is_some();
        }
        Ok(())
    }

    /// Read one reply: spin for its first bytes (adaptively), then block.
    fn read_reply(&mut self, max: u32) -> Result<usize> {
        let mut reader = SpinRead {
            spin: &mut self.spin,
            stream: &mut self.stream,
            first: true,
        };
        wire::read_reply(&mut reader, &mut self.reply, max)
    }
}

/// Read the server's answer to a request for a ring: one byte, with the
/// ring's descriptors attached if granted. The connection as it goes on:
/// through the ring, or on the socket if refused.
fn take_ring(stream: Stream, spin: Duration) -> Result<Stream> {
    let Stream::Unix(socket) = stream else {
        return Ok(stream);
    };
    socket.set_read_timeout(Some(ring::ANSWER_WITHIN))?;
    let mut fds = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match crate::process::scm::recv(socket.as_fd(), &mut byte, false, &mut fds)? {
            Some(0) => return Err(Error::Eof),
            Some(_) => break,
            None => continue,
        }
    }
    socket.set_read_timeout(None)?;
    if fds.is_empty() {
        // Refused: the socket carries the connection.
        return Ok(Stream::Unix(socket));
    }
    Ok(Stream::Ring(Box::new(ClientRing::accept(
        fds, socket, spin,
    )?)))
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A reader whose first read spins on the socket before blocking.
struct SpinRead<'a> {
    spin: &'a mut Spin,
    stream: &'a mut Stream,
    first: bool,
}

impl Read for SpinRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if std::mem::take(&mut self.first) {
            if let Some(fd) = self.stream.borrowed_fd() {
                if let Spun::Read(n) = self.spin.read(fd, buf)? {
                    return Ok(n);
                }
                let parked = Instant::now();
                let n = self.stream.read(buf)?;
                self.spin.parked(parked.elapsed());
                return Ok(n);
            }
        }
        self.stream.read(buf)
    }
}
