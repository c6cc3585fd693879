//! `Pool`: Python's `SyncManager.Pool` (its `PoolProxy`), a process pool
//! owned by the manager's server and driven through proxies, so several
//! client processes share one pool.
//!
//! A task's function is a [`TaskRef`](crate::TaskRef): an offset in the
//! client's executable image, accepted only by a server running the very
//! same image (another program's client gets
//! [`ProcessError::ForeignImage`](crate::ProcessError::ForeignImage)). The
//! client encodes the calls in chunks (Python's default chunk size for the
//! pool's worker count), the server hands them to its [`Pool`](crate::Pool)
//! and keeps each job's answers in a [`server::PoolJob`] (typeid
//! `AsyncResult`), whose proxy the caller waits on: `get` and `wait` are
//! futures in the server, never a blocked thread.

use super::SyncManager;
use crate::Result;
use crate::{Constructor, Registry};

/// The server side: the pool and its jobs.
pub mod server {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use serde::{Deserialize, Serialize};
    use tokio::sync::watch;

    use crate::sync::lock;
    use crate::{EncodedChunk, Error, Pool, ProcessError, TaskRef};

    /// Why a call on a manager's pool or one of its jobs failed, as it
    /// travels to the client (which turns it back into the crate's
    /// [`Error`]: [`Error::WorkerDied`], [`Error::TaskPanicked`],
    /// [`Error::Timeout`], [`Error::Process`]).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
    #[non_exhaustive]
    pub enum PoolFailure {
        /// The worker running the task died ([`Error::WorkerDied`]).
        #[error("pool worker {pid} died (exit code {exitcode}) while running the task")]
        WorkerDied {
            /// The worker's process id.
            pid: u32,
            /// Its exit code, or minus the signal that killed it.
            exitcode: i32,
        },
        /// The task panicked ([`Error::TaskPanicked`]).
        #[error("the task panicked: {0}")]
        TaskPanicked(String),
        /// A rule of the pool was broken ([`Error::Process`]).
        #[error("{0}")]
        Process(PoolRule),
        /// The result did not come within the timeout ([`Error::Timeout`]).
        #[error("the result did not come in time")]
        Timeout,
        /// Anything else, as its message ([`Error::ProcessStart`]).
        #[error("{0}")]
        Failed(String),
    }

    /// The pool's [`ProcessError`]s, as they travel.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
    #[non_exhaustive]
    pub enum PoolRule {
        /// [`ProcessError::PoolNotRunning`].
        #[error("the pool is not running (closed or terminated)")]
        NotRunning,
        /// [`ProcessError::PoolStillRunning`].
        #[error("the pool is still running")]
        StillRunning,
        /// [`ProcessError::PoolTerminated`].
        #[error("the pool was terminated before the result came")]
        Terminated,
        /// [`ProcessError::ResultNotReady`].
        #[error("the result is not ready")]
        NotReady,
        /// [`ProcessError::ForeignImage`].
        #[error("the task's function comes from another executable image")]
        ForeignImage,
        /// [`ProcessError::NoProcesses`].
        #[error("a pool needs at least one process")]
        NoProcesses,
        /// [`ProcessError::NoTasksPerChild`].
        #[error("maxtasksperchild must be at least 1")]
        NoTasksPerChild,
    }

    impl From<Error> for PoolFailure {
        fn from(error: Error) -> Self {
            let rule = match error {
                Error::WorkerDied { pid, exitcode } => {
                    return PoolFailure::WorkerDied { pid, exitcode }
                }
                Error::TaskPanicked(message) => return PoolFailure::TaskPanicked(message),
                Error::Process(ProcessError::PoolNotRunning) => PoolRule::NotRunning,
                Error::Process(ProcessError::PoolStillRunning) => PoolRule::StillRunning,
                Error::Process(ProcessError::PoolTerminated) => PoolRule::Terminated,
                Error::Process(ProcessError::ResultNotReady) => PoolRule::NotReady,
                Error::Process(ProcessError::ForeignImage) => PoolRule::ForeignImage,
                Error::Process(ProcessError::NoProcesses) => PoolRule::NoProcesses,
                Error::Process(ProcessError::NoTasksPerChild) => PoolRule::NoTasksPerChild,
                other => return PoolFailure::Failed(other.to_string()),
            };
            PoolFailure::Process(rule)
        }
    }

