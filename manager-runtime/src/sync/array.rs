//! `Array`: a fixed-length shared sequence clients index into (Python's
//! `manager.Array`).
#![forbid(unsafe_code)]

use serde::Serialize;

use super::SyncManager;
use crate::value::{to_value, Value};
use crate::Result;
use crate::{Constructor, Registry};

/// Server-side objects of this family.
pub mod server {
    use std::sync::Mutex;

    use crate::sync::held::HeldTokens;
    use crate::sync::lock;
    use crate::value::Value;
    use crate::SyncError;

    /// Python's `manager.Array`, served: a sequence of dynamic values whose
    /// length is fixed when it is made.
    pub struct Array {
        items: Mutex<Vec<Value>>,
        held: HeldTokens,
    }

    impl Array {
        /// An array holding `items`.
        pub fn new(items: Vec<Value>) -> Self {
            let held = HeldTokens::new();
            // A constructor cannot fail: a proxy whose object is already
            // gone is kept without keeping anything alive.
            let _ = held.retain_all(&items);
            Array {
                items: Mutex::new(items),
                held,
            }
        }
    }

    /// Python's index: negative counts from the end.
    fn position(index: i64, len: usize) -> Option<usize> {
        let len = i64::try_from(len).ok()?;
        let index = if index < 0 { index + len } else { index };
        (0..len).contains(&index).then_some(index as usize)
    }

    /// Python's slice bounds `[start:stop]` (step 1), clamped to the array.
    fn bounds(start: Option<i64>, stop: Option<i64>, len: usize) -> (usize, usize) {
        let clamp = |bound: Option<i64>, default: usize| match bound {
            None => default,
            Some(i) if i < 0 => len.saturating_sub(i.unsigned_abs() as usize),
            Some(i) => (i as u64).min(len as u64) as usize,
        };
        let (start, stop) = (clamp(start, 0), clamp(stop, len));
        (start, stop.max(start))
    }

    #[crate::shared(typeid = "Array")]
    impl Array {
        /// Python's `len(array)`.
        pub fn len(&self) -> usize {
            lock(&self.items).len()
        }

        /// Whether the array has no elements.
        pub fn is_empty(&self) -> bool {
            lock(&self.items).is_empty()
        }

        /// Python's `array[index]`; negative indexes count from the end.
        pub fn get(&self, index: i64) -> Result<Value, SyncError> {
            let items = lock(&self.items);
            position(index, items.len())
                .map(|i| items[i].clone())
                .ok_or_else(|| SyncError::IndexError("array index out of range".into()))
        }

        /// Python's `array[index] = value`.
        pub fn set(&self, index: i64, value: Value) -> Result<(), SyncError> {
            let out_of_range =
                || SyncError::IndexError("array assignment index out of range".into());
            // The length never changes, so the index stays right.
            let index = position(index, self.len()).ok_or_else(out_of_range)?;
            self.held.retain(&value)?;
            let old = std::mem::replace(&mut lock(&self.items)[index], value);
            self.held.release(&old);
            Ok(())
        }

        /// Python's `array[start:stop]`; `None` is an omitted bound.
        pub fn get_slice(&self, start: Option<i64>, stop: Option<i64>) -> Vec<Value> {
            let items = lock(&self.items);
            let (start, stop) = bounds(start, stop, items.len());
            items[start..stop].to_vec()
        }

        /// Python's `array[start:stop] = values`. The length of an array is
        /// fixed: `values` must be as long as the slice (ValueError).
        pub fn set_slice(
            &self,
            start: Option<i64>,
            stop: Option<i64>,
            values: Vec<Value>,
        ) -> Result<(), SyncError> {
            // The length never changes, so the bounds stay right.
            let (start, stop) = bounds(start, stop, self.len());
            if values.len() != stop - start {
                return Err(SyncError::ValueError(format!(
                    "can only assign a sequence of the same size ({} to a slice of {})",
                    values.len(),
                    stop - start
                )));
            }
            self.held.retain_all(&values)?;
            let old: Vec<Value> = lock(&self.items).splice(start..stop, values).collect();
            for value in &old {
                self.held.release(value);
            }
            Ok(())
        }

        /// Every element, in order (Python's `array[:]`).
        pub fn to_vec(&self) -> Vec<Value> {
            lock(&self.items).clone()
        }
    }
}

/// Typed proxies of this family.
pub mod typed {
    use std::future::Future;
    use std::marker::PhantomData;

    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use super::server::{ArrayAsyncProxy as RawArrayAsyncProxy, ArrayProxy as RawArrayProxy};
    use crate::sync::typed::{decode, flatten, typed_proxy};
    use crate::value::{to_value, Value};
    use crate::Proxy;
    use crate::Result;

    /// A typed proxy of a shared [`Array`](super::server::Array) of `T`
    /// (Python's `ArrayProxy`): `len`, indexing with negative indexes, item
    /// and slice assignment. Out-of-range indexes fail with
    /// [`SyncError::IndexError`](crate::SyncError::IndexError).
    ///
    /// ```
    /// # fn main() -> manager_runtime::Result<()> {
    /// let manager = manager_runtime::sync::SyncManager::new();
    /// manager.start_in_thread()?;
    /// let array = manager.array(&[1.5, 2.5, 3.5])?;
    /// array.set(-1, &0.0)?;
    /// assert_eq!(array.len()?, 3);
    /// assert_eq!(array.to_vec()?, [1.5, 2.5, 0.0]);
    /// # Ok(()) }
    /// ```
    pub struct ArrayProxy<T> {
        raw: RawArrayProxy,
        _type: PhantomData<fn() -> T>,
    }

