//! The references a built-in holds on the objects whose proxies it stores.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::lock;
use crate::error::SyncError;
use crate::object::{CallContext, ServerLink};
use crate::proxy::Token;
use crate::value::Value;

/// The references a built-in holds on the objects whose proxies it stores:
/// while a value holding a token is stored, that token's object stays
/// alive.
///
/// Only references actually taken are counted and given back, so a proxy
/// stored without one (outside any call, or by a constructor, which cannot
/// fail, when its object was already gone) keeps nothing alive rather than
/// being released twice. A proxy to the holder itself is never counted: it
/// would keep the holder alive forever.
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

    fn link(&self) -> Option<&ServerLink> {
        if let Some(link) = self.link.get() {
            return Some(link);
        }
        let cx = CallContext::current()?;
        Some(self.link.get_or_init(|| cx.link()))
    }

    /// Take a reference on every object `value` holds a proxy to, all or
    /// nothing: a proxy whose object is gone cannot be stored (ValueError).
    pub(crate) fn retain(&self, value: &Value) -> Result<(), SyncError> {
        if !holds_tokens(value) {
            return Ok(());
        }
        let Some(link) = self.link() else {
            return Ok(());
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
        let mut held = lock(&self.held);
        for token in taken {
            *held.entry(token).or_default() += 1;
        }
        Ok(())
    }

    /// [`retain`](Self::retain) for several values, all or nothing.
    pub(crate) fn retain_all(&self, values: &[Value]) -> Result<(), SyncError> {
        for (n, value) in values.iter().enumerate() {
            if let Err(e) = self.retain(value) {
                values[..n].iter().for_each(|value| self.release(value));
                return Err(e);
            }
        }
        Ok(())
    }

    /// Give back the references [`retain`](Self::retain) took for `value`,
    /// which the holder no longer stores.
    pub(crate) fn release(&self, value: &Value) {
        if !holds_tokens(value) {
            return;
        }
        let mut released = Vec::new();
        {
            let mut held = lock(&self.held);
            for token in value.tokens() {
                if let Some(count) = held.get_mut(token) {
                    *count -= 1;
                    if *count == 0 {
                        held.remove(token);
                    }
                    released.push(token.clone());
                }
            }
        }
        // Outside the lock: releasing may drop an object, whose own `Drop`
        // releases what it held.
        if let Some(link) = self.link.get() {
            for token in &released {
                link.release(token);
            }
        }
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

/// Whether `value` holds a proxy somewhere.
fn holds_tokens(value: &Value) -> bool {
    value.tokens().next().is_some()
}
