//! Python's shared ctypes: `Value` and `Array` in shared memory, with a
//! process-shared lock (`lock=True`, the default: a new [`RLock`]), a
//! supplied [`Lock`] or [`RLock`], or none ([`RawValue`], [`RawArray`]).
//!
//! The element type is [`Pod`]: plain numbers, arrays of them, and
//! `#[repr(C)]` structs of them (`#[derive(Pod)]`), the Rust counterpart of
//! a typecode or a ctypes structure; anything holding a pointer does not
//! compile. The bytes live in a memfd region every process given the value
//! maps. Access copies values in and out through raw pointers (no Rust
//! reference ever points into memory another process may write); with the
//! lock held, a read-modify-write is exact, without it (the raw kinds) it
//! may lose updates as Python's does.

use std::marker::PhantomData;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::lock::{LockGuard, RLock, SharedLock};
use super::shm::Region;
use crate::error::{Error, Result, SyncError};

/// A type that can live in shared memory: plain data, every bit pattern a
/// valid value, no pointers (Python's typecodes and ctypes structures).
///
/// Implemented for the integers, `f32`, `f64` and arrays of `Pod`; derive
/// it for a `#[repr(C)]` struct whose fields are all `Pod`:
///
/// ```
/// # extern crate manager_runtime as managers;
/// # use managers::process::Pod;
/// #[derive(Clone, Copy, Pod)]
/// #[repr(C)]
/// struct Point {
///     x: f64,
///     y: f64,
/// }
/// ```
///
/// # Safety
/// Every bit pattern of the type's size must be a valid value, every byte
/// of it must be part of a field (no padding, which is uninitialized), and
/// it must hold no pointer, reference or handle whose meaning is local to
/// one process. The derive checks all three at compile time (field by
/// field, and the struct's size against its fields').
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot live in shared memory",
    label = "not plain data (`Pod`)",
    note = "shared memory holds numbers, arrays of them and #[derive(Pod)] #[repr(C)] structs of them; pointers, references and heap data mean nothing in another process"
)]
pub unsafe trait Pod: Copy + 'static {}

macro_rules! pod {
    ($($t:ty),*) => {$(
        // SAFETY: every bit pattern is a valid number; no pointer.
        unsafe impl Pod for $t {}
    )*};
}
pod!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64);

// SAFETY: an array of plain data is plain data.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

/// What `#[derive(Pod)]` asserts of each field's type.
pub fn assert_pod<T: Pod>() {}

/// What errors call the memory of a shared value or array.
const WHAT: &str = "a shared Value or Array";

/// `len` elements of `T` in a region: the memory under every kind.
struct Cells<T> {
    region: Region,
    len: usize,
    _type: PhantomData<T>,
}

impl<T: Pod> Cells<T> {
    fn bytes(len: usize) -> Result<usize> {
        len.checked_mul(std::mem::size_of::<T>())
            .map(|n| n.max(1))
            .ok_or_else(|| Error::ProcessStart(format!("{len} elements do not fit in memory")))
    }

    fn zeroed(len: usize) -> Result<Self> {
        Ok(Cells {
            region: Region::new(Self::bytes(len)?)?.named(WHAT),
            len,
            _type: PhantomData,
        })
    }

    fn from_slice(items: &[T]) -> Result<Self> {
        let cells = Self::zeroed(items.len())?;
        cells.write_slice(0, items);
        Ok(cells)
    }

    fn from_region(region: Region, len: usize) -> Result<Self> {
        let region = region.named(WHAT);
        if region.len() < Self::bytes(len)? {
            return Err(Error::ProcessStart(
                "the shared memory passed is smaller than its elements".into(),
            ));
        }
        Ok(Cells {
            region,
            len,
            _type: PhantomData,
        })
    }

    fn ptr(&self) -> *mut T {
        self.region.ptr() as *mut T
    }

