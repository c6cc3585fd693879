//! The references a container holds on the objects its values name.

use crate::address::Address;
use crate::error::SyncError;
use crate::object::{CallContext, ServerLink};
use crate::proxy::Token;
use crate::value::Value;

/// Keeps the objects named by tokens inside a container's values alive.
///
/// Every stored occurrence of a token holds one server reference, taken by
/// [`retain`](Self::retain) when the value goes in and given back by
/// [`release`](Self::release) when it leaves. A token of the container
/// itself (`b.append(b)`) is never counted: that reference would keep the
/// container alive forever.
///
/// The server link and the container's own id come from the first call
/// that stores a token: constructors run outside any call, so a container
/// is built empty and filled by a method call.
#[derive(Debug, Default, Clone)]
pub(crate) struct Holds {
    link: Option<ServerLink>,
    /// The container's own address and id, once known.
    owner: Option<(Address, u64)>,
}

impl Holds {
    /// Take a reference to every object `value` names, all or nothing. A
    /// token whose object no longer exists cannot be stored.
    pub(crate) fn retain(&mut self, value: &Value) -> Result<(), SyncError> {
        let mut tokens = value.tokens().peekable();
        if tokens.peek().is_none() {
            return Ok(());
        }
        if let Some(cx) = CallContext::current() {
            if self.link.is_none() {
                self.link = Some(cx.link());
            }
            if self.owner.is_none() {
                self.owner = cx.object_id().map(|id| (cx.server.address().clone(), id));
            }
        }
        let Some(link) = &self.link else {
            return Ok(());
        };
        let mut taken = Vec::new();
        for token in tokens.filter(|t| !self.is_owner(t)) {
            if let Err(e) = link.retain(token) {
                taken.into_iter().for_each(|t| link.release(t));
                return Err(SyncError::ValueError(format!(
                    "cannot store a proxy to {token}: {e}"
                )));
            }
            taken.push(token);
        }
        Ok(())
    }

    /// [`retain`](Self::retain) for several values, all or nothing.
    pub(crate) fn retain_all<'a>(
        &mut self,
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

    /// Give back the references `value` held once it has been sent to the
    /// caller: see [`Removed`].
    pub(crate) fn release_after_reply(&self, value: Value) -> Removed {
        let holds = value.tokens().next().map(|_| self.clone());
        Removed { value, holds }
    }

    /// Whether `token` names the container itself.
    fn is_owner(&self, token: &Token) -> bool {
        self.owner
            .as_ref()
            .is_some_and(|(address, id)| token.id == *id && token.address == *address)
    }

    /// Give back the references `value` held.
    pub(crate) fn release(&self, value: &Value) {
        if let Some(link) = &self.link {
            for token in value.tokens().filter(|t| !self.is_owner(t)) {
                link.release(token);
            }
        }
    }
}

/// A value taken out of a container (`pop`), on its way to the caller.
///
/// The container's references to the objects the value names are given
/// back only when this is dropped, after the reply carrying it has been
/// encoded and has granted the caller references of its own: released
/// first, a popped proxy's object could die before the caller gets it.
/// On the client it is just the value.
#[derive(Debug, Default)]
pub struct Removed {
    value: Value,
    holds: Option<Holds>,
}

impl Removed {
    /// The value.
    pub fn into_value(mut self) -> Value {
        std::mem::take(&mut self.value)
    }
}

impl Drop for Removed {
    fn drop(&mut self) {
        if let Some(holds) = &self.holds {
            holds.release(&self.value);
        }
    }
}

impl serde::Serialize for Removed {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Removed {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(|value| Removed { value, holds: None })
    }
}
