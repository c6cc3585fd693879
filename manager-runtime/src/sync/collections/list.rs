//! `list`: Python's list, served.
#![forbid(unsafe_code)]

use crate::value::Value;
use crate::SyncError;

/// Python's index into a sequence of `len` items: negative counts from the
/// end. `None` when out of range.
fn position(index: isize, len: usize) -> Option<usize> {
    let index = if index < 0 {
        index.checked_add_unsigned(len)?
    } else {
        index
    };
    usize::try_from(index).ok().filter(|&i| i < len)
}

/// Where Python's `list.insert` puts an item: out-of-range indices clamp.
fn insertion_point(index: isize, len: usize) -> usize {
    if index < 0 {
        index
            .checked_add_unsigned(len)
            .map_or(0, |i| usize::try_from(i).unwrap_or(0))
    } else {
        usize::try_from(index).unwrap_or(usize::MAX).min(len)
    }
}

/// A slice of a sequence, its bounds adjusted as Python's `slice.indices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slice {
    start: isize,
    stop: isize,
    step: isize,
}

impl Slice {
    /// Adjust `[start:stop:step]` to a sequence of `len` items: negative
    /// bounds count from the end, out-of-range bounds clamp.
    fn new(
        start: Option<isize>,
        stop: Option<isize>,
        step: Option<isize>,
        len: usize,
    ) -> Result<Slice, SyncError> {
        let step = step.unwrap_or(1);
        if step == 0 {
            return Err(SyncError::ValueError("slice step cannot be zero".into()));
        }
        let len = isize::try_from(len).unwrap_or(isize::MAX);
        let (lower, upper) = if step < 0 { (-1, len - 1) } else { (0, len) };
        let adjust = |bound: Option<isize>, default: isize| match bound {
            None => default,
            Some(b) if b < 0 => b.saturating_add(len).max(lower),
            Some(b) => b.min(upper),
        };
        let (start_default, stop_default) = if step < 0 {
            (upper, lower)
        } else {
            (lower, upper)
        };
        Ok(Slice {
            start: adjust(start, start_default),
            stop: adjust(stop, stop_default),
            step,
        })
    }

    /// How many items the slice selects.
    fn len(&self) -> usize {
        let (span, step) = if self.step > 0 {
            (self.stop - self.start, self.step)
        } else {
            (self.start - self.stop, -self.step)
        };
        if span <= 0 {
            0
        } else {
            ((span - 1) / step + 1) as usize
        }
    }

    /// The positions it selects, in its order.
    fn positions(self) -> impl Iterator<Item = usize> {
        (0..self.len()).map(move |k| (self.start + k as isize * self.step) as usize)
    }
}

/// `items * n`; Python's `MemoryError` (as a `ValueError`) when that
/// cannot be addressed.
fn repeated(items: &[Value], n: usize) -> Result<Vec<Value>, SyncError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let len = items
        .len()
        .checked_mul(n)
        .filter(|&len| isize::try_from(len).is_ok())
        .ok_or_else(|| SyncError::ValueError("repeated list is too long".into()))?;
    let mut repeated = Vec::with_capacity(len);
    for _ in 0..n {
        repeated.extend_from_slice(items);
    }
    Ok(repeated)
}

/// Python's `TypeError` for an order comparison of two values.
fn unorderable(a: &Value, b: &Value) -> SyncError {
    SyncError::TypeError(format!(
        "'<' not supported between instances of '{}' and '{}'",
        a.type_name(),
        b.type_name()
    ))
}

/// Sort as Python's `list.sort`: stable, `reverse` keeping equal items in
/// their order, `TypeError` for values without an order between them. On
/// error the items are left in some order, as Python leaves them.
fn py_sort(items: &mut [Value], reverse: bool) -> Result<(), SyncError> {
    let mut error = None;
    if reverse {
        items.reverse();
    }
    // `py_cmp` agrees with the total order wherever it is defined, so
    // falling back to the latter keeps the comparator a total order.
    items.sort_by(|a, b| {
        a.py_cmp(b).unwrap_or_else(|| {
            error.get_or_insert_with(|| unorderable(a, b));
            a.cmp(b)
        })
    });
    if reverse {
        items.reverse();
    }
    error.map_or(Ok(()), Err)
}