    fn read(&self, i: usize) -> T {
        assert!(i < self.len);
        let mut out = std::mem::MaybeUninit::<T>::uninit();
        // SAFETY: element `i` is in bounds of the mapping, which lives as
        // long as `self`; `out` is local memory of one `T`.
        unsafe {
            copy_elements::<T>(
                self.ptr().add(i) as *const u8,
                out.as_mut_ptr() as *mut u8,
                1,
                Way::In,
            )
        };
        // SAFETY: every byte of `out` was written, and any bytes are a
        // valid `T` (`Pod`).
        unsafe { out.assume_init() }
    }

    fn write(&self, i: usize, value: T) {
        assert!(i < self.len);
        // SAFETY: as in `read`; `value` is local.
        unsafe {
            copy_elements::<T>(
                &value as *const T as *const u8,
                self.ptr().add(i) as *mut u8,
                1,
                Way::Out,
            )
        }
    }

    fn read_slice(&self, range: Range<usize>) -> Vec<T> {
        assert!(range.start <= range.end && range.end <= self.len);
        let mut out = Vec::with_capacity(range.len());
        // SAFETY: the range is in bounds of the mapping; the copy goes to
        // `out`'s fresh capacity, whose length is set only once every byte
        // of it is written (any bytes being valid `T`s, `Pod`).
        unsafe {
            copy_elements::<T>(
                self.ptr().add(range.start) as *const u8,
                out.as_mut_ptr() as *mut u8,
                range.len(),
                Way::In,
            );
            out.set_len(range.len());
        }
        out
    }

    fn write_slice(&self, start: usize, items: &[T]) {
        assert!(start + items.len() <= self.len);
        // SAFETY: in bounds of the mapping; `items` is local memory.
        unsafe {
            copy_elements::<T>(
                items.as_ptr() as *const u8,
                self.ptr().add(start) as *mut u8,
                items.len(),
                Way::Out,
            )
        }
    }
}

/// Which side of a copy is the shared memory.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    /// From shared memory into local memory.
    In,
    /// From local memory into shared memory.
    Out,
}

/// Copy `count` elements of `T` between local memory and shared memory,
/// every access to shared memory a relaxed atomic load or store: another
/// thread of this process may read or write the same cells at the same
/// time (the raw kinds have no lock), which would be a data race, and
/// undefined behaviour, with plain or volatile accesses.
///
/// Each element is moved as words of `min(align_of::<T>(), 8)` bytes, the
/// same for every access to it (one element or a slice), so atomic
/// accesses to a byte never differ in size or alignment. A wider `T` may
/// be seen half-written (torn), never undefined.
///
/// # Safety
/// The shared side (`src` for [`Way::In`], `dst` for [`Way::Out`]) must
/// be the start of `count` elements of `T` in a live mapping, aligned for
/// `T`, only ever accessed through this function; the local side must be
/// valid for `count * size_of::<T>()` bytes (read for `Out`, written for
/// `In`) and need not be aligned.
unsafe fn copy_elements<T>(src: *const u8, dst: *mut u8, count: usize, way: Way) {
    use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
    let word = std::mem::align_of::<T>().min(8);
    let bytes = count * std::mem::size_of::<T>();
    let mut at = 0;
    while at < bytes {
        let (from, to) = (src.wrapping_add(at), dst.wrapping_add(at));
        // SAFETY: `at` is a multiple of `word`, which divides `T`'s
        // alignment, so the shared side's address is aligned for a word;
        // both sides hold `word` more bytes (`bytes` is a multiple of
        // `word`, as `T`'s size is of its alignment). The shared memory is
        // only ever accessed atomically with these very sizes (see above).
        unsafe {
            match (word, way) {
                (8, Way::In) => (to as *mut u64)
                    .write_unaligned(AtomicU64::from_ptr(from as *mut u64).load(Relaxed)),
                (8, Way::Out) => AtomicU64::from_ptr(to as *mut u64)
                    .store((from as *const u64).read_unaligned(), Relaxed),
                (4, Way::In) => (to as *mut u32)
                    .write_unaligned(AtomicU32::from_ptr(from as *mut u32).load(Relaxed)),
                (4, Way::Out) => AtomicU32::from_ptr(to as *mut u32)
                    .store((from as *const u32).read_unaligned(), Relaxed),
                (2, Way::In) => (to as *mut u16)
                    .write_unaligned(AtomicU16::from_ptr(from as *mut u16).load(Relaxed)),
                (2, Way::Out) => AtomicU16::from_ptr(to as *mut u16)
                    .store((from as *const u16).read_unaligned(), Relaxed),
                (_, Way::In) => to.write(AtomicU8::from_ptr(from as *mut u8).load(Relaxed)),
                (_, Way::Out) => AtomicU8::from_ptr(to).store(from.read(), Relaxed),
            }
        }
        at += word;
    }
}

