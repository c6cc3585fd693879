//! A distributed pool's caller: its jobs' chunks go into a Redis stream
//! that workers anywhere read as one consumer group (`remote_worker.rs`),
//! and their answers come back on a stream of this caller's own, read by
//! the pool's thread.
//!
//! The keys of a pool named `P` (every caller and worker of one pool
//! agree on `P`):
//!
//! - `managers:pool:P:tasks`: the tasks, a stream read by the group
//!   `workers`. An entry is a [`TaskHeader`] (`h`) and the encoded calls
//!   (`a`).
//! - `managers:pool:P:results:C`: caller `C`'s answers, an [`Answer`]
//!   (`h`) and the encoded results (`b`); `w` entries only wake the pool's
//!   thread. It expires when nobody reads it.
//! - `managers:pool:P:alive:C`: caller `C`'s lease, refreshed by its
//!   thread. Workers skip the tasks of a caller whose lease is gone.
//! - `managers:pool:P:workers`: the live workers, a sorted set scored by
//!   when each one's own lease ends (how chunks are sized).
//!
//! A chunk runs at least once: a worker that dies holding it is seen by
//! its task going idle, and another worker claims it. Its answer reaches
//! the caller exactly once: the caller takes the first answer for each
//! chunk it sent and drops the others.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::dispatch::{Args, Completion, Engine, Job, Jobs, Phase, Results};
use super::{worker, WorkerCalls};
use crate::crossing::{Keep, Route};
use crate::error::{Error, ProcessError, Result, EXIT_UNKNOWN};
use crate::process::image::{FnRef, ImageId};
use crate::process::target::TaskEntry;
use crate::redis::{cmd, field, stream_entries, take_field, Command, Redis, RedisUrl, Reply};

/// The consumer group every worker of a pool reads its tasks as.
pub(super) const GROUP: &str = "workers";
/// Chunks buffered by a `map` before they are sent in one pipeline...
const BATCH: usize = 64;
/// ... or bytes: a big chunk goes at once, so that workers start on it
/// while the caller encodes the next.
const BATCH_BYTES: usize = 64 << 10;
/// How long an answer stream lives after its last answer when its caller
/// stopped reading it (the caller died).
pub(super) const RESULTS_TTL: Duration = Duration::from_secs(300);

/// The Redis keys of one pool.
#[derive(Clone, Debug)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(pool: &str) -> Keys {
        Keys {
            prefix: format!("managers:pool:{pool}"),
        }
    }

    pub(super) fn tasks(&self) -> String {
        format!("{}:tasks", self.prefix)
    }

    pub(super) fn workers(&self) -> String {
        format!("{}:workers", self.prefix)
    }

    pub(super) fn results(&self, caller: &str) -> String {
        format!("{}:results:{caller}", self.prefix)
    }

    pub(super) fn alive(&self, caller: &str) -> String {
        format!("{}:alive:{caller}", self.prefix)
    }

    /// The command that makes the task stream and its group if they are
    /// not there (its `BUSYGROUP` error, when they are, is fine).
    pub(super) fn create_group(&self) -> Command {
        cmd!["XGROUP", "CREATE", self.tasks(), GROUP, "0", "MKSTREAM"]
    }
}

/// Whether a reply to [`Keys::create_group`] says the group is there.
pub(super) fn group_ready(reply: &Reply) -> bool {
    match reply {
        Reply::Error(e) => e.starts_with("BUSYGROUP"),
        _ => true,
    }
}

/// A task's header: whose, which chunk, and the function as the local
/// pool names it (image and offset; checked by the worker before
/// anything is decoded as a function).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct TaskHeader {
    pub(super) caller: String,
    pub(super) job: u64,
    pub(super) index: u64,
    pub(super) count: u32,
    pub(super) image: ImageId,
    pub(super) entry: u64,
}

/// How a chunk ended, as a worker tells its caller.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Outcome {
    /// It ran (or its calls could not be decoded or run): as a local
    /// pool's worker says it.
    Ran(worker::Outcome),
    /// The worker runs another executable image.
    ForeignImage,
    /// The chunk was taken by workers that died, this many times.
    WorkerDied { deliveries: u64 },
}