/// The server-side list.
pub mod server {
    use std::sync::{Arc, Mutex};

    use super::super::iter::server::RemoteIter;
    use super::super::iter::typed::{IterAsyncProxy, IterProxy};
    use super::super::operand::{elements, Elements};
    use super::{insertion_point, py_sort, repeated, Slice};
    use crate::sync::held::{HeldTokens, Removed};
    use crate::sync::lock;
    use crate::value::Value;
    use crate::SyncError;

    #[derive(Debug, Default)]
    struct ListState {
        items: Vec<Value>,
        held: HeldTokens,
    }

    impl ListState {
        /// The item at Python index `index`, as a position.
        fn position(&self, index: isize) -> Result<usize, SyncError> {
            super::position(index, self.items.len())
                .ok_or_else(|| SyncError::IndexError("list index out of range".into()))
        }

        fn slice(
            &self,
            start: Option<isize>,
            stop: Option<isize>,
            step: Option<isize>,
        ) -> Result<Slice, SyncError> {
            Slice::new(start, stop, step, self.items.len())
        }

        /// Take the items out, giving back what they held.
        fn remove_all(&mut self) {
            for item in std::mem::take(&mut self.items) {
                self.held.release(&item);
            }
        }
    }

    /// Python's `list`, served (typeid `list`): values in order, indexed
    /// from either end. Iterators read it live.
    #[derive(Debug, Default)]
    pub struct List {
        state: Arc<Mutex<ListState>>,
    }

    impl List {
        /// A list of `items` that keeps no proxy's object alive: a list in
        /// Redis, read for one call.
        #[cfg(feature = "redis")]
        pub(in crate::sync) fn scratch(items: Vec<Value>) -> List {
            List {
                state: Arc::new(Mutex::new(ListState {
                    items,
                    held: HeldTokens::inert(),
                })),
            }
        }
    }

    #[crate::shared(typeid = "list", typed(T))]
    impl List {
        /// `len(a)`.
        #[py("__len__")]
        pub fn len(&self) -> usize {
            lock(&self.state).items.len()
        }

        /// `not a`: whether it is empty.
        #[py("__len__", outgoing, back = is_zero)]
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// `a[index]`; negative indices count from the end, and an index
        /// out of range is [`SyncError::IndexError`].
        #[py("__getitem__")]
        #[returns(T)]
        pub fn get(&self, index: isize) -> Result<Value, SyncError> {
            let state = lock(&self.state);
            Ok(state.items[state.position(index)?].clone())
        }

        /// `a[index] = value`.
        #[py("__setitem__")]
        pub fn set(&self, index: isize, #[of(T)] value: Value) -> Result<(), SyncError> {
            let mut state = lock(&self.state);
            let at = state
                .position(index)
                .map_err(|_| SyncError::IndexError("list assignment index out of range".into()))?;
            state.held.retain(&value)?;
            let old = std::mem::replace(&mut state.items[at], value);
            state.held.release(&old);
            Ok(())
        }

        /// `del a[index]`.
        #[py("__delitem__")]
        pub fn del(&self, index: isize) -> Result<(), SyncError> {
            let mut state = lock(&self.state);
            let at = state
                .position(index)
                .map_err(|_| SyncError::IndexError("list assignment index out of range".into()))?;
            let old = state.items.remove(at);
            state.held.release(&old);
            Ok(())
        }

        /// `a[start:stop:step]`, bounds as Python adjusts them (see
        /// [`slice`](ListProxy::slice) for a range).
        #[py("__getitem__", slice)]
        #[returns(Vec<T>)]
        pub fn get_slice(
            &self,
            start: Option<isize>,
            stop: Option<isize>,
            step: Option<isize>,
        ) -> Result<Vec<Value>, SyncError> {
            let state = lock(&self.state);
            let slice = state.slice(start, stop, step)?;
            Ok(slice
                .positions()
                .map(|at| state.items[at].clone())
                .collect())
        }

