//! `Value`: one shared value clients get and set (Python's
//! `manager.Value`), and the bookkeeping every built-in that stores values
//! shares: the references it holds on the objects whose proxies it stores.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::SyncManager;
use crate::error::{Error, Result, SyncError};
use crate::object::{CallContext, ServerLink};
use crate::proxy::{ProxyBase, Token};
use crate::registry::{Constructor, Registry};
use crate::value::{to_value, Value};

/// Server-side objects of this family.
pub mod server {
    use std::sync::Mutex;

    use super::{lock, HeldTokens};
    use crate::error::SyncError;
    use crate::value::Value;

    /// Python's `manager.Value`, served: one dynamic value. Named
    /// `SharedValue` so as not to clash with [`Value`], the dynamic value it
    /// stores; its typeid is Python's, `"Value"`.
    pub struct SharedValue {
        value: Mutex<Value>,
        held: HeldTokens,
    }

    impl SharedValue {
        /// A shared value holding `value`.
        pub fn new(value: Value) -> Self {
            let held = HeldTokens::new();
            // Outside a call nothing is retained, and nothing can fail.
            let _ = held.retain(&value);
            SharedValue {
                value: Mutex::new(value),
                held,
            }
        }
    }

    #[crate::shared(typeid = "Value")]
    impl SharedValue {
        /// The value.
        pub fn get(&self) -> Value {
            lock(&self.value).clone()
        }

        /// Replace the value. A proxy whose object is gone cannot be
        /// stored (ValueError).
        pub fn set(&self, value: Value) -> Result<(), SyncError> {
            self.held.retain(&value)?;
            let old = std::mem::replace(&mut *lock(&self.value), value);
            self.held.release(&old);
            Ok(())
        }
    }
}

/// Typed proxies of this family.
pub mod typed {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::server::SharedValueProxy;
    use super::{decode, flatten};
    use crate::error::Result;
    use crate::proxy::{Proxy, ProxyBase};
    use crate::value::to_value;

    /// A typed proxy of a shared [`SharedValue`](super::server::SharedValue)
    /// holding a `T` (Python's `ValueProxy`): `get()` and `set(&x)`.
    ///
    /// ```
    /// # fn main() -> manager_runtime::Result<()> {
    /// let manager = manager_runtime::sync::SyncManager::new();
    /// manager.start_in_thread()?;
    /// let counter = manager.value(&10_i64)?;
    /// counter.set(&(counter.get()? + 1))?;
    /// assert_eq!(counter.get()?, 11);
    /// # Ok(()) }
    /// ```
    pub struct ValueProxy<T> {
        raw: SharedValueProxy,
        _type: PhantomData<fn() -> T>,
    }

    impl<T> ValueProxy<T> {
        /// The dynamically typed proxy this one wraps.
        pub fn raw(&self) -> &SharedValueProxy {
            &self.raw
        }
    }

    impl<T: DeserializeOwned> ValueProxy<T> {
        /// The value (Python's `value.get()` / `value.value`). Proxies
        /// inside it are adopted by this proxy's session.
        pub fn get(&self) -> Result<T> {
            decode(self.raw.base(), self.raw.get()?)
        }
    }

    impl<T: Serialize> ValueProxy<T> {
        /// Replace the value (Python's `value.set(x)` / `value.value = x`).
        pub fn set(&self, value: &T) -> Result<()> {
            flatten(self.raw.set(to_value(value)?))
        }
    }

    impl<T> From<SharedValueProxy> for ValueProxy<T> {
        fn from(raw: SharedValueProxy) -> Self {
            ValueProxy {
                raw,
                _type: PhantomData,
            }
        }
    }

    impl<T> Proxy for ValueProxy<T> {
        fn from_base(base: ProxyBase) -> Self {
            SharedValueProxy::from_base(base).into()
        }

        fn base(&self) -> &ProxyBase {
            self.raw.base()
        }
    }

    impl<T> Clone for ValueProxy<T> {
        /// Another reference to the same value.
        fn clone(&self) -> Self {
            self.raw.clone().into()
        }
    }

