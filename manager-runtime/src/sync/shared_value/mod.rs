//! `Value`: one shared value clients get and set (Python's
//! `manager.Value`).
#![forbid(unsafe_code)]

use serde::Serialize;

use super::SyncManager;
use crate::server::{Constructor, Registry};
use crate::value::{to_value, Value};
use crate::Result;

/// Server-side objects of this family.
pub mod server {
    use crate::sync::held::HeldTokens;
    use crate::value::Value;
    use crate::SyncError;

    /// Python's `manager.Value`, served: one dynamic value. Named
    /// `ManagedValue` so as not to clash with [`Value`], the dynamic value it
    /// stores; its typeid is Python's, `"Value"`.
    pub struct ManagedValue {
        value: Value,
        held: HeldTokens,
    }

    impl ManagedValue {
        /// A shared value holding `value`.
        pub fn new(value: Value) -> Self {
            let held = HeldTokens::new();
            // A constructor cannot fail: a proxy whose object is already
            // gone is kept without keeping anything alive.
            let _ = held.retain(&value);
            ManagedValue { value, held }
        }
    }

    #[crate::shared(typeid = "Value", typed(T), proxy = "Value")]
    impl ManagedValue {
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

        /// Replace the value (see [`set`](ValueProxy::set), which
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

    use super::server::ManagedValue;
    pub use super::server::{ValueAsyncProxy, ValueProxy};
    use crate::proxy::MethodRef;
    use crate::server::Shared;
    use crate::value::AsValue;
    use crate::{Proxy, Result, SyncError};

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

    /// `ManagedValue::set_value` in its type's method table, which `set`
    /// calls with its own encoding of the argument.
    fn set_method() -> MethodRef<'static> {
        let methods = <ManagedValue as Shared>::METHODS;
        let index = methods
            .iter()
            .position(|m| m.name == "set_value")
            .expect("ManagedValue has a set_value method");
        let index = u32::try_from(index).expect("a short method table");
        MethodRef::at(
            index,
            methods[index as usize].name,
            methods[index as usize].fingerprint,
        )
        .with_python(<ManagedValue as Shared>::PYTHON)
    }
}

use typed::ValueProxy;

pub(crate) fn register(registry: &mut Registry) {
    registry.register::<server::ManagedValue>(
        "Value",
        None,
        Some(Constructor::new(|(value,): (Value,)| {
            server::ManagedValue::new(value)
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
