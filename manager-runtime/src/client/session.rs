//! The sans-IO core of a client session: everything both drivers (the
//! blocking pool in `blocking.rs`, the multiplexed tokio connection in
//! `multiplexed.rs`) do the same way, with no socket in sight.
//!
//! - request ids, unique within the session;
//! - frames built straight into the caller's write buffer, the session's
//!   pending decrefs in front of them (one write carries both);
//! - replies parsed in place (the payload is a slice of the read buffer);
//! - local reference counts and the batch of decrefs they produce;
//! - what a failed reconnect means;
//! - cancelling a request that is no longer waited for.
//!
//! As `auth.rs` does for the handshake, the drivers own the sockets and
//! call into this.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use super::ledger::Ledger;
use crate::address::Address;
use crate::error::{Error, Result};
use crate::options::ManagerOptions;
use crate::transport;
use crate::wire::{self, Request, Response};

/// One client session on one server, without its connections.
pub(super) struct Session {
    /// The server the session's tokens name.
    pub(super) address: Address,
    /// Where its connections go: `address`, or, after that gateway was
    /// lost, another of `gateways`.
    route: Mutex<Address>,
    /// Other gateways of the same Redis ([`ManagerOptions::gateways`]).
    pub(super) gateways: Vec<Address>,
    pub(super) authkey: Vec<u8>,
    pub(super) tls: transport::TlsConnect,
    pub(super) max_frame: u32,
    /// How long a blocking call spins for its reply before it parks.
    pub(super) spin: Duration,
    /// Whether blocking connections ask for a shared-memory ring.
    pub(super) shared_memory: bool,
    /// The session id the server groups this process's connections by.
    id: u128,
    next_id: AtomicU64,
    /// The references this session holds.
    pub(super) ledger: Ledger,
    decrefs: Mutex<Vec<(u64, u64)>>,
    has_decrefs: AtomicBool,
}

impl Session {
    pub(super) fn new(address: Address, options: &ManagerOptions) -> Session {
        Session {
            route: Mutex::new(address.clone()),
            gateways: options.gateways.clone(),
            address,
            authkey: options.authkey.clone(),
            #[allow(clippy::clone_on_copy)] // Copy only when TLS is compiled out
            tls: options.tls_client.clone(),
            max_frame: options.max_frame,
            spin: options.spin,
            shared_memory: options.shared_memory,
            id: u128::from_le_bytes(crate::authkey::random_bytes()),
            next_id: AtomicU64::new(1),
            ledger: Ledger::default(),
            decrefs: Mutex::new(Vec::new()),
            has_decrefs: AtomicBool::new(false),
        }
    }

    /// Where connections go now.
    pub(super) fn gateway(&self) -> Address {
        self.route.lock().unwrap().clone()
    }

    /// Connections go to `to` from now on, if they still went to
    /// `failed`: whether this call moved them (another thread or the
    /// async link may have moved the session first; then the references
    /// were taken again there by that one).
    pub(super) fn move_from(&self, failed: &Address, to: Address) -> bool {
        let mut route = self.route.lock().unwrap();
        if *route != *failed {
            return false;
        }
        *route = to;
        true
    }

    /// The gateways to try, after `failed`, in order: the others given,
    /// then the session's own (it may be back).
    pub(super) fn alternatives(&self, failed: &Address) -> Vec<Address> {
        self.gateways
            .iter()
            .chain(std::iter::once(&self.address))
            .filter(|a| *a != failed)
            .cloned()
            .collect()
    }

    /// Whether `e` says the server (a gateway) is gone or cannot be
    /// reached: among gateways, a reason to move on.
    pub(super) fn lost(e: &Error) -> bool {
        matches!(
            e,
            Error::ServerGone { .. } | Error::Eof | Error::Io(_) | Error::Connect { .. }
        )
    }

