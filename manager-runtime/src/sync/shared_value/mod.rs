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

    #[crate::shared(typeid = "Value", typed(T))]
    impl SharedValue {
        /// The value (Python's `value.get()` / `value.value`); proxies
        /// inside it are adopted by this proxy's session. Returned by
        /// reference: it is encoded into the reply straight from here,
        /// under the object's lock, not cloned first (a large value is
        /// copied once on its way out, not three times).
        #[py("get", "#GETVALUE")]
        #[returns(T)]
        pub fn get(&self) -> &Value {
            &self.value
        }

        /// Replace the value (see [`set`](SharedValueProxy::set), which
        /// writes it without building the dynamic value first). A proxy
        /// whose object is gone cannot be stored (ValueError).
        #[py("set")]
        pub fn set_value(&mut self, #[of(&T)] value: Value) -> Result<(), SyncError> {
            self.held.retain(&value)?;
            let old = std::mem::replace(&mut self.value, value);
            self.held.release(&old);
            Ok(())
        }
    }
}

/// Typed proxies of this family: generated with the server, and `set`,
/// which writes the value straight from the caller's type.
pub mod typed {
    use std::future::Future;

    use serde::Serialize;

    use super::server::SharedValue;
    pub use super::server::{SharedValueAsyncProxy, SharedValueProxy};
    use crate::value::AsValue;
    use crate::{MethodRef, Proxy, Result, Shared, SyncError};

    /// A shared `Value` holding a `T` (Python's `ValueProxy`): `get()` and
    /// `set(&x)`.
    pub type ValueProxy<T> = SharedValueProxy<T>;

    /// The async form of [`ValueProxy`].
    pub type ValueAsyncProxy<T> = SharedValueAsyncProxy<T>;

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
                .base()
                .call::<_, std::result::Result<(), SyncError>>(set_method(), &(&direct,));
            // Refused: nothing was sent; the value goes the long way.
            if !direct.refused() {
                return sent?.map_err(Into::into);
            }
            self.retype::<crate::value::Value>()
                .set_value(&crate::value::to_value(value)?)
        }
    }

    impl<T: Serialize> ValueAsyncProxy<T> {
        /// Replace the value; see [`ValueProxy::set`].
        pub fn set(&self, value: &T) -> impl Future<Output = Result<()>> + Send + '_ {
            let value = crate::value::to_value(value);
            async move {
                self.retype::<crate::value::Value>()
                    .set_value(&value?)
                    .await
            }
        }
    }

    /// `SharedValue::set_value` in its type's method table, which `set`
    /// calls with its own encoding of the argument.
    fn set_method() -> MethodRef<'static> {
        let methods = <SharedValue as Shared>::METHODS;
        let index = methods
            .iter()
            .position(|m| m.name == "set_value")
            .expect("SharedValue has a set_value method");
        let index = u32::try_from(index).expect("a short method table");
        MethodRef::at(
            index,
            methods[index as usize].name,
            methods[index as usize].fingerprint,
        )
        .with_python(<SharedValue as Shared>::PYTHON)
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
    pub fn value<T: Serialize>(&self, initial: &T) -> Result<ValueProxy<T>> {
        self.create("Value", &(to_value(initial)?,))
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
