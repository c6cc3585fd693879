//! The references a built-in holds on the objects whose proxies it stores.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::lock;
use crate::proxy::Token;
use crate::server::{CallContext, ServerLink};
use crate::value::Value;
use crate::SyncError;

/// The references a built-in holds on the objects whose proxies it stores:
/// while a value holding a token is stored, that token's object stays
/// alive.
///
/// Every stored occurrence of a token holds one server reference, taken by
/// [`retain`](Self::retain) when the value goes in and given back by
/// [`release`](Self::release) when it leaves, or when the holder drops. A
/// value taken out and sent to a caller (`pop`, `get`) keeps its references
/// until its reply is encoded: see [`Removed`].
///
/// Only references actually taken are counted and given back, so a proxy
/// stored without one (outside any call, or by a constructor, which cannot
/// fail, when its object was already gone) keeps nothing alive rather than
/// being released twice. A proxy to the holder itself (`b.append(b)`) is
/// never counted: it would keep the holder alive forever.
///
/// The server link comes from the call that builds the holder or, failing
/// that, from the first call that stores a token.
#[derive(Default)]
pub(crate) struct HeldTokens {
    link: OnceLock<ServerLink>,
    held: Mutex<HashMap<Token, usize>>,
}

impl HeldTokens {
    /// A holder for an object being built (in a call, if any).
    pub(crate) fn new() -> Self {
        let held = HeldTokens::default();
        if let Some(cx) = CallContext::current() {
            let _ = held.link.set(cx.link());
        }
        held
    }

    /// A holder that takes no references: a container read out of Redis
    /// for one call (objects there live by leases, not references).
    #[cfg(feature = "redis")]
    pub(crate) fn inert() -> Self {
        let held = HeldTokens::default();
        let _ = held.link.set(ServerLink::default());
        held
    }

    fn link(&self) -> Option<&ServerLink> {
        if let Some(link) = self.link.get() {
            return Some(link);
        }
        let cx = CallContext::current()?;
        Some(self.link.get_or_init(|| cx.link()))
    }

    /// Take a reference on every object `value` holds a proxy to, all or
    /// nothing, and return the tokens taken: a proxy whose object is gone
    /// cannot be stored (ValueError).
    fn take(&self, value: &Value) -> Result<Vec<Token>, SyncError> {
        if !holds_tokens(value) {
            return Ok(Vec::new());
        }
        let Some(link) = self.link() else {
            return Ok(Vec::new());
        };
        let own = CallContext::current().and_then(|cx| {
            let id = cx.object_id()?;
            Some((id, cx.server.address().clone()))
        });
        let mut taken: Vec<Token> = Vec::new();
        for token in value.tokens() {
            let is_own = own
                .as_ref()
                .is_some_and(|(id, address)| token.id == *id && token.address == *address);
            if is_own {
                continue;
            }
            if let Err(e) = link.retain(token) {
                taken.iter().for_each(|t| link.release(t));
                return Err(SyncError::ValueError(format!(
                    "cannot store a proxy to {token}: {e}"
                )));
            }
            taken.push(token.clone());
        }
        Ok(taken)
    }

    /// Take a reference on every object `value` holds a proxy to, all or
    /// nothing: a proxy whose object is gone cannot be stored (ValueError).
    pub(crate) fn retain(&self, value: &Value) -> Result<(), SyncError> {
        let taken = self.take(value)?;
        if !taken.is_empty() {
            let mut held = lock(&self.held);
            for token in taken {
                *held.entry(token).or_default() += 1;
            }
        }
        Ok(())
    }

