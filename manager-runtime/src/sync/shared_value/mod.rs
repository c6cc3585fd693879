//! `Value`: one shared value clients get and set (Python's
//! `manager.Value`).
#![forbid(unsafe_code)]

use serde::Serialize;

use super::SyncManager;
use crate::value::{to_value, Value};
use crate::Result;
use crate::{Constructor, Registry};

/// Server-side objects of this family.
pub mod server {
    use crate::sync::held::HeldTokens;
    use crate::value::Value;
    use crate::SyncError;

    /// Python's `manager.Value`, served: one dynamic value. Named
    /// `SharedValue` so as not to clash with [`Value`], the dynamic value it
    /// stores; its typeid is Python's, `"Value"`.
    pub struct SharedValue {
        value: Value,
        held: HeldTokens,
    }

    impl SharedValue {
        /// A shared value holding `value`.
        pub fn new(value: Value) -> Self {
            let held = HeldTokens::new();
            // A constructor cannot fail: a proxy whose object is already
            // gone is kept without keeping anything alive.
            let _ = held.retain(&value);
            SharedValue { value, held }
        }
    }

    #[crate::shared(typeid = "Value")]
    impl SharedValue {
        /// The value. Returned by reference: it is encoded into the reply
        /// straight from here, under the object's lock, not cloned first
        /// (a large value is copied once on its way out, not three times).
        pub fn get(&self) -> &Value {
            &self.value
        }

        /// Replace the value. A proxy whose object is gone cannot be
        /// stored (ValueError).
        pub fn set(&mut self, value: Value) -> Result<(), SyncError> {
            self.held.retain(&value)?;
            let old = std::mem::replace(&mut self.value, value);
            self.held.release(&old);
            Ok(())
        }
    }
}

/// Typed proxies of this family.
pub mod typed {
    use std::future::Future;
    use std::marker::PhantomData;

    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use super::server::{SharedValue, SharedValueAsyncProxy, SharedValueProxy};
    use crate::sync::typed::{decode, flatten, typed_proxy};
    use crate::value::{to_value, AsValue};
    use crate::{MethodRef, Proxy, Result, Shared, SyncError};

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

    typed_proxy!(ValueProxy<T>, SharedValueProxy);

    impl<T> ValueProxy<T> {
        /// The async proxy of the same value (another reference).
        pub fn to_async(&self) -> ValueAsyncProxy<T> {
            self.raw.to_async().into()
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
        ///
        /// The value is stored as the dynamic [`Value`](crate::value::Value)
        /// `to_value(x)` gives, which every proxy (and Python) reads; it is
        /// written in that form straight from `x`, not built first, unless
        /// it holds what only `to_value` can write (a proxy, ...).
        pub fn set(&self, value: &T) -> Result<()> {
            let direct = AsValue::new(value);
            let sent = self
                .raw
                .base()
                .call::<_, std::result::Result<(), SyncError>>(set_method(), &(&direct,));
            // Refused: nothing was sent; the value goes the long way.
            if !direct.refused() {
                return flatten(sent);
            }
            flatten(self.raw.set(to_value(value)?))
        }
    }

    /// `SharedValue::set` in its type's method table, which the typed
    /// proxy calls without the generated proxy.
    fn set_method() -> MethodRef<'static> {
        let methods = <SharedValue as Shared>::METHODS;
        let index = methods
            .iter()
            .position(|m| m.name == "set")
            .expect("SharedValue has a set method");
        let index = u32::try_from(index).expect("a short method table");
        MethodRef::at(
            index,
            methods[index as usize].name,
            methods[index as usize].fingerprint,
        )
    }

    /// The async form of [`ValueProxy`].
    pub struct ValueAsyncProxy<T> {
        raw: SharedValueAsyncProxy,
        _type: PhantomData<fn() -> T>,
    }

    typed_proxy!(ValueAsyncProxy<T>, SharedValueAsyncProxy);

    impl<T> ValueAsyncProxy<T> {
        /// The blocking proxy of the same value (another reference).
        pub fn to_blocking(&self) -> ValueProxy<T> {
            self.raw.to_blocking().into()
        }
    }

    impl<T: DeserializeOwned> ValueAsyncProxy<T> {
        /// The value; see [`ValueProxy::get`].
        pub async fn get(&self) -> Result<T> {
            decode(self.raw.base(), self.raw.get().await?)
        }
    }

    impl<T: Serialize> ValueAsyncProxy<T> {
        /// Replace the value; see [`ValueProxy::set`].
        pub fn set(&self, value: &T) -> impl Future<Output = Result<()>> + Send + '_ {
            let value = to_value(value);
            async move { flatten(self.raw.set(value?).await) }
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
        let raw: server::SharedValueProxy = self.create("Value", &(to_value(initial)?,))?;
        Ok(raw.into())
    }

    /// Async form of [`value`](Self::value).
    pub async fn value_async<T: Serialize>(
        &self,
        initial: &T,
    ) -> Result<typed::ValueAsyncProxy<T>> {
        let initial = to_value(initial)?;
        self.create_async("Value", &(initial,)).await
    }
}