/// Python's index: negative counts from the end; out of range is
/// IndexError.
fn index(len: usize, i: i64) -> Result<usize> {
    let resolved = if i < 0 { len as i64 + i } else { i };
    if (0..len as i64).contains(&resolved) {
        Ok(resolved as usize)
    } else {
        Err(SyncError::IndexError(format!("index {i} out of range for length {len}")).into())
    }
}

/// Python's slice bounds `[start:stop]`, clamped as Python clamps them.
fn bounds(len: usize, start: Option<i64>, stop: Option<i64>) -> Range<usize> {
    let clamp = |i: i64| -> usize {
        let i = if i < 0 { len as i64 + i } else { i };
        i.clamp(0, len as i64) as usize
    };
    let start = start.map_or(0, clamp);
    let stop = stop.map_or(len, clamp);
    start..stop.max(start)
}

fn same_size(expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(SyncError::ValueError(format!(
            "can only assign a sequence of the same size ({expected}), not {got} elements"
        ))
        .into())
    }
}

/// How a shared kind crosses to a child: its region, length and lock.
#[derive(Serialize, Deserialize)]
struct Wire {
    region: Region,
    len: usize,
    lock: Option<SharedLock>,
}

/// Python's `multiprocessing.Value(typecode, value)`: one `T` in shared
/// memory with a process-shared lock. Clones share it; pass it in a
/// [`Process`](super::Process)'s arguments and the child shares it too.
///
/// ```
/// # extern crate manager_runtime as managers;
/// use managers::process::SharedValue;
///
/// let counter = SharedValue::new(0i64)?;
/// {
///     let held = counter.lock()?; // `with counter.get_lock():`
///     held.set(held.get() + 1);   // `counter.value += 1`
/// }
/// assert_eq!(counter.value()?, 1);
/// # Ok::<(), managers::Error>(())
/// ```
pub struct SharedValue<T> {
    cells: std::sync::Arc<Cells<T>>,
    lock: SharedLock,
}

impl<T: Pod> SharedValue<T> {
    /// `value` in shared memory with a new recursive lock (`lock=True`).
    pub fn new(value: T) -> Result<Self> {
        Self::with_lock(value, RLock::new()?)
    }

    /// `value` in shared memory guarded by `lock` (Python's
    /// `Value(typecode, value, lock=lock)`).
    pub fn with_lock(value: T, lock: impl Into<SharedLock>) -> Result<Self> {
        Ok(SharedValue {
            cells: std::sync::Arc::new(Cells::from_slice(&[value])?),
            lock: lock.into(),
        })
    }

    /// The lock (Python's `get_lock()`).
    pub fn get_lock(&self) -> &SharedLock {
        &self.lock
    }

    /// Read it, under the lock (Python's `.value`).
    pub fn value(&self) -> Result<T> {
        let _held = self.lock.guard()?;
        Ok(self.cells.read(0))
    }

    /// Write it, under the lock (Python's `.value = v`).
    pub fn set_value(&self, value: T) -> Result<()> {
        let _held = self.lock.guard()?;
        self.cells.write(0, value);
        Ok(())
    }

    /// Replace it by `f(it)` under the lock, in one hold; the new value.
    pub fn update(&self, f: impl FnOnce(T) -> T) -> Result<T> {
        let _held = self.lock.guard()?;
        let new = f(self.cells.read(0));
        self.cells.write(0, new);
        Ok(new)
    }

    /// Hold the lock and read and write through the guard.
    pub fn lock(&self) -> Result<ValueGuard<'_, T>> {
        Ok(ValueGuard {
            cells: &self.cells,
            _held: self.lock.guard()?,
        })
    }
}

