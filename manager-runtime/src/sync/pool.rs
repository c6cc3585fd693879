//! `Pool`: Python's `SyncManager.Pool` (its `PoolProxy`), a process pool
//! owned by the manager's server and driven through proxies, so several
//! client processes share one pool.
//!
//! A task's function is a [`TaskRef`](crate::process::TaskRef): an offset in the
//! client's executable image, accepted only by a server running the very
//! same image (another program's client gets
//! [`ProcessError::ForeignImage`](crate::ProcessError::ForeignImage)). The
//! client encodes the calls in chunks (Python's default chunk size for the
//! pool's worker count), the server hands them to its [`Pool`](crate::Pool)
//! and keeps each job's answers in a [`server::PoolJob`] (typeid
//! `AsyncResult`), whose proxy the caller waits on: `get` and `wait` are
//! futures in the server, never a blocked thread.
#![forbid(unsafe_code)]

use super::SyncManager;
use crate::server::{Constructor, Registry};
use crate::Result;

/// The server side: the pool and its jobs.
pub mod server {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use serde::{Deserialize, Serialize};
    use tokio::sync::watch;

    use crate::process::{EncodedChunk, TaskRef};
    use crate::sync::lock;
    use crate::{Error, Pool, ProcessError};

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

    impl From<PoolFailure> for Error {
        /// As the crate's error (a timeout of unknown length).
        fn from(failure: PoolFailure) -> Error {
            failure.into_error(None)
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
            // Proxies of this very server among the tasks' arguments: the
            // workers (children of the server) open sessions here with the
            // manager's key.
            if let Some(call) = crate::server::CallContext::current() {
                builder = builder.servers(vec![call.crossing_server()]);
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

    #[crate::shared(typeid = "Pool", typed, proxy = "Pool")]
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

        /// No more work (Python's `close()`): what was submitted still
        /// runs, then the workers exit.
        pub fn close(&self) {
            self.pool.close();
        }

        /// Stop the workers now (Python's `terminate()`): every pending
        /// result fails with
        /// [`ProcessError::PoolTerminated`](crate::ProcessError::PoolTerminated).
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

/// The typed proxies of a manager's pool, blocking and async.
pub mod typed {
    use std::collections::VecDeque;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use super::server::{PoolFailure, PoolJobAsyncProxy, PoolJobProxy};
    use crate::process::{EncodedChunk, Function, TaskRef};
    use crate::sync::typed::dual_proxy;
    use crate::Result;

    /// The clones of the proxies among a job's arguments: the objects they
    /// name stay alive while the job's result or iterator proxy does, so
    /// that the server's workers can take them whenever they run.
    type Kept = std::sync::Arc<Vec<Box<dyn std::any::Any + Send + Sync>>>;

    /// `Result<Result<T, PoolFailure>>` from a raw proxy as the crate's
    /// `Result<T>`.
    fn folded<T>(
        result: Result<std::result::Result<T, PoolFailure>>,
        timeout: Option<Duration>,
    ) -> Result<T> {
        result?.map_err(|e| e.into_error(timeout))
    }

    pub use super::server::{PoolAsyncProxy, PoolProxy};

    dual_proxy! {
        impl PoolProxy, PoolAsyncProxy {
            /// `f(args...)` in a worker of the pool, waiting for it
            /// (Python's `apply`).
            pub fn apply<F, A, R>(&self, f: F, args: A) -> Result<R>
            where [
                F: Function<A, Output = R>,
                A: Serialize + DeserializeOwned,
                R: Serialize + DeserializeOwned,
            ] {
                wait!(wait!(self.apply_async(f, args))?.get())
            }

            /// `f(item)` for every item, in order (Python's `map`);
            /// `chunksize` as for [`Pool::map`](crate::Pool::map).
            pub fn map<F, T, R>(
                &self,
                f: F,
                items: impl IntoIterator<Item = T>,
                chunksize: Option<usize>,
            ) -> Result<Vec<R>>
            where [
                F: Function<(T,), Output = R>,
                T: Serialize + DeserializeOwned,
                R: Serialize + DeserializeOwned,
            ] {
                wait!(wait!(self.map_async(f, items, chunksize))?.get())
            }

            /// `f(*args)` for every tuple of arguments, in order (Python's
            /// `starmap`).
            pub fn starmap<F, A, R>(
                &self,
                f: F,
                items: impl IntoIterator<Item = A>,
                chunksize: Option<usize>,
            ) -> Result<Vec<R>>
            where [
                F: Function<A, Output = R>,
                A: Serialize + DeserializeOwned,
                R: Serialize + DeserializeOwned,
            ] {
                wait!(wait!(self.starmap_async(f, items, chunksize))?.get())
            }
        }
    }

    /// The methods whose results differ by flavour (an `AsyncResult`
    /// proxy, an `imap` iterator), for the blocking proxy and, with
    /// `async await`, the async one.
    macro_rules! submitting {
        ($proxy:ident, $job:ident, $result:ident, $iter:ident $(, $asynchronous:tt $awaiting:tt)?) => {
            impl $proxy {
                $($asynchronous)? fn submit_map<F, A, R>(
                    &self,
                    f: F,
                    items: impl IntoIterator<Item = impl Serialize>,
                    chunksize: Option<usize>,
                ) -> Result<($job, Kept)>
                where
                    F: Function<A, Output = R>,
                    A: DeserializeOwned,
                    R: Serialize,
                {
                    let task = TaskRef::new(f)?;
                    let workers = match chunksize {
                        Some(_) => 1,
                        None => self.processes()$(.$awaiting)??,
                    };
                    let (chunks, keep) = TaskRef::chunks_keeping(items, chunksize, workers)?;
                    let job = folded(self.submit(task, chunks)$(.$awaiting)?, None)?;
                    Ok((job, Kept::new(keep)))
                }

                $($asynchronous)? fn submit_imap<F, T, R>(
                    &self,
                    f: F,
                    items: impl IntoIterator<Item = T>,
                    chunksize: Option<usize>,
                    ordered: bool,
                ) -> Result<$iter<R>>
                where
                    F: Function<(T,), Output = R>,
                    T: Serialize + DeserializeOwned,
                    R: Serialize + DeserializeOwned,
                {
                    let items = items.into_iter().map(|t| (t,));
                    let (raw, keep) = self
                        .submit_map::<F, (T,), R>(f, items, Some(chunksize.unwrap_or(1).max(1)))$(.$awaiting)??;
                    Ok($iter::new(raw, ordered, keep))
                }

                /// `f(args...)` in a worker; a proxy of its result
                /// (Python's `apply_async`).
                pub $($asynchronous)? fn apply_async<F, A, R>(
                    &self,
                    f: F,
                    args: A,
                ) -> Result<$result<R>>
                where
                    F: Function<A, Output = R>,
                    A: Serialize + DeserializeOwned,
                    R: Serialize + DeserializeOwned,
                {
                    let (chunks, keep) = TaskRef::chunks_keeping([args], Some(1), 1)?;
                    let raw = folded(self.submit(TaskRef::new(f)?, chunks)$(.$awaiting)?, None)?;
                    Ok($result::new(raw, one, Kept::new(keep)))
                }

                /// [`map`](Self::map) without waiting (Python's
                /// `map_async`).
                pub $($asynchronous)? fn map_async<F, T, R>(
                    &self,
                    f: F,
                    items: impl IntoIterator<Item = T>,
                    chunksize: Option<usize>,
                ) -> Result<$result<Vec<R>>>
                where
                    F: Function<(T,), Output = R>,
                    T: Serialize + DeserializeOwned,
                    R: Serialize + DeserializeOwned,
                {
                    let items = items.into_iter().map(|t| (t,));
                    let (raw, keep) = self
                        .submit_map::<F, (T,), R>(f, items, chunksize)$(.$awaiting)??;
                    Ok($result::new(raw, all, keep))
                }

                /// [`starmap`](Self::starmap) without waiting (Python's
                /// `starmap_async`).
                pub $($asynchronous)? fn starmap_async<F, A, R>(
                    &self,
                    f: F,
                    items: impl IntoIterator<Item = A>,
                    chunksize: Option<usize>,
                ) -> Result<$result<Vec<R>>>
                where
                    F: Function<A, Output = R>,
                    A: Serialize + DeserializeOwned,
                    R: Serialize + DeserializeOwned,
                {
                    let (raw, keep) = self.submit_map::<F, A, R>(f, items, chunksize)$(.$awaiting)??;
                    Ok($result::new(raw, all, keep))
                }

                /// `f(item)` for every item, the results in order, read a
                /// chunk at a time as the iterator is advanced (Python's
                /// `imap`).
                pub $($asynchronous)? fn imap<F, T, R>(
                    &self,
                    f: F,
                    items: impl IntoIterator<Item = T>,
                    chunksize: Option<usize>,
                ) -> Result<$iter<R>>
                where
                    F: Function<(T,), Output = R>,
                    T: Serialize + DeserializeOwned,
                    R: Serialize + DeserializeOwned,
                {
                    self.submit_imap(f, items, chunksize, true)$(.$awaiting)?
                }

                /// As [`imap`](Self::imap), the results in the order their
                /// chunks finish (Python's `imap_unordered`).
                pub $($asynchronous)? fn imap_unordered<F, T, R>(
                    &self,
                    f: F,
                    items: impl IntoIterator<Item = T>,
                    chunksize: Option<usize>,
                ) -> Result<$iter<R>>
                where
                    F: Function<(T,), Output = R>,
                    T: Serialize + DeserializeOwned,
                    R: Serialize + DeserializeOwned,
                {
                    self.submit_imap(f, items, chunksize, false)$(.$awaiting)?
                }
            }
        };
    }

    submitting!(PoolProxy, PoolJobProxy, AsyncResultProxy, PoolIterProxy);
    submitting!(
        PoolAsyncProxy,
        PoolJobAsyncProxy,
        AsyncResultAsyncProxy,
        PoolIterAsyncProxy,
        async await
    );

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

    /// How a result proxy turns the job's chunks into its `T`.
    type Decode<T> = fn(Vec<EncodedChunk>) -> Result<T>;

    /// A proxy of the result of an `apply_async`, `map_async` or
    /// `starmap_async` on a manager's pool (Python's `AsyncResult` through
    /// its manager): the result stays in the server, so `get` can be
    /// called again and from any holder of a clone.
    /// [`AsyncResultAsyncProxy`] is its async form.
    pub struct AsyncResultProxy<T> {
        raw: PoolJobProxy,
        decode: Decode<T>,
        keep: Kept,
    }

    /// The async form of [`AsyncResultProxy`]: `get` and the waits are
    /// `async fn`s (a future in the server too: a waiting client costs
    /// no thread anywhere).
    pub struct AsyncResultAsyncProxy<T> {
        raw: PoolJobAsyncProxy,
        decode: Decode<T>,
        keep: Kept,
    }

    /// What the two flavours of a result proxy share but their methods.
    macro_rules! result_proxy {
        ($proxy:ident, $raw:ident, $other:ident, $convert:ident, $doc:literal) => {
            impl<T> $proxy<T> {
                fn new(raw: $raw, decode: Decode<T>, keep: Kept) -> Self {
                    $proxy { raw, decode, keep }
                }

                /// The dynamically typed proxy this one wraps.
                pub fn raw(&self) -> &$raw {
                    &self.raw
                }

                #[doc = $doc]
                pub fn $convert(&self) -> $other<T> {
                    $other::new(self.raw.$convert(), self.decode, Kept::clone(&self.keep))
                }
            }

            impl<T> Clone for $proxy<T> {
                /// Another reference to the same result.
                fn clone(&self) -> Self {
                    $proxy::new(self.raw.clone(), self.decode, Kept::clone(&self.keep))
                }
            }

            impl<T> std::fmt::Debug for $proxy<T> {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    std::fmt::Debug::fmt(&self.raw, f)
                }
            }
        };
    }

    result_proxy!(
        AsyncResultProxy,
        PoolJobProxy,
        AsyncResultAsyncProxy,
        to_async,
        "The async proxy of the same result (another reference)."
    );
    result_proxy!(
        AsyncResultAsyncProxy,
        PoolJobAsyncProxy,
        AsyncResultProxy,
        to_blocking,
        "The blocking proxy of the same result (another reference)."
    );

    dual_proxy! {
        impl<T> AsyncResultProxy, AsyncResultAsyncProxy {
            /// Wait for the result.
            pub fn get(&self) -> Result<T> {
                (self.decode)(folded(wait!(self.raw.get(None)), None)?)
            }

            /// Wait at most `timeout`; then
            /// [`Error::Timeout`](crate::Error::Timeout) (Python's
            /// `multiprocessing.TimeoutError`), the task going on.
            pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
                (self.decode)(folded(wait!(self.raw.get(Some(timeout))), Some(timeout))?)
            }

            /// Wait for the outcome (without taking it).
            pub fn wait(&self) -> Result<()> {
                wait!(self.raw.wait(None)).map(drop)
            }

            /// Wait at most `timeout`; whether it is ready.
            pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
                wait!(self.raw.wait(Some(timeout)))
            }

            /// Whether the outcome is known.
            pub fn ready(&self) -> Result<bool> {
                wait!(self.raw.ready())
            }

            /// Whether it succeeded; an error if it is not ready (Python's
            /// ValueError).
            pub fn successful(&self) -> Result<bool> {
                folded(wait!(self.raw.successful()), None)
            }
        }
    }

