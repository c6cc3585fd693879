//! A distributed pool's workers: [`worker`] keeps a group of worker
//! processes on this machine, each a consumer of the pool's task stream
//! (`distributed.rs` has the keys and messages).
//!
//! A worker claims one chunk at a time (`XREADGROUP ... COUNT 1 BLOCK`),
//! so an idle worker takes the next chunk and a slow one holds nobody up;
//! it runs the chunk in its own process, exactly as a local pool's worker
//! does (the function checked against this image's table of task entries
//! first), answers on its caller's stream and acknowledges the chunk in
//! the same pipeline. While it runs a chunk, a thread of the worker claims
//! it again every little while (`XCLAIM ... JUSTID`), so only the chunks of
//! a dead worker go idle. Every worker looks, every half `reclaim_after`,
//! for chunks idle that long and claims them (`XPENDING IDLE`, `XCLAIM`):
//! a chunk already taken `max_deliveries` times killed that many workers,
//! and its caller gets [`Error::WorkerDied`](crate::Error::WorkerDied)
//! instead of another attempt.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::distributed::{
    group_ready, millis, now_millis, Answer, Keys, Outcome, TaskHeader, GROUP, RESULTS_TTL,
};
use serde::de::DeserializeOwned;

use super::worker::{self, run_chunk, Initializer, Ready};
use crate::crossing::Carried;
use crate::error::{Error, ProcessError, Result};
use crate::process::connection::{Connection, Pipe};
use crate::process::image::{FnRef, ImageId, SameImage};
use crate::process::target::{Exit, Function, TaskEntry};
use crate::process::Process;
use crate::redis::{
    cmd, entries_of, field, stream_entries, take_field, Command, Fields, Redis, RedisUrl, Reply,
};

/// How long a worker waits in one `XREADGROUP` before it looks for idle
/// chunks again.
const READ_BLOCK: Duration = Duration::from_secs(1);
/// How long a caller's lease is trusted once read.
const ALIVE_CACHE: Duration = Duration::from_millis(200);
/// Worker processes failing to start in a row before the group gives up.
const START_LIMIT: u32 = 3;

/// How a group of distributed pool workers runs ([`worker`]).
pub struct WorkerOptions {
    settings: Settings,
    initializer: Option<worker::Encoded>,
}

/// What each worker process is started with.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Settings {
    processes: Option<usize>,
    pool: String,
    maxtasks: Option<u64>,
    reclaim_after: Duration,
    max_deliveries: u64,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            settings: Settings {
                processes: None,
                pool: "default".into(),
                maxtasks: None,
                reclaim_after: Duration::from_secs(5),
                max_deliveries: 3,
            },
            initializer: None,
        }
    }
}

impl std::fmt::Debug for WorkerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerOptions")
            .field("settings", &self.settings)
            .field("initializer", &self.initializer.is_some())
            .finish()
    }
}

impl WorkerOptions {
    /// The defaults: one worker per CPU, the pool `"default"`, no task
    /// limit, chunks of a dead worker reclaimed after 5 s, a chunk that
    /// killed 3 workers given up.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many worker processes (default: the number of CPUs).
    pub fn processes(mut self, processes: usize) -> Self {
        self.settings.processes = Some(processes);
        self
    }

    /// Run `initializer(initargs...)` once in each worker process before
    /// it takes its first task (Python's `Pool(initializer, initargs)`:
    /// load a model, open a connection), a `fn` item; an `Err` or a panic
    /// fails [`worker`]'s start. `initargs` may hold whatever a
    /// [`Process`](crate::Process)'s arguments may (these workers are this
    /// machine's children), descriptors included; they are kept for the
    /// workers started later.
    pub fn initializer<F, A>(mut self, initializer: F, initargs: A) -> Self
    where
        F: Function<A>,
        F::Output: Exit,
        A: Serialize + DeserializeOwned + 'static,
    {
        crate::process::target::fn_item!(F, "WorkerOptions::initializer");
        self.initializer = Some(worker::encode_initializer(initializer, &initargs));
        self
    }

    /// Serve the pool of this name (callers name it with
    /// [`PoolBuilder::pool_name`](super::PoolBuilder::pool_name)); default
    /// `"default"`. Give each program its own: a worker running another
    /// program answers a task with
    /// [`ProcessError::ForeignImage`](crate::ProcessError::ForeignImage)
    /// rather than leave it to a worker that could run it.
    pub fn pool(mut self, name: impl Into<String>) -> Self {
        self.settings.pool = name.into();
        self
    }

