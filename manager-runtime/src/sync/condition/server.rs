//! `Condition` as the server holds it.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::proxy::Token;
use crate::server::{CallContext, ServerLink};
use crate::sync::lock::server::{ManagedLock, ManagedRLock};
use crate::sync::lock::state::LockCore;
use crate::SyncError;

/// Which lock a condition works on.
enum Binding {
    /// Its own `RLock`, as `Condition()` in Python.
    Own(Arc<LockCore>),
    /// A `Lock` or `RLock` proxy given at creation, not yet looked up:
    /// constructors run outside any call, so the lock is found on the
    /// condition's first call.
    Supplied(Token),
    /// The supplied lock, found, and a reference that keeps it alive.
    Bound {
        core: Arc<LockCore>,
        token: Token,
        link: ServerLink,
    },
}

/// The threads waiting in `wait`, first come first notified.
#[derive(Default)]
struct Waiters {
    queue: VecDeque<(u64, oneshot::Sender<()>)>,
    next: u64,
}

/// Python's `threading.Condition`, served: on its own `RLock`, or on a
/// supplied `Lock` or `RLock` whose state it shares with that lock's
/// proxies. Ownership belongs to the calling client thread (the `owner`
/// argument, a [`caller_id`](crate::proxy::caller_id)).
///
/// Waiting is a future in the server; `notify(n)` wakes exactly the first
/// `n` waiters still waiting.
pub struct Condition {
    binding: Mutex<Binding>,
    waiters: Mutex<Waiters>,
}

impl Default for Condition {
    fn default() -> Self {
        Condition::new()
    }
}

impl Condition {
    /// A condition on a fresh `RLock`.
    pub fn new() -> Self {
        Condition::with_binding(Binding::Own(Arc::new(LockCore::new(true))))
    }

    /// A condition on the served `Lock` or `RLock` named by `lock`, on the
    /// same server. It finds (and holds) the lock on its first call.
    pub fn on(lock: Token) -> Self {
        Condition::with_binding(Binding::Supplied(lock))
    }

    /// A condition on `lock`, found now: run in a constructor, a wrong lock
    /// fails the creation (`TypeError`) instead of the first call.
    pub(in crate::sync) fn bound(lock: Token) -> Result<Self, SyncError> {
        let condition = Condition::on(lock);
        condition.lock()?;
        Ok(condition)
    }

    fn with_binding(binding: Binding) -> Self {
        Condition {
            binding: Mutex::new(binding),
            waiters: Mutex::default(),
        }
    }

    /// The lock, looked up (and retained) on first use when it was
    /// supplied.
    fn lock(&self) -> Result<Arc<LockCore>, SyncError> {
        let mut binding = self.binding.lock().unwrap();
        let token = match &*binding {
            Binding::Own(core) | Binding::Bound { core, .. } => return Ok(Arc::clone(core)),
            Binding::Supplied(token) => token.clone(),
        };
        let cx = CallContext::current().ok_or_else(|| {
            SyncError::RuntimeError("a condition's lock is found only during a call".into())
        })?;
        let core = find_lock(&cx, &token)?;
        let link = cx.link();
        link.retain(&token)
            .map_err(|e| SyncError::TypeError(format!("cannot use {token} as a lock: {e}")))?;
        *binding = Binding::Bound {
            core: Arc::clone(&core),
            token,
            link,
        };
        Ok(core)
    }

    /// The lock, if `owner` holds it; Python's `RuntimeError` otherwise.
    fn owned_lock(&self, owner: u64, what: &str) -> Result<Arc<LockCore>, SyncError> {
        let lock = self.lock()?;
        if !lock.is_owned(owner) {
            return Err(SyncError::RuntimeError(format!(
                "cannot {what} on un-acquired lock"
            )));
        }
        Ok(lock)
    }

    /// Wake the first `n` waiters still waiting (all of them for `None`).
    fn wake(&self, n: Option<usize>) {
        let mut waiters = self.waiters.lock().unwrap();
        let mut woken = 0;
        while n.is_none_or(|n| woken < n) {
            let Some((_, waiter)) = waiters.queue.pop_front() else {
                break;
            };
            // A waiter whose call was cancelled is skipped, not counted.
            if waiter.send(()).is_ok() {
                woken += 1;
            }
        }
    }
}