    /// What a next chunk's call gives: its results, `None` at the end.
    type NextChunk = Result<Option<EncodedChunk>>;

    /// An iterator's results fetched and not yet taken, and the rule for
    /// the chunk fetched next: what both flavours share.
    struct Buffered<R> {
        ordered: bool,
        items: VecDeque<R>,
        finished: bool,
    }

    impl<R: DeserializeOwned> Buffered<R> {
        fn new(ordered: bool) -> Self {
            Buffered {
                ordered,
                items: VecDeque::new(),
                finished: false,
            }
        }

        /// The next result if one is at hand: `Some(None)` at the end,
        /// `None` if a chunk must be fetched.
        fn ready(&mut self) -> Option<Option<Result<R>>> {
            match self.items.pop_front() {
                Some(item) => Some(Some(Ok(item))),
                None => self.finished.then_some(None),
            }
        }

        /// A fetched chunk came: `Some` if it is what the caller gets now
        /// (an error, the end), `None` if its results are at hand.
        fn arrived(&mut self, chunk: NextChunk) -> Option<Option<Result<R>>> {
            match chunk {
                Ok(Some(chunk)) => match TaskRef::decode::<R>(&chunk) {
                    Ok(items) => {
                        self.items.extend(items);
                        None
                    }
                    Err(e) => Some(Some(Err(e))),
                },
                Ok(None) => {
                    self.finished = true;
                    Some(None)
                }
                Err(e) => Some(Some(Err(e))),
            }
        }
    }

