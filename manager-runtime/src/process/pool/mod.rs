//! Python's `multiprocessing.Pool` and `AsyncResult`: worker processes
//! running `fn` items on serde arguments, results back in order or as they
//! come, and a worker that dies is an error for exactly the tasks it held,
//! never a hang.
//!
//! - `mod.rs`: [`Pool`], [`PoolBuilder`], the jobs callers submit.
//! - `dispatch.rs`: the state (which worker holds which chunk), the pool's
//!   thread, replacements.
//! - `worker.rs`: the child side and the messages.
//! - `result.rs`: [`AsyncResult`], [`IMapIterator`].

mod dispatch;
#[cfg(feature = "redis")]
mod distributed;
#[cfg(feature = "redis")]
mod remote_worker;
mod result;
mod worker;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::Serialize;

#[cfg(feature = "redis")]
pub use remote_worker::{worker, WorkerOptions};
pub use result::{AsyncResult, IMapIterator};

use crate::crossing::{Carried, Keep, Route, ServerInfo};
use crate::error::{Error, ProcessError, Result};
use crate::process::image::FnRef;
use crate::process::target::{task_entry_of, Exit, Function, TaskEntry};
use dispatch::{Args, Chunk, Completion, Config, Engine, Job, Phase, Results, Shared};
use result::{decode_all, Callback, MapList, Slot, Stream};

/// A pool task's function as it travels to another process of the same
/// program (a manager's server running a [`Pool`] for its clients): the
/// executable image's identity and the function's offset in it. Only a
/// process running the very same image accepts it
/// ([`ProcessError::ForeignImage`] anywhere else).
///
/// The calls travel beside it as [`EncodedChunk`]s
/// ([`TaskRef::chunks`]), the results come back the same way
/// ([`TaskRef::decode`]); [`Pool::submit_encoded`] runs them.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TaskRef {
    image: crate::process::image::ImageId,
    entry: FnRef<TaskEntry>,
}

impl TaskRef {
    /// The task `f` called with the argument tuple `A`, returning `R`.
    pub fn new<F, A, R>(f: F) -> Result<TaskRef>
    where
        F: Function<A, Output = R>,
        A: DeserializeOwned,
        R: Serialize,
    {
        crate::process::target::fn_item!(F, "TaskRef::new");
        Ok(TaskRef {
            image: crate::process::image::image_id(),
            entry: task_entry_of(f)?,
        })
    }

    /// This task as if it had been made in another executable image, which
    /// every pool refuses: for tests of that refusal only.
    #[doc(hidden)]
    pub fn from_another_image(mut self) -> TaskRef {
        self.image = crate::process::image::ImageId::BuildId(b"another image".to_vec());
        self
    }

    /// The function, if this process runs the image it was made in.
    fn checked(&self) -> Result<FnRef<TaskEntry>> {
        crate::process::image::check_same_image(&self.image)
            .map_err(|_| ProcessError::ForeignImage)?;
        Ok(self.entry)
    }

    /// `items` (each the argument tuple of one call) encoded in chunks of
    /// `chunksize` calls, Python's default for a pool of `workers` if
    /// `None`, as [`Pool::map`] chunks them.
    ///
    /// Proxies among the items cross as tokens, and the object each names
    /// must still be alive when a worker takes it (keep a proxy to it
    /// until the results are in); a connection, queue, lock or shared
    /// memory cannot go through a manager and is refused, naming its type.
    pub fn chunks<A: Serialize>(
        items: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
        workers: usize,
    ) -> Result<Vec<EncodedChunk>> {
        Ok(TaskRef::chunks_keeping(items, chunksize, workers)?.0)
    }

    /// [`chunks`](Self::chunks), with the clones of the proxies among the
    /// items: the objects stay alive while they do.
    pub(crate) fn chunks_keeping<A: Serialize>(
        items: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
        workers: usize,
    ) -> Result<(Vec<EncodedChunk>, Keep)> {
        encode_chunks(items, chunksize, workers.max(1))
    }

    /// The results of one chunk, as `R`s.
    pub fn decode<R: DeserializeOwned>(chunk: &EncodedChunk) -> Result<Vec<R>> {
        decode_all(&chunk.0, chunk.1)
    }
}

/// A chunk of encoded calls (the arguments of `count` calls, one after
/// the other) or, back, of their encoded results, and `count`: what a
/// [`TaskRef`] job moves.
pub type EncodedChunk = (Vec<u8>, u32);