    impl PoolFailure {
        /// As the crate's error; `timeout` is the wait that ran out.
        pub fn into_error(self, timeout: Option<Duration>) -> Error {
            match self {
                PoolFailure::WorkerDied { pid, exitcode } => Error::WorkerDied { pid, exitcode },
                PoolFailure::TaskPanicked(message) => Error::TaskPanicked(message),
                PoolFailure::Timeout => Error::Timeout {
                    after: timeout.unwrap_or_default(),
                    withdrawn: false,
                },
                PoolFailure::Failed(message) => Error::ProcessStart(message),
                PoolFailure::Process(rule) => Error::Process(match rule {
                    PoolRule::NotRunning => ProcessError::PoolNotRunning,
                    PoolRule::StillRunning => ProcessError::PoolStillRunning,
                    PoolRule::Terminated => ProcessError::PoolTerminated,
                    PoolRule::NotReady => ProcessError::ResultNotReady,
                    PoolRule::ForeignImage => ProcessError::ForeignImage,
                    PoolRule::NoProcesses => ProcessError::NoProcesses,
                    PoolRule::NoTasksPerChild => ProcessError::NoTasksPerChild,
                }),
            }
        }
    }

    /// A process pool owned by the manager's server (Python's
    /// `SyncManager.Pool`): its workers are children of the server.
    pub struct ManagedPool {
        pool: Arc<Pool>,
    }

    impl ManagedPool {
        /// A pool of `processes` workers (`None`: one per CPU), each
        /// replaced after `maxtasksperchild` tasks if given.
        pub fn new(
            processes: Option<usize>,
            maxtasksperchild: Option<u64>,
        ) -> std::result::Result<ManagedPool, PoolFailure> {
            let mut builder = Pool::builder();
            if let Some(processes) = processes {
                builder = builder.processes(processes);
            }
            if let Some(tasks) = maxtasksperchild {
                builder = builder.maxtasksperchild(tasks);
            }
            Ok(ManagedPool {
                pool: Arc::new(builder.build()?),
            })
        }

