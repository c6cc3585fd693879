//! Python's `multiprocessing.Lock` and `RLock`: locks in shared memory,
//! taken and released without any server round trip, robust against a
//! process that dies holding one.
//!
//! Each is a page of memfd shared memory holding a robust process-shared
//! pthread mutex (error-checking for `Lock`, recursive for `RLock`); pass
//! it in a [`Process`](super::Process)'s arguments and the child maps the
//! same page. Ownership belongs to the thread that acquired it (unlike
//! Python's `Lock`, which any thread may release): another thread's
//! `release` is an error, not a release.
//!
//! When an owner dies holding the lock, the next `acquire` returns
//! [`Error::OwnerDied`]: the lock is free again (marked consistent and
//! released), but what it guarded may be half-updated. Check it, then
//! acquire again. CPython's locks hang here (cpython#96062).

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::addr_of_mut;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::shm::{Locked, RawMutex, Region};
use crate::error::{Error, Result, SyncError};

const MAGIC: u32 = 0x6d6c_636b;

#[repr(C)]
struct Header {
    mutex: libc::pthread_mutex_t,
    magic: u32,
    recursive: u32,
}

/// A mutex in its own region, shared by every clone and every process
/// given it.
///
/// A robust mutex a thread holds is linked into that thread's robust list
/// (glibc), through the mutex's own memory: the next robust operation on
/// the thread, and the kernel when the thread exits, write there. So the
/// page must stay mapped while any thread of this process holds the
/// mutex: dropping the last handle of a held lock releases what the
/// dropping thread holds, and if another thread still holds it, leaves
/// the page mapped for the life of the process.
struct SharedMutex {
    region: ManuallyDrop<Region>,
    recursive: bool,
    /// Acquisitions by threads of this process not yet released.
    held: AtomicUsize,
}

impl Drop for SharedMutex {
    fn drop(&mut self) {
        let mut held = *self.held.get_mut();
        // Only the owning thread's unlock succeeds: this releases what the
        // dropping thread holds, as many times as it holds it.
        while held > 0 && self.raw().unlock() {
            held -= 1;
        }
        if held == 0 {
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.region) };
        }
        // Otherwise another thread of this process holds the mutex, which
        // its robust list points into: the mapping is leaked on purpose.
    }
}

impl SharedMutex {
    fn new(recursive: bool) -> Result<Arc<SharedMutex>> {
        let what = if recursive { "an RLock" } else { "a Lock" };
        let region = Region::new(std::mem::size_of::<Header>())?.named(what);
        let h = region.ptr() as *mut Header;
        // SAFETY: fresh zeroed memory, page aligned, that no one else maps.
        unsafe {
            RawMutex::init(addr_of_mut!((*h).mutex) as *mut u8, recursive)?;
            (*h).recursive = recursive as u32;
            (*h).magic = MAGIC;
        }
        Ok(Arc::new(SharedMutex::holding(region, recursive)))
    }

    fn holding(region: Region, recursive: bool) -> SharedMutex {
        SharedMutex {
            region: ManuallyDrop::new(region),
            recursive,
            held: AtomicUsize::new(0),
        }
    }

    fn from_region(region: Region, recursive: bool) -> Result<Arc<SharedMutex>> {
        let kind = if recursive { "an RLock" } else { "a Lock" };
        let region = region.named(kind);
        let h = region.ptr() as *const Header;
        // SAFETY: magic and kind were written once before the region was
        // shared; the region is at least a page.
        let ok = region.len() >= std::mem::size_of::<Header>()
            && unsafe { (*h).magic == MAGIC && ((*h).recursive != 0) == recursive };
        if !ok {
            return Err(Error::ProcessStart(format!(
                "the shared memory passed is not {kind}"
            )));
        }
        Ok(Arc::new(SharedMutex::holding(region, recursive)))
    }

    fn raw(&self) -> RawMutex<'_> {
        // SAFETY: the header's mutex, made by `new`, mapped while `self`
        // lives.
        unsafe {
            RawMutex::at(addr_of_mut!((*(self.region.ptr() as *mut Header)).mutex) as *mut u8)
        }
    }

    /// Unlock once, if this thread holds it.
    fn unlock(&self) -> bool {
        let unlocked = self.raw().unlock();
        if unlocked {
            self.held.fetch_sub(1, Ordering::AcqRel);
        }
        unlocked
    }

    fn acquire_with(&self, block: bool, timeout: Option<Duration>) -> Result<bool> {
        let timeout = if block { timeout } else { Some(Duration::ZERO) };
        match self.raw().lock(timeout)? {
            Some(Locked::Yes) => {
                self.held.fetch_add(1, Ordering::AcqRel);
                Ok(true)
            }
            Some(Locked::OwnerDied) => {
                // Whatever this process counted belonged to the owner that
                // died (a mutex has one owner), whose robust list is gone.
                self.held.store(0, Ordering::Release);
                self.raw().unlock();
                Err(Error::OwnerDied)
            }
            None => Ok(false),
        }
    }

    fn release(&self) -> Result<()> {
        if self.unlock() {
            return Ok(());
        }
        Err(if self.recursive {
            SyncError::RuntimeError("cannot release un-acquired lock".into())
        } else {
            SyncError::ValueError("release of a lock this thread does not hold".into())
        }
        .into())
    }
}