/// An answer's header.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Answer {
    pub(super) job: u64,
    pub(super) index: u64,
    /// The worker that answered (for `WorkerDied`: the last that died).
    pub(super) pid: u32,
    pub(super) host: String,
    pub(super) outcome: Outcome,
}

/// Milliseconds, for Redis.
pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Milliseconds since the epoch (the workers' leases).
pub(super) fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, millis)
}

/// An answer as the job takes it.
fn result_of(answer: Answer, body: Vec<u8>) -> Result<Results> {
    match answer.outcome {
        Outcome::Ran(outcome) => outcome.into_result(Results {
            bytes: body,
            start: 0,
        }),
        Outcome::ForeignImage => Err(ProcessError::ForeignImage.into()),
        Outcome::WorkerDied { .. } => Err(Error::WorkerDied {
            pid: answer.pid,
            exitcode: EXIT_UNKNOWN,
        }),
    }
}

/// What a distributed pool is built with.
pub(super) struct Settings {
    pub(super) url: RedisUrl,
    pub(super) pool: String,
    /// Workers to size chunks for (`None`: the live workers, counted).
    pub(super) processes: Option<usize>,
    pub(super) lease: Duration,
}

/// A chunk sent and not answered: its calls, the clones of the proxies
/// among them, and its `XADD` (sent again if Redis lost it: a failover, a
/// restart).
struct Sent {
    count: u32,
    _keep: Keep,
    command: Arc<Command>,
}

/// A chunk sent or to send: whose, and its `XADD` (shared with its
/// [`Sent`]: a chunk's bytes are held once).
struct Outgoing {
    job: u64,
    index: usize,
    command: Arc<Command>,
}

struct State {
    phase: Phase,
    jobs: Jobs,
    /// Chunks sent and not answered: their call counts, and the clones of
    /// the proxies among their arguments (their objects live until the
    /// chunk is answered). An answer for a chunk not here is a duplicate
    /// (the chunk ran twice) and dropped.
    out: HashMap<(u64, usize), Sent>,
    /// Chunks queued and not sent yet.
    buffer: Vec<Outgoing>,
    calls: BTreeMap<(String, u32), u64>,
    /// The live workers counted, and when.
    counted: Option<(usize, Instant)>,
}

