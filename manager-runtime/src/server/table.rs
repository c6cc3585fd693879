//! The object table: every served object with its refcount, and the
//! references each client session holds; all reference bookkeeping
//! (objects made, references taken, given back, a session's connections
//! coming and going) happens here, under the core's lock.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::error::RemoteError;
use crate::object::Object;

pub(super) struct Entry {
    pub(super) object: Arc<dyn Object>,
    pub(super) typeid: &'static str,
    pub(super) exposed: Option<&'static [&'static str]>,
    pub(super) refcount: u64,
}

#[derive(Default)]
pub(super) struct Session {
    pub(super) connections: usize,
    pub(super) refs: HashMap<u64, u64>,
}

#[derive(Default)]
pub(super) struct Table {
    pub(super) objects: HashMap<u64, Entry, BuildHasherDefault<IdHasher>>,
    pub(super) sessions: HashMap<u128, Session>,
}

/// The hasher of object ids. Every call looks its object up by id, and
/// the ids are the server's own counter, not a client's choice, so they
/// need no keyed (SipHash) hashing against flooding: a multiply spreads
/// consecutive ids over the table's buckets and its control bytes.
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for `u64` keys; any other input still
        // hashes correctly, a byte at a time.
        for &byte in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(byte));
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Table {
    /// Serve `entry` as `id`, with one reference held by `session`.
    pub(super) fn insert(&mut self, id: u64, entry: Entry, session: u128) {
        self.objects.insert(id, entry);
        self.hold(session, id);
    }

    /// Count one reference to `id` as `session`'s.
    fn hold(&mut self, session: u128, id: u64) {
        *self
            .sessions
            .entry(session)
            .or_default()
            .refs
            .entry(id)
            .or_default() += 1;
    }

    /// One more reference to `id`, held by `session`.
    pub(super) fn incref(&mut self, session: u128, id: u64) -> Result<(), RemoteError> {
        self.retain(id)?;
        self.hold(session, id);
        Ok(())
    }

    /// One more reference to `id`, held by no session (a container of the
    /// server holding a proxy to it).
    pub(super) fn retain(&mut self, id: u64) -> Result<(), RemoteError> {
        let entry = self
            .objects
            .get_mut(&id)
            .ok_or(RemoteError::NoSuchObject(id))?;
        entry.refcount += 1;
        Ok(())
    }

    /// A connection of `session` opened.
    pub(super) fn join(&mut self, session: u128) {
        self.sessions.entry(session).or_default().connections += 1;
    }

    /// A connection of `session` closed: with its last, every reference it
    /// held goes. The objects freed, to be dropped outside the lock.
    pub(super) fn leave(&mut self, session: u128) -> Vec<Arc<dyn Object>> {
        let Some(state) = self.sessions.get_mut(&session) else {
            return Vec::new();
        };
        state.connections -= 1;
        if state.connections > 0 {
            return Vec::new();
        }
        let refs = self.sessions.remove(&session).unwrap_or_default().refs;
        self.unref_all(refs)
    }

    /// Every reference `session` holds goes; its connections stay.
    pub(super) fn release_all(&mut self, session: u128) -> Vec<Arc<dyn Object>> {
        let Some(state) = self.sessions.get_mut(&session) else {
            return Vec::new();
        };
        let refs = std::mem::take(&mut state.refs);
        self.unref_all(refs)
    }

    /// Whether `session` holds a reference to `id`.
    pub(super) fn holds(&self, session: u128, id: u64) -> bool {
        self.sessions
            .get(&session)
            .is_some_and(|s| s.refs.contains_key(&id))
    }

    /// Drop `count` references to `id`; returns the object if that was its
    /// last reference (to be dropped outside the lock).
    pub(super) fn unref(&mut self, id: u64, count: u64) -> Option<Arc<dyn Object>> {
        let entry = self.objects.get_mut(&id)?;
        entry.refcount = entry.refcount.saturating_sub(count);
        if entry.refcount == 0 {
            tracing::debug!(target: "managers::server", id, typeid = entry.typeid, "object freed");
            return self.objects.remove(&id).map(|e| e.object);
        }
        None
    }

    /// Drop every reference in `refs` (a session's, taken out of it); the
    /// objects freed, to be dropped outside the lock.
    pub(super) fn unref_all(&mut self, refs: HashMap<u64, u64>) -> Vec<Arc<dyn Object>> {
        refs.into_iter()
            .filter_map(|(id, count)| self.unref(id, count))
            .collect()
    }

    /// Release up to `count` of the references `session` holds on `id`; a
    /// session can never release more than it took.
    pub(super) fn release(
        &mut self,
        session: u128,
        id: u64,
        count: u64,
    ) -> Option<Arc<dyn Object>> {
        let refs = &mut self.sessions.get_mut(&session)?.refs;
        let held = refs.get_mut(&id)?;
        let released = count.min(*held);
        *held -= released;
        if *held == 0 {
            refs.remove(&id);
        }
        self.unref(id, released)
    }
}
