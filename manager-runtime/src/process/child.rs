//! The parent's handle on a child process: Python's `Process`.
//!
//! `start()` re-executes this program with the process marker; the child's
//! lifeline carries the target (as an offset in the executable image, see
//! `image.rs`), its encoded arguments with their descriptors, the process's
//! name and the authkey. The child answers once it holds its arguments
//! (proxies adopted), and `start()` returns then. Until that answer the
//! parent keeps the arguments, and so the objects of their proxies, alive.
//!
//! The lifeline stays open for the child's life: when this process ends,
//! however it ends, the child reads end of file and dies with it, unless it
//! was [detached](Process::detach). A handle dropped while its child runs
//! joins it (Python joins non-daemonic children at exit), except for a
//! daemon, which is left to end with this process.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::image::{FnRef, ImageId};
use super::lifeline::{self, Lifeline};
use super::target::{Exit, Function, ProcessEntry};
use crate::crossing::{Attachments, Route, ServerInfo};
use crate::error::{Error, ProcessError, Result};

/// The first argument of a re-executed child that runs a target.
pub(crate) const PROCESS_MARKER: &str = "--managers-process";
/// How long `start()` waits for the child to hold its arguments.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What the parent sends a new child.
#[derive(Serialize, Deserialize)]
pub(crate) struct Start {
    pub(crate) image: ImageId,
    pub(crate) entry: FnRef<ProcessEntry>,
    pub(crate) name: String,
    pub(crate) identity: Vec<u32>,
    pub(crate) daemon: bool,
    pub(crate) authkey: Vec<u8>,
    pub(crate) parent: u32,
    /// Each server that proxies among the arguments live on.
    pub(crate) sessions: Vec<ServerInfo>,
    pub(crate) args: Vec<u8>,
}

/// What a parent tells a running child over the lifeline.
#[derive(Serialize, Deserialize)]
pub(crate) enum Notice {
    /// From now on, end of file on the lifeline is not the child's end.
    Detach,
}

/// Encodable arguments, their type erased.
trait Args: Send {
    fn encode(&self) -> Result<Vec<u8>>;
}

impl<A: Serialize + Send> Args for A {
    fn encode(&self) -> Result<Vec<u8>> {
        crate::codec::encode(self)
    }
}

struct Launch {
    /// The target as it crosses; a closure is kept as the error `start`
    /// reports.
    entry: std::result::Result<FnRef<ProcessEntry>, ProcessError>,
    args: Box<dyn Args>,
}

struct Running {
    child: Child,
    /// Readable once the child has exited (Linux ≥ 5.3; polled without).
    pidfd: Option<Arc<OwnedFd>>,
    /// Closed when this handle is done with the child (or detached).
    lifeline: Option<Lifeline>,
}

enum State {
    Initial(Launch),
    Running(Running),
    Exited { pid: u32, code: i32 },
    Closed,
}

impl State {
    /// Reap the child if it has exited, without waiting.
    fn poll(&mut self) -> Result<()> {
        if let State::Running(running) = self {
            if let Some(status) = running.child.try_wait()? {
                let pid = running.child.id();
                *self = State::Exited {
                    pid,
                    code: exit_code(status),
                };
                forget_child(pid);
            }
        }
        Ok(())
    }
}

/// Python's exit code: the code passed to exit, or minus the signal.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| -status.signal().unwrap_or(0))
}

/// Started children not yet reaped, for [`active_children`] (and to keep a
/// dropped daemon's lifeline open until this process ends).
static CHILDREN: Mutex<Vec<Registered>> = Mutex::new(Vec::new());

#[derive(Clone)]
struct Registered {
    name: String,
    pid: u32,
    state: Arc<Mutex<State>>,
}

fn forget_child(pid: u32) {
    // Called with a state locked: CHILDREN is only ever locked after a
    // state, or alone (`active_children` copies the list first).
    CHILDREN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|child| child.pid != pid);
}

/// A started child that is still running, as [`active_children`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveChild {
    /// The process's name.
    pub name: String,
    /// Its process id.
    pub pid: u32,
}

