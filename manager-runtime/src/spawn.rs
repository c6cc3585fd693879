//! Starting a server: in a child process (this binary, re-executed) or on a
//! thread of this process.
//!
//! `start()` re-executes the running binary with a marker argument. The
//! child's standard input is one end of a Unix socket pair: the parent sends
//! the settings (authkey included) over it, the child answers with the
//! address it listens on, and from then on the socket is the child's
//! lifeline: when the parent exits, or is killed, the child reads end of
//! file and shuts down. Nothing secret goes through argv or the environment.
//!
//! The child needs to know which manager's registry to build and which
//! initializer to run. Both are functions of the very same executable image
//! (Linux re-executes `/proc/self/exe`), so the parent sends their offsets
//! from an anchor function and the child turns them back into functions,
//! after checking a second offset matches as well.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::client::OtherServers;
use crate::error::{Error, Result};
use crate::options::ManagerOptions;
use crate::registry::Registry;
use crate::server::{Server, ServerStopper};

/// The argument that makes [`bootstrap`] run a server.
const MARKER: &str = "--managers-server-process";
/// Set in a started server's environment, so a binary that forgot
/// `bootstrap()` is caught instead of starting servers recursively.
const CHILD_ENV: &str = "MANAGERS_SERVER_PROCESS";
/// How long `start()` waits for the child to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

#[inline(never)]
fn anchor() -> u32 {
    0x6d67_7273
}

#[inline(never)]
fn check() -> u32 {
    0x6368_6b00
}

fn base() -> i64 {
    anchor as fn() -> u32 as *const () as usize as i64
}

fn offset(function: *const ()) -> i64 {
    function as usize as i64 - base()
}

fn check_offset() -> i64 {
    offset(check as fn() -> u32 as *const ())
}