        /// `a[start:stop:step] = items`: a simple slice is replaced by any
        /// number of items, an extended one (step other than 1) by as many
        /// as it selects (see [`set_slice`](ListProxy::set_slice) for a
        /// range).
        #[py("__setitem__", slice, incoming)]
        pub fn set_slice_step(
            &self,
            start: Option<isize>,
            stop: Option<isize>,
            step: Option<isize>,
            #[of(impl Elements<T>)] items: Value,
        ) -> Result<(), SyncError> {
            let items = elements(items)?;
            let mut state = lock(&self.state);
            let slice = state.slice(start, stop, step)?;
            if slice.step != 1 && slice.len() != items.len() {
                return Err(SyncError::ValueError(format!(
                    "attempt to assign sequence of size {} to extended slice of size {}",
                    items.len(),
                    slice.len()
                )));
            }
            state.held.retain_all(&items)?;
            let old: Vec<Value> = if slice.step == 1 {
                let (start, stop) = (slice.start as usize, slice.stop.max(slice.start) as usize);
                state.items.splice(start..stop, items).collect()
            } else {
                slice
                    .positions()
                    .zip(items)
                    .map(|(at, item)| std::mem::replace(&mut state.items[at], item))
                    .collect()
            };
            old.iter().for_each(|item| state.held.release(item));
            Ok(())
        }

        /// `del a[start:stop:step]` (see [`del_slice`](ListProxy::del_slice)
        /// for a range).
        #[py("__delitem__", slice)]
        pub fn del_slice_step(
            &self,
            start: Option<isize>,
            stop: Option<isize>,
            step: Option<isize>,
        ) -> Result<(), SyncError> {
            let mut state = lock(&self.state);
            let slice = state.slice(start, stop, step)?;
            let mut doomed = vec![false; state.items.len()];
            slice.positions().for_each(|at| doomed[at] = true);
            let (kept, removed) = std::mem::take(&mut state.items)
                .into_iter()
                .zip(doomed)
                .partition::<Vec<_>, _>(|(_, doomed)| !doomed);
            state.items = kept.into_iter().map(|(item, _)| item).collect();
            removed
                .iter()
                .for_each(|(item, _)| state.held.release(item));
            Ok(())
        }

        /// `a + other`: a new plain list, `a` unchanged; `other` may be
        /// another list proxy.
        #[py("__add__")]
        #[returns(Vec<T>)]
        pub fn concat(
            &self,
            #[of(impl Elements<T>)] other: Value,
        ) -> Result<Vec<Value>, SyncError> {
            let other = elements(other)?;
            let mut items = lock(&self.state).items.clone();
            items.extend(other);
            Ok(items)
        }

        /// `a * n`: a new plain list.
        #[py("__mul__", "__rmul__")]
        #[returns(Vec<T>)]
        pub fn repeat(&self, n: usize) -> Result<Vec<Value>, SyncError> {
            repeated(&lock(&self.state).items, n)
        }

        /// `a += other` / `a.extend(other)`: append every element of
        /// `other`.
        #[py("extend")]
        pub fn extend(&self, #[of(impl Elements<T>)] other: Value) -> Result<(), SyncError> {
            let other = elements(other)?;
            let mut state = lock(&self.state);
            state.held.retain_all(&other)?;
            state.items.extend(other);
            Ok(())
        }

        /// `a *= n`: the items repeated `n` times in place (`n == 0`
        /// empties the list).
        #[py("__imul__", reply = nothing)]
        pub fn imul(&self, n: usize) -> Result<(), SyncError> {
            let mut state = lock(&self.state);
            if n == 0 {
                state.remove_all();
                return Ok(());
            }
            let copies = repeated(&state.items, n - 1)?;
            state.held.retain_all(&copies)?;
            state.items.extend(copies);
            Ok(())
        }

        /// `value in a`.
        #[py("__contains__")]
        pub fn contains(&self, #[of(&T)] value: Value) -> bool {
            lock(&self.state).items.contains(&value)
        }

        /// `a.count(value)`.
        #[py("count")]
        pub fn count(&self, #[of(&T)] value: Value) -> usize {
            let state = lock(&self.state);
            state.items.iter().filter(|item| **item == value).count()
        }