/// Called once for each chunk of a [`Pool::submit_encoded`] job, with its
/// index and its results (or its failure), on the pool's thread.
pub type ChunkSink = Box<dyn FnMut(usize, Result<EncodedChunk>) + Send>;

/// The calls one worker of a pool answered ([`Pool::calls_by_worker`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCalls {
    /// The worker's process id.
    pub pid: u32,
    /// The machine it runs on, for a distributed pool's worker (its host
    /// name); `None` for a local pool's.
    pub host: Option<String>,
    /// How many calls (items of a `map`, `apply`s) it answered; a call a
    /// distributed pool ran twice (its worker died, it ran elsewhere)
    /// counts once, for the worker whose answer was taken.
    pub calls: u64,
}

/// How to build a [`Pool`] (Python's `Pool(processes, initializer,
/// initargs, maxtasksperchild)`).
pub struct PoolBuilder {
    processes: Option<usize>,
    initializer: Option<worker::Encoded>,
    maxtasks: Option<u64>,
    servers: Vec<ServerInfo>,
    #[cfg(feature = "redis")]
    redis: Option<Distribution>,
}

/// Where a distributed pool's tasks go.
#[cfg(feature = "redis")]
struct Distribution {
    url: String,
    pool: String,
    lease: std::time::Duration,
}

impl PoolBuilder {
    /// How many workers (default: the number of CPUs).
    pub fn processes(mut self, processes: usize) -> Self {
        self.processes = Some(processes);
        self
    }

    /// Run `initializer(initargs...)` once in each worker before its first
    /// task (a `fn` item; an `Err` or a panic fails the pool's start).
    ///
    /// `initargs` may hold whatever a [`Process`](crate::Process)'s
    /// arguments may, crossing the same way: proxies, connections, queues,
    /// locks, shared values and arrays (Python's
    /// `Pool(initializer=init, initargs=(q, lock, v))`). The pool keeps
    /// them for workers it starts later.
    pub fn initializer<F, A>(mut self, initializer: F, initargs: A) -> Self
    where
        F: Function<A>,
        F::Output: Exit,
        A: Serialize + DeserializeOwned + 'static,
    {
        crate::process::target::fn_item!(F, "PoolBuilder::initializer");
        self.initializer = Some(worker::encode_initializer(initializer, &initargs));
        self
    }

    /// Workers reach proxies of these servers as this process does (a
    /// manager's pool: its own server, whose key the workers need).
    #[cfg(feature = "manager")]
    pub(crate) fn servers(mut self, servers: Vec<ServerInfo>) -> Self {
        self.servers = servers;
        self
    }

    /// A worker exits after this many tasks (chunks) and is replaced
    /// (Python's `maxtasksperchild`); 0 is an error.
    pub fn maxtasksperchild(mut self, tasks: u64) -> Self {
        self.maxtasks = Some(tasks);
        self
    }

    /// Send the tasks to workers anywhere, through the Redis at
    /// `redis_url` (`redis://...` or `redis+sentinel://...`), instead
    /// of starting workers: a distributed pool (see
    /// [`Pool::distributed`]).
    #[cfg(feature = "redis")]
    pub fn redis(mut self, redis_url: impl Into<String>) -> Self {
        self.redis = Some(Distribution {
            url: redis_url.into(),
            pool: "default".into(),
            lease: std::time::Duration::from_secs(10),
        });
        self
    }

    /// A distributed pool's name, shared with its workers
    /// ([`WorkerOptions::pool`]); default `"default"`. Only with
    /// [`redis`](Self::redis).
    #[cfg(feature = "redis")]
    pub fn pool_name(mut self, name: impl Into<String>) -> Self {
        if let Some(redis) = &mut self.redis {
            redis.pool = name.into();
        }
        self
    }

    /// How long workers wait for a distributed pool's answers to be read
    /// before they take its caller for dead and skip its tasks (its lease,
    /// renewed every third of it while the pool lives), and how long the
    /// pool waits for a Redis out of reach before its pending results fail
    /// with [`Error::Redis`]; default 10 s. Only with
    /// [`redis`](Self::redis).
    #[cfg(feature = "redis")]
    pub fn lease(mut self, lease: std::time::Duration) -> Self {
        if let Some(redis) = &mut self.redis {
            redis.lease = lease.max(std::time::Duration::from_millis(100));
        }
        self
    }