#[derive(Serialize, Deserialize)]
struct Settings {
    registry: i64,
    initializer: Option<i64>,
    check: i64,
    address: Option<Address>,
    authkey: Vec<u8>,
    process_authkey: Vec<u8>,
    max_frame: u32,
    handshake_timeout: Duration,
    max_connections: usize,
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
        lifeline: UnixStream,
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

fn write_message<T: Serialize>(stream: &mut UnixStream, value: &T) -> Result<()> {
    let body = crate::wire::encode(value)?;
    stream.write_all(&crate::wire::raw_frame(&body))?;
    Ok(())
}

fn read_message<T: for<'de> Deserialize<'de>>(stream: &mut UnixStream) -> Result<T> {
    let mut buf = Vec::new();
    crate::wire::read_frame(stream, &mut buf, 1 << 20)?;
    crate::wire::decode(&buf)
}

/// Start a server process for `registry`.
pub(crate) fn start_process(
    registry: fn() -> Registry,
    options: &ManagerOptions,
    initializer: Option<fn()>,
) -> Result<Running> {
    if std::env::var_os(CHILD_ENV).is_some() {
        return Err(Error::Spawn(
            "this process was started as a manager server but never called \
             managers::bootstrap(): make it the first line of main"
                .into(),
        ));
    }
    let exe = if cfg!(target_os = "linux") {
        std::path::PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe()?
    };
    let (mut lifeline, child_end) = UnixStream::pair()?;
    let mut command = Command::new(exe);
    if let Some(name) = std::env::args_os().next() {
        std::os::unix::process::CommandExt::arg0(&mut command, name);
    }
    let mut child = command
        .arg(MARKER)
        .env(CHILD_ENV, "1")
        .stdin(Stdio::from(OwnedFd::from(child_end)))
        .spawn()
        .map_err(|e| Error::Spawn(format!("cannot re-execute this program: {e}")))?;
    // The command holds our copy of the child's end of the lifeline: close
    // it, so a child that dies early is seen at once as end of file.
    drop(command);
    let settings = Settings {
        registry: offset(registry as *const ()),
        initializer: initializer.map(|f| offset(f as *const ())),
        check: check_offset(),
        address: options.address.clone(),
        authkey: options.authkey.clone(),
        process_authkey: crate::auth::process_authkey().to_vec(),
        max_frame: options.max_frame,
        handshake_timeout: options.handshake_timeout,
        max_connections: options.max_connections,
        #[cfg(feature = "tls")]
        tls_server_pem: options.tls_server.as_ref().map(|t| t.pem.clone()),
    };
    let answer = write_message(&mut lifeline, &settings)
        .and_then(|()| {
            lifeline.set_read_timeout(Some(START_TIMEOUT))?;
            read_message::<std::result::Result<Address, String>>(&mut lifeline)
        })
        .map_err(|e| {
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            Error::Spawn(format!(
                "the server process ended ({status}) without listening ({e}); \
                 is managers::bootstrap() the first line of main?"
            ))
        })?;
    match answer {
        Ok(address) => {
            lifeline.set_read_timeout(None)?;
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

/// Run a started server if this process is one; return at once otherwise.
///
/// Call it first in `main` of every program that calls `start()` on a
/// manager: `start()` re-executes the program, and in that child this call
/// serves the manager and exits the process instead of returning.
///
/// ```
/// fn main() {
///     manager_runtime::bootstrap();
///     // ... the program proper
/// }
/// ```
#[allow(clippy::needless_doctest_main)] // the point is where the call goes
pub fn bootstrap() {
    if std::env::args_os().nth(1).as_deref() != Some(std::ffi::OsStr::new(MARKER)) {
        return;
    }
    // Only this process is a server; programs it starts are not.
    std::env::remove_var(CHILD_ENV);
    let code = match serve_child() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("managers: server process failed: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn take_lifeline() -> Result<UnixStream> {
    // SAFETY: fd 0 is the socket `start_process` gave us as stdin. Keep it
    // on a close-on-exec descriptor and give fd 0 /dev/null, so processes
    // started by served objects do not inherit the lifeline.
    unsafe {
        let fd = libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3);
        if fd < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let null = std::fs::File::open("/dev/null")?;
        libc::dup2(null.as_raw_fd(), 0);
        Ok(UnixStream::from_raw_fd(fd))
    }
}

fn serve_child() -> Result<()> {
    let mut lifeline = take_lifeline()?;
    let settings: Settings = read_message(&mut lifeline)?;
    crate::auth::inherit_process_authkey(settings.process_authkey.clone());
    let base = base();
    if settings.check != check_offset() {
        let message = "the server process is not the same executable as its parent".to_string();
        write_message(&mut lifeline, &Err::<Address, _>(message.clone()))?;
        return Err(Error::Spawn(message));
    }
    // SAFETY: both offsets were taken from functions of this very executable
    // image (same file, verified by the check offset just above), relative
    // to the same anchor, so adding them back to our anchor yields the same
    // functions with the same signatures.
    let registry: fn() -> Registry = unsafe {
        std::mem::transmute::<usize, fn() -> Registry>((base + settings.registry) as usize)
    };
    let initializer: Option<fn()> = settings
        .initializer
        .map(|o| unsafe { std::mem::transmute::<usize, fn()>((base + o) as usize) });

    let options = ManagerOptions {
        address: settings.address,
        authkey: settings.authkey,
        max_frame: settings.max_frame,
        handshake_timeout: settings.handshake_timeout,
        max_connections: settings.max_connections,
        ..ManagerOptions::default()
    };
    #[cfg(feature = "tls")]
    let options = match &settings.tls_server_pem {
        Some((cert, key)) => options.tls_server(crate::tls::TlsServer::from_pem(cert, key)?),
        None => options,
    };
    let prepared = std::panic::catch_unwind(move || {
        if let Some(init) = initializer {
            init();
        }
        registry()
    })
    .map_err(|_| Error::Spawn("the initializer or registry panicked".into()))
    .and_then(|registry| bind(registry, &options));
    let server = match prepared {
        Ok(server) => server,
        Err(e) => {
            write_message(&mut lifeline, &Err::<Address, _>(e.to_string()))?;
            return Err(e);
        }
    };
    write_message(&mut lifeline, &Ok::<_, String>(server.address().clone()))?;
    let stopper = server.stopper();
    std::thread::Builder::new()
        .name("manager-lifeline".into())
        .spawn(move || {
            let mut byte = [0u8; 64];
            while let Ok(n) = lifeline.read(&mut byte) {
                if n == 0 {
                    break;
                }
            }
            stopper.stop();
        })?;
    server.serve_forever()
}
