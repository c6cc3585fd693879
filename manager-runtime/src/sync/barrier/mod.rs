//! `Barrier`: a fixed number of parties wait for each other (Python's
//! `threading.Barrier`, served).
//!
//! Each round of `parties` arrivals is a *generation*. The arrivals of one
//! generation share a `watch` channel whose value says where the generation
//! stands (filling, its action running, released, broken): waiters are
//! futures on that channel, so a thousand waiting parties cost a thousand
//! small futures, and a party that subscribed before the change cannot miss
//! it. A new generation starts the moment one is complete, so there is no
//! draining phase as in Python; what any party observes is the same.
//!
//! Python's `action` is a callable run by one thread before the others are
//! released. A closure cannot cross processes, so the action runs in a
//! client: a party that offers it
//! ([`BarrierProxy::wait_with_action`](typed::BarrierProxy::wait_with_action))
//! may be chosen to run it, and the others stay blocked until it reports
//! the action finished. One action runs per generation, chosen among the
//! parties that offered it (the last to arrive if it offered one).

use std::time::Duration;

use super::SyncManager;
use crate::error::{Error, Result, SyncError};
use crate::registry::{Constructor, Registry};

/// Server-side objects of this family.
pub mod server {
    use std::sync::Mutex;
    use std::time::Duration;

    use serde::{Deserialize, Serialize};
    use tokio::sync::watch;

    use super::super::shared_value::lock;
    use crate::error::SyncError;