    /// A fresh request id.
    pub(super) fn next_request(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The frame that introduces a new connection of this session, a
    /// `blocking` one (one call at a time) or not, asking for a
    /// shared-memory `ring` or not.
    pub(super) fn hello(&self, blocking: bool, ring: bool) -> Result<Vec<u8>> {
        let mut frame = Vec::new();
        wire::push_request(
            &mut frame,
            &Request::Hello {
                session: self.id,
                blocking,
                ring,
            },
            None::<&()>,
            self.max_frame,
        )?;
        Ok(frame)
    }

    /// Append to `out` the session's pending decrefs, then `request` with
    /// its `args`: one write sends both. On an encoding error `out` is left
    /// as it was and the decrefs stay pending.
    pub(super) fn encode<A: Serialize + ?Sized>(
        &self,
        out: &mut Vec<u8>,
        request: &Request<'_>,
        args: Option<&A>,
    ) -> Result<()> {
        let start = out.len();
        wire::push_request(out, request, args, self.max_frame)?;
        if self.has_decrefs.load(Ordering::Acquire) {
            // Decrefs go first, so the server never sees a call on an
            // object after a release that was made before it.
            let mut decrefs = Vec::new();
            if self.encode_decrefs(&mut decrefs)? {
                out.splice(start..start, decrefs);
            }
        }
        Ok(())
    }

    /// Append every pending decref to `out` (frames nobody waits for);
    /// whether there were any.
    pub(super) fn encode_decrefs(&self, out: &mut Vec<u8>) -> Result<bool> {
        if !self.has_decrefs.swap(false, Ordering::AcqRel) {
            return Ok(false);
        }
        let pending = std::mem::take(&mut *self.decrefs.lock().unwrap());
        for &(object, count) in &pending {
            wire::push_request(
                out,
                &Request::Decref { object, count },
                None::<&()>,
                u32::MAX,
            )?;
        }
        Ok(!pending.is_empty())
    }

    /// The payload of the reply to request `id`, in place in `frame` (the
    /// frame's body, after the length prefix).
    pub(super) fn parse_reply(id: u64, frame: &[u8]) -> Result<&[u8]> {
        let (got, result) = Self::route(frame)?;
        if got != id {
            return Err(Error::protocol(
                format!("reply to request {got} received while waiting for {id}"),
                None,
            ));
        }
        result
    }

    /// Which request a reply answers, and its outcome (payload in place).
    pub(super) fn route(frame: &[u8]) -> Result<(u64, Result<&[u8]>)> {
        let (response, payload): (Response, &[u8]) = wire::decode_header(frame)?;
        Ok((
            response.id,
            response.result.map(|()| payload).map_err(Error::from),
        ))
    }

    /// The frame that withdraws request `id` on the server.
    pub(super) fn cancel_frame(&self, id: u64) -> Result<Vec<u8>> {
        let mut frame = Vec::new();
        wire::push_request(&mut frame, &Request::Cancel { id }, None::<&()>, u32::MAX)?;
        Ok(frame)
    }

    /// A session that already authenticated with this server and fails to
    /// again (a reset mid-handshake while the server dies, or another
    /// server now at the address) has lost the server it knew.
    pub(super) fn handshake_error(e: Error, established: bool) -> Error {
        match e {
            Error::Authentication(reason) if established => {
                Error::gone(format!("reconnecting failed: {reason}"), None)
            }
            other => other,
        }
    }

    /// Queue giving `count` server references to `id` back: the decref
    /// rides in front of the next request.
    pub(super) fn give_back(&self, id: u64, count: u64) {
        self.decrefs.lock().unwrap().push((id, count));
        self.has_decrefs.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session::new(Address::Unix("/nowhere".into()), &ManagerOptions::new())
    }

    #[test]
    fn decrefs_ride_in_front_of_the_next_request() {
        let s = session();
        s.ledger.retain(5, 1);
        s.ledger.retain(5, 0);
        assert_eq!(s.ledger.release(5), 0, "one local proxy is left");
        s.give_back(5, s.ledger.release(5));
        let mut out = Vec::new();
        let id = s.next_request();
        s.encode(&mut out, &Request::NumberOfObjects { id }, None::<&()>)
            .unwrap();
        let first = wire::PREFIX + u32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
        let (decref, _): (Request, _) = wire::decode_header(&out[wire::PREFIX..first]).unwrap();
        assert_eq!(
            decref,
            Request::Decref {
                object: 5,
                count: 1
            }
        );
        let (request, _): (Request, _) = wire::decode_header(&out[first + wire::PREFIX..]).unwrap();
        assert_eq!(request, Request::NumberOfObjects { id });
        // Sent once: the next request goes alone.
        let mut again = Vec::new();
        s.encode(&mut again, &Request::NumberOfObjects { id }, None::<&()>)
            .unwrap();
        assert_eq!(again, out[first..]);
    }

    #[test]
    fn replies_are_routed_and_checked_in_place() {
        let mut frame = Vec::new();
        wire::push_frame(
            &mut frame,
            &Response {
                id: 9,
                result: Ok(()),
            },
            b"payload",
            1024,
        )
        .unwrap();
        let body = &frame[wire::PREFIX..];
        assert_eq!(Session::parse_reply(9, body).unwrap(), b"payload");
        assert!(matches!(
            Session::parse_reply(8, body),
            Err(Error::Protocol { .. })
        ));
    }
}
