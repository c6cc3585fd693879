//! The reference ledger of a client session, whichever protocol it
//! speaks: how many local proxies of each object exist and how many server
//! references the session holds for them. Cloning a proxy counts here; the
//! last local proxy of an object gives the session's server references
//! back (how is the session's business: a batched decref in front of the
//! next request, or CPython's `decref` request).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// How many local proxies of an object exist and how many server
/// references the session holds for them.
struct Held {
    proxies: u64,
    server_refs: u64,
}

/// A session's references.
#[derive(Default)]
pub(super) struct Ledger {
    refs: Mutex<HashMap<u64, Held>>,
    held_any: AtomicBool,
}

impl Ledger {
    /// Count one more local proxy of `id`, `server_refs` of which the
    /// server just granted this session.
    pub(super) fn retain(&self, id: u64, server_refs: u64) {
        let mut refs = self.refs.lock().unwrap();
        let held = refs.entry(id).or_insert(Held {
            proxies: 0,
            server_refs: 0,
        });
        held.proxies += 1;
        held.server_refs += server_refs;
        self.held_any.store(true, Ordering::Relaxed);
    }

    /// Count one more local proxy of `id` if the session already holds a
    /// server reference to it (no round trip needed).
    pub(super) fn retain_held(&self, id: u64) -> bool {
        let mut refs = self.refs.lock().unwrap();
        match refs.get_mut(&id) {
            Some(held) if held.server_refs > 0 => {
                held.proxies += 1;
                true
            }
            _ => false,
        }
    }

    /// One local proxy of `id` is gone: the server references the session
    /// must give back now (0 while other local proxies remain).
    pub(super) fn release(&self, id: u64) -> u64 {
        let mut refs = self.refs.lock().unwrap();
        let Some(held) = refs.get_mut(&id) else {
            return 0;
        };
        held.proxies -= 1;
        if held.proxies > 0 {
            return 0;
        }
        refs.remove(&id).map_or(0, |h| h.server_refs)
    }

    /// Every server reference held, taken out of the ledger (the session's
    /// last handle is gone).
    pub(super) fn drain(&self) -> Vec<(u64, u64)> {
        self.refs
            .lock()
            .unwrap()
            .drain()
            .map(|(id, held)| (id, held.server_refs))
            .collect()
    }

    /// Whether this session ever held a reference (its end must release).
    /// Every object held, with the server references held on it (to take
    /// again on another gateway).
    pub(super) fn held(&self) -> Vec<(u64, u64)> {
        self.refs
            .lock()
            .unwrap()
            .iter()
            .map(|(&id, held)| (id, held.server_refs))
            .collect()
    }

    pub(super) fn held_any(&self) -> bool {
        self.held_any.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_proxy_gives_the_server_references_back() {
        let ledger = Ledger::default();
        assert!(!ledger.held_any());
        ledger.retain(5, 1);
        ledger.retain(5, 2);
        assert!(ledger.retain_held(5));
        assert!(!ledger.retain_held(6), "no server reference to 6");
        assert_eq!(ledger.release(5), 0);
        assert_eq!(ledger.release(5), 0);
        assert_eq!(ledger.release(5), 3, "the last proxy of three");
        assert_eq!(ledger.release(5), 0, "nothing left");
        ledger.retain(7, 1);
        assert_eq!(ledger.drain(), [(7, 1)]);
        assert!(ledger.held_any());
    }
}