/// A [`SharedValue`] with its lock held: `get` and `set` without taking it again.
pub struct ValueGuard<'a, T> {
    cells: &'a Cells<T>,
    _held: LockGuard<'a>,
}

impl<T: Pod> ValueGuard<'_, T> {
    /// The value.
    pub fn get(&self) -> T {
        self.cells.read(0)
    }

    /// Write the value.
    pub fn set(&self, value: T) {
        self.cells.write(0, value)
    }
}

/// Python's `RawValue` (or `Value(..., lock=False)`): one `T` in shared
/// memory without a lock, not process-safe as Python says: concurrent
/// read-modify-writes lose updates, and a type wider than its alignment
/// (or 8 bytes) may be read half-written. Never undefined behaviour, even
/// between threads of one process: each word is read and written with a
/// relaxed atomic access.
pub struct RawValue<T> {
    cells: std::sync::Arc<Cells<T>>,
}

impl<T: Pod> RawValue<T> {
    /// `value` in shared memory.
    pub fn new(value: T) -> Result<Self> {
        Ok(RawValue {
            cells: std::sync::Arc::new(Cells::from_slice(&[value])?),
        })
    }

    /// Read it.
    pub fn value(&self) -> T {
        self.cells.read(0)
    }

    /// Write it.
    pub fn set_value(&self, value: T) {
        self.cells.write(0, value)
    }
}

/// The element access of [`SharedArray`], its guard and [`RawArray`].
macro_rules! elements {
    () => {
        /// How many elements.
        pub fn len(&self) -> usize {
            self.cells.len
        }

        /// Whether it has none.
        pub fn is_empty(&self) -> bool {
            self.cells.len == 0
        }
    };
    (checked $($lock:ident)?) => {
        /// Element `i` (negative counts from the end); IndexError out of
        /// range.
        pub fn get(&self, i: i64) -> Result<T> {
            $(let _held = self.$lock.guard()?;)?
            Ok(self.cells.read(index(self.cells.len, i)?))
        }

        /// Set element `i`.
        pub fn set(&self, i: i64, value: T) -> Result<()> {
            $(let _held = self.$lock.guard()?;)?
            self.cells.write(index(self.cells.len, i)?, value);
            Ok(())
        }

        /// `array[start:stop]`, bounds as Python clamps them.
        pub fn get_slice(&self, start: Option<i64>, stop: Option<i64>) -> Result<Vec<T>> {
            $(let _held = self.$lock.guard()?;)?
            Ok(self.cells.read_slice(bounds(self.cells.len, start, stop)))
        }

        /// `array[start:stop] = values`: as many values as the slice has
        /// elements (ValueError otherwise).
        pub fn set_slice(&self, start: Option<i64>, stop: Option<i64>, values: &[T]) -> Result<()> {
            $(let _held = self.$lock.guard()?;)?
            let range = bounds(self.cells.len, start, stop);
            same_size(range.len(), values.len())?;
            self.cells.write_slice(range.start, values);
            Ok(())
        }

        /// Every element.
        pub fn to_vec(&self) -> Result<Vec<T>> {
            $(let _held = self.$lock.guard()?;)?
            Ok(self.cells.read_slice(0..self.cells.len))
        }
    };
}