        /// Run `work` on a blocking thread of the server's runtime.
        async fn blocking<T: Send + 'static>(
            &self,
            work: impl FnOnce(&Pool) -> T + Send + 'static,
        ) -> std::result::Result<T, PoolFailure> {
            let pool = Arc::clone(&self.pool);
            tokio::task::spawn_blocking(move || work(&pool))
                .await
                .map_err(|e| PoolFailure::Failed(format!("the pool's call failed: {e}")))
        }
    }

    #[crate::shared(typeid = "Pool")]
    impl ManagedPool {
        /// How many workers the pool keeps.
        pub fn processes(&self) -> usize {
            self.pool.processes()
        }

        /// Run `task` on `chunks` of encoded calls: the job whose proxy
        /// the caller waits on. Refused for a task of another executable
        /// image, and once the pool is closed or terminated.
        #[proxy]
        pub fn submit(
            &self,
            task: TaskRef,
            chunks: Vec<EncodedChunk>,
        ) -> std::result::Result<PoolJob, PoolFailure> {
            let job = PoolJob::new(chunks.len());
            let answers = Arc::clone(&job.answers);
            self.pool.submit_encoded(
                &task,
                chunks,
                Box::new(move |index, result| answers.arrived(index, result)),
            )?;
            Ok(job)
        }

        /// No more work (Python's `close()`); what was submitted still runs.
        pub fn close(&self) {
            self.pool.close();
        }

        /// Stop the workers now (Python's `terminate()`): every pending
        /// job fails with `PoolTerminated`.
        pub async fn terminate(&self) -> std::result::Result<(), PoolFailure> {
            self.blocking(|pool| pool.terminate()).await
        }

        /// Wait for the workers to exit (Python's `join()`): an error
        /// unless the pool was closed or terminated first.
        pub async fn join(&self) -> std::result::Result<(), PoolFailure> {
            self.blocking(|pool| pool.join()).await??;
            Ok(())
        }
    }

    impl std::fmt::Debug for ManagedPool {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            std::fmt::Debug::fmt(&*self.pool, f)
        }
    }

    /// One chunk of a job, as the server keeps it.
    enum Answer {
        Pending,
        Done(std::result::Result<EncodedChunk, PoolFailure>),
        /// Taken by `next` (an `imap`'s iterator): its memory is free.
        Taken,
    }

    /// A job's answers, filled in on the pool's thread.
    struct Answers {
        chunks: Mutex<Vec<Answer>>,
        /// Bumped on every answer; waiters watch it.
        arrivals: watch::Sender<u64>,
    }

    impl Answers {
        fn arrived(&self, index: usize, result: crate::Result<EncodedChunk>) {
            if let Some(slot) = lock(&self.chunks).get_mut(index) {
                *slot = Answer::Done(result.map_err(PoolFailure::from));
            }
            self.arrivals.send_modify(|n| *n += 1);
        }

        /// Wait (at most `timeout`) for `look` to find something.
        async fn wait_for<T>(
            &self,
            timeout: Option<Duration>,
            mut look: impl FnMut(&mut [Answer]) -> Option<T>,
        ) -> Option<T> {
            let mut arrivals = self.arrivals.subscribe();
            let found = async {
                loop {
                    arrivals.borrow_and_update();
                    if let Some(found) = look(&mut lock(&self.chunks)) {
                        return found;
                    }
                    // The sender lives as long as the job: `changed` only
                    // fails if it is gone, which `self` rules out.
                    let _ = arrivals.changed().await;
                }
            };
            match timeout {
                None => Some(found.await),
                Some(timeout) => tokio::time::timeout(timeout, found).await.ok(),
            }
        }
    }

    /// Every chunk answered, or one failed: the outcome of the whole job.
    fn outcome(chunks: &[Answer]) -> Option<std::result::Result<Vec<EncodedChunk>, PoolFailure>> {
        let mut all = Vec::with_capacity(chunks.len());
        let mut pending = false;
        for answer in chunks.iter() {
            match answer {
                Answer::Done(Ok(chunk)) => all.push(chunk.clone()),
                Answer::Done(Err(e)) => return Some(Err(e.clone())),
                Answer::Pending => pending = true,
                Answer::Taken => {
                    return Some(Err(PoolFailure::Failed(
                        "the job's results were taken by its iterator".into(),
                    )))
                }
            }
        }
        (!pending).then_some(Ok(all))
    }

    /// A job of a manager's pool (Python's `AsyncResult` and, read chunk
    /// by chunk with `next`, its `IMapIterator`), kept in the server until
    /// its last proxy goes.
    pub struct PoolJob {
        answers: Arc<Answers>,
        /// The next chunk an ordered `next` gives.
        next: Mutex<usize>,
    }

    impl PoolJob {
        fn new(chunks: usize) -> PoolJob {
            PoolJob {
                answers: Arc::new(Answers {
                    chunks: Mutex::new((0..chunks).map(|_| Answer::Pending).collect()),
                    arrivals: watch::Sender::new(0),
                }),
                next: Mutex::new(0),
            }
        }
    }

    impl std::fmt::Debug for PoolJob {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "<PoolJob ready={}>", self.ready())
        }
    }

    #[crate::shared(typeid = "AsyncResult")]
    impl PoolJob {
        /// Every chunk's results in order, waiting at most `timeout`
        /// (`None`: until the job is over); the first failure if a chunk
        /// failed, [`PoolFailure::Timeout`] if the time ran out.
        pub async fn get(
            &self,
            timeout: Option<Duration>,
        ) -> std::result::Result<Vec<EncodedChunk>, PoolFailure> {
            self.answers
                .wait_for(timeout, |chunks| outcome(chunks))
                .await
                .unwrap_or(Err(PoolFailure::Timeout))
        }

        /// Wait at most `timeout` for the outcome; whether it is ready.
        pub async fn wait(&self, timeout: Option<Duration>) -> bool {
            self.answers
                .wait_for(timeout, |chunks| outcome(chunks).map(|_| ()))
                .await
                .is_some()
        }

        /// Whether the outcome is known.
        pub fn ready(&self) -> bool {
            outcome(&lock(&self.answers.chunks)).is_some()
        }

        /// Whether it succeeded; `NotReady` before it is ready (Python's
        /// ValueError).
        pub fn successful(&self) -> std::result::Result<bool, PoolFailure> {
            match outcome(&lock(&self.answers.chunks)) {
                None => Err(PoolFailure::Process(PoolRule::NotReady)),
                Some(result) => Ok(result.is_ok()),
            }
        }

        /// Take the next chunk's results (`ordered`: the next in order;
        /// otherwise the first to have finished), waiting at most
        /// `timeout`; `None` once every chunk was taken.
        pub async fn next(
            &self,
            ordered: bool,
            timeout: Option<Duration>,
        ) -> std::result::Result<Option<EncodedChunk>, PoolFailure> {
            let found = self
                .answers
                .wait_for(timeout, |chunks| {
                    let mut next = lock(&self.next);
                    let index = if ordered {
                        if *next >= chunks.len() {
                            return Some(None);
                        }
                        match chunks[*next] {
                            Answer::Done(_) => *next,
                            _ => return None,
                        }
                    } else {
                        match chunks.iter().position(|a| matches!(a, Answer::Done(_))) {
                            Some(index) => index,
                            None if chunks.iter().all(|a| matches!(a, Answer::Taken)) => {
                                return Some(None)
                            }
                            None => return None,
                        }
                    };
                    *next += 1;
                    match std::mem::replace(&mut chunks[index], Answer::Taken) {
                        Answer::Done(result) => Some(Some(result)),
                        _ => unreachable!("the chunk was answered"),
                    }
                })
                .await;
            match found {
                None => Err(PoolFailure::Timeout),
                Some(None) => Ok(None),
                Some(Some(result)) => result.map(Some),
            }
        }
    }
}

