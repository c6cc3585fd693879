//! The state behind every lock-like built-in, shared by `Lock`, `RLock`
//! and `Condition` (a condition built on a lock works on that lock's very
//! state), and the one waiting loop every blocking built-in uses.
#![forbid(unsafe_code)]

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::sync::deadline;
use crate::SyncError;

/// Call `attempt` until it yields, waking on `notify`, at most until
/// `deadline` (`None`: forever). `None` means the deadline passed first.
///
/// Interest in `notify` is registered before each attempt, so a
/// notification between a failed attempt and the wait is never lost; a
/// waiter that times out makes one last attempt, so a wake-up racing with
/// its deadline is not wasted.
pub(in crate::sync) async fn wait_until<T>(
    notify: &Notify,
    deadline: Option<Instant>,
    mut attempt: impl FnMut() -> Option<T>,
) -> Option<T> {
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(done) = attempt() {
            return Some(done);
        }
        match deadline {
            None => notified.await,
            Some(deadline) => {
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    return attempt();
                }
            }
        }
    }
}

/// Python's rule for `acquire(blocking, timeout)`: a timeout only makes
/// sense for a blocking call.
pub(in crate::sync) fn check_blocking(
    blocking: bool,
    timeout: Option<Duration>,
) -> Result<(), SyncError> {
    if !blocking && timeout.is_some() {
        return Err(SyncError::ValueError(
            "can't specify a timeout for a non-blocking call".into(),
        ));
    }
    Ok(())
}

/// Who holds a lock and how many times.
#[derive(Default)]
struct Holder {
    owner: u64,
    count: usize,
}

/// A lock, plain or re-entrant, whose waiters are futures.
///
/// Owners are caller ids ([`caller_id`](crate::proxy::caller_id)): a client
/// thread, wherever its process is. A plain lock records its owner too but,
/// as in Python, anyone may release it.
pub(in crate::sync) struct LockCore {
    reentrant: bool,
    holder: Mutex<Holder>,
    released: Notify,
    /// Times it went from free to taken: the fencing token.
    fence: std::sync::atomic::AtomicU64,
}

impl LockCore {
    /// A free lock; `reentrant` for an `RLock`.
    pub(in crate::sync) fn new(reentrant: bool) -> Self {
        LockCore {
            reentrant,
            holder: Mutex::new(Holder::default()),
            released: Notify::new(),
            fence: Default::default(),
        }
    }

    /// Take the lock `count` times for `owner` if that is possible now.
    fn try_take(&self, owner: u64, count: usize) -> bool {
        let mut holder = self.holder.lock().unwrap();
        if holder.count == 0 {
            *holder = Holder { owner, count };
            self.fence
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            true
        } else if self.reentrant && holder.owner == owner {
            holder.count += count;
            true
        } else {
            false
        }
    }

    /// Python's `acquire(blocking, timeout)`, taking the lock `count` times
    /// (a condition restores its saved recursion level in one go).
    pub(in crate::sync) async fn acquire(
        &self,
        owner: u64,
        count: usize,
        blocking: bool,
        timeout: Option<Duration>,
    ) -> Result<bool, SyncError> {
        check_blocking(blocking, timeout)?;
        if !blocking {
            return Ok(self.try_take(owner, count));
        }
        let taken = wait_until(&self.released, deadline(timeout), || {
            self.try_take(owner, count).then_some(())
        })
        .await;
        Ok(taken.is_some())
    }

    /// Release once. An unlocked lock, or an `RLock` held by someone else,
    /// is Python's `RuntimeError`.
    pub(in crate::sync) fn release(&self, owner: u64) -> Result<(), SyncError> {
        self.release_levels(owner, false).map(drop)
    }

    /// Release every level held (a condition about to wait); returns how
    /// many to restore afterwards.
    pub(in crate::sync) fn release_all(&self, owner: u64) -> Result<usize, SyncError> {
        self.release_levels(owner, true)
    }

    fn release_levels(&self, owner: u64, all: bool) -> Result<usize, SyncError> {
        let mut holder = self.holder.lock().unwrap();
        if holder.count == 0 {
            return Err(SyncError::RuntimeError(if self.reentrant {
                "cannot release un-acquired lock".into()
            } else {
                "release unlocked lock".into()
            }));
        }
        if self.reentrant && holder.owner != owner {
            return Err(SyncError::RuntimeError(
                "cannot release un-acquired lock".into(),
            ));
        }
        let released = if all { holder.count } else { 1 };
        holder.count -= released;
        let free = holder.count == 0;
        drop(holder);
        if free {
            self.released.notify_one();
        }
        Ok(released)
    }

