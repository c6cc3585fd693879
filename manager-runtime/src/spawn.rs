//! Starting a server: in a child process (this binary, re-executed) or on a
//! thread of this process; and [`bootstrap`], where every child begins.
//!
//! `start()` re-executes the running binary with the server marker (see
//! `process/lifeline.rs`). The parent sends the settings (authkey
//! included) over the child's lifeline, the child answers with the address
//! it listens on, and from then on end of file on the lifeline makes it
//! shut down: a killed parent never leaves a server behind.
//!
//! The child needs to know which manager's registry to build and which
//! initializer to run: both travel as offsets in the executable image,
//! checked to be taken in this very image (`process/image.rs`), never as
//! raw addresses.

use std::io::Read;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::client::OtherServers;
use crate::error::{Error, Result};
use crate::options::ManagerOptions;
use crate::process::image::{FnRef, ImageId, SameImage};
use crate::process::lifeline::{self, Lifeline};
use crate::process::target::{Exit, Function, ProcessEntry, RegistryEntry};
use crate::registry::Registry;
use crate::server::{Server, ServerStopper};

/// The argument that makes [`bootstrap`] run a server.
const SERVER_MARKER: &str = "--managers-server-process";
/// How long `start()` waits for the child to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A function run once in a server process before it serves (Python's
/// `initializer(*initargs)`), ready to cross to the child.
pub(crate) struct Initializer {
    entry: FnRef<ProcessEntry>,
    args: Vec<u8>,
}

impl Initializer {
    /// `function(args...)`; `args` are plain serde values.
    pub(crate) fn new<F, A>(function: F, args: &A) -> Result<Initializer>
    where
        F: Function<A>,
        F::Output: Exit,
        A: Serialize + serde::de::DeserializeOwned + 'static,
    {
        Ok(Initializer {
            entry: crate::process::target::process_entry_of(function)?,
            args: crate::wire::encode(args)?,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Settings {
    image: ImageId,
    registry: FnRef<RegistryEntry>,
    initializer: Option<(FnRef<ProcessEntry>, Vec<u8>)>,
    address: Option<Address>,
    authkey: Vec<u8>,
    process_authkey: Vec<u8>,
    max_frame: u32,
    handshake_timeout: Duration,
    max_connections: usize,
    spin: Duration,
    #[cfg(feature = "tls")]
    tls_server_pem: Option<(Vec<u8>, Vec<u8>)>,
}

/// A server this process started.
pub(crate) struct Running {
    pub(crate) address: Address,
    kind: RunningKind,
}

enum RunningKind {
    Process {
        child: Child,
        lifeline: Lifeline,
        private_socket: bool,
    },
    Thread {
        stopper: ServerStopper,
        thread: std::thread::JoinHandle<Result<()>>,
    },
}

impl Running {
    /// Stop the server: the child gets end of file on its lifeline and
    /// `timeout` to exit, then SIGTERM, then SIGKILL. Returns the child's
    /// exit status (`None` for a thread server).
    pub(crate) fn stop(self, timeout: Duration) -> Result<Option<ExitStatus>> {
        match self.kind {
            RunningKind::Thread { stopper, thread } => {
                stopper.stop();
                thread.join().map_err(|_| Error::ServerThreadPanicked)??;
                Ok(None)
            }
            RunningKind::Process {
                mut child,
                lifeline,
                private_socket,
            } => {
                drop(lifeline);
                let mut status = wait_timeout(&mut child, timeout)?;
                if status.is_none() {
                    signal(&child, libc::SIGTERM);
                    status = wait_timeout(&mut child, Duration::from_millis(200))?;
                }
                let status = match status {
                    Some(status) => status,
                    None => {
                        child.kill()?;
                        child.wait()?
                    }
                };
                if private_socket {
                    // A child that was killed could not remove its socket.
                    if let Address::Unix(path) = &self.address {
                        if let Some(dir) = path.parent() {
                            let _ = std::fs::remove_dir_all(dir);
                        }
                    }
                }
                Ok(Some(status))
            }
        }
    }

    /// The server process id, if it runs in a child process.
    pub(crate) fn pid(&self) -> Option<u32> {
        match &self.kind {
            RunningKind::Process { child, .. } => Some(child.id()),
            RunningKind::Thread { .. } => None,
        }
    }
}

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child we have not reaped yet.
    unsafe {
        libc::kill(child.id() as libc::pid_t, signal);
    }
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Start a server process for `registry`.
pub(crate) fn start_process(
    registry: FnRef<RegistryEntry>,
    options: &ManagerOptions,
    initializer: Option<Initializer>,
) -> Result<Running> {
    let settings = Settings {
        image: crate::process::image::image_id(),
        registry,
        initializer: initializer.map(|init| (init.entry, init.args)),
        address: options.address.clone(),
        authkey: options.authkey.clone(),
        process_authkey: crate::auth::process_authkey().to_vec(),
        max_frame: options.max_frame,
        handshake_timeout: options.handshake_timeout,
        max_connections: options.max_connections,
        spin: options.spin,
        #[cfg(feature = "tls")]
        tls_server_pem: options.tls_server.as_ref().map(|t| t.pem.clone()),
    };
    let (mut child, lifeline) = lifeline::reexec(SERVER_MARKER)?;
    let answer = lifeline
        .send(&settings, &[])
        .and_then(|()| {
            lifeline.stream().set_read_timeout(Some(START_TIMEOUT))?;
            lifeline.recv::<std::result::Result<Address, String>>()
        })
        .map_err(|e| {
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            Error::Spawn(format!(
                "the server process ended ({status}) without listening ({e}); \
                 is managers::bootstrap() the first line of main?"
            ))
        })?;
    match answer.0 {
        Ok(address) => {
            lifeline.stream().set_read_timeout(None)?;
            Ok(Running {
                address,
                kind: RunningKind::Process {
                    child,
                    lifeline,
                    private_socket: options.address.is_none(),
                },
            })
        }
        Err(message) => {
            let _ = child.wait();
            Err(Error::Spawn(message))
        }
    }
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

/// Run a started child if this process is one; return at once otherwise.
///
/// Call it first in `main` of every program that starts managers or
/// processes: `start()` re-executes the program, and in that child this
/// call serves the manager (or runs the process's target) and exits the
/// process instead of returning.
///
/// ```
/// fn main() {
///     manager_runtime::bootstrap();
///     // ... the program proper
/// }
/// ```
#[allow(clippy::needless_doctest_main)] // the point is where the call goes
pub fn bootstrap() {
    if lifeline::started_as(crate::process::PROCESS_MARKER) {
        crate::process::run_child();
    }
    if !lifeline::started_as(SERVER_MARKER) {
        return;
    }
    let code = match serve_child() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("managers: server process failed: {e}");
            1
        }
    };
    std::process::exit(code);
}

/// The registry, and the initializer with its encoded arguments.
type Functions<'a> = (RegistryEntry, Option<(ProcessEntry, &'a [u8])>);

/// The settings' functions, resolved in this image.
fn functions(settings: &Settings) -> Result<Functions<'_>> {
    let same = SameImage::check(&settings.image)?;
    let registry = settings.registry.resolve(&same);
    let initializer = settings
        .initializer
        .as_ref()
        .map(|(entry, args)| (entry.resolve(&same), args.as_slice()));
    Ok((registry, initializer))
}

