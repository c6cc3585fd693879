//! Shared memory and what waits on it: a memfd mapped in every process
//! that holds it, robust process-shared mutexes, futexes.
//!
//! A [`Region`] is an anonymous memfd (no name in any file system, so
//! nothing to leak when a process crashes) mapped `MAP_SHARED`; passed in a
//! process's arguments, its descriptor crosses the lifeline and the child
//! maps the same pages. Code touches shared memory only through raw
//! pointers (never a Rust reference to bytes another process may write),
//! under a [`RawMutex`] or through atomics.
//!
//! A [`RawMutex`] is a pthread mutex with `PTHREAD_PROCESS_SHARED` and
//! `PTHREAD_MUTEX_ROBUST`: when its owner dies holding it, the next
//! `lock` gets it with [`Locked::OwnerDied`] instead of waiting forever.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

fn os_error() -> Error {
    std::io::Error::last_os_error().into()
}

/// A memfd mapped shared, `len` bytes, zeroed when new.
pub(crate) struct Region {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
    /// What the region holds, as errors name it ("a Lock").
    what: &'static str,
}

// SAFETY: the mapping is plain memory shared on purpose; every access goes
// through raw pointers under a process-shared lock or atomics.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl Region {
    /// A new region of `len` bytes, zeroed, sealed at that size: no
    /// process holding its descriptor can shrink it under another's
    /// mapping (which would make that one's accesses fault, SIGBUS).
    pub(crate) fn new(len: usize) -> Result<Region> {
        Self::new_named(len, c"managers-shm")
    }

    /// As [`new`](Self::new), the memfd named `name` (what `/proc/PID/maps`
    /// shows: `/memfd:NAME (deleted)`).
    pub(crate) fn new_named(len: usize, name: &std::ffi::CStr) -> Result<Region> {
        let len_off = libc::off_t::try_from(len)
            .map_err(|_| Error::ProcessStart(format!("{len} bytes of shared memory")))?;
        // SAFETY: memfd_create(2) with a NUL-terminated name returns a new
        // descriptor or -1.
        let fd = unsafe {
            libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        };
        if fd < 0 {
            return Err(os_error());
        }
        // SAFETY: a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ftruncate(2) on our descriptor.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len_off) } != 0 {
            return Err(os_error());
        }
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: fcntl(2) F_ADD_SEALS on our descriptor.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(os_error());
        }
        Self::map(fd, len)
    }

    /// Map a region another process made (its size is the file's). Only a
    /// region sealed against shrinking is taken: another holder could
    /// otherwise truncate it under this mapping.
    pub(crate) fn from_fd(fd: OwnedFd) -> Result<Region> {
        // SAFETY: fcntl(2) F_GET_SEALS on a descriptor we own.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        if seals < 0 || seals & libc::F_SEAL_SHRINK == 0 {
            return Err(Error::ProcessStart(
                "the shared memory passed is not sealed against shrinking: refused".into(),
            ));
        }
        let len = std::fs::File::from(fd.try_clone()?).metadata()?.len() as usize;
        Self::map(fd, len)
    }

    fn map(fd: OwnedFd, len: usize) -> Result<Region> {
        if len == 0 {
            return Err(Error::ProcessStart("an empty shared memory region".into()));
        }
        // SAFETY: a new shared mapping of our descriptor; the kernel picks
        // the address. It stays valid until `munmap` in `drop`.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(os_error());
        }
        Ok(Region {
            fd,
            ptr: NonNull::new(ptr as *mut u8).expect("mmap returned null"),
            len,
            what: "shared memory",
        })
    }

    /// The region as errors name what it holds ("a Lock").
    pub(crate) fn named(mut self, what: &'static str) -> Region {
        self.what = what;
        self
    }

    /// The first byte.
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Its size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Give the pages of `[offset, offset + len)` back to the system: they
    /// read as zeros afterwards. The caller holds whatever lock guards them.
    pub(crate) fn discard(&self, offset: usize, len: usize) {
        // SAFETY: fallocate(2) on our descriptor; punching a hole changes
        // no mapping, only which pages are backed.
        unsafe {
            libc::fallocate(
                self.fd.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                offset as libc::off_t,
                len as libc::off_t,
            );
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe {
            libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len);
        }
    }
}