    /// Python's `Condition._is_owned`: an `RLock` is owned by its holder; a
    /// plain lock, which cannot tell, counts as owned while it is locked.
    pub(in crate::sync) fn is_owned(&self, owner: u64) -> bool {
        let holder = self.holder.lock().unwrap();
        holder.count > 0 && (!self.reentrant || holder.owner == owner)
    }

    /// Whether anyone holds the lock.
    pub(in crate::sync) fn locked(&self) -> bool {
        self.holder.lock().unwrap().count > 0
    }

    /// How many times it was taken when free: the current (or last)
    /// holder's fencing token.
    pub(in crate::sync) fn fence(&self) -> u64 {
        self.fence.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A counting semaphore, optionally bounded by its initial value.
pub(in crate::sync) struct Counter {
    value: Mutex<usize>,
    bound: Option<usize>,
    released: Notify,
}

impl Counter {
    /// A semaphore at `value`; `bounded` makes releasing above `value` an
    /// error (`BoundedSemaphore`).
    pub(in crate::sync) fn new(value: usize, bounded: bool) -> Self {
        Counter {
            value: Mutex::new(value),
            bound: bounded.then_some(value),
            released: Notify::new(),
        }
    }

    fn try_take(&self) -> bool {
        let mut value = self.value.lock().unwrap();
        let available = *value > 0;
        if available {
            *value -= 1;
        }
        available
    }

    /// Python's `acquire(blocking, timeout)`.
    pub(in crate::sync) async fn acquire(
        &self,
        blocking: bool,
        timeout: Option<Duration>,
    ) -> Result<bool, SyncError> {
        check_blocking(blocking, timeout)?;
        if !blocking {
            return Ok(self.try_take());
        }
        let taken = wait_until(&self.released, deadline(timeout), || {
            self.try_take().then_some(())
        })
        .await;
        Ok(taken.is_some())
    }

    /// Python's `release()`: one more unit, waking one waiter.
    pub(in crate::sync) fn release(&self) -> Result<(), SyncError> {
        let mut value = self.value.lock().unwrap();
        if self.bound.is_some_and(|bound| *value >= bound) {
            return Err(SyncError::ValueError(
                "Semaphore released too many times".into(),
            ));
        }
        *value += 1;
        drop(value);
        self.released.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rlock_counts_levels_per_owner() {
        let lock = LockCore::new(true);
        assert!(lock.acquire(1, 1, true, None).await.unwrap());
        assert!(lock.acquire(1, 2, false, None).await.unwrap());
        assert!(!lock.acquire(2, 1, false, None).await.unwrap());
        assert!(lock.release(2).is_err());
        assert_eq!(lock.release_all(1).unwrap(), 3);
        assert!(!lock.locked());
        assert!(lock.release(1).is_err());
    }

    #[tokio::test]
    async fn plain_lock_is_not_reentrant_and_anyone_releases() {
        let lock = LockCore::new(false);
        assert!(lock.acquire(1, 1, false, None).await.unwrap());
        assert!(!lock.acquire(1, 1, false, None).await.unwrap());
        assert!(lock.is_owned(7), "a locked plain lock counts as owned");
        lock.release(2).unwrap();
        assert!(lock.release(1).is_err());
    }

    #[tokio::test]
    async fn a_timed_acquire_gives_up_at_its_deadline() {
        let lock = LockCore::new(false);
        assert!(lock.acquire(1, 1, true, None).await.unwrap());
        let start = Instant::now();
        let taken = lock
            .acquire(2, 1, true, Some(Duration::from_millis(50)))
            .await
            .unwrap();
        assert!(!taken);
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }

    #[tokio::test]
    async fn a_release_wakes_a_waiter() {
        let lock = std::sync::Arc::new(LockCore::new(false));
        assert!(lock.acquire(1, 1, true, None).await.unwrap());
        let waiter = tokio::spawn({
            let lock = lock.clone();
            async move { lock.acquire(2, 1, true, None).await.unwrap() }
        });
        tokio::task::yield_now().await;
        lock.release(1).unwrap();
        assert!(waiter.await.unwrap());
        assert!(lock.is_owned(2));
    }

    #[tokio::test]
    async fn bounded_counter_refuses_over_release() {
        let counter = Counter::new(1, true);
        assert!(counter.release().is_err());
        assert!(counter.acquire(false, None).await.unwrap());
        assert!(!counter.acquire(false, None).await.unwrap());
        counter.release().unwrap();
        assert!(counter.acquire(false, None).await.unwrap());
        assert!(Counter::new(1, false).release().is_ok());
    }

    #[test]
    fn a_timeout_needs_blocking() {
        assert!(check_blocking(false, Some(Duration::ZERO)).is_err());
        assert!(check_blocking(false, None).is_ok());
    }
}
