//! The pool's state and its thread: which worker holds which task, and
//! what happens when a task comes back or a worker dies.
//!
//! Callers put chunks on the queue and dispatch them to idle workers
//! themselves, under the state's lock (no thread hop on the way in; a
//! `map` chunk by chunk as it encodes them, so the workers start on the
//! first while the rest are encoded); each
//! worker has at most [`DEPTH`] chunks in flight, so it always has the next
//! one at hand and a slow chunk holds back at most one other. The pool's
//! thread watches every worker's connection (a pipe through shared
//! memory: it looks at the lanes while it spins, then sleeps on their
//! eventfds and sockets), its pidfd, and an eventfd of its own: it
//! routes answers to their jobs, dispatches more, and when a worker dies
//! fails exactly the chunks it held ([`Error::WorkerDied`]) and starts a
//! replacement. Completions (callbacks included) run after the lock is
//! released, so a callback may use the pool.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub(super) use super::worker::Results;
use super::worker::{self, Done, Outcome, Ready, Run};
use crate::crossing::{Carried, Keep, ServerInfo};
use crate::error::{Error, ProcessError, Result};
use crate::process::connection::{Connection, Pipe};
use crate::process::image::{FnRef, ImageId};
use crate::process::target::TaskEntry;
use crate::process::Process;

/// Chunks in flight per worker, at most.
pub(super) const DEPTH: usize = 4;
/// How long the pool's thread polls before it sleeps while workers hold
/// tasks: an answer is often this close, and a wake-up from sleep costs
/// tens of microseconds on a VM.
const SPIN: Duration = Duration::from_micros(50);
/// Replacement workers failing to start in a row before the pool gives up.
const RESPAWN_LIMIT: u32 = 3;

/// A chunk's calls, encoded, with what they carry (descriptors, the
/// servers of their proxies) and the proxies' clones, kept until the
/// chunk is answered so that its objects outlive the worker's adopting
/// them.
pub(super) struct Args {
    pub(super) carried: Carried,
    pub(super) keep: Keep,
}

impl Args {
    /// Calls made elsewhere (a manager's client), carrying nothing.
    pub(super) fn bare(bytes: Vec<u8>) -> Args {
        Args {
            carried: Carried::bare(bytes),
            keep: Keep::new(),
        }
    }
}

/// A chunk of calls of one job, encoded, waiting for a worker.
pub(super) struct Chunk {
    pub(super) job: u64,
    pub(super) index: usize,
    pub(super) count: u32,
    pub(super) entry: FnRef<TaskEntry>,
    pub(super) args: Args,
}

/// What runs once the lock is released: a job's completion.
pub(super) type Completion = Box<dyn FnOnce() + Send>;

/// Something callers wait for: one `apply`, a whole `map`, an `imap`.
///
/// A job's chunks come with its submission, or after it: a `map` caller
/// adds each chunk as it has encoded it ([`Shared::push`]) and then says
/// it sent the last ([`Shared::seal`]); a lazy job (`imap`) is asked for
/// its next chunk whenever a worker has room.
pub(super) trait Job: Send {
    /// Chunk `index` of `count` calls was queued for it.
    fn added(&mut self, _index: usize, _count: u32) {}
    /// Chunk `index` came back: what to run once the lock is released,
    /// if anything.
    fn done(&mut self, index: usize, result: Result<Results>) -> Option<Completion>;
    /// Whether the job is over (asked after each answer, when it is
    /// sealed, and for a lazy job when it has no chunk to give): then the
    /// pool forgets it, and drops any later answer for it.
    fn over(&self) -> bool;
    /// Its caller added its last chunk: what to run once the lock is
    /// released, if anything.
    fn sealed(&mut self) -> Option<Completion> {
        None
    }
    /// The pool gave up on the job (terminated, broken).
    fn abort(&mut self, error: Error) -> Completion;
    /// A lazy job's next chunk, if it has one and may send it now.
    fn next_chunk(&mut self) -> Option<Chunk> {
        None
    }
}

/// The jobs an engine runs, by id, and which of them pull their chunks
/// lazily: what both engines keep the same way.
pub(super) struct Jobs {
    map: HashMap<u64, Box<dyn Job>>,
    /// Jobs with chunks still to pull (imap).
    lazy: Vec<u64>,
    next: u64,
}