/// The byte-string view of a `char` array (Python's `Array('c', ...)`).
macro_rules! bytes {
    ($($lock:ident)?) => {
        /// The bytes up to the first NUL (Python's `.value`).
        pub fn value(&self) -> Result<Vec<u8>> {
            $(let _held = self.$lock.guard()?;)?
            let mut bytes = self.cells.read_slice(0..self.cells.len);
            if let Some(nul) = bytes.iter().position(|&b| b == 0) {
                bytes.truncate(nul);
            }
            Ok(bytes)
        }

        /// Store `bytes`, NUL-terminated if shorter than the array (Python's
        /// `.value = b'...'`); ValueError if longer.
        pub fn set_value(&self, bytes: &[u8]) -> Result<()> {
            $(let _held = self.$lock.guard()?;)?
            if bytes.len() > self.cells.len {
                return Err(SyncError::ValueError(format!(
                    "{} bytes do not fit in {}",
                    bytes.len(),
                    self.cells.len
                ))
                .into());
            }
            self.cells.write_slice(0, bytes);
            if bytes.len() < self.cells.len {
                self.cells.write(bytes.len(), 0);
            }
            Ok(())
        }

        /// Every byte (Python's `.raw`).
        pub fn raw(&self) -> Result<Vec<u8>> {
            self.to_vec()
        }

        /// Store `bytes` from the start (Python's `.raw = b'...'`).
        pub fn set_raw(&self, bytes: &[u8]) -> Result<()> {
            if bytes.len() > self.cells.len {
                return Err(SyncError::ValueError(format!(
                    "{} bytes do not fit in {}",
                    bytes.len(),
                    self.cells.len
                ))
                .into());
            }
            $(let _held = self.$lock.guard()?;)?
            self.cells.write_slice(0, bytes);
            Ok(())
        }
    };
}

/// Python's `multiprocessing.Array(typecode, size_or_initializer)`: `len`
/// elements of `T` in shared memory with a process-shared lock. Every
/// access takes the lock; [`lock`](Self::lock) holds it across several.
///
/// ```
/// # extern crate manager_runtime as managers;
/// use managers::process::SharedArray;
///
/// let arr = SharedArray::from_slice(&[1i32, 2, 3, 4, 5])?;
/// arr.set(-1, 50)?;
/// arr.set_slice(Some(1), Some(3), &[20, 30])?;
/// assert_eq!(arr.to_vec()?, [1, 20, 30, 4, 50]);
/// assert_eq!(arr.get_slice(Some(-2), None)?, [4, 50]);
/// # Ok::<(), managers::Error>(())
/// ```
pub struct SharedArray<T> {
    cells: std::sync::Arc<Cells<T>>,
    lock: SharedLock,
}

impl<T: Pod> SharedArray<T> {
    /// `len` zeroed elements with a new recursive lock (Python's
    /// `Array(typecode, size)`).
    pub fn zeroed(len: usize) -> Result<Self> {
        Ok(SharedArray {
            cells: std::sync::Arc::new(Cells::zeroed(len)?),
            lock: RLock::new()?.into(),
        })
    }

    /// A copy of `items` with a new recursive lock (Python's
    /// `Array(typecode, sequence)`).
    pub fn from_slice(items: &[T]) -> Result<Self> {
        Self::with_lock(items, RLock::new()?)
    }

    /// A copy of `items` guarded by `lock`.
    pub fn with_lock(items: &[T], lock: impl Into<SharedLock>) -> Result<Self> {
        Ok(SharedArray {
            cells: std::sync::Arc::new(Cells::from_slice(items)?),
            lock: lock.into(),
        })
    }

    /// The lock (Python's `get_lock()`).
    pub fn get_lock(&self) -> &SharedLock {
        &self.lock
    }

    /// Hold the lock and access the elements through the guard.
    pub fn lock(&self) -> Result<ArrayGuard<'_, T>> {
        Ok(ArrayGuard {
            cells: &self.cells,
            _held: self.lock.guard()?,
        })
    }

    elements!();
    elements!(checked lock);
}

impl SharedArray<u8> {
    bytes!(lock);
}

/// An [`SharedArray`] with its lock held.
pub struct ArrayGuard<'a, T> {
    cells: &'a Cells<T>,
    _held: LockGuard<'a>,
}

impl<T: Pod> ArrayGuard<'_, T> {
    elements!();
    elements!(checked);
}

/// Python's `RawArray` (or `Array(..., lock=False)`): elements in shared
/// memory without a lock; as for [`RawValue`], not process-safe for
/// read-modify-write.
pub struct RawArray<T> {
    cells: std::sync::Arc<Cells<T>>,
}

impl<T: Pod> RawArray<T> {
    /// `len` zeroed elements.
    pub fn zeroed(len: usize) -> Result<Self> {
        Ok(RawArray {
            cells: std::sync::Arc::new(Cells::zeroed(len)?),
        })
    }