/// The typed proxies of a manager's pool.
pub mod typed {
    use std::marker::PhantomData;
    use std::time::Duration;

    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use super::server::{ManagedPoolProxy, PoolFailure, PoolJobProxy};
    use crate::sync::typed::typed_proxy;
    use crate::{EncodedChunk, Function, Result, TaskRef};

    /// `Result<Result<T, PoolFailure>>` from a raw proxy as the crate's
    /// `Result<T>`.
    fn folded<T>(
        result: Result<std::result::Result<T, PoolFailure>>,
        timeout: Option<Duration>,
    ) -> Result<T> {
        result?.map_err(|e| e.into_error(timeout))
    }

    /// A typed proxy of a pool owned by a manager's server (Python's
    /// `PoolProxy`): the same methods as [`Pool`](crate::Pool), each task
    /// a `fn` item of this program, the results as the caller's types.
    ///
    /// ```no_run
    /// # extern crate manager_runtime as managers;
    /// fn square(x: i64) -> i64 {
    ///     x * x
    /// }
    ///
    /// fn main() -> managers::Result<()> {
    ///     managers::bootstrap();
    ///     let manager = managers::sync::SyncManager::new();
    ///     manager.start()?;
    ///     let pool = manager.pool(Some(2))?;
    ///     assert_eq!(pool.map(square, 0..4, None)?, [0, 1, 4, 9]);
    ///     assert_eq!(pool.apply_async(square, (7,))?.get()?, 49);
    ///     Ok(())
    /// }
    /// ```
    ///
    /// Only a client running the same executable image as the server may
    /// send it functions; another program's gets
    /// [`ProcessError::ForeignImage`](crate::ProcessError::ForeignImage).
    /// The items of `map` and `imap` are encoded before the call (as
    /// Python pickles them); `imap`'s results are read chunk by chunk.
    pub struct PoolProxy {
        raw: ManagedPoolProxy,
    }

    typed_proxy!(PoolProxy, ManagedPoolProxy);

    impl PoolProxy {
        /// How many workers the pool keeps.
        pub fn processes(&self) -> Result<usize> {
            self.raw.processes()
        }