/// A distributed pool's engine: what its handle and its thread share.
pub(super) struct Distributed {
    settings: Settings,
    keys: Keys,
    caller: String,
    image: ImageId,
    /// The connection chunks are sent on (the thread has its own, for its
    /// blocking reads).
    send: Mutex<Redis>,
    state: Mutex<State>,
    /// Set when the thread ended (and removed this caller's keys).
    ended: std::sync::atomic::AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Distributed {
    /// Connect, make the task stream and this caller's lease, start the
    /// thread that reads the answers.
    pub(super) fn start(
        settings: Settings,
    ) -> Result<(Arc<Distributed>, std::thread::JoinHandle<()>)> {
        let keys = Keys::new(&settings.pool);
        let caller = {
            let mut bytes = [0u8; 12];
            getrandom::getrandom(&mut bytes)
                .map_err(|e| Error::Redis(format!("no random caller id: {e}")))?;
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        let mut send = Redis::connect(&settings.url)?;
        let mut receive = Redis::connect(&settings.url)?;
        let replies = send.pipeline(&[
            keys.create_group(),
            cmd![
                "SET",
                keys.alive(&caller),
                "1",
                "PX",
                millis(settings.lease)
            ],
        ])?;
        if !group_ready(&replies[0]) {
            return Err(Error::Redis(format!(
                "cannot make the task stream {}: {:?}",
                keys.tasks(),
                replies[0]
            )));
        }
        if let Reply::Error(e) = &replies[1] {
            return Err(Error::Redis(format!("cannot set the caller's lease: {e}")));
        }
        // The answer stream exists from now on, so that the first XREAD
        // starts from its beginning, and expires if this process dies.
        let results = keys.results(&caller);
        receive.pipeline(&[
            cmd!["XADD", &results, "*", "w", "1"],
            cmd!["PEXPIRE", &results, millis(RESULTS_TTL)],
        ])?;
        let engine = Arc::new(Distributed {
            keys,
            caller,
            image: crate::process::image::image_id(),
            send: Mutex::new(send),
            state: Mutex::new(State {
                phase: Phase::Running,
                jobs: Jobs::new(),
                out: HashMap::new(),
                buffer: Vec::new(),
                calls: BTreeMap::new(),
                counted: None,
            }),
            ended: std::sync::atomic::AtomicBool::new(false),
            settings,
        });
        let thread = {
            let engine = Arc::clone(&engine);
            std::thread::Builder::new()
                .name("managers-dpool".into())
                .spawn(move || engine.run(receive))?
        };
        Ok((engine, thread))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Queue chunk `index` of job `id` (telling the job); false if there is
    /// no such job.
    fn enqueue(
        &self,
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
        let header = TaskHeader {
            caller: self.caller.clone(),
            job: id,
            index: index as u64,
            count,
            image: self.image.clone(),
            entry: entry.offset(),
        };
        // A header of plain data always encodes.
        let header = crate::codec::encode(&header).unwrap_or_default();
        let command = Arc::new(cmd![
            "XADD",
            self.keys.tasks(),
            "*",
            "h",
            header,
            "a",
            args.carried.bytes()
        ]);
        state.out.insert(
            (id, index),
            Sent {
                count,
                _keep: args.keep,
                command: Arc::clone(&command),
            },
        );
        state.buffer.push(Outgoing {
            job: id,
            index,
            command,
        });
        true
    }

    /// Pull lazy jobs' next chunks while they give them.
    fn pull(&self, state: &mut State) {
        while let Some(chunk) = state.jobs.next_lazy(None) {
            self.enqueue(
                state,
                chunk.job,
                chunk.index,
                chunk.count,
                chunk.entry,
                chunk.args,
            );
        }
    }

    /// Send what is queued, in one pipeline; a chunk that could not be
    /// sent while Redis stayed out of reach for the caller's lease fails
    /// its job. (A pipeline sent again after a broken connection
    /// may queue a chunk twice: its first answer is taken.)
    fn flush(&self, buffer: Vec<Outgoing>) {
        if buffer.is_empty() {
            return;
        }
        let commands: Vec<Arc<Command>> = buffer.iter().map(|o| Arc::clone(&o.command)).collect();
        let begun = Instant::now();
        let sent = loop {
            match lock(&self.send).pipeline(&commands) {
                Err(_)
                    if begun.elapsed() < self.settings.lease
                        && self.state().phase != Phase::Terminated =>
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
                sent => break sent,
            }
        };
        let failed: Vec<(u64, usize, Error)> = match sent {
            Ok(replies) => buffer
                .iter()
                .zip(replies)
                .filter_map(|(o, reply)| match reply {
                    Reply::Error(e) => Some((o.job, o.index, Error::Redis(format!("XADD: {e}")))),
                    _ => None,
                })
                .collect(),
            Err(e) => buffer
                .iter()
                .map(|o| (o.job, o.index, e.duplicate()))
                .collect(),
        };
        if failed.is_empty() {
            return;
        }
        let mut state = self.state();
        let mut completions = Vec::new();
        for (job, index, error) in failed {
            if state.out.remove(&(job, index)).is_some() {
                completions.extend(finish(&mut state, job, index, Err(error)));
            }
        }
        drop(state);
        run(completions);
    }

    /// Wake the thread (a `w` entry on the answer stream), if it still
    /// runs (else the entry would make the stream again; if it ends
    /// meanwhile, the stream expires).
    fn wake(&self) {
        if self.ended.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let results = self.keys.results(&self.caller);
        let _ = lock(&self.send).pipeline(&[
            cmd!["XADD", &results, "*", "w", "1"],
            cmd!["PEXPIRE", &results, millis(RESULTS_TTL)],
        ]);
    }

    /// The pool's thread: read answers, hand them to their jobs, keep the
    /// lease, and when the pool is over remove this caller's keys.
    fn run(self: Arc<Self>, mut redis: Redis) {
        let results = self.keys.results(&self.caller);
        let alive = self.keys.alive(&self.caller);
        let lease = self.settings.lease;
        let block = (lease / 3).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut last = "0-0".to_string();
        let mut read: Vec<String> = Vec::new();
        let mut renewed = Instant::now();
        let mut unreachable: Option<Instant> = None;
        let mut connections = redis.connections();
        loop {
            {
                let state = self.state();
                let done = match state.phase {
                    Phase::Running => false,
                    Phase::Closed => state.jobs.is_empty(),
                    Phase::Terminated => true,
                };
                if done {
                    break;
                }
            }
            let mut commands: Vec<Command> = Vec::new();
            if !read.is_empty() {
                let mut del = cmd!["XDEL", &results];
                del.extend(read.drain(..).map(String::into_bytes));
                commands.push(del);
            }
            let renew = renewed.elapsed() >= lease / 3;
            if renew {
                commands.push(cmd!["SET", &alive, "1", "PX", millis(lease)]);
                commands.push(cmd!["PEXPIRE", &results, millis(RESULTS_TTL)]);
            }
            commands.push(cmd![
                "XREAD",
                "COUNT",
                "512",
                "BLOCK",
                millis(block),
                "STREAMS",
                &results,
                &last
            ]);
            let mut replies = match redis.pipeline_waiting(&commands, block) {
                Ok(replies) => replies,
                Err(e) => {
                    let since = *unreachable.get_or_insert_with(Instant::now);
                    // Out of reach as long as workers would wait for us:
                    // every pending job fails (never a hang).
                    if since.elapsed() >= lease {
                        self.give_up(e);
                        unreachable = Some(Instant::now());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            unreachable = None;
            if renew {
                renewed = Instant::now();
            }
            if redis.connections() != connections {
                // Connected again: perhaps to a new primary (a failover)
                // or a restarted Redis, which may have lost recent chunks,
                // answers and the lease. Renew the lease, send every
                // unanswered chunk again (answers twice are taken once).
                connections = redis.connections();
                self.resend(&mut redis);
            }
            let entries = stream_entries(replies.pop().expect("one reply per command"));
            let mut state = self.state();
            let mut completions = Vec::new();
            for (id, mut fields) in entries {
                last.clone_from(&id);
                read.push(id);
                let body = take_field(&mut fields, "b");
                let Some(header) = field(&fields, "h") else {
                    continue; // a wake-up
                };
                let Ok(answer) = postcard::from_bytes::<Answer>(header) else {
                    continue;
                };
                let index = answer.index as usize;
                let Some(Sent { count, .. }) = state.out.remove(&(answer.job, index)) else {
                    continue; // a second answer for one chunk
                };
                if matches!(answer.outcome, Outcome::Ran(worker::Outcome::Ok)) {
                    *state
                        .calls
                        .entry((answer.host.clone(), answer.pid))
                        .or_default() += u64::from(count);
                }
                let job = answer.job;
                let result = result_of(answer, body.unwrap_or_default());
                completions.extend(finish(&mut state, job, index, result));
            }
            drop(state);
            run(completions);
        }
        // Over: this caller's keys go (workers skip its tasks still queued).
        self.ended.store(true, std::sync::atomic::Ordering::Release);
        let _ = redis.pipeline(&[cmd!["DEL", &alive, &results]]);
    }

    /// After a new connection: the lease and the group again, and every
    /// chunk not answered.
    fn resend(&self, redis: &mut Redis) {
        let _ = redis.pipeline(&[
            self.keys.create_group(),
            cmd![
                "SET",
                self.keys.alive(&self.caller),
                "1",
                "PX",
                millis(self.settings.lease)
            ],
        ]);
        let again: Vec<Outgoing> = self
            .state()
            .out
            .iter()
            .map(|(&(job, index), sent)| Outgoing {
                job,
                index,
                command: Arc::clone(&sent.command),
            })
            .collect();
        self.flush(again);
    }

    /// Redis stayed out of reach: fail every pending job.
    fn give_up(&self, error: Error) {
        let mut state = self.state();
        state.out.clear();
        state.buffer.clear();
        let aborted = state.jobs.abort_all(&error);
        drop(state);
        run(aborted);
    }
}

/// Run completions (callbacks included) outside the lock.
fn run(completions: Vec<Completion>) {
    for completion in completions {
        completion();
    }
}

/// Chunk `index` of `job` came back: what to run for it; a job that is
/// over is forgotten.
fn finish(
    state: &mut State,
    job: u64,
    index: usize,
    result: Result<Results>,
) -> Option<Completion> {
    let completion = state.jobs.finish(job, index, result);
    if !state.jobs.contains(job) {
        state.out.retain(|&(j, _), _| j != job);
    }
    completion
}

impl Engine for Distributed {
    fn submit(
        &self,
        job: Box<dyn Job>,
        chunks: Vec<(usize, u32, FnRef<TaskEntry>, Args)>,
        lazy: bool,
    ) -> Result<u64> {
        let mut state = self.state();
        if state.phase != Phase::Running {
            return Err(ProcessError::PoolNotRunning.into());
        }
        let id = state.jobs.add(job, lazy);
        for (index, count, entry, args) in chunks {
            self.enqueue(&mut state, id, index, count, entry, args);
        }
        self.pull(&mut state);
        let buffer = std::mem::take(&mut state.buffer);
        drop(state);
        self.flush(buffer);
        Ok(id)
    }

    fn push(&self, id: u64, index: usize, count: u32, entry: FnRef<TaskEntry>, args: Args) -> bool {
        let mut state = self.state();
        if !self.enqueue(&mut state, id, index, count, entry, args) {
            return false;
        }
        let bytes: usize = state
            .buffer
            .iter()
            .map(|o| o.command.iter().map(Vec::len).sum::<usize>())
            .sum();
        if state.buffer.len() >= BATCH || bytes >= BATCH_BYTES {
            let buffer = std::mem::take(&mut state.buffer);
            drop(state);
            self.flush(buffer);
        }
        true
    }

    fn seal(&self, id: u64) {
        let mut state = self.state();
        let buffer = std::mem::take(&mut state.buffer);
        drop(state);
        self.flush(buffer);
        let completion = self.state().jobs.seal(id);
        run(completion.into_iter().collect());
    }

    fn cancel(&self, id: u64) {
        let mut state = self.state();
        state.jobs.remove(id);
        state.out.retain(|&(j, _), _| j != id);
        state.buffer.retain(|o| o.job != id);
        let closed = state.phase == Phase::Closed;
        drop(state);
        if closed {
            self.wake();
        }
    }

    fn refill(&self) {
        let mut state = self.state();
        if state.phase == Phase::Terminated {
            return;
        }
        self.pull(&mut state);
        let buffer = std::mem::take(&mut state.buffer);
        drop(state);
        self.flush(buffer);
    }

    fn close(&self) {
        let mut state = self.state();
        if state.phase == Phase::Running {
            state.phase = Phase::Closed;
        }
        drop(state);
        self.wake();
    }

    fn terminate(&self) {
        let mut state = self.state();
        state.phase = Phase::Terminated;
        state.out.clear();
        state.buffer.clear();
        let aborted = state.jobs.abort_all(&ProcessError::PoolTerminated.into());
        drop(state);
        self.wake();
        run(aborted);
    }

    fn phase(&self) -> Phase {
        self.state().phase
    }

    fn processes(&self) -> usize {
        if let Some(n) = self.settings.processes {
            return n;
        }
        if let Some((n, at)) = self.state().counted {
            if at.elapsed() < Duration::from_secs(1) {
                return n;
            }
        }
        let counted = lock(&self.send)
            .call(cmd!["ZCOUNT", self.keys.workers(), now_millis(), "+inf"])
            .ok()
            .and_then(|r| r.int())
            .map_or(0, |n| usize::try_from(n).unwrap_or(0));
        self.state().counted = Some((counted, Instant::now()));
        counted
    }

    fn route(&self) -> Route {
        // No descriptors across machines; proxies as tokens.
        Route::Manager
    }

    fn calls_by_worker(&self) -> Vec<WorkerCalls> {
        self.state()
            .calls
            .iter()
            .map(|((host, pid), &calls)| WorkerCalls {
                pid: *pid,
                host: Some(host.clone()),
                calls,
            })
            .collect()
    }
}