    /// A distributed pool: its workers are [`worker`]s, anywhere.
    #[cfg(feature = "redis")]
    fn build_distributed(self, redis: Distribution) -> Result<Pool> {
        if self.initializer.is_some() || self.maxtasks.is_some() {
            return Err(Error::Redis(
                "a distributed pool's workers are started by process::worker: give \
                 the initializer and maxtasksperchild to its WorkerOptions"
                    .into(),
            ));
        }
        if self.processes == Some(0) {
            return Err(ProcessError::NoProcesses.into());
        }
        let (engine, thread) = distributed::Distributed::start(distributed::Settings {
            url: redis.url.parse()?,
            pool: redis.pool,
            processes: self.processes,
            lease: redis.lease,
        })?;
        Ok(Pool {
            shared: engine as Arc<dyn Engine>,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Start the workers (side by side) and return once each is ready; a
    /// distributed pool connects to its Redis instead.
    #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
    pub fn build(mut self) -> Result<Pool> {
        #[cfg(feature = "redis")]
        if let Some(redis) = self.redis.take() {
            return self.build_distributed(redis);
        }
        self.build_local()
    }

    fn build_local(self) -> Result<Pool> {
        let processes = match self.processes {
            Some(0) => return Err(ProcessError::NoProcesses.into()),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let maxtasks = match self.maxtasks {
            Some(0) => return Err(ProcessError::NoTasksPerChild.into()),
            Some(n) => n,
            None => 0,
        };
        let (initializer, keep) = worker::shared_initializer(self.initializer)?;
        let (shared, thread) = Shared::start(Config {
            processes,
            image: crate::process::image::image_id(),
            initializer,
            keep,
            servers: self.servers,
            maxtasks,
        })?;
        Ok(Pool {
            shared: shared as Arc<dyn Engine>,
            thread: Mutex::new(Some(thread)),
        })
    }
}

/// Python's `multiprocessing.Pool`: `processes` workers (this program
/// re-executed, as for [`Process`](crate::Process)) running `fn` items.
///
/// ```no_run
/// # extern crate manager_runtime as managers;
/// use managers::Pool;
///
/// fn square(x: i64) -> i64 {
///     x * x
/// }
///
/// fn main() -> managers::Result<()> {
///     managers::bootstrap();
///     let pool = Pool::new(4)?;
///     assert_eq!(pool.map(square, 0..10, None)?, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
///     let pending = pool.apply_async(square, (7,))?;
///     assert_eq!(pending.get()?, 49);
///     Ok(()) // dropping the pool terminates it (Python's `with Pool() as p:`)
/// }
/// ```
///
/// A task that panics gives its caller [`Error::TaskPanicked`] and the
/// worker goes on; a worker that dies gives the tasks it held
/// [`Error::WorkerDied`] and is replaced. Callbacks run on the pool's
/// thread, as in Python.
///
/// With the feature `redis`, `Pool::distributed` is the same API over
/// workers on any machine.
pub struct Pool {
    shared: Arc<dyn Engine>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// One call's job.
struct ApplyJob<R> {
    slot: Arc<Slot<R>>,
}

impl<R: DeserializeOwned + Send + 'static> Job for ApplyJob<R> {
    fn over(&self) -> bool {
        // Its one chunk came back.
        true
    }

    fn done(&mut self, _index: usize, result: Result<Results>) -> Option<Completion> {
        let slot = Arc::clone(&self.slot);
        Some(Box::new(move || {
            let value = result
                .and_then(|r| decode_all::<R>(r.bytes(), 1))
                .map(|mut v| v.remove(0));
            slot.complete(value);
        }))
    }

    fn abort(&mut self, error: Error) -> Completion {
        let slot = Arc::clone(&self.slot);
        Box::new(move || slot.complete(Err(error)))
    }
}

/// A whole `map`'s job: its chunks as the caller encodes them, each
/// chunk's results onto the list as they come (decoded on the pool's
/// thread, outside its lock); the first failure fails it.
struct MapJob<R> {
    list: Arc<MapList<R>>,
    counts: Vec<u32>,
    /// Chunks sent and not answered.
    left: usize,
    sealed: bool,
    failed: bool,
}

impl<R: DeserializeOwned + Send + 'static> Job for MapJob<R> {
    fn added(&mut self, index: usize, count: u32) {
        debug_assert_eq!(index, self.counts.len(), "a map's chunks come in order");
        self.counts.push(count);
        self.left += 1;
    }

    fn done(&mut self, index: usize, result: Result<Results>) -> Option<Completion> {
        self.left = self.left.saturating_sub(1);
        let list = Arc::clone(&self.list);
        match result {
            Err(e) => {
                self.failed = true;
                Some(Box::new(move || list.fail(e)))
            }
            Ok(results) => {
                let count = self.counts.get(index).copied().unwrap_or(0);
                Some(Box::new(move || {
                    list.arrived(index, results.bytes(), count)
                }))
            }
        }
    }

    fn over(&self) -> bool {
        self.failed || self.sealed && self.left == 0
    }

    fn sealed(&mut self) -> Option<Completion> {
        self.sealed = true;
        let list = Arc::clone(&self.list);
        let total = self.counts.len();
        Some(Box::new(move || list.sealed(total)))
    }

    fn abort(&mut self, error: Error) -> Completion {
        let list = Arc::clone(&self.list);
        Box::new(move || list.fail(error))
    }
}

/// A [`TaskRef`] job: each chunk's answer to its sink as it comes.
struct EncodedJob {
    sink: ChunkSink,
    counts: Vec<u32>,
    answered: Vec<bool>,
    left: usize,
}

impl Job for EncodedJob {
    fn done(&mut self, index: usize, result: Result<Results>) -> Option<Completion> {
        if self.answered.get(index) != Some(&false) {
            return None;
        }
        self.answered[index] = true;
        self.left -= 1;
        let count = self.counts[index];
        (self.sink)(index, result.map(|r| (r.bytes().to_vec(), count)));
        None
    }

    fn over(&self) -> bool {
        self.left == 0
    }

    fn abort(&mut self, error: Error) -> Completion {
        for index in 0..self.answered.len() {
            if !self.answered[index] {
                self.answered[index] = true;
                (self.sink)(index, Err(error.duplicate()));
            }
        }
        self.left = 0;
        Box::new(|| ())
    }
}

/// What an `imap` pulls its chunks from: the next encoded chunk and its
/// count, `None` when the items ran out.
type Source = Box<dyn FnMut() -> Option<Result<(Args, u32)>> + Send>;

/// An `imap`'s job: chunks pulled lazily, as long as fewer than `limit`
/// are out and not yet taken by the iterator.
struct ImapJob {
    stream: Arc<Stream>,
    source: Option<Source>,
    entry: FnRef<TaskEntry>,
    counts: BTreeMap<usize, u32>,
    pulled: usize,
    returned: usize,
    consumed: Arc<AtomicUsize>,
    limit: usize,
}

impl Job for ImapJob {
    fn done(&mut self, index: usize, result: Result<Results>) -> Option<Completion> {
        let count = self.counts.remove(&index).unwrap_or(0);
        self.stream
            .chunk(index, result.map(|r| (r.bytes().to_vec(), count)));
        self.returned += 1;
        None
    }

    fn over(&self) -> bool {
        self.source.is_none() && self.returned == self.pulled
    }

    fn abort(&mut self, error: Error) -> Completion {
        let stream = Arc::clone(&self.stream);
        Box::new(move || stream.fail(0, error))
    }

    fn next_chunk(&mut self) -> Option<Chunk> {
        let source = self.source.as_mut()?;
        if self.pulled - self.consumed.load(Ordering::Acquire).min(self.pulled) >= self.limit {
            return None;
        }
        match source() {
            Some(Ok((args, count))) => {
                let index = self.pulled;
                self.pulled += 1;
                self.counts.insert(index, count);
                Some(Chunk {
                    job: 0,
                    index,
                    count,
                    entry: self.entry,
                    args,
                })
            }
            Some(Err(e)) => {
                self.source = None;
                self.stream.fail(self.pulled, e);
                None
            }
            None => {
                self.source = None;
                self.stream.end(self.pulled);
                None
            }
        }
    }
}

/// Python's default chunk size for `count` items over `workers`.
fn default_chunksize(count: usize, workers: usize) -> usize {
    let workers = workers.max(1);
    let (size, extra) = (count / (workers * 4), count % (workers * 4));
    (size + usize::from(extra > 0)).max(1)
}

/// The error of an items' iterator that panicked.
fn iterator_panicked(panic: Box<dyn std::any::Any + Send>) -> Error {
    Error::TaskPanicked(format!(
        "the items' iterator panicked: {}",
        worker::panic_message(&*panic)
    ))
}

/// The next chunk of up to `size` of `items`, encoded for `route` (count
/// 0: the items ran out); `capacity` bytes reserved for it. A panicking
/// iterator is an error, not a hang.
fn encode_next<A: Serialize>(
    items: &mut impl Iterator<Item = A>,
    size: usize,
    capacity: usize,
    route: Route,
) -> Result<(Args, u32)> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<(Args, u32)> {
        let mut count = 0;
        let (carried, keep) = Carried::encode_with(route, || {
            let mut bytes = Vec::with_capacity(capacity.max(64));
            for item in items.by_ref().take(size) {
                crate::codec::append(&mut bytes, &item)?;
                count += 1;
            }
            Ok(bytes)
        })?;
        Ok((Args { carried, keep }, count))
    }))
    .map_err(iterator_panicked)?
}