/// The shared state of the `Lock` or `RLock` that `token` names.
fn find_lock(cx: &CallContext, token: &Token) -> Result<Arc<LockCore>, SyncError> {
    let not_a_lock = |e: crate::RemoteError| {
        SyncError::TypeError(format!("a condition needs a Lock or RLock: {e}"))
    };
    // Served objects have `&self` methods only, so their cell is never
    // write-locked and `try_read` always succeeds.
    let busy = || SyncError::RuntimeError(format!("{token} is busy"));
    if let Ok(lock) = cx.resolve::<ManagedLock>(token) {
        return Ok(Arc::clone(&lock.try_read().map_err(|_| busy())?.core));
    }
    let lock = cx.resolve::<ManagedRLock>(token).map_err(not_a_lock)?;
    let core = Arc::clone(&lock.try_read().map_err(|_| busy())?.core);
    Ok(core)
}

/// Takes a waiter out of the queue when its wait ends, however it ends
/// (notified, timed out, or cancelled because its client went away).
struct Waiting<'a> {
    waiters: &'a Mutex<Waiters>,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut waiters = self.waiters.lock().unwrap();
        waiters.queue.retain(|(id, _)| *id != self.id);
    }
}

#[crate::shared(typeid = "Condition", typed)]
impl Condition {
    /// Acquire the underlying lock for the calling thread (or task, for an
    /// async proxy): Python's `acquire(blocking, timeout)`.
    #[py("acquire", timeout = lock)]
    #[undo(crate::sync::lock::typed::release_owned_if_taken::<super::typed::ConditionAsyncProxy>)]
    pub async fn acquire_with(
        &self,
        #[owner] owner: u64,
        #[py(default = true)] blocking: bool,
        #[py(default = None)] timeout: Option<Duration>,
    ) -> Result<bool, SyncError> {
        self.lock()?.acquire(owner, 1, blocking, timeout).await
    }

    /// Release the underlying lock once (Python's `release()`).
    #[py("release")]
    pub fn release(&self, #[owner] owner: u64) -> Result<(), SyncError> {
        self.lock()?.release(owner)
    }

    /// Whether the caller holds the underlying lock (Python's `_is_owned`;
    /// a plain `Lock` counts as owned while anyone holds it).
    pub fn is_owned(&self, #[owner] owner: u64) -> Result<bool, SyncError> {
        Ok(self.lock()?.is_owned(owner))
    }

    /// Python's `wait(timeout)`: release the lock entirely, wait for a
    /// notification at most `timeout` (`None`: forever), take the lock
    /// back at its former level. `false` if the time ran out. Waiting
    /// without holding the lock is a `RuntimeError`.
    #[py("wait", timeout = zero)]
    pub async fn wait_with(
        &self,
        #[owner] owner: u64,
        #[py(default = None)] timeout: Option<Duration>,
    ) -> Result<bool, SyncError> {
        let lock = self.owned_lock(owner, "wait")?;
        let (tx, mut rx) = oneshot::channel();
        let waiting = {
            let mut waiters = self.waiters.lock().unwrap();
            let id = waiters.next;
            waiters.next += 1;
            waiters.queue.push_back((id, tx));
            Waiting {
                waiters: &self.waiters,
                id,
            }
        };
        let levels = lock.release_all(owner)?;
        let notified = match timeout {
            None => (&mut rx).await.is_ok(),
            Some(timeout) => tokio::time::timeout(timeout, &mut rx).await.is_ok(),
        };
        drop(waiting);
        // A notification that raced with the timeout still counts: once
        // out of the queue, the sender has either sent or never will.
        let notified = notified || rx.try_recv().is_ok();
        lock.acquire(owner, levels, true, None).await?;
        Ok(notified)
    }

    /// Wake the first `n` waiters (Python's `notify(n)`). Notifying
    /// without holding the lock is a `RuntimeError`.
    #[py("notify")]
    pub fn notify_n(
        &self,
        #[owner] owner: u64,
        #[py(default = 1)] n: usize,
    ) -> Result<(), SyncError> {
        self.owned_lock(owner, "notify")?;
        self.wake(Some(n));
        Ok(())
    }

    /// Wake every waiter (Python's `notify_all()`).
    #[py("notify_all")]
    pub fn notify_all(&self, #[owner] owner: u64) -> Result<(), SyncError> {
        self.owned_lock(owner, "notify")?;
        self.wake(None);
        Ok(())
    }
}

impl Drop for Condition {
    fn drop(&mut self) {
        let binding = self.binding.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Binding::Bound { token, link, .. } = binding {
            link.release(token);
        }
    }
}