    /// A worker process exits after this many chunks and is replaced
    /// (Python's `maxtasksperchild`); 0 is an error.
    pub fn maxtasksperchild(mut self, tasks: u64) -> Self {
        self.settings.maxtasks = Some(tasks);
        self
    }

    /// How long a chunk may go unclaimed by a live worker before another
    /// worker takes it (its worker died, or lost its machine). Chunks
    /// taken by live workers are renewed every quarter of it, so it can
    /// be short; default 5 s.
    pub fn reclaim_after(mut self, idle: Duration) -> Self {
        self.settings.reclaim_after = idle;
        self
    }

    /// How many times a chunk may be taken by workers that then died
    /// before its caller gets [`Error::WorkerDied`](crate::Error::WorkerDied)
    /// for it (a task that kills its worker); default 3, at least 1.
    pub fn max_deliveries(mut self, deliveries: u64) -> Self {
        self.settings.max_deliveries = deliveries;
        self
    }
}

impl Settings {
    fn check(&self) -> Result<()> {
        if self.processes == Some(0) {
            return Err(ProcessError::NoProcesses.into());
        }
        if self.maxtasks == Some(0) {
            return Err(ProcessError::NoTasksPerChild.into());
        }
        if self.max_deliveries == 0 || self.reclaim_after.is_zero() {
            return Err(Error::Redis(
                "max_deliveries and reclaim_after must be more than 0".into(),
            ));
        }
        Ok(())
    }
}

/// Run a distributed pool's workers on this machine until this process
/// is killed: `options.processes` worker processes (this program
/// re-executed, as for a local [`Pool`](super::Pool); `main` must begin
/// with [`bootstrap`](crate::bootstrap)), each pulling chunks of the pool's
/// tasks from the Redis at `redis_url` (`redis://...`, or
/// `redis+sentinel://...` to follow the primary Sentinels name: see
/// [`Pool::distributed`](super::Pool::distributed)), a worker that exits (killed, or
/// after `maxtasksperchild`) replaced. Returns only on an error: the URL,
/// a Redis that is not there at the start, workers that cannot start.
///
/// The workers run any program's tasks only if it is this very program
/// (the same executable image); other programs' callers get
/// [`ProcessError::ForeignImage`] for theirs. A chunk runs at least once:
/// if its worker dies, another runs it again (its caller takes one
/// answer).
///
/// ```no_run
/// # extern crate manager_runtime as managers;
/// fn main() -> managers::Result<()> {
///     managers::bootstrap();
///     managers::process::worker("redis://127.0.0.1:6379", managers::process::WorkerOptions::new())
/// }
/// ```
pub fn worker(redis_url: &str, options: WorkerOptions) -> Result<()> {
    let WorkerOptions {
        settings,
        initializer,
    } = options;
    settings.check()?;
    // The clones of the proxies among the initializer's arguments: their
    // objects live as long as workers may start.
    let (initializer, _keep) = worker::shared_initializer(initializer)?;
    let url: RedisUrl = redis_url.parse()?;
    let keys = Keys::new(&settings.pool);
    let reply = Redis::connect(&url)?.pipeline(&[keys.create_group()])?;
    if !group_ready(&reply[0]) {
        return Err(Error::Redis(format!(
            "cannot make the task stream {}: {:?}",
            keys.tasks(),
            reply[0]
        )));
    }
    let count = settings
        .processes
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let image = crate::process::image::image_id();
    // Start `count` workers side by side; each is ready once its
    // initializer ran (or the batch fails, and is killed).
    let start = |count: usize| -> Result<Vec<Process>> {
        let mut pending = Vec::with_capacity(count);
        for _ in 0..count {
            let (ours, theirs) = Pipe::duplex()?;
            let process = Process::new(
                serve,
                (
                    theirs,
                    redis_url.to_string(),
                    image.clone(),
                    settings.clone(),
                    initializer.clone(),
                ),
            );
            pending.push((process, ours));
        }
        let kill = |pending: &[(Process, Connection)]| {
            for (process, _) in pending {
                let _ = process.kill();
                let _ = process.join();
            }
        };
        let processes: Vec<&Process> = pending.iter().map(|(p, _)| p).collect();
        if let Err(e) = crate::process::child::start_all(&processes) {
            kill(&pending);
            return Err(e);
        }
        for (_, conn) in &pending {
            let ready = conn
                .recv::<Ready>()
                .map_err(|e| Error::Spawn(e.to_string()));
            if let Err(why) = ready.and_then(|ready| ready.map_err(Error::Spawn)) {
                kill(&pending);
                return Err(why);
            }
        }
        Ok(pending.into_iter().map(|(process, _)| process).collect())
    };
    let mut children = start(count)?;
    let mut failures = 0;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        for at in 0..children.len() {
            if children[at].is_alive() {
                continue;
            }
            let _ = children[at].join();
            match start(1) {
                Ok(mut replacement) => {
                    failures = 0;
                    children[at] = replacement.remove(0);
                }
                Err(e) => {
                    failures += 1;
                    if failures >= START_LIMIT {
                        for child in &children {
                            let _ = child.kill();
                            let _ = child.join();
                        }
                        return Err(e);
                    }
                }
            }
        }
    }
}