/// `items` with their number, for a `map` (Python lists the iterable to
/// size its chunks): an iterator that knows its length exactly is taken
/// as it is, any other is collected first (not encoded).
fn counted<I: Iterator>(items: I) -> Result<(Counted<I>, usize)> {
    if let (low, Some(high)) = items.size_hint() {
        if low == high {
            return Ok((Counted::Exact(items), low));
        }
    }
    let listed: Vec<I::Item> =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| items.collect()))
            .map_err(iterator_panicked)?;
    let count = listed.len();
    Ok((Counted::Listed(listed.into_iter()), count))
}

/// What [`counted`] gives: the items, as they came or listed.
enum Counted<I: Iterator> {
    Exact(I),
    Listed(std::vec::IntoIter<I::Item>),
}

impl<I: Iterator> Iterator for Counted<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        match self {
            Counted::Exact(items) => items.next(),
            Counted::Listed(items) => items.next(),
        }
    }
}

/// `items` encoded in chunks of `chunksize` (Python's default for
/// `workers` when `None`), all of them before anything is sent (for a
/// manager's client, which sends them in one call), with the clones of
/// the proxies among them.
fn encode_chunks<A: Serialize>(
    items: impl IntoIterator<Item = A>,
    chunksize: Option<usize>,
    workers: usize,
) -> Result<(Vec<EncodedChunk>, Keep)> {
    let (mut items, count) = counted(items.into_iter())?;
    let size = chunksize
        .unwrap_or_else(|| default_chunksize(count, workers))
        .max(1);
    let mut chunks = Vec::with_capacity(count.div_ceil(size));
    let mut kept = Keep::new();
    let mut capacity = 0;
    loop {
        let (args, count) = encode_next(&mut items, size, capacity, Route::Manager)?;
        if count == 0 {
            return Ok((chunks, kept));
        }
        capacity = args.carried.bytes().len();
        kept.extend(args.keep);
        chunks.push((args.carried.bytes().to_vec(), count));
    }
}