impl AsFd for Region {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Serialize for Region {
    /// Only to another process, by a route that passes descriptors
    /// (`crossing.rs`).
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        crate::crossing::serialize_fd(self.fd.as_fd(), self.what, serializer)
    }
}

impl<'de> Deserialize<'de> for Region {
    /// Mapped again from the descriptor that came with the message; its
    /// owner (a lock, a queue, a value) names it and checks its contents.
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let fd = crate::crossing::deserialize_fd(deserializer, "shared memory")?;
        Region::from_fd(fd).map_err(crate::error::de_error)
    }
}

/// The atomic `u32` at `ptr` (shared memory, 4-byte aligned).
///
/// # Safety
/// `ptr` must be aligned and stay mapped for `'a`, and only ever be
/// accessed atomically.
pub(crate) unsafe fn atomic_u32<'a>(ptr: *mut u32) -> &'a AtomicU32 {
    // SAFETY: the caller's promise.
    unsafe { AtomicU32::from_ptr(ptr) }
}

/// Sleep while the futex word `word` holds `expected`, at most `timeout`.
/// Returns early on a wake, a signal, or when the value differs.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let spec = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    // SAFETY: FUTEX_WAIT (shared, not private: other processes map this
    // word) on a valid aligned word, with an optional relative timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            spec.as_ref()
                .map_or(std::ptr::null(), |s| s as *const libc::timespec),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wake at most `n` sleepers on the futex word `word`.
pub(crate) fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: FUTEX_WAKE on a valid aligned word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// How a lock was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locked {
    /// Normally.
    Yes,
    /// Its previous owner died holding it; it is marked consistent again
    /// and held by the caller, but what it guarded may be half-updated.
    OwnerDied,
}

/// A robust, process-shared pthread mutex living in shared memory, borrowed
/// for `'a` from the mapping that holds it (so no handle outlives the
/// mapping).
#[derive(Clone, Copy)]
pub(crate) struct RawMutex<'a>(
    *mut libc::pthread_mutex_t,
    std::marker::PhantomData<&'a Region>,
);

// SAFETY: a process-shared mutex is made to be used from any thread.
unsafe impl Send for RawMutex<'_> {}
// SAFETY: as above.
unsafe impl Sync for RawMutex<'_> {}