        /// `a.index(value, start, stop)`: the first position of `value`
        /// within the slice `[start:stop]`; [`SyncError::ValueError`] if
        /// absent (see [`index`](ListProxy::index)).
        #[py("index")]
        pub fn index_within(
            &self,
            #[of(&T)] value: Value,
            #[py(default = None)] start: Option<isize>,
            #[py(default = None)] stop: Option<isize>,
        ) -> Result<usize, SyncError> {
            let state = lock(&self.state);
            let slice = state.slice(start, stop, None)?;
            slice
                .positions()
                .find(|&at| state.items[at] == value)
                .ok_or_else(|| SyncError::ValueError(format!("{} is not in list", value.repr())))
        }

        /// `a.insert(index, value)`: before `index`; out-of-range indices
        /// insert at either end.
        #[py("insert")]
        pub fn insert(&self, index: isize, #[of(T)] value: Value) -> Result<(), SyncError> {
            let mut state = lock(&self.state);
            state.held.retain(&value)?;
            let at = insertion_point(index, state.items.len());
            state.items.insert(at, value);
            Ok(())
        }

        /// `a.append(value)`.
        #[py("append")]
        pub fn append(&self, #[of(T)] value: Value) -> Result<(), SyncError> {
            let mut state = lock(&self.state);
            state.held.retain(&value)?;
            state.items.push(value);
            Ok(())
        }

        /// `a.pop(index)`: remove and return the item at `index` (the last
        /// by default; see [`pop`](ListProxy::pop)).
        #[py("pop")]
        #[returns(T)]
        pub fn pop_index(
            &self,
            #[py(default = None)] index: Option<isize>,
        ) -> Result<Removed, SyncError> {
            let mut state = lock(&self.state);
            if state.items.is_empty() {
                return Err(SyncError::IndexError("pop from empty list".into()));
            }
            let at = state
                .position(index.unwrap_or(-1))
                .map_err(|_| SyncError::IndexError("pop index out of range".into()))?;
            let item = state.items.remove(at);
            Ok(state.held.release_after_reply(item))
        }

        /// `a.remove(value)`: remove its first occurrence; `ValueError` if
        /// absent.
        #[py("remove")]
        pub fn remove(&self, #[of(&T)] value: Value) -> Result<(), SyncError> {
            let mut state = lock(&self.state);
            let at = state
                .items
                .iter()
                .position(|item| *item == value)
                .ok_or_else(|| SyncError::ValueError("list.remove(x): x not in list".into()))?;
            let item = state.items.remove(at);
            state.held.release(&item);
            Ok(())
        }

        /// `a.reverse()`, in place.
        #[py("reverse")]
        pub fn reverse(&self) {
            lock(&self.state).items.reverse();
        }

        /// `list(reversed(a))`: a new plain list.
        #[py("__reversed__", incoming)]
        #[py("#GETVALUE", outgoing, back = reversed)]
        #[returns(Vec<T>)]
        pub fn reversed(&self) -> Vec<Value> {
            lock(&self.state).items.iter().rev().cloned().collect()
        }

        /// `a.sort(reverse=reverse)`: stable, in place; `TypeError` for
        /// items without an order between them, as Python's order is
        /// used.
        #[py("sort", plan = crate::__private::sort_plan)]
        pub fn sort(&self, #[py(default = false, keyword)] reverse: bool) -> Result<(), SyncError> {
            py_sort(&mut lock(&self.state).items, reverse)
        }

        /// `a.clear()`.
        #[py("__delitem__", slice, outgoing)]
        pub fn clear(&self) {
            lock(&self.state).remove_all();
        }

        /// `a[:]`: every item, as a plain list.
        #[py("#GETVALUE")]
        #[returns(Vec<T>)]
        pub fn to_vec(&self) -> Vec<Value> {
            lock(&self.state).items.clone()
        }

        /// `iter(a)`: an iterator that reads the live list, one item per
        /// call, so it sees writes made after it was created.
        #[proxy]
        #[returns(IterProxy<T>)]
        pub fn iter(&self) -> RemoteIter {
            let state = Arc::clone(&self.state);
            let mut next = 0;
            RemoteIter::from_results(std::iter::from_fn(move || {
                let item = lock(&state).items.get(next).cloned();
                next += 1;
                item.map(Ok)
            }))
        }