    /// Where one generation of a barrier stands.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Phase {
        /// Parties are arriving.
        Filling,
        /// Every party arrived; the party with this index runs the action.
        Action(usize),
        /// Every party goes on.
        Released,
        /// Aborted, reset, timed out, or its action failed: every party
        /// fails with `BrokenBarrier`.
        Broken,
    }

    /// One round of `parties` arrivals.
    struct Generation {
        id: u64,
        phase: watch::Sender<Phase>,
        /// The arrivals that offered to run the action.
        volunteers: Vec<usize>,
    }

    impl Generation {
        fn new(id: u64) -> Self {
            Generation {
                id,
                phase: watch::Sender::new(Phase::Filling),
                volunteers: Vec::new(),
            }
        }

        fn end(self, phase: Phase) {
            self.phase.send_replace(phase);
        }
    }

    struct State {
        /// Arrivals in the current generation.
        count: usize,
        /// Python's broken state: every `wait` fails until `reset`.
        broken: bool,
        current: Generation,
        /// Complete generations whose action is running.
        acting: Vec<Generation>,
        next_id: u64,
    }

    impl State {
        /// Start a new generation; returns the one it replaces.
        fn next_generation(&mut self) -> Generation {
            self.next_id += 1;
            self.count = 0;
            std::mem::replace(&mut self.current, Generation::new(self.next_id))
        }

        /// Every waiting party fails with `BrokenBarrier`, the current
        /// generation and those whose action runs alike.
        fn fail_waiters(&mut self) {
            for generation in self.acting.drain(..) {
                generation.end(Phase::Broken);
            }
            self.next_generation().end(Phase::Broken);
        }

        /// Python's `_break()`: the barrier is broken until reset.
        fn break_barrier(&mut self) {
            self.broken = true;
            self.fail_waiters();
        }

        /// The phase of generation `id`, if it is still waited on.
        fn phase_of(&self, id: u64) -> Option<Phase> {
            std::iter::once(&self.current)
                .chain(&self.acting)
                .find(|g| g.id == id)
                .map(|g| *g.phase.borrow())
        }
    }

    /// How one party passed the barrier.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Arrival {
        /// Its index in the generation: `0` for the first to arrive,
        /// `parties - 1` for the last (what Python's `wait()` returns).
        pub index: usize,
        /// `Some(ticket)` if this party must run the action now and then
        /// report with [`Barrier::action_done`]; the other parties stay
        /// blocked until it does.
        pub action: Option<u64>,
    }

    /// What a party does once it has arrived.
    enum Next {
        Done(Arrival),
        Wait {
            index: usize,
            generation: u64,
            phase: watch::Receiver<Phase>,
        },
    }

    /// Python's `threading.Barrier(parties, timeout=timeout)`, served.
    pub struct Barrier {
        parties: usize,
        timeout: Option<Duration>,
        state: Mutex<State>,
    }

    impl Barrier {
        /// A barrier for `parties` parties (at least one) whose waits time
        /// out after `timeout` unless they name their own.
        pub fn new(parties: usize, timeout: Option<Duration>) -> Self {
            Barrier {
                parties: parties.max(1),
                timeout,
                state: Mutex::new(State {
                    count: 0,
                    broken: false,
                    current: Generation::new(0),
                    acting: Vec::new(),
                    next_id: 0,
                }),
            }
        }

        /// Count one arrival; the last one ends the generation.
        fn arrive(&self, offers_action: bool) -> Result<Next, SyncError> {
            let mut state = lock(&self.state);
            if state.broken {
                return Err(SyncError::BrokenBarrier);
            }
            let index = state.count;
            state.count += 1;
            if offers_action {
                state.current.volunteers.push(index);
            }
            if state.count < self.parties {
                return Ok(Next::Wait {
                    index,
                    generation: state.current.id,
                    phase: state.current.phase.subscribe(),
                });
            }
            let complete = state.next_generation();
            let runner = if offers_action {
                Some(index)
            } else {
                complete.volunteers.first().copied()
            };
            let Some(runner) = runner else {
                complete.end(Phase::Released);
                return Ok(Next::Done(Arrival {
                    index,
                    action: None,
                }));
            };
            complete.phase.send_replace(Phase::Action(runner));
            let (generation, phase) = (complete.id, complete.phase.subscribe());
            state.acting.push(complete);
            if runner == index {
                return Ok(Next::Done(Arrival {
                    index,
                    action: Some(generation),
                }));
            }
            Ok(Next::Wait {
                index,
                generation,
                phase,
            })
        }

        /// Pass the barrier: arrive, then wait for the generation's end.
        async fn pass(
            &self,
            timeout: Option<Duration>,
            offers_action: bool,
        ) -> Result<Arrival, SyncError> {
            let (index, generation, mut phase) = match self.arrive(offers_action)? {
                Next::Done(arrival) => return Ok(arrival),
                Next::Wait {
                    index,
                    generation,
                    phase,
                } => (index, generation, phase),
            };
            let mut leaving = Leaving {
                barrier: self,
                generation,
                index,
                armed: true,
            };
            let ended = |phase: &Phase| match *phase {
                Phase::Filling => false,
                Phase::Action(runner) => runner == index,
                Phase::Released | Phase::Broken => true,
            };
            let waited = async {
                match phase.wait_for(ended).await {
                    Ok(phase) => *phase,
                    // Every generation ends before its channel closes.
                    Err(_) => Phase::Broken,
                }
            };
            let outcome = match timeout.or(self.timeout) {
                None => waited.await,
                Some(timeout) => {
                    let waited = tokio::time::timeout(timeout, waited).await;
                    match waited {
                        Ok(outcome) => outcome,
                        Err(_) => self.time_out(&phase, ended),
                    }
                }
            };
            leaving.armed = false;
            match outcome {
                Phase::Released => Ok(Arrival {
                    index,
                    action: None,
                }),
                Phase::Action(_) => Ok(Arrival {
                    index,
                    action: Some(generation),
                }),
                Phase::Filling | Phase::Broken => Err(SyncError::BrokenBarrier),
            }
        }

        /// A wait timed out: unless its generation ended meanwhile, the
        /// barrier breaks (Python's `_wait`).
        fn time_out(
            &self,
            phase: &watch::Receiver<Phase>,
            ended: impl Fn(&Phase) -> bool,
        ) -> Phase {
            let mut state = lock(&self.state);
            // Phases change only under the state lock: this is the last word.
            let now = *phase.borrow();
            if ended(&now) {
                return now;
            }
            state.break_barrier();
            Phase::Broken
        }
    }

    /// Breaks the barrier if a waiting party's call is dropped (its
    /// server shutting down): the others must not wait for it forever.
    struct Leaving<'a> {
        barrier: &'a Barrier,
        generation: u64,
        index: usize,
        armed: bool,
    }

    impl Drop for Leaving<'_> {
        fn drop(&mut self) {
            if !self.armed {
                return;
            }
            let mut state = lock(&self.barrier.state);
            match state.phase_of(self.generation) {
                Some(Phase::Filling) => state.break_barrier(),
                Some(Phase::Action(runner)) if runner == self.index => state.break_barrier(),
                _ => {}
            }
        }
    }

    #[crate::shared(typeid = "Barrier")]
    impl Barrier {
        /// Python's `barrier.wait(timeout)`: block until `parties` parties
        /// have called it, and return this party's index (`0` for the first
        /// to arrive, `parties - 1` for the last). A timeout (this call's,
        /// else the barrier's default) breaks the barrier; every party
        /// then fails with `BrokenBarrier`, as they do while it is broken
        /// and when it is aborted or reset under them.
        pub async fn wait(&self, timeout: Option<Duration>) -> Result<usize, SyncError> {
            self.pass(timeout, false).await.map(|arrival| arrival.index)
        }

        /// Like [`wait`](Self::wait), offering to run the generation's
        /// action. When this party is chosen, it returns at once with a
        /// ticket, the other parties stay blocked, and it must report with
        /// [`action_done`](Self::action_done).
        pub async fn wait_offering_action(
            &self,
            timeout: Option<Duration>,
        ) -> Result<Arrival, SyncError> {
            self.pass(timeout, true).await
        }

        /// The action of generation `ticket` finished: `ok` releases its
        /// parties, a failure breaks the barrier (as Python does when the
        /// action raises). Fails with `BrokenBarrier` if the barrier broke
        /// while the action ran.
        pub fn action_done(&self, ticket: u64, ok: bool) -> Result<(), SyncError> {
            let mut state = lock(&self.state);
            let Some(position) = state.acting.iter().position(|g| g.id == ticket) else {
                return Err(SyncError::BrokenBarrier);
            };
            if ok {
                state.acting.remove(position).end(Phase::Released);
            } else {
                state.break_barrier();
            }
            Ok(())
        }

        /// Python's `barrier.abort()`: break the barrier; waiting parties
        /// fail with `BrokenBarrier`, as every `wait` does until
        /// [`reset`](Self::reset).
        pub fn abort(&self) {
            lock(&self.state).break_barrier();
        }

        /// Python's `barrier.reset()`: waiting parties fail with
        /// `BrokenBarrier`, and the barrier is usable again (also after an
        /// abort).
        pub fn reset(&self) {
            let mut state = lock(&self.state);
            state.fail_waiters();
            state.broken = false;
        }

        /// Python's `barrier.parties`.
        pub fn parties(&self) -> usize {
            self.parties
        }

        /// Python's `barrier.n_waiting`: parties waiting in the current
        /// generation.
        pub fn n_waiting(&self) -> usize {
            let state = lock(&self.state);
            if state.broken {
                0
            } else {
                state.count
            }
        }

        /// Python's `barrier.broken`.
        pub fn broken(&self) -> bool {
            lock(&self.state).broken
        }
    }
}

