//! Python's `multiprocessing` beyond managers: processes, and (in later
//! files) pipes, queues, shared memory and pools, between processes of
//! this program.
//!
//! Every child is this program re-executed; [`bootstrap`]
//! recognises it. Open, in this order:
//!
//! - `image.rs`: which executable image runs and where a function lies in
//!   it; why an offset may cross to a child soundly.
//! - `target.rs`: [`Function`], what may run in another process (a `fn`
//!   item), and its trampolines.
//! - `lifeline.rs`: re-executing this program, and the socket on the
//!   child's stdin that carries frames and file descriptors.
//! - `args.rs`: a child's arguments, with the proxies and descriptors in
//!   them.
//! - `child.rs`: [`Process`], the parent's handle; `run.rs`: what the child
//!   does.
//! - `connection.rs`: [`Pipe`] and its [`Connection`]s.
//! - `shm.rs`: shared memory regions, robust process-shared mutexes,
//!   futexes; `queue.rs`: [`Queue`], [`JoinableQueue`], [`SimpleQueue`] as
//!   a ring in shared memory; `lock.rs`: [`Lock`] and [`RLock`];
//!   `memory.rs`: [`SharedValue`] and [`SharedArray`] of [`Pod`] data.
//! - `pool/`: [`Pool`] and [`AsyncResult`].

pub(crate) mod child;
pub(crate) mod connection;
pub(crate) mod image;
pub(crate) mod lane;
pub(crate) mod lifeline;
mod lock;
pub(crate) mod memory;
mod pool;
mod queue;
mod run;
pub(crate) mod scm;
pub(crate) mod shm;
pub(crate) mod target;

use std::sync::OnceLock;

pub use child::{active_children, ActiveChild, Process};
pub use connection::{
    CanRecv, CanSend, Connection, Duplex, Pipe, RecvOnly, SendOnly, DEFAULT_MAX_MESSAGE,
};
pub use lock::{Lock, LockGuard, RLock, SharedLock};
pub use manager_macros::Pod;
pub use memory::{ArrayGuard, Pod, RawArray, RawValue, SharedArray, SharedValue, ValueGuard};
#[cfg(feature = "redis")]
pub use pool::{worker, WorkerOptions};
pub use pool::{
    AsyncResult, ChunkSink, EncodedChunk, IMapIterator, Pool, PoolBuilder, TaskRef, WorkerCalls,
};
pub use queue::{JoinableQueue, Queue, SimpleQueue, DEFAULT_QUEUE_BYTES};
pub use target::{Exit, Function};

/// Run a started child if this process is one; return at once otherwise.
///
/// Call it first in `main` of every program that starts processes or
/// managers: a child is this program re-executed, and in that child this
/// call runs the child's target (a [`Process`]'s, a pool worker's, a
/// manager's server) and exits the process instead of returning.
///
/// ```
/// # extern crate manager_runtime as managers;
/// fn main() {
///     managers::bootstrap();
///     // ... the program proper
/// }
/// ```
#[allow(clippy::needless_doctest_main)] // the point is where the call goes
pub fn bootstrap() {
    if lifeline::started_as(child::PROCESS_MARKER) {
        run::run_child();
    }
}

/// Who this process is, as its parent named it.
struct Identity {
    name: String,
    identity: Vec<u32>,
    daemon: bool,
    parent: Option<u32>,
}

static CURRENT: OnceLock<Identity> = OnceLock::new();

/// Set once, by a child before its target runs.
fn set_current(identity: Identity) {
    let _ = CURRENT.set(identity);
}

/// This process, as Python's `current_process()` describes it: its name
/// (`MainProcess` unless a parent named it), pid and authkey.
pub fn current_process() -> CurrentProcess {
    CurrentProcess {
        identity: CURRENT.get_or_init(|| Identity {
            name: "MainProcess".into(),
            identity: Vec::new(),
            daemon: false,
            parent: None,
        }),
    }
}

/// This process: see [`current_process`].
#[derive(Clone, Copy)]
pub struct CurrentProcess {
    identity: &'static Identity,
}

impl CurrentProcess {
    /// `MainProcess`, or the name the parent gave this child.
    pub fn name(&self) -> &'static str {
        &self.identity.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        std::process::id()
    }

    /// The authkey, inherited from the parent (Python's
    /// `current_process().authkey`): managers and child processes of this
    /// process use it unless told otherwise.
    pub fn authkey(&self) -> &'static [u8] {
        crate::authkey::process_authkey()
    }

    /// Whether the parent started this process as a daemon.
    pub fn is_daemon(&self) -> bool {
        self.identity.daemon
    }

    /// The parent's process id, for a child started by [`Process`].
    pub fn parent_pid(&self) -> Option<u32> {
        self.identity.parent
    }

    /// The position among its ancestors' children (`[]` for the main
    /// process, `[1, 2]` for the second child of the first child).
    pub fn identity(&self) -> &'static [u32] {
        &self.identity.identity
    }
}

impl std::fmt::Debug for CurrentProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<Process name='{}' pid={}>", self.name(), self.pid())
    }
}