        /// `repr(a)`: Python's form, `[1, 'a']`; a nested proxy prints as
        /// its token, so a list that contains itself prints finitely.
        #[py("__repr__", "__str__")]
        pub fn repr(&self) -> String {
            Value::List(lock(&self.state).items.clone()).repr()
        }
    }
}

/// The typed list proxy: generated with the server (see
/// [`List`](server::List)), and the methods that take Rust ranges.
pub mod typed {
    use std::borrow::Borrow;
    use std::ops::{Bound, RangeBounds};

    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use super::super::operand::Elements;
    pub use super::server::{ListAsyncProxy, ListProxy};
    use crate::sync::typed::dual_proxy;
    use crate::sync::SyncManager;
    use crate::value::Value;
    use crate::Result;

    /// Python's `[start:stop]` bounds of a Rust range of indices; negative
    /// indices count from the end (`-3..` is the last three, `..=-1`
    /// everything).
    fn bounds(range: impl RangeBounds<isize>) -> (Option<isize>, Option<isize>) {
        let start = match range.start_bound() {
            Bound::Included(&s) => Some(s),
            Bound::Excluded(&s) => Some(s.saturating_add(1)),
            Bound::Unbounded => None,
        };
        let stop = match range.end_bound() {
            Bound::Included(&-1) | Bound::Unbounded => None,
            Bound::Included(&e) => Some(e.saturating_add(1)),
            Bound::Excluded(&e) => Some(e),
        };
        (start, stop)
    }

    dual_proxy! {
        impl<T> ListProxy, ListAsyncProxy
        where [T: Serialize + DeserializeOwned]
        {
            /// `a[start:stop]` for the range `start..stop`, as Python bounds a
            /// slice: out-of-range bounds clamp, negative ones count from the
            /// end (`a.slice(2..5)`, `a.slice(-2..)`, `a.slice(..)`).
            pub fn slice(&self, range: impl RangeBounds<isize>) -> Result<Vec<T>> {
                let (start, stop) = bounds(range);
                wait!(self.get_slice(start, stop, None))
            }

            /// `a[start:stop:step]`; a negative step walks backwards
            /// (`a.slice_step(.., -1)` is the list reversed).
            pub fn slice_step(&self, range: impl RangeBounds<isize>, step: isize) -> Result<Vec<T>> {
                let (start, stop) = bounds(range);
                wait!(self.get_slice(start, stop, Some(step)))
            }

            /// `a[start:stop] = items`: the slice is replaced by any number of
            /// items.
            pub fn set_slice(
                &self,
                range: impl RangeBounds<isize>,
                items: impl Elements<T>,
            ) -> Result<()> {
                let (start, stop) = bounds(range);
                wait!(self.set_slice_step(start, stop, None, items))
            }

            /// `del a[start:stop]`.
            pub fn del_slice(&self, range: impl RangeBounds<isize>) -> Result<()> {
                let (start, stop) = bounds(range);
                wait!(self.del_slice_step(start, stop, None))
            }

            /// `a.index(value)`: its first position;
            /// [`SyncError::ValueError`](crate::SyncError::ValueError) if absent.
            pub fn index<Q>(&self, value: &Q) -> Result<usize>
            where [T: Borrow<Q>, Q: Serialize + ?Sized]
            {
                wait!(self.index_within(value, None, None))
            }

            /// `a.index(value, start, stop)`: its first position in the range.
            pub fn index_in<Q>(&self, value: &Q, range: impl RangeBounds<isize>) -> Result<usize>
            where [T: Borrow<Q>, Q: Serialize + ?Sized]
            {
                let (start, stop) = bounds(range);
                wait!(self.index_within(value, start, stop))
            }

            /// `a.pop()`: remove and return the last item.
            pub fn pop(&self) -> Result<T> {
                wait!(self.pop_index(None))
            }

            /// `a.pop(index)`.
            pub fn pop_at(&self, index: isize) -> Result<T> {
                wait!(self.pop_index(Some(index)))
            }
        }
    }