    /// A copy of `items`.
    pub fn from_slice(items: &[T]) -> Result<Self> {
        Ok(RawArray {
            cells: std::sync::Arc::new(Cells::from_slice(items)?),
        })
    }

    elements!();
    elements!(checked);
}

impl RawArray<u8> {
    bytes!();
}

/// Clone, serde (as a process's argument) and Debug of each kind; `lock`
/// for the kinds that have one.
macro_rules! shared_kind {
    ($name:ident $(, $lock:ident)?) => {
        impl<T> Clone for $name<T> {
            /// The same shared memory (and lock).
            fn clone(&self) -> Self {
                $name {
                    cells: std::sync::Arc::clone(&self.cells),
                    $($lock: self.$lock.clone(),)?
                }
            }
        }

        impl<T: Pod> Serialize for $name<T> {
            /// As a process's argument only: the memory (and its lock)
            /// cross the lifeline.
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                #[derive(Serialize)]
                struct Borrowed<'a> {
                    region: &'a Region,
                    len: usize,
                    lock: Option<&'a SharedLock>,
                }
                Borrowed {
                    region: &self.cells.region,
                    len: self.cells.len,
                    lock: [$(&self.$lock)?].first().copied(),
                }
                .serialize(serializer)
            }
        }

        impl<'de, T: Pod> Deserialize<'de> for $name<T> {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
                let wire = Wire::deserialize(deserializer)?;
                let cells = Cells::from_region(wire.region, wire.len).map_err(crate::error::de_error)?;
                Ok($name {
                    cells: std::sync::Arc::new(cells),
                    $($lock: wire.lock.ok_or_else(|| {
                        crate::error::de_error(concat!("a ", stringify!($name), " comes with its lock"))
                    })?,)?
                })
            }
        }

        impl<T> std::fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!("<", stringify!($name), " of {} {}>"), self.cells.len, std::any::type_name::<T>())
            }
        }
    };
}