/// A job's chunks as the pool queues them: index, count, task, calls.
fn indexed(
    chunks: Vec<EncodedChunk>,
    entry: FnRef<TaskEntry>,
) -> Vec<(usize, u32, FnRef<TaskEntry>, Args)> {
    chunks
        .into_iter()
        .enumerate()
        .map(|(index, (args, count))| (index, count, entry, Args::bare(args)))
        .collect()
}

/// The callback pair of an `*_async_with`, as one.
fn callbacks<T: 'static>(
    callback: impl FnOnce(&T) + Send + 'static,
    error_callback: impl FnOnce(&Error) + Send + 'static,
) -> Callback<T> {
    Box::new(move |result: &Result<T>| match result {
        Ok(value) => callback(value),
        Err(e) => error_callback(e),
    })
}

impl Pool {
    /// A pool of `processes` workers (Python's `Pool(processes)`).
    pub fn new(processes: usize) -> Result<Pool> {
        Pool::builder().processes(processes).build()
    }

    /// A pool with more options.
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            processes: None,
            initializer: None,
            maxtasks: None,
            servers: Vec::new(),
            #[cfg(feature = "redis")]
            redis: None,
        }
    }

    /// A pool whose workers are anywhere: its tasks go into the Redis at
    /// `redis_url` (`redis://[[user]:password@]host[:port][/db]`, or
    /// `redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]`
    /// for the primary that Sentinels name, followed through a failover),
    /// and every [`worker`] process connected to it (on this
    /// machine or others, running this same program) pulls them, chunk by
    /// chunk. The API is the local pool's; what differs:
    ///
    /// - A chunk runs **at least once**: if its worker dies (or its machine
    ///   goes), another worker runs it again after
    ///   [`WorkerOptions::reclaim_after`]; its caller takes exactly one
    ///   answer for it. A chunk that killed
    ///   [`WorkerOptions::max_deliveries`] workers is
    ///   [`Error::WorkerDied`] (with an unknown exit code).
    /// - A task's arguments may hold proxies (as tokens), never descriptors
    ///   (connections, queues, locks, shared memory).
    /// - Workers running another executable image refuse the tasks
    ///   ([`ProcessError::ForeignImage`]).
    /// - With no worker connected, tasks wait in Redis for one: use
    ///   `get_timeout` where that must not wait forever.
    /// - [`terminate`](Self::terminate) fails what is pending at once and
    ///   workers skip this pool's queued tasks; chunks already running
    ///   finish where they are.
    /// - After a failover (or a restart of Redis), the caller sends every
    ///   chunk not yet answered again: Redis replicates asynchronously, so
    ///   the last chunks and answers may be lost with the old primary.
    /// - If this process dies, workers skip its tasks once its lease
    ///   ([`PoolBuilder::lease`]) runs out, and its keys expire.
    ///
    /// [`processes`](Self::processes) is the number of live workers (what
    /// the default chunk size is computed from) unless
    /// [`PoolBuilder::processes`] fixed it.
    #[cfg(feature = "redis")]
    pub fn distributed(redis_url: &str) -> Result<Pool> {
        Pool::builder().redis(redis_url).build()
    }

    /// How many workers it keeps; for a distributed pool, how many are
    /// alive now (0 before any has connected), unless
    /// [`PoolBuilder::processes`] fixed the number its chunks are sized
    /// for.
    pub fn processes(&self) -> usize {
        self.shared.processes()
    }

    fn submit_apply<F, A, R>(
        &self,
        f: F,
        args: A,
        callback: Option<Callback<R>>,
    ) -> Result<AsyncResult<R>>
    where
        F: Function<A, Output = R>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let entry = task_entry_of(f)?;
        let (args, _) = encode_next(&mut std::iter::once(args), 1, 0, self.shared.route())?;
        let slot = Slot::new(callback);
        let job = ApplyJob {
            slot: Arc::clone(&slot),
        };
        self.shared
            .submit(Box::new(job), vec![(0, 1, entry, args)], false)?;
        Ok(AsyncResult::new(slot))
    }

    /// `f(args...)` in a worker, waiting for it (Python's `apply`).
    pub fn apply<F, A, R>(&self, f: F, args: A) -> Result<R>
    where
        F: Function<A, Output = R>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        crate::process::target::fn_item!(F, "Pool::apply");
        self.apply_async(f, args)?.into_result()
    }

    /// `f(args...)` in a worker; its result when ready (Python's
    /// `apply_async`).
    pub fn apply_async<F, A, R>(&self, f: F, args: A) -> Result<AsyncResult<R>>
    where
        F: Function<A, Output = R>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        crate::process::target::fn_item!(F, "Pool::apply_async");
        self.submit_apply(f, args, None)
    }

    /// [`apply_async`](Self::apply_async) with Python's `callback` and
    /// `error_callback`: exactly one of them runs, once, on the pool's
    /// thread, before the result is ready to `get`.
    pub fn apply_async_with<F, A, R>(
        &self,
        f: F,
        args: A,
        callback: impl FnOnce(&R) + Send + 'static,
        error_callback: impl FnOnce(&Error) + Send + 'static,
    ) -> Result<AsyncResult<R>>
    where
        F: Function<A, Output = R>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        crate::process::target::fn_item!(F, "Pool::apply_async_with");
        self.submit_apply(f, args, Some(callbacks(callback, error_callback)))
    }

    fn submit_map<F, A, R>(
        &self,
        f: F,
        items: impl IntoIterator<Item = impl Serialize>,
        chunksize: Option<usize>,
        callback: Option<Callback<Vec<R>>>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        F: Function<A, Output = R>,
        A: DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let entry = task_entry_of(f)?;
        let (mut items, count) = counted(items.into_iter())?;
        let size = chunksize
            .unwrap_or_else(|| default_chunksize(count, self.processes()))
            .max(1);
        let slot = Slot::new(callback);
        let route = self.shared.route();
        // Chunk by chunk: the workers run the first ones while the rest
        // are encoded, and each chunk's results are decoded as they come.
        let (args, first) = encode_next(&mut items, size, 0, route)?;
        if first == 0 {
            slot.complete(Ok(Vec::new()));
            return Ok(AsyncResult::new(slot));
        }
        let mut capacity = args.carried.bytes().len();
        let job = MapJob {
            list: MapList::new(Arc::clone(&slot), count),
            counts: Vec::with_capacity(count.div_ceil(size)),
            left: 0,
            sealed: false,
            failed: false,
        };
        let id = self
            .shared
            .submit(Box::new(job), vec![(0, first, entry, args)], false)?;
        for index in 1.. {
            let (args, count) = match encode_next(&mut items, size, capacity, route) {
                Ok(chunk) => chunk,
                Err(e) => {
                    // What was sent goes on; its answers are dropped.
                    self.shared.cancel(id);
                    return Err(e);
                }
            };
            if count == 0 {
                self.shared.seal(id);
                break;
            }
            capacity = args.carried.bytes().len();
            if !self.shared.push(id, index, count, entry, args) {
                // It failed already (or the pool gave up on it): the
                // result says why.
                break;
            }
        }
        Ok(AsyncResult::new(slot))
    }

    /// `f(item)` for every item, in order (Python's `map`); `chunksize`
    /// items go to a worker at a time (`None`: Python's default, the items
    /// over four times the workers).
    pub fn map<F, T, R>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
        chunksize: Option<usize>,
    ) -> Result<Vec<R>>
    where
        F: Function<(T,), Output = R>,
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        crate::process::target::fn_item!(F, "Pool::map");
        self.map_async(f, items, chunksize)?.into_result()
    }

    /// [`map`](Self::map) without waiting (Python's `map_async`).
    pub fn map_async<F, T, R>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
        chunksize: Option<usize>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        F: Function<(T,), Output = R>,
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        crate::process::target::fn_item!(F, "Pool::map_async");
        self.submit_map::<F, (T,), R>(f, items, chunksize, None)
    }

    /// [`map_async`](Self::map_async) with Python's `callback` (the whole
    /// list) and `error_callback`, exactly one run once.
    pub fn map_async_with<F, T, R>(
        &self,
        f: F,
        items: impl IntoIterator<Item = T>,
        chunksize: Option<usize>,
        callback: impl FnOnce(&Vec<R>) + Send + 'static,
        error_callback: impl FnOnce(&Error) + Send + 'static,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        F: Function<(T,), Output = R>,
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        crate::process::target::fn_item!(F, "Pool::map_async_with");
        self.submit_map::<F, (T,), R>(
            f,
            items,
            chunksize,
            Some(callbacks(callback, error_callback)),
        )
    }

    /// `f(*args)` for every tuple of arguments, in order (Python's
    /// `starmap`).
    pub fn starmap<F, A, R>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<Vec<R>>
    where
        F: Function<A, Output = R>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        crate::process::target::fn_item!(F, "Pool::starmap");
        self.starmap_async(f, items, chunksize)?.into_result()
    }

    /// [`starmap`](Self::starmap) without waiting (Python's
    /// `starmap_async`).
    pub fn starmap_async<F, A, R>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
        chunksize: Option<usize>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        F: Function<A, Output = R>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        crate::process::target::fn_item!(F, "Pool::starmap_async");
        self.submit_map::<F, A, R>(f, items, chunksize, None)
    }

    fn submit_imap<F, T, R, I>(
        &self,
        f: F,
        items: I,
        chunksize: Option<usize>,
        ordered: bool,
    ) -> Result<IMapIterator<R>>
    where
        F: Function<(T,), Output = R>,
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        let entry = task_entry_of(f)?;
        // Python's default for imap: one item at a time.
        let chunksize = chunksize.unwrap_or(1).max(1);
        let mut items = items.into_iter();
        let route = self.shared.route();
        let source: Source = Box::new(move || match encode_next(&mut items, chunksize, 0, route) {
            Ok((_, 0)) => None,
            chunk => Some(chunk),
        });
        let stream = Stream::new();
        let consumed = Arc::new(AtomicUsize::new(0));
        let job = ImapJob {
            stream: Arc::clone(&stream),
            source: Some(source),
            entry,
            counts: BTreeMap::new(),
            pulled: 0,
            returned: 0,
            consumed: Arc::clone(&consumed),
            limit: 2 * dispatch::DEPTH * self.processes().max(1),
        };
        let id = self.shared.submit(Box::new(job), Vec::new(), true)?;
        let pool = Arc::downgrade(&self.shared);
        let on_consumed: result::Consumed = Box::new(move || {
            consumed.fetch_add(1, Ordering::AcqRel);
            if let Some(pool) = pool.upgrade() {
                pool.refill();
            }
        });
        let pool = Arc::downgrade(&self.shared);
        let on_drop: result::Consumed = Box::new(move || {
            if let Some(pool) = pool.upgrade() {
                pool.cancel(id);
            }
        });
        Ok(IMapIterator::new(stream, ordered, on_consumed, on_drop))
    }

    /// `f(item)` for every item, the results in order as they come
    /// (Python's `imap`): the items are read lazily, a few chunks ahead of
    /// what the iterator has taken, so an endless iterator works;
    /// `chunksize` items go to a worker at a time (`None`: Python's default
    /// for `imap`, one).
    pub fn imap<F, T, R, I>(
        &self,
        f: F,
        items: I,
        chunksize: Option<usize>,
    ) -> Result<IMapIterator<R>>
    where
        F: Function<(T,), Output = R>,
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        crate::process::target::fn_item!(F, "Pool::imap");
        self.submit_imap(f, items, chunksize, true)
    }

    /// As [`imap`](Self::imap), the results in the order they finish
    /// (Python's `imap_unordered`).
    pub fn imap_unordered<F, T, R, I>(
        &self,
        f: F,
        items: I,
        chunksize: Option<usize>,
    ) -> Result<IMapIterator<R>>
    where
        F: Function<(T,), Output = R>,
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        crate::process::target::fn_item!(F, "Pool::imap_unordered");
        self.submit_imap(f, items, chunksize, false)
    }

    /// Run `task` on `chunks` of encoded calls made elsewhere (by a client
    /// of a manager whose server owns this pool): `sink` gets each chunk's
    /// encoded results (or its failure: a dead worker, a panic, the pool
    /// terminated) with the chunk's index, exactly once per chunk, on the
    /// pool's thread, in the order they finish. Refused, with
    /// [`ProcessError::ForeignImage`], unless `task` was made in this very
    /// executable image.
    pub fn submit_encoded(
        &self,
        task: &TaskRef,
        chunks: Vec<EncodedChunk>,
        sink: ChunkSink,
    ) -> Result<()> {
        let entry = task.checked()?;
        if chunks.is_empty() {
            return Ok(());
        }
        let job = EncodedJob {
            sink,
            counts: chunks.iter().map(|(_, count)| *count).collect(),
            answered: vec![false; chunks.len()],
            left: chunks.len(),
        };
        let chunks = indexed(chunks, entry);
        self.shared.submit(Box::new(job), chunks, false)?;
        Ok(())
    }

    /// The calls each worker answered so far, by worker (workers that
    /// answered none are not listed).
    pub fn calls_by_worker(&self) -> Vec<WorkerCalls> {
        self.shared.calls_by_worker()
    }

    /// No more work (Python's `close()`): what was submitted still runs,
    /// then the workers exit.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Stop the workers now (Python's `terminate()`): every pending result
    /// fails with [`ProcessError::PoolTerminated`]. Returns once they are
    /// gone.
    pub fn terminate(&self) {
        self.shared.terminate();
        self.join_thread();
    }

    /// Wait for the workers to exit (Python's `join()`): an error unless
    /// the pool was closed or terminated first.
    pub fn join(&self) -> Result<()> {
        if self.shared.phase() == Phase::Running {
            return Err(ProcessError::PoolStillRunning.into());
        }
        self.join_thread();
        Ok(())
    }

    fn join_thread(&self) {
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Pool {
    /// As Python's `with Pool() as pool:` ends: terminate.
    fn drop(&mut self) {
        self.terminate();
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<Pool processes={} state={:?}>",
            self.processes(),
            self.shared.phase()
        )
    }
}