    impl<T> fmt::Debug for ValueProxy<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Debug::fmt(&self.raw, f)
        }
    }

    impl<T> fmt::Display for ValueProxy<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Display::fmt(&self.raw, f)
        }
    }

    impl<T> Serialize for ValueProxy<T> {
        /// As its token, so a container stores it as a proxy.
        fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
            self.raw.serialize(serializer)
        }
    }

    impl<'de, T> Deserialize<'de> for ValueProxy<T> {
        /// A proxy inside a manager's reply, adopted by its session.
        fn deserialize<D: Deserializer<'de>>(
            deserializer: D,
        ) -> std::result::Result<Self, D::Error> {
            SharedValueProxy::deserialize(deserializer).map(Into::into)
        }
    }
}

use typed::ValueProxy;

pub(crate) fn register(registry: &mut Registry) {
    registry.register::<server::SharedValue>(
        "Value",
        None,
        Some(Constructor::new(|(value,): (Value,)| {
            server::SharedValue::new(value)
        })),
    );
}

impl SyncManager {
    /// A new shared `Value` holding `initial` (Python's
    /// `manager.Value(typecode, value)`; the type parameter plays the
    /// typecode's part).
    pub fn value<T: Serialize>(&self, initial: &T) -> Result<ValueProxy<T>> {
        let initial = to_value(initial)?;
        if !holds_tokens(&initial) {
            let raw: server::SharedValueProxy = self.create("Value", &(initial,))?;
            return Ok(raw.into());
        }
        // A constructor runs outside any call, so it cannot keep the
        // objects it is given alive: proxies are stored by a call.
        let raw: server::SharedValueProxy = self.create("Value", &(Value::None,))?;
        flatten(raw.set(initial))?;
        Ok(raw.into())
    }
}

/// Whether `value` holds a proxy somewhere.
pub(super) fn holds_tokens(value: &Value) -> bool {
    value.tokens().next().is_some()
}

/// `Result<Result<T, SyncError>>` from a raw proxy as the typed proxies'
/// `Result<T>`.
pub(super) fn flatten<T>(result: Result<std::result::Result<T, SyncError>>) -> Result<T> {
    result?.map_err(Error::Sync)
}

/// Turn a value from a reply of `base`'s object into `T`, adopting the
/// proxies nested in it into `base`'s session.
///
/// Each token of this server in a reply came with a reference granted to
/// the session, which a proxy decoded from it adopts. A token decoded as
/// something else (a `Value`, or nothing when decoding fails) would leave
/// that reference held until the session ends, so every grant is adopted
/// by a guard first and given back when the guards drop; a token that
/// became a proxy keeps its object alive through that proxy.
pub(super) fn decode<T: DeserializeOwned>(base: &ProxyBase, value: Value) -> Result<T> {
    let client = base.client();
    let guards: Vec<ProxyBase> = value
        .tokens()
        .filter(|token| token.address == *client.address())
        .map(|token| ProxyBase::adopt(client.clone(), token.clone()))
        .collect();
    let decoded = base.decode_value(value);
    drop(guards);
    decoded
}

/// Lock a mutex, ignoring poisoning: every critical section of the
/// built-ins leaves its state consistent before anything can panic.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The references a built-in holds on the objects whose proxies it stores:
/// while a value holding a token is stored, that token's object stays
/// alive.
///
/// Only references actually taken are counted and given back, so a value
/// stored where no call context was available (a constructor) is simply not
/// kept alive rather than released twice. A proxy to the holder itself is
/// never counted: it would keep the holder alive forever.
#[derive(Default)]
pub(super) struct HeldTokens {
    link: OnceLock<ServerLink>,
    held: Mutex<HashMap<Token, usize>>,
}

impl HeldTokens {
    /// A holder for an object being built (in a call, if any).
    pub(super) fn new() -> Self {
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
    pub(super) fn retain(&self, value: &Value) -> Result<(), SyncError> {
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
    pub(super) fn retain_all(&self, values: &[Value]) -> Result<(), SyncError> {
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
    pub(super) fn release(&self, value: &Value) {
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