    impl SyncManager {
        /// A new shared `list`, empty (Python's `manager.list()`): every
        /// method of its [`ListProxy`] is one call to the server. Indices
        /// are `isize` and count from the end when negative; an index out
        /// of range fails with
        /// [`SyncError::IndexError`](crate::SyncError::IndexError).
        ///
        /// ```
        /// # fn main() -> manager_runtime::Result<()> {
        /// let manager = manager_runtime::sync::SyncManager::new();
        /// manager.start_in_thread()?;
        /// let a = manager.list_from([3, 1, 2])?;
        /// a.append(0)?;
        /// a.sort(false)?;
        /// assert_eq!(a.get(-1)?, 3);
        /// assert_eq!(a.slice(1..3)?, [1, 2]);
        /// # Ok(()) }
        /// ```
        pub fn list<T>(&self) -> Result<ListProxy<T>> {
            self.create("list", &(None::<Value>,))
        }

        /// A new shared `list` holding `items` (Python's
        /// `manager.list(items)`): any collection, or a list, set or dict
        /// proxy of this manager (read in the server). One call: an item
        /// that cannot be stored fails it with its typed error.
        pub fn list_from<T>(&self, items: impl Elements<T>) -> Result<ListProxy<T>>
        where
            T: Serialize + DeserializeOwned,
        {
            self.create_filled("list", items)
        }

        /// Async form of [`list`](Self::list).
        pub async fn list_async<T>(&self) -> Result<ListAsyncProxy<T>> {
            self.create_async("list", &(None::<Value>,)).await
        }

        /// Async form of [`list_from`](Self::list_from).
        pub async fn list_from_async<T>(&self, items: impl Elements<T>) -> Result<ListAsyncProxy<T>>
        where
            T: Serialize + DeserializeOwned,
        {
            self.create_filled_async("list", items).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(
        start: Option<isize>,
        stop: Option<isize>,
        step: Option<isize>,
        len: usize,
    ) -> Vec<usize> {
        Slice::new(start, stop, step, len)
            .unwrap()
            .positions()
            .collect()
    }

    #[test]
    fn slices_bound_as_python() {
        assert_eq!(slice(Some(2), Some(5), None, 10), [2, 3, 4]);
        assert_eq!(slice(Some(2), Some(10), None, 5), [2, 3, 4]);
        assert_eq!(slice(Some(-2), None, None, 5), [3, 4]);
        assert_eq!(slice(Some(-10), Some(2), None, 5), [0, 1]);
        assert_eq!(slice(Some(4), Some(2), None, 5), Vec::<usize>::new());
        assert_eq!(slice(None, None, Some(2), 5), [0, 2, 4]);
        assert_eq!(slice(None, None, Some(-1), 4), [3, 2, 1, 0]);
        assert_eq!(slice(Some(-1), Some(-3), Some(-1), 5), [4, 3]);
        assert_eq!(slice(Some(10), None, Some(-2), 5), [4, 2, 0]);
        assert_eq!(slice(None, None, None, 0), Vec::<usize>::new());
        assert!(Slice::new(None, None, Some(0), 3).is_err());
    }

    #[test]
    fn indices_count_from_either_end() {
        assert_eq!(position(0, 3), Some(0));
        assert_eq!(position(-1, 3), Some(2));
        assert_eq!(position(-3, 3), Some(0));
        assert_eq!(position(-4, 3), None);
        assert_eq!(position(3, 3), None);
        assert_eq!(position(isize::MIN, 3), None);
        assert_eq!(insertion_point(-100, 3), 0);
        assert_eq!(insertion_point(100, 3), 3);
        assert_eq!(insertion_point(-1, 3), 2);
    }

    #[test]
    fn sort_is_pythons() {
        let mut items = vec![Value::from(3), Value::Float(1.5), Value::Bool(true)];
        py_sort(&mut items, false).unwrap();
        assert_eq!(
            items,
            [Value::Bool(true), Value::Float(1.5), Value::from(3)]
        );
        // Stable in reverse: equal 1 and True keep their order.
        let mut items = vec![Value::from(1), Value::from(2), Value::Bool(true)];
        py_sort(&mut items, true).unwrap();
        assert!(matches!(
            items[..],
            [Value::Int(2), Value::Int(1), Value::Bool(true)]
        ));
        let mut items = vec![Value::from(1), Value::from("a")];
        assert!(
            matches!(py_sort(&mut items, false), Err(SyncError::TypeError(m)) if m.contains("'str' and 'int'") || m.contains("'int' and 'str'"))
        );
    }
}