        fn submit(&self, task: TaskRef, chunks: Vec<EncodedChunk>) -> Result<PoolJobProxy> {
            folded(self.raw.submit(task, chunks), None)
        }

        /// `f(args...)` in a worker of the pool, waiting for it (Python's
        /// `apply`).
        pub fn apply<F, A, R>(&self, f: F, args: A) -> Result<R>
        where
            F: Function<A, Output = R>,
            A: Serialize + DeserializeOwned,
            R: Serialize + DeserializeOwned,
        {
            self.apply_async(f, args)?.get()
        }

        /// `f(args...)` in a worker; a proxy of its result (Python's
        /// `apply_async`).
        pub fn apply_async<F, A, R>(&self, f: F, args: A) -> Result<AsyncResultProxy<R>>
        where
            F: Function<A, Output = R>,
            A: Serialize + DeserializeOwned,
            R: Serialize + DeserializeOwned,
        {
            let chunks = TaskRef::chunks([args], Some(1), 1)?;
            let raw = self.submit(TaskRef::new(f)?, chunks)?;
            Ok(AsyncResultProxy::new(raw, one))
        }

        fn submit_map<F, A, R>(
            &self,
            f: F,
            items: impl IntoIterator<Item = impl Serialize>,
            chunksize: Option<usize>,
        ) -> Result<PoolJobProxy>
        where
            F: Function<A, Output = R>,
            A: DeserializeOwned,
            R: Serialize,
        {
            let task = TaskRef::new(f)?;
            let workers = match chunksize {
                Some(_) => 1,
                None => self.processes()?,
            };
            self.submit(task, TaskRef::chunks(items, chunksize, workers)?)
        }

        /// `f(item)` for every item, in order (Python's `map`); `chunksize`
        /// as for [`Pool::map`](crate::Pool::map).
        pub fn map<F, T, R>(
            &self,
            f: F,
            items: impl IntoIterator<Item = T>,
            chunksize: Option<usize>,
        ) -> Result<Vec<R>>
        where
            F: Function<(T,), Output = R>,
            T: Serialize + DeserializeOwned,
            R: Serialize + DeserializeOwned,
        {
            self.map_async(f, items, chunksize)?.get()
        }

        /// [`map`](Self::map) without waiting (Python's `map_async`).
        pub fn map_async<F, T, R>(
            &self,
            f: F,
            items: impl IntoIterator<Item = T>,
            chunksize: Option<usize>,
        ) -> Result<AsyncResultProxy<Vec<R>>>
        where
            F: Function<(T,), Output = R>,
            T: Serialize + DeserializeOwned,
            R: Serialize + DeserializeOwned,
        {
            let raw =
                self.submit_map::<F, (T,), R>(f, items.into_iter().map(|t| (t,)), chunksize)?;
            Ok(AsyncResultProxy::new(raw, all))
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
            R: Serialize + DeserializeOwned,
        {
            self.starmap_async(f, items, chunksize)?.get()
        }

        /// [`starmap`](Self::starmap) without waiting (Python's
        /// `starmap_async`).
        pub fn starmap_async<F, A, R>(
            &self,
            f: F,
            items: impl IntoIterator<Item = A>,
            chunksize: Option<usize>,
        ) -> Result<AsyncResultProxy<Vec<R>>>
        where
            F: Function<A, Output = R>,
            A: Serialize + DeserializeOwned,
            R: Serialize + DeserializeOwned,
        {
            let raw = self.submit_map::<F, A, R>(f, items, chunksize)?;
            Ok(AsyncResultProxy::new(raw, all))
        }

        fn submit_imap<F, T, R>(
            &self,
            f: F,
            items: impl IntoIterator<Item = T>,
            chunksize: usize,
            ordered: bool,
        ) -> Result<PoolIterProxy<R>>
        where
            F: Function<(T,), Output = R>,
            T: Serialize + DeserializeOwned,
            R: Serialize + DeserializeOwned,
        {
            let items = items.into_iter().map(|t| (t,));
            let raw = self.submit_map::<F, (T,), R>(f, items, Some(chunksize.max(1)))?;
            Ok(PoolIterProxy::new(raw, ordered))
        }

        /// `f(item)` for every item, the results in order, read a chunk at
        /// a time as the iterator is advanced (Python's `imap`).
        pub fn imap<F, T, R>(
            &self,
            f: F,
            items: impl IntoIterator<Item = T>,
            chunksize: usize,
        ) -> Result<PoolIterProxy<R>>
        where
            F: Function<(T,), Output = R>,
            T: Serialize + DeserializeOwned,
            R: Serialize + DeserializeOwned,
        {
            self.submit_imap(f, items, chunksize, true)
        }

        /// As [`imap`](Self::imap), the results in the order their chunks
        /// finish (Python's `imap_unordered`).
        pub fn imap_unordered<F, T, R>(
            &self,
            f: F,
            items: impl IntoIterator<Item = T>,
            chunksize: usize,
        ) -> Result<PoolIterProxy<R>>
        where
            F: Function<(T,), Output = R>,
            T: Serialize + DeserializeOwned,
            R: Serialize + DeserializeOwned,
        {
            self.submit_imap(f, items, chunksize, false)
        }

        /// No more work (Python's `close()`): what was submitted still
        /// runs, then the workers exit.
        pub fn close(&self) -> Result<()> {
            self.raw.close()
        }

        /// Stop the workers now (Python's `terminate()`): every pending
        /// result fails with
        /// [`ProcessError::PoolTerminated`](crate::ProcessError::PoolTerminated).
        pub fn terminate(&self) -> Result<()> {
            folded(self.raw.terminate(), None)
        }

        /// Wait for the workers to exit (Python's `join()`): an error
        /// unless the pool was closed or terminated first.
        pub fn join(&self) -> Result<()> {
            folded(self.raw.join(), None)
        }
    }