/// The children this process started that are still running (Python's
/// `active_children()`); children that have ended are reaped on the way.
pub fn active_children() -> Vec<ActiveChild> {
    let children: Vec<_> = CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut active = Vec::new();
    for child in children {
        let mut state = child.state.lock().unwrap_or_else(|e| e.into_inner());
        let _ = state.poll();
        if matches!(*state, State::Running(_)) {
            active.push(ActiveChild {
                name: child.name,
                pid: child.pid,
            });
        }
    }
    active
}

/// How many children this process has named (Python's `_process_counter`).
static COUNTER: AtomicU32 = AtomicU32::new(1);

/// A function running in a child process: Python's
/// `multiprocessing.Process(target, args)`.
///
/// The target is a `fn` item, and `args` the tuple of its arguments
/// (`()`, `(x,)`, `(x, y)`, ...): any serde values, proxies of any manager
/// (the child gets live proxies that keep their objects alive until it
/// drops them), connections, queues, locks, shared values and arrays. The child is this program re-executed, so
/// [`bootstrap`](crate::bootstrap) must be the first line of `main`.
///
/// ```no_run
/// # extern crate manager_runtime as managers;
/// use managers::Process;
///
/// fn greet(name: String, times: u32) {
///     for _ in 0..times {
///         println!("hello {name} from {}", managers::current_process().name());
///     }
/// }
///
/// fn main() -> managers::Result<()> {
///     managers::bootstrap();
///     let p = Process::new(greet, ("bob".to_string(), 2));
///     p.start()?;
///     p.join()?;
///     assert_eq!(p.exitcode(), Some(0));
///     Ok(())
/// }
/// ```
///
/// The target is a `fn` item. A closure that captures something cannot
/// cross processes and does not compile (a fn pointer chosen at run time
/// neither); a closure that captures nothing compiles but `start` refuses
/// it with [`ProcessError::Closure`] (see [`Function`]):
///
/// ```compile_fail,E0080
/// # extern crate manager_runtime as managers;
/// let n = 5;
/// let p = managers::Process::new(move || println!("{n}"), ());
/// ```
pub struct Process {
    name: String,
    daemon: bool,
    identity: Vec<u32>,
    state: Arc<Mutex<State>>,
}