impl<'a> RawMutex<'a> {
    /// The mutex at `ptr`.
    ///
    /// # Safety
    /// `ptr` must point into shared memory that stays mapped for `'a`,
    /// aligned for `pthread_mutex_t`, and hold a mutex made by
    /// [`init`](Self::init) (in this or another process).
    pub(crate) unsafe fn at(ptr: *mut u8) -> RawMutex<'a> {
        RawMutex(ptr as *mut libc::pthread_mutex_t, std::marker::PhantomData)
    }

    /// Make a new unlocked mutex at `ptr` (fresh, zeroed memory nobody else
    /// uses yet). `recursive`: the owning thread may lock it again.
    ///
    /// # Safety
    /// As for [`at`](Self::at), and no other thread or process may use the
    /// memory until this returns.
    pub(crate) unsafe fn init(ptr: *mut u8, recursive: bool) -> Result<RawMutex<'a>> {
        let mutex = ptr as *mut libc::pthread_mutex_t;
        // SAFETY: an attribute object on our stack, destroyed before
        // returning; the mutex memory is ours until we return.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            let mut rc = libc::pthread_mutexattr_init(&mut attr);
            if rc == 0 {
                rc = libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
            }
            if rc == 0 {
                rc = libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
            }
            if rc == 0 {
                let kind = if recursive {
                    libc::PTHREAD_MUTEX_RECURSIVE
                } else {
                    libc::PTHREAD_MUTEX_ERRORCHECK
                };
                rc = libc::pthread_mutexattr_settype(&mut attr, kind);
            }
            if rc == 0 {
                rc = libc::pthread_mutex_init(mutex, &attr);
            }
            libc::pthread_mutexattr_destroy(&mut attr);
            if rc != 0 {
                return Err(std::io::Error::from_raw_os_error(rc).into());
            }
        }
        Ok(RawMutex(mutex, std::marker::PhantomData))
    }

    /// Lock, waiting at most `timeout` (`None`: forever; zero: do not
    /// wait). `Ok(None)` when the time ran out.
    pub(crate) fn lock(&self, timeout: Option<Duration>) -> Result<Option<Locked>> {
        // SAFETY: `self.0` is a live process-shared mutex (see `at`).
        let rc = unsafe {
            match timeout {
                None => libc::pthread_mutex_lock(self.0),
                Some(t) if t.is_zero() => libc::pthread_mutex_trylock(self.0),
                Some(t) => {
                    let deadline = realtime_deadline(t);
                    libc::pthread_mutex_timedlock(self.0, &deadline)
                }
            }
        };
        let polling = timeout.is_some_and(|t| t.is_zero());
        match rc {
            0 => Ok(Some(Locked::Yes)),
            libc::EBUSY | libc::ETIMEDOUT => Ok(None),
            // Trying a lock this thread holds: busy, as Python's
            // `acquire(False)` says.
            libc::EDEADLK if polling => Ok(None),
            libc::EOWNERDEAD => {
                // SAFETY: we hold the mutex (EOWNERDEAD hands it over).
                unsafe { libc::pthread_mutex_consistent(self.0) };
                Ok(Some(Locked::OwnerDied))
            }
            libc::EDEADLK => Err(Error::Sync(crate::error::SyncError::RuntimeError(
                "this thread already holds the lock (it is not recursive)".into(),
            ))),
            rc => Err(std::io::Error::from_raw_os_error(rc).into()),
        }
    }

    /// Unlock. `false` if this thread does not hold it.
    pub(crate) fn unlock(&self) -> bool {
        // SAFETY: as in `lock`; an error-checking or recursive mutex
        // refuses (EPERM) an unlock by a thread that does not own it.
        unsafe { libc::pthread_mutex_unlock(self.0) == 0 }
    }
}

/// `now + timeout` on CLOCK_REALTIME, as `pthread_mutex_timedlock` wants.
fn realtime_deadline(timeout: Duration) -> libc::timespec {
    let mut now: libc::timespec = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    let total = Duration::new(now.tv_sec as u64, now.tv_nsec as u32).saturating_add(timeout);
    libc::timespec {
        tv_sec: total.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: total.subsec_nanos() as libc::c_long,
    }
}

