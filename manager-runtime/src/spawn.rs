//! Starting a server: in a child process or on a thread of this process.
//!
//! A server process is a [`Process`] like any other (this program
//! re-executed, see `process/`): its target is [`serve_child`],
//! monomorphised for the manager's registry function, its arguments the
//! settings and one end of a [`Pipe`], the control channel. The child
//! binds, answers with the address it listens on, and serves until the
//! control channel closes (the manager shut it down: it stops, exit code
//! 0); if the parent dies, the child's lifeline ends it as it ends every
//! child. Nothing of a server is known to the process layer: the registry
//! and the initializer cross as the entries of fn items every target is.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::client::OtherServers;
use crate::crossing::{Carried, Route};
use crate::error::{Error, ProcessError, Result};
use crate::options::ManagerOptions;
use crate::process::image::{image_id, FnRef, SameImage};
use crate::process::target::{self, Exit, Function, ProcessEntry};
use crate::process::{Connection, Pipe, Process};
use crate::registry::Registry;
use crate::server::{Server, ServerStopper};

/// How long `start()` waits for the child to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A function run once in a server process before it serves (Python's
/// `initializer(*initargs)`), ready to cross to the child.
pub(crate) struct Initializer {
    entry: FnRef<ProcessEntry>,
    args: Carried,
    /// The proxies among the arguments, alive until the server started.
    _keep: crate::crossing::Keep,
}

impl Initializer {
    /// `function(args...)`; `args` cross as a process's arguments do.
    pub(crate) fn new<F, A>(function: F, args: &A) -> Result<Initializer>
    where
        F: Function<A>,
        F::Output: Exit,
        A: Serialize + serde::de::DeserializeOwned + 'static,
    {
        let (args, keep) = Carried::encode(Route::Lifeline, args)?;
        Ok(Initializer {
            entry: target::process_entry_of(function)?,
            args,
            _keep: keep,
        })
    }
}

/// What a server process is started with.
#[derive(Serialize, Deserialize)]
struct Settings {
    initializer: Option<(FnRef<ProcessEntry>, Carried)>,
    address: Option<Address>,
    authkey: Vec<u8>,
    max_frame: u32,
    handshake_timeout: Duration,
    max_connections: usize,
    spin: Duration,
    shared_memory: bool,
    redis: Option<String>,
    lease: Duration,
    redis_wait: Option<(u32, Duration)>,
    metrics: bool,
    tls_server_pem: Option<(Vec<u8>, Vec<u8>)>,
}

/// A manager's registry function, monomorphised: builds the registry in
/// this process, or starts a server process that builds it there.
#[derive(Clone, Copy)]
pub(crate) struct RegistryFns {
    pub(crate) build: fn() -> Result<Registry>,
    pub(crate) start: fn(&ManagerOptions, Option<Initializer>) -> Result<Running>,
}

impl RegistryFns {
    /// The functions of registry `R`, a fn item (a closure is refused:
    /// it would have to cross to the server process).
    pub(crate) fn of<R>(_registry: R) -> std::result::Result<RegistryFns, ProcessError>
    where
        R: Function<(), Output = Registry>,
    {
        target::function_item::<R>()?;
        Ok(RegistryFns {
            build: build::<R>,
            start: start_process::<R>,
        })
    }
}

fn build<R: Function<(), Output = Registry>>() -> Result<Registry> {
    target::call::<R, ()>(())
}

/// A server in a child process.
struct ChildServer {
    process: Process,
    /// Closed to stop the server.
    control: Connection,
    private_socket: bool,
}

/// A server this process started.
pub(crate) struct Running {
    pub(crate) address: Address,
    kind: RunningKind,
}

enum RunningKind {
    Process(Box<ChildServer>),
    Thread {
        stopper: ServerStopper,
        thread: std::thread::JoinHandle<Result<()>>,
    },
}

impl Running {
    /// Stop the server: the child's control channel closes and it gets
    /// `timeout` to exit, then SIGTERM, then SIGKILL. Returns the child's
    /// exit status (`None` for a thread server).
    pub(crate) fn stop(self, timeout: Duration) -> Result<Option<ExitStatus>> {
        match self.kind {
            RunningKind::Thread { stopper, thread } => {
                stopper.stop();
                thread.join().map_err(|_| Error::ServerThreadPanicked)??;
                Ok(None)
            }
            RunningKind::Process(child) => {
                let ChildServer {
                    process,
                    control,
                    private_socket,
                } = *child;
                drop(control);
                if !process.join_timeout(timeout)? {
                    process.terminate()?;
                    if !process.join_timeout(Duration::from_millis(200))? {
                        process.kill()?;
                        process.join()?;
                    }
                }
                if private_socket {
                    // A child that was killed could not remove its socket.
                    if let Address::Unix(path) = &self.address {
                        if let Some(dir) = path.parent() {
                            let _ = std::fs::remove_dir_all(dir);
                        }
                    }
                }
                Ok(process.exitcode().map(exit_status))
            }
        }
    }

    /// The server process id, if it runs in a child process.
    pub(crate) fn pid(&self) -> Option<u32> {
        match &self.kind {
            RunningKind::Process(child) => child.process.pid(),
            RunningKind::Thread { .. } => None,
        }
    }
}

/// A process's exit code (minus the signal that killed it) as the wait
/// status `ExitStatus` reads.
fn exit_status(code: i32) -> ExitStatus {
    if code < 0 {
        ExitStatus::from_raw(-code)
    } else {
        ExitStatus::from_raw((code & 0xff) << 8)
    }
}

