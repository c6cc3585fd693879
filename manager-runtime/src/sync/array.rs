//! `Array`: a fixed-length shared sequence clients index into (Python's
//! `manager.Array`).
#![forbid(unsafe_code)]

use serde::Serialize;

use super::SyncManager;
use crate::server::{Constructor, Registry};
use crate::value::{to_value, Value};
use crate::Result;

/// Server-side objects of this family.
pub mod server {
    use std::sync::Mutex;

    use crate::sync::held::HeldTokens;
    use crate::sync::lock;
    use crate::value::Value;
    use crate::SyncError;

    /// Python's `manager.Array`, served: a sequence of dynamic values whose
    /// length is fixed when it is made.
    pub struct ManagedArray {
        items: Mutex<Vec<Value>>,
        held: HeldTokens,
    }

    impl ManagedArray {
        /// An array holding `items`.
        pub fn new(items: Vec<Value>) -> Self {
            let held = HeldTokens::new();
            // A constructor cannot fail: a proxy whose object is already
            // gone is kept without keeping anything alive.
            let _ = held.retain_all(&items);
            ManagedArray {
                items: Mutex::new(items),
                held,
            }
        }
    }

    /// Python's index: negative counts from the end.
    pub(in crate::sync) fn position(index: i64, len: usize) -> Option<usize> {
        let len = i64::try_from(len).ok()?;
        let index = if index < 0 { index + len } else { index };
        (0..len).contains(&index).then_some(index as usize)
    }

    /// Python's slice bounds `[start:stop]` (step 1), clamped to the array.
    pub(in crate::sync) fn bounds(
        start: Option<i64>,
        stop: Option<i64>,
        len: usize,
    ) -> (usize, usize) {
        let clamp = |bound: Option<i64>, default: usize| match bound {
            None => default,
            Some(i) if i < 0 => len.saturating_sub(i.unsigned_abs() as usize),
            Some(i) => (i as u64).min(len as u64) as usize,
        };
        let (start, stop) = (clamp(start, 0), clamp(stop, len));
        (start, stop.max(start))
    }

    #[crate::shared(typeid = "Array", typed(T), proxy = "Array")]
    impl ManagedArray {
        /// Python's `len(array)`.
        #[py("__len__")]
        pub fn len(&self) -> usize {
            lock(&self.items).len()
        }

        /// Whether the array has no elements.
        #[py("__len__", outgoing, back = is_zero)]
        pub fn is_empty(&self) -> bool {
            lock(&self.items).is_empty()
        }

        /// Python's `array[index]`; negative indexes count from the end, and
        /// an index out of range is [`SyncError::IndexError`].
        #[py("__getitem__")]
        #[returns(T)]
        pub fn get(&self, index: i64) -> Result<Value, SyncError> {
            let items = lock(&self.items);
            position(index, items.len())
                .map(|i| items[i].clone())
                .ok_or_else(|| SyncError::IndexError("array index out of range".into()))
        }

        /// Python's `array[index] = value`.
        #[py("__setitem__")]
        pub fn set(&self, index: i64, #[of(&T)] value: Value) -> Result<(), SyncError> {
            let out_of_range =
                || SyncError::IndexError("array assignment index out of range".into());
            // The length never changes, so the index stays right.
            let index = position(index, self.len()).ok_or_else(out_of_range)?;
            self.held.retain(&value)?;
            let old = std::mem::replace(&mut lock(&self.items)[index], value);
            self.held.release(&old);
            Ok(())
        }

        /// Python's `array[start:stop]`; `None` is an omitted bound, and
        /// bounds are clamped as Python clamps them.
        #[py("__getitem__", slice)]
        #[returns(Vec<T>)]
        pub fn slice(&self, start: Option<i64>, stop: Option<i64>) -> Vec<Value> {
            let items = lock(&self.items);
            let (start, stop) = bounds(start, stop, items.len());
            items[start..stop].to_vec()
        }

        /// Python's `array[start:stop] = values`. The length of an array is
        /// fixed: `values` must be as long as the slice (ValueError).
        #[py("__setitem__", slice, incoming)]
        pub fn set_slice(
            &self,
            start: Option<i64>,
            stop: Option<i64>,
            #[of(&[T])] values: Value,
        ) -> Result<(), SyncError> {
            let Value::List(values) = values else {
                return Err(SyncError::TypeError(format!(
                    "can only assign a sequence to an array slice, not '{}'",
                    values.type_name()
                )));
            };
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
        #[py("#GETVALUE", incoming)]
        #[py("__getitem__", slice, outgoing)]
        #[returns(Vec<T>)]
        pub fn to_vec(&self) -> Vec<Value> {
            lock(&self.items).clone()
        }
    }
}

/// Typed proxies of this family, generated with the server.
pub mod typed {
    pub use super::server::{ArrayAsyncProxy, ArrayProxy};
}

use typed::ArrayProxy;

pub(crate) fn register(registry: &mut Registry) {
    registry.register::<server::ManagedArray>(
        "Array",
        None,
        Some(Constructor::new(|(items,): (Vec<Value>,)| {
            server::ManagedArray::new(items)
        })),
    );
}

impl SyncManager {
    /// A new shared `Array` holding `items` (Python's
    /// `manager.Array(typecode, sequence)`; the type parameter plays the
    /// typecode's part). Its length never changes: `len`, indexing with
    /// negative indexes, item and slice assignment. Out-of-range indexes
    /// fail with [`SyncError::IndexError`](crate::SyncError::IndexError).
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
    pub fn array<T: Serialize>(&self, items: &[T]) -> Result<ArrayProxy<T>> {
        let items = items
            .iter()
            .map(to_value)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        self.create("Array", &(items,))
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