/// Typed proxies of this family.
pub mod typed {
    use std::fmt;
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::super::shared_value::flatten;
    use super::server::BarrierProxy as RawBarrierProxy;
    use crate::error::Result;
    use crate::proxy::{Proxy, ProxyBase};

    /// A proxy of a shared [`Barrier`](super::server::Barrier) (Python's
    /// `BarrierProxy`). Errors of a broken barrier come back as
    /// [`SyncError::BrokenBarrier`](crate::SyncError::BrokenBarrier).
    ///
    /// ```
    /// # fn main() -> manager_runtime::Result<()> {
    /// let manager = manager_runtime::sync::SyncManager::new();
    /// manager.start_in_thread()?;
    /// let barrier = manager.barrier(2)?;
    /// let other = barrier.clone();
    /// let party = std::thread::spawn(move || other.wait(None));
    /// let mine = barrier.wait(None)?;
    /// let theirs = party.join().unwrap()?;
    /// assert_eq!(mine + theirs, 1); // one got 0, the other 1
    /// # Ok(()) }
    /// ```
    #[derive(Clone)]
    pub struct BarrierProxy {
        raw: RawBarrierProxy,
    }

    impl BarrierProxy {
        /// The generated proxy this one wraps.
        pub fn raw(&self) -> &RawBarrierProxy {
            &self.raw
        }

        /// Python's `barrier.wait(timeout)`: block until every party has
        /// arrived; returns this party's index, `0..parties`, each given
        /// once per generation. `None` uses the barrier's default timeout
        /// (if any); a timeout breaks the barrier.
        pub fn wait(&self, timeout: Option<Duration>) -> Result<usize> {
            flatten(self.raw.wait(timeout))
        }