    /// [`retain`](Self::retain) for several values, all or nothing.
    pub(crate) fn retain_all<'a>(
        &self,
        values: impl IntoIterator<Item = &'a Value> + Clone,
    ) -> Result<(), SyncError> {
        for (n, value) in values.clone().into_iter().enumerate() {
            if let Err(e) = self.retain(value) {
                values
                    .into_iter()
                    .take(n)
                    .for_each(|value| self.release(value));
                return Err(e);
            }
        }
        Ok(())
    }

    /// Stop counting the references [`retain`](Self::retain) took for
    /// `value`; returns them, for the caller to give back.
    fn forget(&self, value: &Value) -> Vec<Token> {
        if !holds_tokens(value) {
            return Vec::new();
        }
        let mut forgotten = Vec::new();
        let mut held = lock(&self.held);
        for token in value.tokens() {
            if let Some(count) = held.get_mut(token) {
                *count -= 1;
                if *count == 0 {
                    held.remove(token);
                }
                forgotten.push(token.clone());
            }
        }
        forgotten
    }

    /// Give back the references [`retain`](Self::retain) took for `value`,
    /// which the holder no longer stores.
    pub(crate) fn release(&self, value: &Value) {
        // Outside the lock: releasing may drop an object, whose own `Drop`
        // releases what it held.
        let released = self.forget(value);
        if let Some(link) = self.link.get() {
            for token in &released {
                link.release(token);
            }
        }
    }

    /// `value`, which the holder no longer stores, on its way to a caller
    /// with the references [`retain`](Self::retain) took for it: see
    /// [`Removed`].
    pub(crate) fn release_after_reply(&self, value: Value) -> Removed {
        let tokens = self.forget(&value);
        Removed::holding(value, tokens, self.link.get())
    }

    /// `value` with a reference of its own on every object it holds a
    /// proxy to, all or nothing, not counted by the holder: a value in a
    /// queue, released when it is dropped (taken out and sent, or never
    /// stored after all).
    pub(crate) fn hold(&self, value: Value) -> Result<Removed, SyncError> {
        let tokens = self.take(&value)?;
        Ok(Removed::holding(value, tokens, self.link.get()))
    }
}

impl Drop for HeldTokens {
    fn drop(&mut self) {
        let held = std::mem::take(&mut *lock(&self.held));
        if let Some(link) = self.link.get() {
            for (token, count) in held {
                for _ in 0..count {
                    link.release(&token);
                }
            }
        }
    }
}

impl std::fmt::Debug for HeldTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldTokens")
            .field("held", &*lock(&self.held))
            .finish_non_exhaustive()
    }
}

/// Whether `value` holds a proxy somewhere.
fn holds_tokens(value: &Value) -> bool {
    value.tokens().next().is_some()
}

/// A value with the references a built-in took on the objects it names,
/// given back when this is dropped: a value taken out of a container
/// (`pop`) or a queue (`get`) on its way to the caller, or an item waiting
/// in a queue.
///
/// A method replies with this itself, so the references go only after the
/// reply carrying it has been encoded and has granted the caller
/// references of its own: released first, a popped proxy's object could
/// die before the caller gets it. Dropped anywhere else (a failed or
/// cancelled put, a dropped queue), it gives them back too. On the client
/// it is just the value.
#[derive(Default)]
pub struct Removed {
    value: Value,
    tokens: Vec<Token>,
    link: Option<ServerLink>,
}

impl Removed {
    fn holding(value: Value, tokens: Vec<Token>, link: Option<&ServerLink>) -> Removed {
        Removed {
            value,
            tokens,
            link: link.cloned(),
        }
    }

    /// A value that holds no references of a container (a default sent
    /// back in place of one).
    pub(crate) fn plain(value: Value) -> Removed {
        Removed::holding(value, Vec::new(), None)
    }

    /// The value.
    pub fn into_value(mut self) -> Value {
        std::mem::take(&mut self.value)
    }
}

impl Drop for Removed {
    fn drop(&mut self) {
        if let Some(link) = &self.link {
            for token in &self.tokens {
                link.release(token);
            }
        }
    }
}

impl std::fmt::Debug for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Removed").field(&self.value).finish()
    }
}

impl serde::Serialize for Removed {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Removed {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(|value| Removed::holding(value, Vec::new(), None))
    }
}