/// Held until dropped (Python's `with lock:`). It stays on the thread that
/// acquired the lock, as the lock belongs to that thread.
pub struct LockGuard<'a> {
    mutex: &'a SharedMutex,
    _thread: PhantomData<*const ()>,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

impl std::fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockGuard")
    }
}

macro_rules! shared_lock {
    ($(#[$doc:meta])* $name:ident, recursive: $recursive:expr, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            mutex: Arc<SharedMutex>,
        }

        impl $name {
            #[doc = concat!("A new ", $what, ", unlocked.")]
            pub fn new() -> Result<Self> {
                Ok($name {
                    mutex: SharedMutex::new($recursive)?,
                })
            }

            /// Wait until this thread holds it; `Ok(true)`. A dead owner's
            /// lock is [`Error::OwnerDied`] once (it is free again).
            pub fn acquire(&self) -> Result<bool> {
                self.mutex.acquire_with(true, None)
            }

            /// Take it if it is free now; whether it was.
            pub fn try_acquire(&self) -> Result<bool> {
                self.mutex.acquire_with(false, None)
            }

            /// Wait at most `timeout`; whether this thread holds it.
            pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool> {
                self.mutex.acquire_with(true, Some(timeout))
            }

            /// Python's `acquire(block, timeout)`.
            pub fn acquire_with(&self, block: bool, timeout: Option<Duration>) -> Result<bool> {
                self.mutex.acquire_with(block, timeout)
            }

            /// Release it; an error if this thread does not hold it.
            pub fn release(&self) -> Result<()> {
                self.mutex.release()
            }

            /// Acquire it until the guard drops (Python's `with lock:`).
            pub fn guard(&self) -> Result<LockGuard<'_>> {
                self.acquire()?;
                Ok(LockGuard {
                    mutex: &self.mutex,
                    _thread: PhantomData,
                })
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!("<", stringify!($name), " at {:p}>"), self.mutex.region.ptr())
            }
        }

        impl Serialize for $name {
            /// As a process's argument only: the page crosses the lifeline.
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                self.mutex.region.serialize(serializer)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
                let region = Region::deserialize(deserializer)?;
                let mutex = SharedMutex::from_region(region, $recursive).map_err(crate::error::de_error)?;
                Ok($name { mutex })
            }
        }
    };
}

shared_lock!(
    /// Python's `multiprocessing.Lock()`: one holder at a time, in any
    /// process; not re-entrant (a second `acquire` by the holding thread is
    /// an error rather than a deadlock). Clones are the same lock.
    ///
    /// ```
    /// # extern crate manager_runtime as managers;
    /// let lock = managers::process::Lock::new()?;
    /// assert!(lock.acquire()?);
    /// assert!(!std::thread::scope(|s| s.spawn(|| lock.try_acquire()).join().unwrap())?);
    /// lock.release()?;
    /// {
    ///     let _held = lock.guard()?; // released at the end of the scope
    /// }
    /// # Ok::<(), managers::Error>(())
    /// ```
    Lock,
    recursive: false,
    "lock"
);

shared_lock!(
    /// Python's `multiprocessing.RLock()`: the holding thread may acquire
    /// it again; it is free once released as many times. Clones are the
    /// same lock.
    RLock,
    recursive: true,
    "recursive lock"
);

/// The lock of a shared [`SharedValue`](super::SharedValue) or
/// [`SharedArray`](super::SharedArray): a [`Lock`] or an [`RLock`] (Python's
/// `get_lock()` returns either).
#[derive(Clone, Debug)]
pub enum SharedLock {
    /// A non-recursive lock.
    Lock(Lock),
    /// A recursive lock (the default).
    RLock(RLock),
}

impl From<Lock> for SharedLock {
    fn from(lock: Lock) -> Self {
        SharedLock::Lock(lock)
    }
}

impl From<RLock> for SharedLock {
    fn from(lock: RLock) -> Self {
        SharedLock::RLock(lock)
    }
}

impl SharedLock {
    fn mutex(&self) -> &SharedMutex {
        match self {
            SharedLock::Lock(l) => &l.mutex,
            SharedLock::RLock(l) => &l.mutex,
        }
    }

    /// Wait until this thread holds it (see [`Lock::acquire`]).
    pub fn acquire(&self) -> Result<bool> {
        self.mutex().acquire_with(true, None)
    }

    /// Python's `acquire(block, timeout)`.
    pub fn acquire_with(&self, block: bool, timeout: Option<Duration>) -> Result<bool> {
        self.mutex().acquire_with(block, timeout)
    }

    /// Release it; an error if this thread does not hold it.
    pub fn release(&self) -> Result<()> {
        self.mutex().release()
    }

    /// Acquire it until the guard drops.
    pub fn guard(&self) -> Result<LockGuard<'_>> {
        self.acquire()?;
        Ok(LockGuard {
            mutex: self.mutex(),
            _thread: PhantomData,
        })
    }
}