        /// Like [`wait`](Self::wait), with Python's barrier `action`: once
        /// every party has arrived, exactly one of the parties that passed
        /// an action runs it (this one if it arrived last) before any party
        /// is released. If the action panics, the barrier breaks (the other
        /// parties fail with `BrokenBarrier`) and the panic goes on here.
        ///
        /// Pass the same action from every party to have Python's
        /// behaviour: one run per generation, whoever arrives last.
        pub fn wait_with_action(
            &self,
            timeout: Option<Duration>,
            action: impl FnOnce(),
        ) -> Result<usize> {
            let arrival = flatten(self.raw.wait_offering_action(timeout))?;
            if let Some(ticket) = arrival.action {
                let mut report = ActionReport {
                    raw: &self.raw,
                    ticket,
                    finished: false,
                };
                action();
                report.finished = true;
                flatten(self.raw.action_done(ticket, true))?;
            }
            Ok(arrival.index)
        }

        /// Python's `barrier.abort()`: break the barrier.
        pub fn abort(&self) -> Result<()> {
            self.raw.abort()
        }

        /// Python's `barrier.reset()`: fail the waiting parties and make
        /// the barrier usable again.
        pub fn reset(&self) -> Result<()> {
            self.raw.reset()
        }

        /// Python's `barrier.parties`.
        pub fn parties(&self) -> Result<usize> {
            self.raw.parties()
        }

        /// Python's `barrier.n_waiting`.
        pub fn n_waiting(&self) -> Result<usize> {
            self.raw.n_waiting()
        }

        /// Python's `barrier.broken`.
        pub fn broken(&self) -> Result<bool> {
            self.raw.broken()
        }
    }

    /// Reports a failed action if the action panics.
    struct ActionReport<'a> {
        raw: &'a RawBarrierProxy,
        ticket: u64,
        finished: bool,
    }

    impl Drop for ActionReport<'_> {
        fn drop(&mut self) {
            if !self.finished {
                let _ = self.raw.action_done(self.ticket, false);
            }
        }
    }

    impl From<RawBarrierProxy> for BarrierProxy {
        fn from(raw: RawBarrierProxy) -> Self {
            BarrierProxy { raw }
        }
    }

    impl Proxy for BarrierProxy {
        fn from_base(base: ProxyBase) -> Self {
            RawBarrierProxy::from_base(base).into()
        }

        fn base(&self) -> &ProxyBase {
            self.raw.base()
        }
    }

    impl fmt::Debug for BarrierProxy {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Debug::fmt(&self.raw, f)
        }
    }

    impl fmt::Display for BarrierProxy {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Display::fmt(&self.raw, f)
        }
    }

    impl Serialize for BarrierProxy {
        /// As its token, so a container stores it as a proxy.
        fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
            self.raw.serialize(serializer)
        }
    }

    impl<'de> Deserialize<'de> for BarrierProxy {
        /// A proxy inside a manager's reply, adopted by its session.
        fn deserialize<D: Deserializer<'de>>(
            deserializer: D,
        ) -> std::result::Result<Self, D::Error> {
            RawBarrierProxy::deserialize(deserializer).map(Into::into)
        }
    }
}

use typed::BarrierProxy;

pub(crate) fn register(registry: &mut Registry) {
    registry.register::<server::Barrier>(
        "Barrier",
        None,
        Some(Constructor::new(
            |(parties, timeout): (usize, Option<Duration>)| server::Barrier::new(parties, timeout),
        )),
    );
}

impl SyncManager {
    /// A new shared `Barrier` for `parties` parties (Python's
    /// `manager.Barrier(parties)`); `parties` must be at least 1
    /// (ValueError).
    pub fn barrier(&self, parties: usize) -> Result<BarrierProxy> {
        self.create_barrier(parties, None)
    }

    /// A new shared `Barrier` whose waits time out after `timeout` unless
    /// they name their own (Python's `manager.Barrier(parties,
    /// timeout=timeout)`).
    pub fn barrier_with_timeout(&self, parties: usize, timeout: Duration) -> Result<BarrierProxy> {
        self.create_barrier(parties, Some(timeout))
    }

    fn create_barrier(&self, parties: usize, timeout: Option<Duration>) -> Result<BarrierProxy> {
        if parties == 0 {
            return Err(Error::Sync(SyncError::ValueError(
                "a barrier needs at least one party".into(),
            )));
        }
        let raw: server::BarrierProxy = self.create("Barrier", &(parties, timeout))?;
        Ok(raw.into())
    }
}