impl Jobs {
    pub(super) fn new() -> Jobs {
        Jobs {
            map: HashMap::new(),
            lazy: Vec::new(),
            next: 1,
        }
    }

    /// Register `job`: its id.
    pub(super) fn add(&mut self, job: Box<dyn Job>, lazy: bool) -> u64 {
        let id = self.next;
        self.next += 1;
        self.map.insert(id, job);
        if lazy {
            self.lazy.push(id);
        }
        id
    }

    /// Tell job `id` that its chunk `index` of `count` calls was queued;
    /// false if there is no such job (nothing should be queued for it).
    pub(super) fn added(&mut self, id: u64, index: usize, count: u32) -> bool {
        let Some(job) = self.map.get_mut(&id) else {
            return false;
        };
        job.added(index, count);
        true
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(super) fn contains(&self, id: u64) -> bool {
        self.map.contains_key(&id)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Forget job `id`: answers for it are dropped from now on.
    pub(super) fn remove(&mut self, id: u64) {
        self.map.remove(&id);
        self.lazy.retain(|&j| j != id);
    }

    /// Chunk `index` of `job` came back with `result`: what to run for it.
    /// A job that is over is forgotten.
    pub(super) fn finish(
        &mut self,
        job: u64,
        index: usize,
        result: Result<Results>,
    ) -> Option<Completion> {
        let entry = self.map.get_mut(&job)?;
        let completion = entry.done(index, result);
        if entry.over() {
            self.remove(job);
        }
        completion
    }

    /// The caller of job `id` added its last chunk: what to run.
    pub(super) fn seal(&mut self, id: u64) -> Option<Completion> {
        let job = self.map.get_mut(&id)?;
        let completion = job.sealed();
        if job.over() {
            self.remove(id);
        }
        completion
    }

    /// Give up on every job, each with its own copy of `error`.
    pub(super) fn abort_all(&mut self, error: &Error) -> Vec<Completion> {
        self.lazy.clear();
        self.map
            .drain()
            .map(|(_, mut job)| job.abort(error.duplicate()))
            .collect()
    }

    /// The next chunk of a lazy job (of `only`, if given), with its job's
    /// id; lazy jobs found over on the way are forgotten.
    pub(super) fn next_lazy(&mut self, only: Option<u64>) -> Option<Chunk> {
        let lazy: Vec<u64> = self
            .lazy
            .iter()
            .copied()
            .filter(|&id| only.is_none_or(|job| job == id))
            .collect();
        for id in lazy {
            let Some(job) = self.map.get_mut(&id) else {
                continue;
            };
            if let Some(mut chunk) = job.next_chunk() {
                chunk.job = id;
                return Some(chunk);
            }
            if job.over() {
                self.remove(id);
            }
        }
        None
    }
}

/// What runs a pool's jobs: its own worker processes ([`Shared`]) or, for a
/// distributed pool, workers anywhere pulling from Redis
/// (`distributed.rs`). [`Pool`](super::Pool) and its jobs are the same
/// over either.
pub(super) trait Engine: Send + Sync {
    /// Register `job` with its first `chunks` (and, if `lazy`, pull the
    /// rest as there is room); its id.
    fn submit(
        &self,
        job: Box<dyn Job>,
        chunks: Vec<(usize, u32, FnRef<TaskEntry>, Args)>,
        lazy: bool,
    ) -> Result<u64>;
    /// Queue chunk `index` of job `id`; false if the job is gone.
    fn push(&self, id: u64, index: usize, count: u32, entry: FnRef<TaskEntry>, args: Args) -> bool;
    /// The caller of job `id` pushed its last chunk.
    fn seal(&self, id: u64);
    /// Forget job `id`: nothing more pulled, later answers dropped.
    fn cancel(&self, id: u64);
    /// Pull again (an `imap` consumer made room).
    fn refill(&self);
    /// No more submissions.
    fn close(&self);
    /// Fail every pending job, stop what can be stopped.
    fn terminate(&self);
    /// Where the pool is in its life.
    fn phase(&self) -> Phase;
    /// How many workers to size chunks for.
    fn processes(&self) -> usize;
    /// How a task's arguments are encoded for this engine.
    fn route(&self) -> crate::crossing::Route;
    /// The calls each worker answered.
    fn calls_by_worker(&self) -> Vec<super::WorkerCalls>;
}

impl Engine for Shared {
    fn submit(
        &self,
        job: Box<dyn Job>,
        chunks: Vec<(usize, u32, FnRef<TaskEntry>, Args)>,
        lazy: bool,
    ) -> Result<u64> {
        Shared::submit(self, job, chunks, lazy)
    }

    fn push(&self, id: u64, index: usize, count: u32, entry: FnRef<TaskEntry>, args: Args) -> bool {
        Shared::push(self, id, index, count, entry, args)
    }

    fn seal(&self, id: u64) {
        Shared::seal(self, id)
    }

    fn cancel(&self, id: u64) {
        Shared::cancel(self, id)
    }

    fn refill(&self) {
        Shared::refill(self)
    }

    fn close(&self) {
        Shared::close(self)
    }

    fn terminate(&self) {
        Shared::terminate(self)
    }

    fn phase(&self) -> Phase {
        self.state().phase
    }

    fn processes(&self) -> usize {
        self.config.processes
    }

    fn route(&self) -> crate::crossing::Route {
        crate::crossing::Route::Pipe
    }

    fn calls_by_worker(&self) -> Vec<super::WorkerCalls> {
        let state = self.state();
        state
            .calls
            .iter()
            .map(|(&pid, &calls)| super::WorkerCalls {
                pid,
                host: None,
                calls,
            })
            .collect()
    }
}

/// What a pool is started with, kept to start replacement workers.
pub(super) struct Config {
    pub(super) processes: usize,
    pub(super) image: ImageId,
    pub(super) initializer: worker::Initializer,
    /// The clones of the proxies among the initializer's arguments: their
    /// objects stay alive while the pool may start workers. Held, never
    /// read.
    #[allow(dead_code)]
    pub(super) keep: Keep,
    /// Servers the workers reach the way this process does (a manager's
    /// pool: its own server).
    pub(super) servers: Vec<ServerInfo>,
    pub(super) maxtasks: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Running,
    Closed,
    Terminated,
}

struct Slot {
    process: Process,
    conn: Arc<Connection>,
    pid: u32,
    pidfd: Option<Arc<OwnedFd>>,
    /// Every chunk this worker holds: task id, job, chunk index, calls,
    /// and the proxies' clones its arguments need until it is answered.
    in_flight: Vec<(u64, u64, usize, u32, Keep)>,
    /// Chunks ever sent to it (for `maxtasksperchild`).
    assigned: u64,
}

pub(super) struct State {
    pub(super) phase: Phase,
    workers: Vec<Slot>,
    queue: VecDeque<Chunk>,
    jobs: Jobs,
    next_task: u64,
    failed_starts: u32,
    /// Why the pool can no longer run anything, once it cannot.
    broken: Option<String>,
    /// Calls answered, by worker pid.
    calls: std::collections::BTreeMap<u32, u64>,
}

/// What the pool's handle and its thread share.
pub(super) struct Shared {
    state: Mutex<State>,
    /// Written to wake the pool's thread.
    wake: OwnedFd,
    config: Config,
}

/// How many pool workers this process has named.
static WORKERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// Start `count` workers side by side, each ready.
fn start_workers(config: &Config, count: usize) -> Result<Vec<Slot>> {
    let mut pending = Vec::with_capacity(count);
    for _ in 0..count {
        let (ours, theirs) = Pipe::duplex()?;
        let number = WORKERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let process = Process::new(
            worker::serve,
            (
                theirs,
                config.image.clone(),
                config.initializer.clone(),
                config.maxtasks,
                config.servers.clone(),
            ),
        )
        .with_name(format!("PoolWorker-{number}"));
        pending.push((process, ours));
    }
    let processes: Vec<&Process> = pending.iter().map(|(p, _)| p).collect();
    crate::process::child::start_all(&processes)?;
    let mut slots = Vec::with_capacity(count);
    for (process, conn) in pending {
        let ready: Ready = conn.recv()?;
        ready.map_err(Error::Spawn)?;
        let pid = process.pid().expect("started");
        slots.push(Slot {
            pidfd: process.pidfd(),
            process,
            conn: Arc::new(conn),
            pid,
            in_flight: Vec::new(),
            assigned: 0,
        });
    }
    Ok(slots)
}

impl Shared {
    /// A pool's shared state with its first workers, and its thread.
    pub(super) fn start(config: Config) -> Result<(Arc<Shared>, std::thread::JoinHandle<()>)> {
        let workers = start_workers(&config, config.processes)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                phase: Phase::Running,
                workers,
                queue: VecDeque::new(),
                jobs: Jobs::new(),
                next_task: 1,
                failed_starts: 0,
                broken: None,
                calls: Default::default(),
            }),
            wake: crate::process::lane::eventfd()?,
            config,
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("managers-pool".into())
                .spawn(move || shared.run())?
        };
        Ok((shared, thread))
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self) {
        crate::process::lane::signal(self.wake.as_fd());
    }

    /// Register `job` with its `chunks` (and, if lazy, what it will pull)
    /// and dispatch what the workers can take now.
    /// Its id.
    pub(super) fn submit(
        &self,
        job: Box<dyn Job>,
        chunks: Vec<(usize, u32, FnRef<TaskEntry>, Args)>,
        lazy: bool,
    ) -> Result<u64> {
        let mut state = self.state();
        if state.phase != Phase::Running {
            return Err(ProcessError::PoolNotRunning.into());
        }
        if let Some(reason) = &state.broken {
            return Err(Error::ProcessStart(reason.clone()));
        }
        let id = state.jobs.add(job, lazy);
        for (index, count, entry, args) in chunks {
            enqueue(&mut state, id, index, count, entry, args);
        }
        self.fill(&mut state);
        Ok(id)
    }

    /// Queue chunk `index` (`count` calls of `entry`) of job `id`, which
    /// its caller is still encoding, and dispatch what the workers can
    /// take. False if the job is gone (it failed, or the pool gave up on
    /// it): nothing more is needed for it.
    pub(super) fn push(
        &self,
        id: u64,
        index: usize,
        count: u32,
        entry: FnRef<TaskEntry>,
        args: Args,
    ) -> bool {
        let mut state = self.state();
        if !enqueue(&mut state, id, index, count, entry, args) {
            return false;
        }
        self.fill(&mut state);
        true
    }

    /// The caller of job `id` pushed its last chunk.
    pub(super) fn seal(&self, id: u64) {
        let completion = self.state().jobs.seal(id);
        if let Some(completion) = completion {
            completion();
        }
        // A closed pool may be idle now.
        self.wake();
    }

    /// Forget `job` (its `imap` iterator was dropped): nothing more is
    /// pulled for it, answers still out are dropped when they come.
    pub(super) fn cancel(&self, job: u64) {
        let mut state = self.state();
        state.jobs.remove(job);
        state.queue.retain(|c| c.job != job);
        drop(state);
        // A closed pool may be idle now.
        self.wake();
    }

    /// Give idle workers a chunk each (queued ones first, then lazy jobs'
    /// next), then, round by round up to [`DEPTH`], busy workers more
    /// chunks of the job they are on: pipelining within a job keeps a
    /// worker fed, and never puts an unrelated task behind a slow one.
    pub(super) fn fill(&self, state: &mut State) {
        let maxtasks = self.config.maxtasks;
        for depth in 0..DEPTH {
            for w in 0..state.workers.len() {
                let slot = &state.workers[w];
                if slot.in_flight.len() != depth || (maxtasks > 0 && slot.assigned >= maxtasks) {
                    continue;
                }
                let job = slot.in_flight.first().map(|&(_, job, ..)| job);
                let Some(chunk) = next_chunk(state, job) else {
                    if job.is_none() {
                        break;
                    }
                    continue;
                };
                let task = state.next_task;
                state.next_task += 1;
                let slot = &mut state.workers[w];
                let run = Run {
                    id: task,
                    entry: chunk.entry,
                    count: chunk.count,
                };
                match slot.conn.send(&(run, &chunk.args.carried)) {
                    Ok(()) => {
                        slot.in_flight.push((
                            task,
                            chunk.job,
                            chunk.index,
                            chunk.count,
                            chunk.args.keep,
                        ));
                        slot.assigned += 1;
                    }
                    // The worker is gone (its thread will see it): the
                    // chunk waits for another.
                    Err(_) => state.queue.push_front(chunk),
                }
            }
        }
    }

    /// Dispatch again (an `imap` consumer made room).
    pub(super) fn refill(&self) {
        let mut state = self.state();
        if state.phase == Phase::Running || state.phase == Phase::Closed {
            self.fill(&mut state);
        }
    }

    /// No more submissions; the thread ends the workers once all work is
    /// done.
    pub(super) fn close(&self) {
        let mut state = self.state();
        if state.phase == Phase::Running {
            state.phase = Phase::Closed;
        }
        drop(state);
        self.wake();
    }

    /// End the workers now and fail every pending job.
    pub(super) fn terminate(&self) {
        let mut state = self.state();
        state.phase = Phase::Terminated;
        for slot in &state.workers {
            let _ = slot.process.terminate();
        }
        state.queue.clear();
        let aborted = state.jobs.abort_all(&ProcessError::PoolTerminated.into());
        drop(state);
        self.wake();
        for completion in aborted {
            completion();
        }
    }

    /// The pool's thread.
    fn run(self: Arc<Self>) {
        loop {
            let (watched, busy) = {
                let mut state = self.state();
                if self.finished(&mut state) {
                    break;
                }
                let watched: Vec<(u32, Arc<Connection>, Option<Arc<OwnedFd>>)> = state
                    .workers
                    .iter()
                    .map(|s| (s.pid, Arc::clone(&s.conn), s.pidfd.clone()))
                    .collect();
                (
                    watched,
                    state.workers.iter().any(|s| !s.in_flight.is_empty()),
                )
            };
            let mut fds = vec![libc::pollfd {
                fd: self.wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            for (_, conn, pidfd) in &watched {
                fds.extend(conn.pollfds());
                // (A worker's death also closes its connection: without a
                // pidfd, end of file is enough.)
                fds.push(libc::pollfd {
                    fd: pidfd.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            let conns: Vec<&Connection> = watched.iter().map(|(_, conn, _)| &**conn).collect();
            wait(&mut fds, &conns, busy);
            if fds[0].revents != 0 {
                crate::process::lane::drain(self.wake.as_fd());
            }
            let mut answers = Vec::new();
            let mut dead = Vec::new();
            for (i, (pid, conn, _)) in watched.iter().enumerate() {
                let readable = conn.polled([fds[1 + 3 * i].revents, fds[2 + 3 * i].revents]);
                let exited = fds[3 + 3 * i].revents != 0;
                // Every whole answer there is: what poll saw, then what the
                // connection buffered with it.
                let mut next = readable;
                while next {
                    match conn.recv_bytes() {
                        Ok(message) => answers.push((*pid, message)),
                        Err(_) => {
                            dead.push(*pid);
                            break;
                        }
                    }
                    next = conn.has_message();
                }
                if exited && !dead.contains(pid) {
                    dead.push(*pid);
                }
            }
            drop(watched);
            let completions = self.handle(answers, dead);
            for completion in completions {
                completion();
            }
        }
    }

    /// Whether the thread is done (closed and idle, or terminated): then it
    /// has ended the workers.
    fn finished(&self, state: &mut State) -> bool {
        let idle = state.jobs.is_empty() && state.queue.is_empty();
        let done = match state.phase {
            Phase::Running => false,
            Phase::Closed => idle,
            Phase::Terminated => true,
        };
        if !done {
            return false;
        }
        // Closing the connections ends idle workers (end of file); a
        // terminated pool's were signalled already.
        let workers = std::mem::take(&mut state.workers);
        for slot in workers {
            drop(slot.conn);
            let _ = slot.process.join_timeout(Duration::from_secs(5));
            let _ = slot.process.kill();
            let _ = slot.process.join();
        }
        true
    }

    /// Route answers, bury dead workers (failing what they held), start
    /// replacements, dispatch more. Returns the completions to run.
    fn handle(&self, answers: Vec<(u32, Vec<u8>)>, dead: Vec<u32>) -> Vec<Completion> {
        let mut state = self.state();
        let mut completions = Vec::new();
        for (pid, message) in answers {
            let Ok((done, rest)) = worker::split::<Done>(&message) else {
                continue;
            };
            let start = message.len() - rest.len();
            let Some(slot) = state.workers.iter_mut().find(|s| s.pid == pid) else {
                continue;
            };
            let Some(at) = slot
                .in_flight
                .iter()
                .position(|(task, ..)| *task == done.id)
            else {
                continue;
            };
            let (_, job, index, count, _keep) = slot.in_flight.remove(at);
            if matches!(done.outcome, Outcome::Ok) {
                *state.calls.entry(pid).or_default() += u64::from(count);
            }
            let result = done.outcome.into_result(Results {
                bytes: message,
                start,
            });
            completions.extend(state.jobs.finish(job, index, result));
        }
        for pid in dead {
            let Some(at) = state.workers.iter().position(|s| s.pid == pid) else {
                continue;
            };
            let slot = state.workers.remove(at);
            drop(slot.conn);
            let exitcode = match slot.process.join_timeout(Duration::from_secs(5)) {
                Ok(true) => slot.process.exitcode().unwrap_or(0),
                _ => {
                    let _ = slot.process.kill();
                    let _ = slot.process.join();
                    slot.process.exitcode().unwrap_or(-libc::SIGKILL)
                }
            };
            for (_, job, index, _, _keep) in slot.in_flight {
                let error = Error::WorkerDied { pid, exitcode };
                completions.extend(state.jobs.finish(job, index, Err(error)));
            }
        }
        if state.phase != Phase::Terminated {
            self.replace(&mut state, &mut completions);
            self.fill(&mut state);
        }
        completions
    }

    /// Keep `processes` workers while there is or may be work.
    fn replace(&self, state: &mut State, completions: &mut Vec<Completion>) {
        let idle_closed = state.phase == Phase::Closed && state.jobs.is_empty();
        let missing = self.config.processes.saturating_sub(state.workers.len());
        if missing == 0 || idle_closed || state.broken.is_some() {
            return;
        }
        match start_workers(&self.config, missing) {
            Ok(mut slots) => {
                state.failed_starts = 0;
                state.workers.append(&mut slots);
            }
            Err(e) => {
                state.failed_starts += 1;
                if state.failed_starts >= RESPAWN_LIMIT
                    || state.workers.is_empty() && state.failed_starts >= 1
                {
                    let reason = format!("the pool cannot start workers: {e}");
                    state.broken = Some(reason.clone());
                    state.queue.clear();
                    completions.extend(state.jobs.abort_all(&Error::ProcessStart(reason)));
                }
            }
        }
    }
}

/// Queue chunk `index` of job `id`, telling the job; false (nothing
/// queued) if there is no such job.
fn enqueue(
    state: &mut State,
    id: u64,
    index: usize,
    count: u32,
    entry: FnRef<TaskEntry>,
    args: Args,
) -> bool {
    if !state.jobs.added(id, index, count) {
        return false;
    }
    state.queue.push_back(Chunk {
        job: id,
        index,
        count,
        entry,
        args,
    });
    true
}

/// Wait for any of `fds`: if tasks are out (`busy`), poll without sleeping
/// for a moment first, yielding the CPU each turn.
fn wait(fds: &mut [libc::pollfd], conns: &[&Connection], busy: bool) {
    let poll = |fds: &mut [libc::pollfd], timeout: i32| {
        // SAFETY: `fds` is a valid array of pollfds for the call.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) }
    };
    if busy && crate::process::shm::several_cpus() {
        let begun = std::time::Instant::now();
        while begun.elapsed() < SPIN {
            // Answers through shared memory are seen without a system
            // call; the rest (a socket's, a death, a wake-up) by polling.
            if conns.iter().any(|c| c.pending()) {
                return;
            }
            if poll(fds, 0) > 0 {
                // (A lane's wake-up left from an earlier sleep fires too:
                // emptied here, so that it does not end the next spin.)
                for conn in conns {
                    conn.unwatch();
                }
                return;
            }
            std::thread::yield_now();
        }
    }
    // Workers writing through shared memory wake this thread only once it
    // says it sleeps.
    let mut now = false;
    for conn in conns {
        now |= conn.watch();
    }
    poll(fds, if now { 0 } else { -1 });
    for conn in conns {
        conn.unwatch();
    }
}

/// The next chunk to send: of job `only` if given, else of any job;
/// queued chunks before lazy jobs' (lazy jobs that turn out over are
/// removed on the way).
fn next_chunk(state: &mut State, only: Option<u64>) -> Option<Chunk> {
    let queued = match only {
        None => (!state.queue.is_empty()).then_some(0),
        Some(job) => state.queue.iter().position(|c| c.job == job),
    };
    if let Some(at) = queued {
        return state.queue.remove(at);
    }
    state.jobs.next_lazy(only)
}