/// Whether this process may run on more than one CPU (spinning before
/// sleeping only pays when the other side runs meanwhile).
pub(crate) fn several_cpus() -> bool {
    static SEVERAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SEVERAL.get_or_init(|| {
        // SAFETY: sched_getaffinity(2) fills a cpu_set_t on our stack.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return true;
            }
            libc::CPU_COUNT(&set) > 1
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn a_region_is_zeroed_and_shared_through_its_descriptor() {
        let region = Region::new(4096).unwrap();
        // SAFETY: within the region, no one else touches it.
        unsafe {
            assert_eq!(*region.ptr().add(100), 0);
            *region.ptr().add(100) = 42;
        }
        let again = Region::from_fd(region.fd.try_clone().unwrap()).unwrap();
        assert_eq!(again.len(), 4096);
        // SAFETY: as above; a second mapping of the same pages.
        assert_eq!(unsafe { *again.ptr().add(100) }, 42);
        region.discard(0, 4096);
        // SAFETY: as above.
        let after = unsafe { *again.ptr().add(100) };
        assert_eq!(after, 0, "discarded pages read as zeros");
    }

    #[test]
    fn a_region_cannot_shrink_and_an_unsealed_one_is_refused() {
        let region = Region::new(8192).unwrap();
        // SAFETY: ftruncate(2) on a descriptor the region owns.
        let shrunk = unsafe { libc::ftruncate(region.fd.as_raw_fd(), 4096) };
        assert_eq!(shrunk, -1, "sealed against shrinking");
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EPERM)
        );
        assert!(Region::from_fd(region.fd.try_clone().unwrap()).is_ok());
        // SAFETY: memfd_create(2) with a static name; the descriptor is
        // ours.
        let unsealed = unsafe {
            let fd = libc::memfd_create(c"unsealed".as_ptr(), libc::MFD_CLOEXEC);
            assert!(fd >= 0);
            OwnedFd::from_raw_fd(fd)
        };
        // SAFETY: ftruncate(2) on our descriptor.
        assert_eq!(unsafe { libc::ftruncate(unsealed.as_raw_fd(), 4096) }, 0);
        let err = Region::from_fd(unsealed).err().expect("refused");
        assert!(err.to_string().contains("not sealed"), "{err}");
        let file: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        assert!(Region::from_fd(file).is_err(), "not a memfd");
    }

    #[test]
    fn a_mutex_excludes_threads_and_times_out() {
        let region = Region::new(4096).unwrap();
        // SAFETY: fresh zeroed shared memory, aligned (page start), mapped
        // until the end of the test, after the other thread is joined.
        let mutex = unsafe { RawMutex::init(region.ptr(), false).unwrap() };
        assert_eq!(mutex.lock(None).unwrap(), Some(Locked::Yes));
        assert!(
            matches!(mutex.lock(None), Err(Error::Sync(_))),
            "not recursive"
        );
        let other = std::thread::spawn(move || {
            let begun = Instant::now();
            let got = mutex.lock(Some(Duration::from_millis(100))).unwrap();
            (got, begun.elapsed(), mutex.unlock())
        });
        let (got, waited, unlocked) = other.join().unwrap();
        assert_eq!(got, None);
        assert!(waited >= Duration::from_millis(90), "{waited:?}");
        assert!(!unlocked, "another thread cannot unlock it");
        assert!(mutex.unlock());
        assert!(!mutex.unlock(), "not held any more");
    }

    #[test]
    fn a_thread_that_dies_holding_a_mutex_hands_it_over() {
        let region = Region::new(4096).unwrap();
        // SAFETY: fresh zeroed shared memory, aligned, mapped until the end
        // of the test, after the other thread is joined.
        let mutex = unsafe { RawMutex::init(region.ptr(), true).unwrap() };
        std::thread::spawn(move || {
            mutex.lock(None).unwrap();
            mutex.lock(None).unwrap();
        })
        .join()
        .unwrap();
        assert_eq!(
            mutex.lock(Some(Duration::from_secs(5))).unwrap(),
            Some(Locked::OwnerDied)
        );
        assert!(mutex.unlock());
        assert_eq!(mutex.lock(None).unwrap(), Some(Locked::Yes));
        assert!(mutex.unlock());
    }

    #[test]
    fn futexes_wake_sleepers() {
        let region = std::sync::Arc::new(Region::new(4096).unwrap());
        // SAFETY: aligned word in the region, used only atomically.
        let word = unsafe { atomic_u32(region.ptr() as *mut u32) };
        let begun = Instant::now();
        futex_wait(word, 0, Some(Duration::from_millis(50)));
        assert!(begun.elapsed() >= Duration::from_millis(40));
        futex_wait(word, 1, None); // not the value: returns at once
        let shared = std::sync::Arc::clone(&region);
        let sleeper = std::thread::spawn(move || {
            // SAFETY: as above.
            let word = unsafe { atomic_u32(shared.ptr() as *mut u32) };
            while word.load(std::sync::atomic::Ordering::Acquire) == 0 {
                futex_wait(word, 0, Some(Duration::from_secs(5)));
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        word.store(1, std::sync::atomic::Ordering::Release);
        futex_wake(word, 1);
        sleeper.join().unwrap();
    }
}