impl Serialize for SharedLock {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match self {
            SharedLock::Lock(l) => (false, l).serialize(serializer),
            SharedLock::RLock(l) => (true, l).serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for SharedLock {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = SharedLock;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a lock")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<SharedLock, A::Error> {
                let missing = || serde::de::Error::custom("a lock's kind and page");
                let recursive: bool = seq.next_element()?.ok_or_else(missing)?;
                Ok(if recursive {
                    SharedLock::RLock(seq.next_element()?.ok_or_else(missing)?)
                } else {
                    SharedLock::Lock(seq.next_element()?.ok_or_else(missing)?)
                })
            }
        }
        deserializer.deserialize_tuple(2, Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_follows_python() {
        let lock = Lock::new().unwrap();
        assert!(lock.acquire().unwrap());
        assert!(!lock.try_acquire().unwrap(), "held");
        assert!(
            matches!(lock.acquire(), Err(Error::Sync(SyncError::RuntimeError(_)))),
            "not re-entrant: no deadlock"
        );
        lock.release().unwrap();
        assert!(matches!(
            lock.release(),
            Err(Error::Sync(SyncError::ValueError(_)))
        ));
        let other = lock.clone();
        let _held = lock.guard().unwrap();
        let taken = std::thread::spawn(move || {
            let begun = std::time::Instant::now();
            (
                other.acquire_timeout(Duration::from_millis(100)).unwrap(),
                begun.elapsed(),
                other.release().is_err(),
            )
        })
        .join()
        .unwrap();
        assert!(!taken.0 && taken.1 >= Duration::from_millis(90) && taken.2);
    }

    #[test]
    fn a_lock_dropped_while_held_is_released() {
        // Issue 17: a held Lock dropped unmapped a robust mutex still
        // linked in this thread's robust list; the next robust operation
        // wrote through freed memory.
        for recursive in [false, true] {
            let lock = if recursive {
                SharedLock::RLock(RLock::new().unwrap())
            } else {
                SharedLock::Lock(Lock::new().unwrap())
            };
            assert!(lock.acquire().unwrap());
            if recursive {
                assert!(lock.acquire().unwrap());
            }
            drop(lock);
            // Robust operations on this thread, through other mutexes.
            let other = Lock::new().unwrap();
            let again = RLock::new().unwrap();
            for _ in 0..100 {
                assert!(other.acquire().unwrap());
                assert!(again.acquire().unwrap());
                again.release().unwrap();
                other.release().unwrap();
            }
            let queue = crate::process::Queue::new(0).unwrap();
            queue.put(7u32).unwrap();
            assert_eq!(queue.get().unwrap(), 7);
        }
        // The other end of a dropped held lock: released for its clones in
        // other processes (here, a second mapping of the same page).
        let lock = Lock::new().unwrap();
        use std::os::fd::AsFd;
        let page =
            Region::from_fd(lock.mutex.region.as_fd().try_clone_to_owned().unwrap()).unwrap();
        let elsewhere = Lock {
            mutex: SharedMutex::from_region(page, false).unwrap(),
        };
        assert!(lock.acquire().unwrap());
        drop(lock);
        assert!(elsewhere.try_acquire().unwrap(), "released on drop");
        elsewhere.release().unwrap();
    }

    #[test]
    fn a_lock_another_thread_holds_keeps_its_page_when_dropped() {
        let lock = Lock::new().unwrap();
        let holder = lock.clone();
        let (held, dropped) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(holder.acquire().unwrap());
                // This thread's handle goes first, still holding the lock...
                drop(holder);
                held.wait();
                // ...then the last handle, on the other thread (below).
                dropped.wait();
                // Robust operations after the last handle went, then this
                // thread exits still holding it: the kernel walks its
                // robust list into the page that was kept.
                let other = Lock::new().unwrap();
                assert!(other.acquire().unwrap());
                other.release().unwrap();
            });
            held.wait();
            drop(lock);
            dropped.wait();
        });
        let after = Lock::new().unwrap();
        assert!(after.acquire().unwrap());
        after.release().unwrap();
    }

    #[test]
    fn rlock_counts_its_acquisitions() {
        let lock = RLock::new().unwrap();
        for _ in 0..3 {
            assert!(lock.acquire().unwrap());
        }
        for _ in 0..3 {
            lock.release().unwrap();
        }
        assert!(matches!(
            lock.release(),
            Err(Error::Sync(SyncError::RuntimeError(_)))
        ));
    }

    #[test]
    fn a_thread_that_dies_holding_the_lock_is_owner_died_once() {
        let lock = Lock::new().unwrap();
        let other = lock.clone();
        std::thread::spawn(move || {
            std::mem::forget(other.guard().unwrap());
        })
        .join()
        .unwrap();
        assert!(matches!(
            lock.acquire_timeout(Duration::from_secs(5)),
            Err(Error::OwnerDied)
        ));
        assert!(lock.acquire_timeout(Duration::from_secs(5)).unwrap());
        lock.release().unwrap();
    }
}
