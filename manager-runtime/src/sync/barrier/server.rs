//! The barrier as the server holds it.
#![forbid(unsafe_code)]

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::sync::lock;
use crate::SyncError;

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

impl crate::sync::typed::FromReply<Arrival> for Arrival {
    fn from_reply(_: &crate::proxy::ProxyBase, raw: Arrival) -> crate::Result<Arrival> {
        Ok(raw)
    }
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
    fn time_out(&self, phase: &watch::Receiver<Phase>, ended: impl Fn(&Phase) -> bool) -> Phase {
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

#[crate::shared(typeid = "Barrier", typed)]
impl Barrier {
    /// Python's `barrier.wait(timeout)`: block until `parties` parties
    /// have called it, and return this party's index (`0` for the first
    /// to arrive, `parties - 1` for the last). A timeout (this call's,
    /// else the barrier's default) breaks the barrier; every party
    /// then fails with `BrokenBarrier`, as they do while it is broken
    /// and when it is aborted or reset under them.
    #[py("wait", timeout = zero)]
    pub async fn wait(
        &self,
        #[py(default = None)] timeout: Option<Duration>,
    ) -> Result<usize, SyncError> {
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
    #[py("abort")]
    pub fn abort(&self) {
        lock(&self.state).break_barrier();
    }

    /// Python's `barrier.reset()`: waiting parties fail with
    /// `BrokenBarrier`, and the barrier is usable again (also after an
    /// abort).
    #[py("reset")]
    pub fn reset(&self) {
        let mut state = lock(&self.state);
        state.fail_waiters();
        state.broken = false;
    }

    /// Python's `barrier.parties`.
    #[py(attr)]
    pub fn parties(&self) -> usize {
        self.parties
    }

    /// Python's `barrier.n_waiting`: parties waiting in the current
    /// generation.
    #[py(attr)]
    pub fn n_waiting(&self) -> usize {
        let state = lock(&self.state);
        if state.broken {
            0
        } else {
            state.count
        }
    }

    /// Python's `barrier.broken`.
    #[py(attr)]
    pub fn broken(&self) -> bool {
        lock(&self.state).broken
    }
}