fn serve_child() -> Result<()> {
    let lifeline = Lifeline::take_stdin()?;
    let (settings, _): (Settings, _) = lifeline.recv()?;
    crate::auth::inherit_process_authkey(settings.process_authkey.clone());
    let options = ManagerOptions {
        address: settings.address.clone(),
        authkey: settings.authkey.clone(),
        max_frame: settings.max_frame,
        handshake_timeout: settings.handshake_timeout,
        max_connections: settings.max_connections,
        spin: settings.spin,
        ..ManagerOptions::default()
    };
    #[cfg(feature = "tls")]
    let options = match &settings.tls_server_pem {
        Some((cert, key)) => options.tls_server(crate::tls::TlsServer::from_pem(cert, key)?),
        None => options,
    };
    let prepared = functions(&settings).and_then(|(registry, initializer)| {
        std::panic::catch_unwind(move || {
            if let Some((entry, args)) = initializer {
                if entry(args)?() != 0 {
                    return Err(Error::Spawn("the initializer failed".into()));
                }
            }
            registry()
        })
        .map_err(|_| Error::Spawn("the initializer or registry panicked".into()))?
    });
    let server = match prepared.and_then(|registry| bind(registry, &options)) {
        Ok(server) => server,
        Err(e) => {
            lifeline.send(&Err::<Address, _>(e.to_string()), &[])?;
            return Err(e);
        }
    };
    lifeline.send(&Ok::<_, String>(server.address().clone()), &[])?;
    let stopper = server.stopper();
    std::thread::Builder::new()
        .name("manager-lifeline".into())
        .spawn(move || {
            let mut byte = [0u8; 64];
            let mut stream = lifeline.stream();
            while let Ok(n) = stream.read(&mut byte) {
                if n == 0 {
                    break;
                }
            }
            stopper.stop();
        })?;
    server.serve_forever()
}