shared_kind!(SharedValue, lock);
shared_kind!(SharedArray, lock);
shared_kind!(RawValue);
shared_kind!(RawArray);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_each_kind_read_back() {
        assert_eq!(SharedValue::new(5i32).unwrap().value().unwrap(), 5);
        assert_eq!(SharedValue::new(1.25f64).unwrap().value().unwrap(), 1.25);
        assert_eq!(SharedValue::new(-1i16).unwrap().value().unwrap(), -1);
        assert_eq!(SharedValue::new(b'x').unwrap().value().unwrap(), b'x');
        let raw = RawValue::new([1u32, 2, 3]).unwrap();
        raw.set_value([4, 5, 6]);
        assert_eq!(raw.value(), [4, 5, 6]);
    }

    #[test]
    fn raw_kinds_racing_between_threads_see_whole_words() {
        // Issue 17: two threads of one process racing on a RawValue were a
        // data race (volatile accesses through `&self`). Now every word is
        // an atomic access: a read may mix words of different writes of a
        // wide value (Python's "not process-safe"), never anything else.
        let value = RawValue::new([0u64; 4]).unwrap();
        let array = RawArray::<u32>::zeroed(64).unwrap();
        std::thread::scope(|s| {
            for writer in 1..=2u64 {
                let (value, array) = (value.clone(), array.clone());
                s.spawn(move || {
                    for round in 0..20_000u64 {
                        let word = writer << 32 | round;
                        value.set_value([word; 4]);
                        array.set((round % 64) as i64, writer as u32).unwrap();
                    }
                });
            }
            let (value, array) = (value.clone(), array.clone());
            s.spawn(move || {
                for _ in 0..20_000 {
                    for word in value.value() {
                        assert!(word == 0 || matches!(word >> 32, 1 | 2), "{word:#x}");
                    }
                    for cell in array.to_vec().unwrap() {
                        assert!(cell <= 2, "{cell}");
                    }
                }
            });
        });
        assert!(value.value().iter().all(|w| w >> 32 == 1 || w >> 32 == 2));
    }

    #[test]
    fn elements_are_copied_whole_whatever_their_layout() {
        #[derive(Clone, Copy, Debug, PartialEq)]
        #[repr(C)]
        struct Odd {
            a: [u8; 3],
        }
        // SAFETY: three bytes, every pattern valid, no padding.
        unsafe impl Pod for Odd {}
        let odd = RawArray::from_slice(&[Odd { a: [1, 2, 3] }, Odd { a: [4, 5, 6] }]).unwrap();
        assert_eq!(odd.get(1).unwrap(), Odd { a: [4, 5, 6] });
        let wide = RawValue::new(u128::MAX - 7).unwrap();
        assert_eq!(wide.value(), u128::MAX - 7);
        let shorts = RawArray::from_slice(&[1u16, 2, 3]).unwrap();
        shorts.set_slice(Some(1), None, &[20, 30]).unwrap();
        assert_eq!(shorts.to_vec().unwrap(), [1, 20, 30]);
    }

    #[test]
    fn locked_increments_from_threads_are_exact() {
        let counter = SharedValue::new(0u64).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        let held = counter.lock().unwrap();
                        held.set(held.get() + 1);
                    }
                });
            }
        });
        assert_eq!(counter.value().unwrap(), 4000);
        // Python's `with v.get_lock(): v.value += 1`: the RLock is re-entrant.
        let _outer = counter.get_lock().guard().unwrap();
        assert_eq!(counter.update(|v| v + 1).unwrap(), 4001);
    }

    #[test]
    fn arrays_index_and_slice_as_python() {
        let arr = SharedArray::<i32>::zeroed(10).unwrap();
        assert_eq!(arr.to_vec().unwrap(), [0; 10]);
        let arr = SharedArray::from_slice(&(0..10).collect::<Vec<i32>>()).unwrap();
        assert_eq!(arr.len(), 10);
        assert_eq!(arr.get(-1).unwrap(), 9);
        assert!(matches!(
            arr.get(10),
            Err(Error::Sync(SyncError::IndexError(_)))
        ));
        assert!(matches!(
            arr.set(-11, 0),
            Err(Error::Sync(SyncError::IndexError(_)))
        ));
        assert_eq!(arr.get_slice(Some(2), Some(5)).unwrap(), [2, 3, 4]);
        assert_eq!(arr.get_slice(Some(-3), Some(100)).unwrap(), [7, 8, 9]);
        assert_eq!(arr.get_slice(Some(5), Some(2)).unwrap(), Vec::<i32>::new());
        arr.set_slice(Some(2), Some(5), &[20, 30, 40]).unwrap();
        assert!(matches!(
            arr.set_slice(Some(2), Some(5), &[1]),
            Err(Error::Sync(SyncError::ValueError(_)))
        ));
        assert_eq!(arr.get_slice(None, Some(6)).unwrap(), [0, 1, 20, 30, 40, 5]);
        let held = arr.lock().unwrap();
        held.set(0, -1).unwrap();
        assert_eq!(held.get(0).unwrap(), -1);
    }

    #[test]
    fn char_arrays_have_value_and_raw() {
        let arr = SharedArray::from_slice(b"hello\0world").unwrap();
        assert_eq!(arr.value().unwrap(), b"hello");
        assert_eq!(arr.raw().unwrap(), b"hello\0world");
        arr.set_value(b"hi").unwrap();
        assert_eq!(arr.value().unwrap(), b"hi");
        assert_eq!(arr.raw().unwrap(), b"hi\0lo\0world");
        assert!(arr.set_value(&[1; 12]).is_err());
        let raw = RawArray::<u8>::zeroed(4).unwrap();
        raw.set_raw(b"abcd").unwrap();
        assert_eq!(raw.value().unwrap(), b"abcd");
    }

    #[test]
    fn a_supplied_lock_is_the_one_get_lock_returns() {
        let lock = super::super::Lock::new().unwrap();
        let value = SharedValue::with_lock(3u8, lock.clone()).unwrap();
        match value.get_lock() {
            SharedLock::Lock(_) => {}
            other => panic!("{other:?}"),
        }
        let _held = lock.guard().unwrap();
        // The same lock, not re-entrant: reading now is an error, no deadlock.
        assert!(value.value().is_err());
    }
}