impl Process {
    /// A process that will run `target(args...)` once started. Its name is
    /// `Process-N` (`Process-1:2` for the second child of `Process-1`).
    pub fn new<F, A>(target: F, args: A) -> Process
    where
        F: Function<A>,
        F::Output: Exit,
        A: Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        crate::process::target::fn_item!(F, "Process::new");
        let entry = super::target::process_entry_of(target);
        let mut identity = super::current_process().identity().to_vec();
        identity.push(COUNTER.fetch_add(1, Ordering::Relaxed));
        let name = format!(
            "Process-{}",
            identity
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(":")
        );
        Process {
            name,
            daemon: false,
            identity,
            state: Arc::new(Mutex::new(State::Initial(Launch {
                entry,
                args: Box::new(args),
            }))),
        }
    }

    /// Give the process another name (before it starts).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Make it a daemon (before it starts): it is terminated when this
    /// process ends and not joined when its handle drops.
    pub fn with_daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// The process's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it is a daemon.
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start the child and return once it holds its arguments. A second
    /// start is an error, as is a target that lives in a shared library.
    pub fn start(&self) -> Result<()> {
        self.launch()?.finish()
    }

    /// Start the child and send it its start message, without waiting for
    /// its answer: several children start side by side (a pool).
    pub(crate) fn launch(&self) -> Result<Launching<'_>> {
        let state = self.state();
        let launch = match &*state {
            State::Initial(launch) => launch,
            State::Closed => return Err(ProcessError::Closed.into()),
            _ => return Err(ProcessError::StartedTwice.into()),
        };
        let entry = launch.entry.clone()?;
        let (args, attachments) =
            crate::crossing::encoding(Route::Lifeline, || launch.args.encode())?;
        let (child, lifeline) = lifeline::reexec(PROCESS_MARKER)?;
        let start = Start {
            image: super::image::image_id(),
            entry,
            name: self.name.clone(),
            identity: self.identity.clone(),
            daemon: self.daemon,
            authkey: crate::authkey::process_authkey().to_vec(),
            parent: std::process::id(),
            sessions: attachments.servers.clone(),
            args,
        };
        let mut launching = Launching {
            process: self,
            state,
            child: Some(child),
            lifeline,
            attachments,
        };
        launching
            .lifeline
            .send(&start, &launching.attachments.borrowed_fds())
            .map_err(|e| launching.failed(e))?;
        Ok(launching)
    }
    /// Wait for the child to end. An error if it was never started.
    pub fn join(&self) -> Result<()> {
        self.wait(None).map(|_| ())
    }

    /// Wait at most `timeout` for the child to end; whether it has.
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        self.wait(Some(timeout))
    }

    fn wait(&self, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let pidfd = {
                let mut state = self.state();
                state.poll()?;
                match &*state {
                    State::Initial(_) => return Err(ProcessError::NotStarted.into()),
                    State::Closed => return Err(ProcessError::Closed.into()),
                    State::Exited { .. } => return Ok(true),
                    State::Running(running) => running.pidfd.clone(),
                }
            };
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return Ok(false);
            }
            match pidfd {
                Some(fd) => {
                    super::connection::readable(fd.as_fd(), left)?;
                }
                None => std::thread::sleep(left.map_or(Duration::from_millis(1), |l| {
                    l.min(Duration::from_millis(1))
                })),
            }
        }
    }

    /// Whether the child has started and not yet ended.
    pub fn is_alive(&self) -> bool {
        let mut state = self.state();
        let _ = state.poll();
        matches!(*state, State::Running(_))
    }

    /// `None` until the child has ended; then 0, the code it exited with,
    /// or minus the signal that killed it (Python's `exitcode`).
    pub fn exitcode(&self) -> Option<i32> {
        let mut state = self.state();
        let _ = state.poll();
        match *state {
            State::Exited { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The child's process id, once started.
    pub fn pid(&self) -> Option<u32> {
        match &*self.state() {
            State::Running(running) => Some(running.child.id()),
            State::Exited { pid, .. } => Some(*pid),
            _ => None,
        }
    }

    /// The descriptor readable once the child has exited, while it runs.
    pub(crate) fn pidfd(&self) -> Option<Arc<OwnedFd>> {
        match &*self.state() {
            State::Running(running) => running.pidfd.clone(),
            _ => None,
        }
    }

    /// Send SIGTERM (Python's `terminate()`); nothing if it has ended.
    pub fn terminate(&self) -> Result<()> {
        self.signal(libc::SIGTERM)
    }

    /// Send SIGKILL (Python's `kill()`); nothing if it has ended.
    pub fn kill(&self) -> Result<()> {
        self.signal(libc::SIGKILL)
    }

    fn signal(&self, signal: libc::c_int) -> Result<()> {
        let mut state = self.state();
        state.poll()?;
        match &*state {
            State::Initial(_) => Err(ProcessError::NotStarted.into()),
            State::Closed => Err(ProcessError::Closed.into()),
            State::Exited { .. } => Ok(()),
            State::Running(running) => {
                // SAFETY: kill(2) on our child, not yet reaped (we hold the
                // state), so its pid cannot name another process.
                if unsafe { libc::kill(running.child.id() as libc::pid_t, signal) } != 0 {
                    return Err(std::io::Error::last_os_error().into());
                }
                Ok(())
            }
        }
    }

    /// Release the handle's resources (Python's `close()`): an error while
    /// the child runs; every later call but [`name`](Self::name) fails.
    pub fn close(&self) -> Result<()> {
        let mut state = self.state();
        state.poll()?;
        if matches!(*state, State::Running(_)) {
            return Err(ProcessError::StillRunning.into());
        }
        *state = State::Closed;
        Ok(())
    }

    /// Let the child outlive this handle and this process: it is neither
    /// joined when the handle drops nor ended when this process ends.
    pub fn detach(self) -> Result<()> {
        let mut state = self.state();
        state.poll()?;
        match &mut *state {
            State::Running(running) => {
                if let Some(lifeline) = running.lifeline.take() {
                    lifeline.send(&Notice::Detach, &[])?;
                }
                Ok(())
            }
            State::Initial(_) => Err(ProcessError::NotStarted.into()),
            State::Closed => Err(ProcessError::Closed.into()),
            State::Exited { .. } => Ok(()),
        }
    }
}

/// A child that was sent its start message and has not answered yet.
pub(crate) struct Launching<'a> {
    process: &'a Process,
    state: MutexGuard<'a, State>,
    /// `None` once handed over (or reaped on failure).
    child: Option<Child>,
    lifeline: Lifeline,
    /// What the arguments carry (their proxies' objects kept alive, their
    /// descriptors), until the child holds its own.
    attachments: Attachments,
}

impl Launching<'_> {
    /// Wait for the child to hold its arguments.
    pub(crate) fn finish(mut self) -> Result<()> {
        let answer = self
            .lifeline
            .stream()
            .set_read_timeout(Some(START_TIMEOUT))
            .map_err(Error::from)
            .and_then(|()| self.lifeline.recv::<std::result::Result<(), String>>());
        let answer = match answer {
            Ok((answer, _)) => answer,
            Err(e) => return Err(self.failed(e)),
        };
        if let Err(message) = answer {
            if let Some(mut child) = self.child.take() {
                let _ = child.wait();
            }
            return Err(Error::ProcessStart(message));
        }
        let lifeline = self
            .lifeline
            .stream()
            .set_read_timeout(None)
            .map_err(Error::from)
            .and_then(|()| self.lifeline.try_clone());
        let lifeline = match lifeline {
            Ok(lifeline) => lifeline,
            Err(e) => return Err(self.failed(e)),
        };
        // From here on the child is the state's (and reaped through it).
        let child = self.child.take().expect("not finished yet");
        let pid = child.id();
        let pidfd = pidfd_open(pid).map(Arc::new);
        // The child holds its own references now: the arguments (and the
        // parent's copies of any connection among them) go with `self`.
        *self.state = State::Running(Running {
            child,
            pidfd,
            lifeline: Some(lifeline),
        });
        // Under the state's lock, so that a reaping `poll` cannot come first.
        CHILDREN
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Registered {
                name: self.process.name.clone(),
                pid,
                state: Arc::clone(&self.process.state),
            });
        Ok(())
    }

    /// The child failed to start (`e`): end and reap it; the error to give.
    fn failed(&mut self, e: Error) -> Error {
        let Some(mut child) = self.child.take() else {
            return e;
        };
        let _ = child.kill();
        let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
        Error::ProcessStart(format!(
            "the process ended ({status}) before running its target ({e}); \
             is managers::bootstrap() the first line of main?"
        ))
    }
}