    /// The results of an `imap` or `imap_unordered` on a manager's pool
    /// (Python's `IMapIterator` through its manager): each chunk is
    /// fetched from the server when the iterator reaches it, and freed
    /// there. [`PoolIterAsyncProxy`] is its async form.
    pub struct PoolIterProxy<R> {
        raw: PoolJobProxy,
        buffered: Buffered<R>,
        keep: Kept,
    }

    impl<R: DeserializeOwned> PoolIterProxy<R> {
        fn new(raw: PoolJobProxy, ordered: bool, keep: Kept) -> Self {
            PoolIterProxy {
                raw,
                buffered: Buffered::new(ordered),
                keep,
            }
        }

        /// The dynamically typed proxy this one wraps.
        pub fn raw(&self) -> &PoolJobProxy {
            &self.raw
        }

        fn next_within(&mut self, timeout: Option<Duration>) -> Option<Result<R>> {
            loop {
                if let Some(next) = self.buffered.ready() {
                    return next;
                }
                let chunk = folded(self.raw.next(self.buffered.ordered, timeout), timeout);
                if let Some(next) = self.buffered.arrived(chunk) {
                    return next;
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

    /// The async form of [`PoolIterProxy`]: a
    /// [`Stream`](futures_core::Stream) of the results, with inherent
    /// [`next`](Self::next) and [`next_timeout`](Self::next_timeout) for
    /// use without a stream library. A chunk's fetch, once begun, belongs
    /// to the iterator: a `next` dropped while it waits loses nothing, the
    /// next call goes on with the same fetch.
    pub struct PoolIterAsyncProxy<R> {
        raw: PoolJobAsyncProxy,
        buffered: Buffered<R>,
        /// The fetch in flight.
        pending: Option<Pin<Box<dyn Future<Output = NextChunk> + Send>>>,
        keep: Kept,
    }

    impl<R: DeserializeOwned> PoolIterAsyncProxy<R> {
        fn new(raw: PoolJobAsyncProxy, ordered: bool, keep: Kept) -> Self {
            PoolIterAsyncProxy {
                raw,
                buffered: Buffered::new(ordered),
                pending: None,
                keep,
            }
        }

        /// The dynamically typed proxy this one wraps.
        pub fn raw(&self) -> &PoolJobAsyncProxy {
            &self.raw
        }

        /// The next result, `None` once every chunk was taken.
        pub async fn next(&mut self) -> Option<Result<R>> {
            std::future::poll_fn(|cx| self.poll_item(cx, None)).await
        }

        /// The next result, waiting at most `timeout` (unless a fetch
        /// begun without one is still on its way);
        /// [`Error::Timeout`](crate::Error::Timeout) after it, the
        /// iteration going on.
        pub async fn next_timeout(&mut self, timeout: Duration) -> Option<Result<R>> {
            std::future::poll_fn(|cx| self.poll_item(cx, Some(timeout))).await
        }

        fn poll_item(
            &mut self,
            cx: &mut Context<'_>,
            timeout: Option<Duration>,
        ) -> Poll<Option<Result<R>>> {
            loop {
                if let Some(next) = self.buffered.ready() {
                    return Poll::Ready(next);
                }
                let (raw, ordered) = (&self.raw, self.buffered.ordered);
                let pending = self.pending.get_or_insert_with(|| {
                    // Owns its proxy, so the call lives across polls.
                    let raw = raw.clone();
                    Box::pin(async move { folded(raw.next(ordered, timeout).await, timeout) })
                });
                let chunk = std::task::ready!(pending.as_mut().poll(cx));
                self.pending = None;
                if let Some(next) = self.buffered.arrived(chunk) {
                    return Poll::Ready(next);
                }
            }
        }
    }

    // No field is pinned (the fetch is boxed): it moves freely.
    impl<R> Unpin for PoolIterAsyncProxy<R> {}

    impl<R: DeserializeOwned> futures_core::Stream for PoolIterAsyncProxy<R> {
        type Item = Result<R>;

        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<R>>> {
            self.get_mut().poll_item(cx, None)
        }
    }

    impl<R> std::fmt::Debug for PoolIterAsyncProxy<R> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            std::fmt::Debug::fmt(&self.raw, f)
        }
    }

    impl<R: DeserializeOwned> PoolIterProxy<R> {
        /// The async iterator of the same job (another reference), from
        /// where this one is: results this one fetched stay with it.
        pub fn to_async(&self) -> PoolIterAsyncProxy<R> {
            PoolIterAsyncProxy::new(
                self.raw.to_async(),
                self.buffered.ordered,
                Kept::clone(&self.keep),
            )
        }
    }

    impl<R: DeserializeOwned> PoolIterAsyncProxy<R> {
        /// The blocking iterator of the same job (another reference), from
        /// where this one is: results this one fetched stay with it.
        pub fn to_blocking(&self) -> PoolIterProxy<R> {
            PoolIterProxy::new(
                self.raw.to_blocking(),
                self.buffered.ordered,
                Kept::clone(&self.keep),
            )
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
    /// Each task is a `fn` item of this program, the results the caller's
    /// types:
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

    /// [`pool`](Self::pool) for async code: a [`typed::PoolAsyncProxy`].
    pub async fn pool_async(&self, processes: Option<usize>) -> Result<typed::PoolAsyncProxy> {
        self.create_async("Pool", &(processes, None::<u64>)).await
    }

    /// [`pool_with`](Self::pool_with) for async code.
    pub async fn pool_with_async(
        &self,
        processes: Option<usize>,
        maxtasksperchild: u64,
    ) -> Result<typed::PoolAsyncProxy> {
        self.create_async("Pool", &(processes, Some(maxtasksperchild)))
            .await
    }
}