    typed_proxy!(ArrayProxy<T>, RawArrayProxy);

    impl<T> ArrayProxy<T> {
        /// The async proxy of the same array (another reference).
        pub fn to_async(&self) -> ArrayAsyncProxy<T> {
            self.raw.to_async().into()
        }

        /// Python's `len(array)`.
        pub fn len(&self) -> Result<usize> {
            self.raw.len()
        }

        /// Whether the array has no elements.
        pub fn is_empty(&self) -> Result<bool> {
            self.raw.is_empty()
        }
    }

    impl<T: DeserializeOwned> ArrayProxy<T> {
        /// Python's `array[index]`; negative indexes count from the end.
        pub fn get(&self, index: i64) -> Result<T> {
            decode(self.raw.base(), flatten(self.raw.get(index))?)
        }

        /// Python's `array[start:stop]`; `None` is an omitted bound, and
        /// bounds are clamped as Python clamps them.
        pub fn slice(&self, start: Option<i64>, stop: Option<i64>) -> Result<Vec<T>> {
            decode(
                self.raw.base(),
                Value::List(self.raw.get_slice(start, stop)?),
            )
        }

        /// Every element, in order (Python's `array[:]`).
        pub fn to_vec(&self) -> Result<Vec<T>> {
            decode(self.raw.base(), Value::List(self.raw.to_vec()?))
        }
    }

    impl<T: Serialize> ArrayProxy<T> {
        /// Python's `array[index] = value`.
        pub fn set(&self, index: i64, value: &T) -> Result<()> {
            flatten(self.raw.set(index, to_value(value)?))
        }

        /// Python's `array[start:stop] = values`; `values` must be as long
        /// as the slice, since an array's length is fixed (ValueError).
        pub fn set_slice(&self, start: Option<i64>, stop: Option<i64>, values: &[T]) -> Result<()> {
            flatten(self.raw.set_slice(start, stop, to_values(values)?))
        }
    }

    /// The async form of [`ArrayProxy`].
    pub struct ArrayAsyncProxy<T> {
        raw: RawArrayAsyncProxy,
        _type: PhantomData<fn() -> T>,
    }

    typed_proxy!(ArrayAsyncProxy<T>, RawArrayAsyncProxy);

    impl<T> ArrayAsyncProxy<T> {
        /// The blocking proxy of the same array (another reference).
        pub fn to_blocking(&self) -> ArrayProxy<T> {
            self.raw.to_blocking().into()
        }

        /// Python's `len(array)`.
        pub async fn len(&self) -> Result<usize> {
            self.raw.len().await
        }

        /// Whether the array has no elements.
        pub async fn is_empty(&self) -> Result<bool> {
            self.raw.is_empty().await
        }
    }

    impl<T: DeserializeOwned> ArrayAsyncProxy<T> {
        /// Python's `array[index]`; see [`ArrayProxy::get`].
        pub async fn get(&self, index: i64) -> Result<T> {
            decode(self.raw.base(), flatten(self.raw.get(index).await)?)
        }

        /// Python's `array[start:stop]`; see [`ArrayProxy::slice`].
        pub async fn slice(&self, start: Option<i64>, stop: Option<i64>) -> Result<Vec<T>> {
            let items = self.raw.get_slice(start, stop).await?;
            decode(self.raw.base(), Value::List(items))
        }

        /// Every element, in order.
        pub async fn to_vec(&self) -> Result<Vec<T>> {
            decode(self.raw.base(), Value::List(self.raw.to_vec().await?))
        }
    }

    impl<T: Serialize> ArrayAsyncProxy<T> {
        /// Python's `array[index] = value`.
        pub fn set(&self, index: i64, value: &T) -> impl Future<Output = Result<()>> + Send + '_ {
            let value = to_value(value);
            async move { flatten(self.raw.set(index, value?).await) }
        }

        /// Python's `array[start:stop] = values`; see
        /// [`ArrayProxy::set_slice`].
        pub fn set_slice(
            &self,
            start: Option<i64>,
            stop: Option<i64>,
            values: &[T],
        ) -> impl Future<Output = Result<()>> + Send + '_ {
            let values = to_values(values);
            async move { flatten(self.raw.set_slice(start, stop, values?).await) }
        }
    }

    fn to_values<T: Serialize>(values: &[T]) -> Result<Vec<Value>> {
        Ok(values.iter().map(to_value).collect::<Result<_, _>>()?)
    }
}

use typed::ArrayProxy;

pub(crate) fn register(registry: &mut Registry) {
    registry.register::<server::Array>(
        "Array",
        None,
        Some(Constructor::new(|(items,): (Vec<Value>,)| {
            server::Array::new(items)
        })),
    );
}

impl SyncManager {
    /// A new shared `Array` holding `items` (Python's
    /// `manager.Array(typecode, sequence)`; the type parameter plays the
    /// typecode's part). Its length never changes.
    pub fn array<T: Serialize>(&self, items: &[T]) -> Result<ArrayProxy<T>> {
        let items = items
            .iter()
            .map(to_value)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let raw: server::ArrayProxy = self.create("Array", &(items,))?;
        Ok(raw.into())
    }

    /// Async form of [`array`](Self::array).
    pub async fn array_async<T: Serialize>(
        &self,
        items: &[T],
    ) -> Result<typed::ArrayAsyncProxy<T>> {
        let items = items
            .iter()
            .map(to_value)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        self.create_async("Array", &(items,)).await
    }
}