/// This machine's name (for answers and `calls_by_worker`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// One worker process: a consumer of the pool's tasks.
struct Puller {
    redis: Redis,
    keys: Keys,
    consumer: String,
    host: String,
    pid: u32,
    options: Settings,
    /// The chunk being run (its heartbeat claims it again).
    current: Arc<Mutex<Option<String>>>,
    /// Callers' leases as last read.
    alive: HashMap<String, (bool, Instant)>,
    results: Vec<u8>,
    /// Answers and acknowledgements to send with the next command.
    queued: Vec<Command>,
}

/// A worker process's life: the initializer (then ready, said on `conn`),
/// take chunks, run them, answer, until `maxtasksperchild` (if set).
/// Redis going away is waited out.
fn serve(
    conn: Connection,
    url: String,
    image: ImageId,
    options: Settings,
    initializer: Initializer,
) -> Result<()> {
    // A task's panic is its caller's error: no message here for it.
    std::panic::set_hook(Box::new(|_| {}));
    let same = SameImage::check(&image)?;
    // What the initializer's arguments adopted lives as long as the worker.
    let (ready, _initialized) = worker::initialize(initializer, &same);
    let refused = ready.is_err();
    conn.send(&ready)?;
    drop(conn);
    if refused {
        return Ok(());
    }
    let url: RedisUrl = url.parse()?;
    let keys = Keys::new(&options.pool);
    let host = hostname();
    let pid = std::process::id();
    let consumer = format!("{host}:{pid}");
    let current = Arc::new(Mutex::new(None));
    {
        let (url, keys, consumer, current) = (
            url.clone(),
            keys.clone(),
            consumer.clone(),
            Arc::clone(&current),
        );
        let beat =
            (options.reclaim_after / 4).clamp(Duration::from_millis(20), Duration::from_secs(2));
        std::thread::Builder::new()
            .name("managers-dpool-heartbeat".into())
            .spawn(move || heartbeat(url, keys, consumer, current, beat))?;
    }
    let redis = loop {
        match Redis::connect(&url) {
            Ok(redis) => break redis,
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    };
    let mut puller = Puller {
        redis,
        keys,
        consumer,
        host,
        pid,
        options,
        current,
        alive: HashMap::new(),
        results: Vec::new(),
        queued: Vec::new(),
    };
    puller.run()
}

/// While the worker lives: keep its entry in the pool's live workers, and
/// claim the chunk it runs again so that it never looks idle.
fn heartbeat(
    url: RedisUrl,
    keys: Keys,
    consumer: String,
    current: Arc<Mutex<Option<String>>>,
    beat: Duration,
) {
    let mut redis = None;
    loop {
        if redis.is_none() {
            redis = Redis::connect(&url).ok();
        }
        if let Some(r) = redis.as_mut() {
            let now = now_millis();
            let lease = millis((beat * 3).max(Duration::from_secs(2)));
            let mut commands = vec![
                cmd!["ZADD", keys.workers(), now + lease, &consumer],
                cmd!["ZREMRANGEBYSCORE", keys.workers(), "-inf", now],
            ];
            let running = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(id) = running {
                commands.push(cmd![
                    "XCLAIM",
                    keys.tasks(),
                    GROUP,
                    &consumer,
                    "0",
                    id,
                    "JUSTID"
                ]);
            }
            if r.pipeline(&commands).is_err() {
                redis = None;
            }
        }
        std::thread::sleep(beat);
    }
}

impl Puller {
    fn run(&mut self) -> Result<()> {
        let reclaim_every = self.options.reclaim_after / 2;
        let mut reclaimed = Instant::now();
        let mut tidied = Instant::now();
        let mut done = 0u64;
        let block = READ_BLOCK.min(reclaim_every).max(Duration::from_millis(10));
        loop {
            if reclaimed.elapsed() >= reclaim_every {
                done += self.reclaim();
                reclaimed = Instant::now();
            }
            if tidied.elapsed() >= self.options.reclaim_after * 6 {
                self.forget_dead_consumers();
                tidied = Instant::now();
            }
            if self.options.maxtasks.is_some_and(|max| done >= max) {
                // Its last answers go before it exits.
                self.send_queued();
                return Ok(());
            }
            // The last chunk's answer and acknowledgement, then the next
            // chunk: one round trip.
            let mut commands = std::mem::take(&mut self.queued);
            commands.push(cmd![
                "XREADGROUP",
                "GROUP",
                GROUP,
                &self.consumer,
                "COUNT",
                "1",
                "BLOCK",
                millis(block),
                "STREAMS",
                self.keys.tasks(),
                ">"
            ]);
            let read = self
                .redis
                .pipeline_waiting(&commands, block)
                .map(|mut replies| replies.pop().expect("one reply per command"));
            match read {
                Ok(Reply::Error(e)) if e.contains("NOGROUP") => {
                    // The stream was deleted (a FLUSHALL): make it again.
                    let _ = self.redis.pipeline(&[self.keys.create_group()]);
                }
                Ok(Reply::Error(_)) => std::thread::sleep(Duration::from_millis(200)),
                Ok(reply) => {
                    for (id, fields) in stream_entries(reply) {
                        if self.handle(&id, fields) {
                            done += 1;
                        }
                    }
                }
                // Redis away: the connection is made again next time (an
                // answer lost with it is run again once reclaimed).
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Send the queued answers and acknowledgements now.
    fn send_queued(&mut self) {
        let queued = std::mem::take(&mut self.queued);
        if !queued.is_empty() {
            // On failure the chunks stay pending: reclaimed, run again.
            let _ = self.redis.pipeline(&queued);
        }
    }

    /// Whether `caller` still waits for its answers (its lease is there).
    fn caller_alive(&mut self, caller: &str) -> bool {
        if let Some(&(alive, at)) = self.alive.get(caller) {
            if at.elapsed() < ALIVE_CACHE {
                return alive;
            }
        }
        let alive = match self.redis.call(cmd!["EXISTS", self.keys.alive(caller)]) {
            Ok(reply) => reply.int() != Some(0),
            // Unknown: run it (at least once beats never).
            Err(_) => true,
        };
        if self.alive.len() > 1024 {
            self.alive.clear();
        }
        self.alive
            .insert(caller.to_string(), (alive, Instant::now()));
        alive
    }

    /// Acknowledge and delete task `id` (and answer its caller first, if
    /// `answer` is given), with the next command sent.
    fn finish(&mut self, id: &str, answer: Option<(&str, Answer, &[u8])>) {
        let commands = &mut self.queued;
        if let Some((caller, answer, body)) = answer {
            let results = self.keys.results(caller);
            let header = crate::codec::encode(&answer).unwrap_or_default();
            commands.push(cmd!["XADD", &results, "*", "h", header, "b", body]);
            commands.push(cmd!["PEXPIRE", &results, millis(RESULTS_TTL)]);
        }
        commands.push(cmd!["XACK", self.keys.tasks(), GROUP, id]);
        commands.push(cmd!["XDEL", self.keys.tasks(), id]);
        // If these fail the chunk stays pending, and is reclaimed and run
        // again: at least once.
    }

    fn answer(&self, header: &TaskHeader, outcome: Outcome) -> Answer {
        Answer {
            job: header.job,
            index: header.index,
            pid: self.pid,
            host: self.host.clone(),
            outcome,
        }
    }

    /// Run task `id` and answer it; whether it ran (not skipped).
    fn handle(&mut self, id: &str, mut fields: Fields) -> bool {
        let header = field(&fields, "h").and_then(|h| postcard::from_bytes::<TaskHeader>(h).ok());
        let Some(header) = header else {
            // Not a task of ours: nobody to answer.
            self.finish(id, None);
            return false;
        };
        if !self.caller_alive(&header.caller) {
            self.finish(id, None);
            return false;
        }
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.to_string());
        let args = take_field(&mut fields, "a").unwrap_or_default();
        let outcome = match SameImage::check(&header.image) {
            Err(_) => Outcome::ForeignImage,
            Ok(same) => match FnRef::<TaskEntry>::from_offset(header.entry) {
                Err(why) => Outcome::Ran(worker::Outcome::Failed {
                    context: "finding the task's function".into(),
                    cause: Some(why),
                }),
                Ok(entry) => Outcome::Ran(run_chunk(
                    entry.resolve(&same),
                    Carried::bare(args),
                    header.count,
                    &mut self.results,
                )),
            },
        };
        let results = std::mem::take(&mut self.results);
        let body: &[u8] = if matches!(outcome, Outcome::Ran(worker::Outcome::Ok)) {
            &results
        } else {
            &[]
        };
        let answer = self.answer(&header, outcome);
        self.finish(id, Some((&header.caller, answer, body)));
        self.results = results;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
        true
    }

    /// Remove the group's consumers that hold nothing and were idle for 12
    /// times `reclaim_after` (a minute by default: workers gone: every worker process is a consumer of its own,
    /// so replaced ones would pile up). A live worker removed this way
    /// loses nothing: it holds nothing, and its next read makes it again.
    fn forget_dead_consumers(&mut self) {
        let limit = i64::try_from(millis(self.options.reclaim_after * 12)).unwrap_or(i64::MAX);
        let Ok(reply) = self
            .redis
            .call(cmd!["XINFO", "CONSUMERS", self.keys.tasks(), GROUP])
        else {
            return;
        };
        let mut dead = Vec::new();
        for consumer in reply.items().unwrap_or_default() {
            // A flat map: name, pending, idle (and more in later versions).
            let fields = consumer.items().unwrap_or_default();
            let value = |key: &str| {
                fields
                    .chunks_exact(2)
                    .find(|kv| kv[0].bytes() == Some(key.as_bytes()))
                    .map(|kv| &kv[1])
            };
            let (Some(name), Some(pending), Some(idle)) = (
                value("name").and_then(Reply::bytes),
                value("pending").and_then(Reply::int),
                value("idle").and_then(Reply::int),
            ) else {
                continue;
            };
            if pending == 0 && idle > limit && name != self.consumer.as_bytes() {
                dead.push(name.to_vec());
            }
        }
        let commands: Vec<Command> = dead
            .into_iter()
            .map(|name| cmd!["XGROUP", "DELCONSUMER", self.keys.tasks(), GROUP, name])
            .collect();
        if !commands.is_empty() {
            let _ = self.redis.pipeline(&commands);
        }
    }

    /// Claim chunks idle for `reclaim_after` (their workers died): run
    /// them, or give them up if they were taken `max_deliveries` times.
    /// How many were handled.
    fn reclaim(&mut self) -> u64 {
        let idle = millis(self.options.reclaim_after);
        let pending = match self.redis.call(cmd![
            "XPENDING",
            self.keys.tasks(),
            GROUP,
            "IDLE",
            idle,
            "-",
            "+",
            "16"
        ]) {
            Ok(reply) => reply,
            Err(_) => return 0,
        };
        // Each: [id, consumer, idle ms, deliveries].
        let pending: Vec<(String, String, u64)> = pending
            .items()
            .unwrap_or_default()
            .iter()
            .filter_map(|p| {
                let p = p.items()?;
                Some((
                    String::from_utf8_lossy(p.first()?.bytes()?).into_owned(),
                    String::from_utf8_lossy(p.get(1)?.bytes()?).into_owned(),
                    u64::try_from(p.get(3)?.int()?).ok()?,
                ))
            })
            .collect();
        let mut handled = 0;
        for (id, owner, deliveries) in pending {
            let claimed = self.redis.call(cmd![
                "XCLAIM",
                self.keys.tasks(),
                GROUP,
                &self.consumer,
                idle,
                &id
            ]);
            // Empty: another worker claimed it first.
            let Some((id, fields)) = claimed.ok().and_then(|r| entries_of(r).into_iter().next())
            else {
                continue;
            };
            if deliveries < self.options.max_deliveries {
                handled += u64::from(self.handle(&id, fields));
                // Answered now, not after the other reclaimed chunks: no
                // longer renewed, it would look idle again meanwhile.
                self.send_queued();
                continue;
            }
            let header =
                field(&fields, "h").and_then(|h| postcard::from_bytes::<TaskHeader>(h).ok());
            let Some(header) = header else {
                self.finish(&id, None);
                continue;
            };
            // The last worker that died holding it.
            let (host, pid) = owner.rsplit_once(':').unwrap_or(("", "0"));
            let answer = Answer {
                job: header.job,
                index: header.index,
                pid: pid.parse().unwrap_or(0),
                host: host.to_string(),
                outcome: Outcome::WorkerDied { deliveries },
            };
            self.finish(&id, Some((&header.caller, answer, &[])));
        }
        handled
    }
}