    /// The results of an `apply_async`: the one result.
    fn one<R: DeserializeOwned>(chunks: Vec<EncodedChunk>) -> Result<R> {
        let mut results = all::<R>(chunks)?;
        match results.len() {
            1 => Ok(results.remove(0)),
            n => Err(crate::Error::ProcessStart(format!(
                "the pool answered {n} results for one call"
            ))),
        }
    }

    /// The results of a `map_async`: every chunk's, in order.
    fn all<R: DeserializeOwned>(chunks: Vec<EncodedChunk>) -> Result<Vec<R>> {
        let mut results = Vec::new();
        for chunk in &chunks {
            results.extend(TaskRef::decode::<R>(chunk)?);
        }
        Ok(results)
    }

    /// A proxy of the result of an `apply_async`, `map_async` or
    /// `starmap_async` on a manager's pool (Python's `AsyncResult` through
    /// its manager): the result stays in the server, so `get` can be
    /// called again and from any holder of a clone.
    pub struct AsyncResultProxy<T> {
        raw: PoolJobProxy,
        decode: fn(Vec<EncodedChunk>) -> Result<T>,
    }

    impl<T> AsyncResultProxy<T> {
        fn new(raw: PoolJobProxy, decode: fn(Vec<EncodedChunk>) -> Result<T>) -> Self {
            AsyncResultProxy { raw, decode }
        }

        /// The dynamically typed proxy this one wraps.
        pub fn raw(&self) -> &PoolJobProxy {
            &self.raw
        }

        fn get_within(&self, timeout: Option<Duration>) -> Result<T> {
            (self.decode)(folded(self.raw.get(timeout), timeout)?)
        }

        /// Wait for the result.
        pub fn get(&self) -> Result<T> {
            self.get_within(None)
        }

        /// Wait at most `timeout`; then [`Error::Timeout`](crate::Error::Timeout)
        /// (Python's `multiprocessing.TimeoutError`), the task going on.
        pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
            self.get_within(Some(timeout))
        }

        /// Wait for the outcome (without taking it).
        pub fn wait(&self) -> Result<()> {
            self.raw.wait(None).map(drop)
        }

        /// Wait at most `timeout`; whether it is ready.
        pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
            self.raw.wait(Some(timeout))
        }

        /// Whether the outcome is known.
        pub fn ready(&self) -> Result<bool> {
            self.raw.ready()
        }