impl Drop for Launching<'_> {
    /// Never finished: the child must not be left behind.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Start every process in `processes` side by side: launch them all, then
/// wait for each to hold its arguments.
pub(crate) fn start_all(processes: &[&Process]) -> Result<()> {
    let launching = processes
        .iter()
        .map(|p| p.launch())
        .collect::<Result<Vec<_>>>()?;
    for one in launching {
        one.finish()?;
    }
    Ok(())
}

/// A descriptor that becomes readable when process `pid` (our unreaped
/// child) exits; `None` where pidfds are not available.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new
    // descriptor, which we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a non-negative result is a new descriptor nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

impl Drop for Process {
    fn drop(&mut self) {
        let mut state = self.state();
        let _ = state.poll();
        let State::Running(running) = &mut *state else {
            return;
        };
        if self.daemon || running.lifeline.is_none() {
            // A daemon ends with this process (CHILDREN keeps its lifeline
            // open until then); a detached child goes on.
            return;
        }
        if std::thread::panicking() {
            // This thread is failing: a child it would wait for might
            // never end. End it instead.
            // SAFETY: kill(2) on our unreaped child.
            unsafe {
                libc::kill(running.child.id() as libc::pid_t, libc::SIGKILL);
            }
        }
        drop(state);
        let _ = self.join();
    }
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = match &*self.state() {
            State::Initial(_) => "initial".to_string(),
            State::Running(running) => format!("started pid={}", running.child.id()),
            State::Exited { pid, code } => format!("stopped pid={pid} exitcode={code}"),
            State::Closed => "closed".to_string(),
        };
        write!(
            f,
            "<Process name='{}' {status}{}>",
            self.name,
            if self.daemon { " daemon" } else { "" }
        )
    }
}