/// Start a server process for registry `R`.
fn start_process<R>(options: &ManagerOptions, initializer: Option<Initializer>) -> Result<Running>
where
    R: Function<(), Output = Registry>,
{
    let settings = Settings {
        initializer: initializer.map(|init| (init.entry, init.args)),
        address: options.address.clone(),
        authkey: options.authkey.clone(),
        max_frame: options.max_frame,
        handshake_timeout: options.handshake_timeout,
        max_connections: options.max_connections,
        spin: options.spin,
        shared_memory: options.shared_memory,
        redis: options.redis.clone(),
        lease: options.lease,
        redis_wait: options.redis_wait,
        metrics: options.metrics,
        #[cfg(feature = "tls")]
        tls_server_pem: options.tls_server.as_ref().map(|t| t.pem.clone()),
        #[cfg(not(feature = "tls"))]
        tls_server_pem: None,
    };
    let (control, theirs) = Pipe::duplex()?;
    let process = Process::new(serve_child::<R>, (settings, theirs)).with_name("ManagerServer");
    process.start().map_err(|e| match e {
        Error::ProcessStart(message) => Error::Spawn(message),
        other => other,
    })?;
    let listening = match control.poll_timeout(START_TIMEOUT) {
        Ok(true) => control.recv::<std::result::Result<Address, String>>(),
        Ok(false) => Err(Error::Spawn(format!(
            "the server process did not listen within {START_TIMEOUT:?}"
        ))),
        Err(e) => Err(e),
    };
    match listening {
        Ok(Ok(address)) => Ok(Running {
            address,
            kind: RunningKind::Process(Box::new(ChildServer {
                process,
                control,
                private_socket: options.address.is_none(),
            })),
        }),
        Ok(Err(message)) => {
            let _ = process.join_timeout(Duration::from_secs(5));
            Err(Error::Spawn(message))
        }
        Err(e) => {
            let _ = process.kill();
            let _ = process.join();
            let status = process
                .exitcode()
                .map(|code| exit_status(code).to_string())
                .unwrap_or_default();
            Err(Error::Spawn(format!(
                "the server process ended ({status}) without listening ({e})"
            )))
        }
    }
}

/// A server process: build registry `R`, run the initializer, bind, tell
/// the parent where it listens, serve until the control channel closes.
fn serve_child<R>(settings: Settings, control: Connection) -> Result<()>
where
    R: Function<(), Output = Registry>,
{
    let options = ManagerOptions {
        address: settings.address.clone(),
        authkey: settings.authkey.clone(),
        max_frame: settings.max_frame,
        handshake_timeout: settings.handshake_timeout,
        max_connections: settings.max_connections,
        spin: settings.spin,
        shared_memory: settings.shared_memory,
        redis: settings.redis.clone(),
        lease: settings.lease,
        redis_wait: settings.redis_wait,
        metrics: settings.metrics,
        ..ManagerOptions::default()
    };
    let bound = prepare::<R>(settings, options);
    let server = match bound {
        Ok(server) => server,
        Err(e) => {
            control.send(&Err::<Address, _>(e.to_string()))?;
            return Err(e);
        }
    };
    control.send(&Ok::<_, String>(server.address().clone()))?;
    let stopper = server.stopper();
    std::thread::Builder::new()
        .name("manager-control".into())
        .spawn(move || {
            // Nothing is sent on the control channel after the address: a
            // message or end of file both mean stop.
            let _ = control.recv_bytes();
            stopper.stop();
        })?;
    server.serve_forever()
}

/// The server of a server process, bound, its initializer run.
fn prepare<R>(settings: Settings, options: ManagerOptions) -> Result<Server>
where
    R: Function<(), Output = Registry>,
{
    #[cfg(feature = "tls")]
    let options = match &settings.tls_server_pem {
        Some((cert, key)) => options.tls_server(crate::tls::TlsServer::from_pem(cert, key)?),
        None => options,
    };
    #[cfg(not(feature = "tls"))]
    if settings.tls_server_pem.is_some() {
        return Err(Error::Spawn(
            "a TLS server in a program built without the `tls` feature".into(),
        ));
    }
    let registry = std::panic::catch_unwind(move || -> Result<Registry> {
        if let Some((entry, args)) = settings.initializer {
            // The entry came with this process's own start message, whose
            // image was checked.
            let same = SameImage::check(&image_id())?;
            let (run, _sessions) = args.decode(true, |bytes| entry.resolve(&same)(bytes));
            if run?() != 0 {
                return Err(Error::Spawn("the initializer failed".into()));
            }
        }
        build::<R>()
    })
    .map_err(|_| Error::Spawn("the initializer or registry panicked".into()))??;
    bind(registry, &options)
}

/// Bind a server for `registry`: objects it serves that hold proxies to
/// other managers' objects keep them through this process's sessions there.
pub(crate) fn bind(registry: Registry, options: &ManagerOptions) -> Result<Server> {
    let remote = std::sync::Arc::new(OtherServers::new(&options.authkey));
    Server::bind(registry, options, remote)
}

/// Start a server for `registry` on a thread of this process.
pub(crate) fn start_thread(registry: Registry, options: &ManagerOptions) -> Result<Running> {
    let server = bind(registry, options)?;
    let address = server.address().clone();
    let stopper = server.stopper();
    let thread = std::thread::Builder::new()
        .name("manager-server".into())
        .spawn(move || server.serve_forever())?;
    Ok(Running {
        address,
        kind: RunningKind::Thread { stopper, thread },
    })
}