        /// Whether it succeeded; an error if it is not ready (Python's
        /// ValueError).
        pub fn successful(&self) -> Result<bool> {
            folded(self.raw.successful(), None)
        }
    }

    impl<T> Clone for AsyncResultProxy<T> {
        /// Another reference to the same result.
        fn clone(&self) -> Self {
            AsyncResultProxy::new(self.raw.clone(), self.decode)
        }
    }

    impl<T> std::fmt::Debug for AsyncResultProxy<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            std::fmt::Debug::fmt(&self.raw, f)
        }
    }

    /// The results of an `imap` or `imap_unordered` on a manager's pool
    /// (Python's `IMapIterator` through its manager): each chunk is
    /// fetched from the server when the iterator reaches it, and freed
    /// there.
    pub struct PoolIterProxy<R> {
        raw: PoolJobProxy,
        ordered: bool,
        items: std::collections::VecDeque<R>,
        finished: bool,
        _type: PhantomData<fn() -> R>,
    }

    impl<R: DeserializeOwned> PoolIterProxy<R> {
        fn new(raw: PoolJobProxy, ordered: bool) -> Self {
            PoolIterProxy {
                raw,
                ordered,
                items: Default::default(),
                finished: false,
                _type: PhantomData,
            }
        }

        /// The dynamically typed proxy this one wraps.
        pub fn raw(&self) -> &PoolJobProxy {
            &self.raw
        }

        fn next_within(&mut self, timeout: Option<Duration>) -> Option<Result<R>> {
            loop {
                if let Some(item) = self.items.pop_front() {
                    return Some(Ok(item));
                }
                if self.finished {
                    return None;
                }
                match folded(self.raw.next(self.ordered, timeout), timeout) {
                    Ok(Some(chunk)) => match TaskRef::decode::<R>(&chunk) {
                        Ok(items) => self.items.extend(items),
                        Err(e) => return Some(Err(e)),
                    },
                    Ok(None) => {
                        self.finished = true;
                        return None;
                    }
                    Err(e) => return Some(Err(e)),
                }
            }
        }

        /// The next result, waiting at most `timeout`;
        /// [`Error::Timeout`](crate::Error::Timeout) after it (Python's
        /// `next(timeout)`), the iteration going on.
        pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<R>> {
            self.next_within(Some(timeout))
        }
    }

    impl<R: DeserializeOwned> Iterator for PoolIterProxy<R> {
        type Item = Result<R>;

        fn next(&mut self) -> Option<Result<R>> {
            self.next_within(None)
        }
    }

    impl<R> std::fmt::Debug for PoolIterProxy<R> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            std::fmt::Debug::fmt(&self.raw, f)
        }
    }
}

pub(crate) fn register(registry: &mut Registry) {
    registry.register::<server::ManagedPool>(
        "Pool",
        None,
        Some(Constructor::try_new(
            |(processes, maxtasksperchild): (Option<usize>, Option<u64>)| {
                server::ManagedPool::new(processes, maxtasksperchild)
                    .map_err(|e| crate::SyncError::ValueError(e.to_string()))
            },
        )),
    );
    // Only ever returned by a pool's `submit`.
    registry.register::<server::PoolJob>("AsyncResult", None, None);
}

impl SyncManager {
    /// A new pool of `processes` workers (`None`: one per CPU) owned by the
    /// manager's server (Python's `manager.Pool(processes)`); its workers
    /// are children of the server. The server must run this program
    /// (`start()`, or `start_in_thread()`), whose `main` calls
    /// [`bootstrap`](crate::bootstrap).
    pub fn pool(&self, processes: Option<usize>) -> Result<typed::PoolProxy> {
        self.create("Pool", &(processes, None::<u64>))
    }

    /// As [`pool`](Self::pool), each worker replaced after
    /// `maxtasksperchild` tasks (Python's `maxtasksperchild`).
    pub fn pool_with(
        &self,
        processes: Option<usize>,
        maxtasksperchild: u64,
    ) -> Result<typed::PoolProxy> {
        self.create("Pool", &(processes, Some(maxtasksperchild)))
    }
}
