//! The lifeline: the socket a child process has for standard input.
//!
//! Every child this crate starts (a manager's server, a [`Process`], a pool
//! worker) is this program re-executed with a marker argument that
//! [`bootstrap`](crate::bootstrap) recognises. Its standard input is one
//! end of a Unix socket pair whose other end the parent keeps. Over it go
//! length-prefixed frames, with file descriptors alongside (SCM_RIGHTS:
//! pipe ends, shared memory), in both directions; end of file means the
//! parent is gone. Nothing secret goes through argv or the environment.
//!
//! [`Process`]: super::Process

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// Set in a started child's environment to its parent's pid, so a binary
/// that forgot `bootstrap()` is caught instead of starting children
/// recursively. Read, never changed: a program's environment must not be
/// written once it may have threads (`set_var`/`remove_var` are undefined
/// behaviour then), so whether this process went through `bootstrap()` is
/// [`BOOTSTRAPPED`], and processes it starts by other means, which inherit
/// the variable, are told apart by their parent's pid.
pub(crate) const CHILD_ENV: &str = "MANAGERS_CHILD_PROCESS";

/// Set once `bootstrap()` took this child's lifeline.
static BOOTSTRAPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process was re-executed by a managers parent (which is
/// still its parent) and never went through `bootstrap()`.
fn forgot_bootstrap() -> bool {
    if BOOTSTRAPPED.load(std::sync::atomic::Ordering::Acquire) {
        return false;
    }
    // SAFETY: getppid(2) cannot fail and touches no memory.
    let parent = unsafe { libc::getppid() };
    std::env::var(CHILD_ENV).is_ok_and(|pid| pid.parse::<libc::pid_t>() == Ok(parent))
}

/// Largest frame a lifeline accepts from the other side.
pub(crate) const MAX_LIFELINE_FRAME: u32 = 1 << 30;

/// Re-execute this program with `marker` as its first argument and a
/// lifeline for standard input; returns the child and our end.
pub(crate) fn reexec(marker: &str) -> Result<(Child, Lifeline)> {
    if forgot_bootstrap() {
        return Err(Error::ProcessStart(
            "this process was started by managers but never called \
             managers::bootstrap(): make it the first line of main"
                .into(),
        ));
    }
    let exe = if cfg!(target_os = "linux") {
        std::path::PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe()?
    };
    let (ours, theirs) = UnixStream::pair()?;
    let mut command = Command::new(exe);
    if let Some(name) = std::env::args_os().next() {
        std::os::unix::process::CommandExt::arg0(&mut command, name);
    }
    let child = command
        .arg(marker)
        .env(CHILD_ENV, std::process::id().to_string())
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .spawn()
        .map_err(|e| Error::ProcessStart(format!("cannot re-execute this program: {e}")))?;
    // `command` held our copy of the child's end: it is closed now, so a
    // child that dies early is seen at once as end of file.
    Ok((child, Lifeline(ours)))
}

/// Whether this process was started with `marker` (its first argument).
pub(crate) fn started_as(marker: &str) -> bool {
    std::env::args_os().nth(1).as_deref() == Some(std::ffi::OsStr::new(marker))
}

/// One end of a lifeline.
#[derive(Debug)]
pub(crate) struct Lifeline(UnixStream);

impl Lifeline {
    /// The child's end: standard input, moved to a close-on-exec
    /// descriptor, with `/dev/null` put on descriptor 0 so that programs
    /// this child starts do not inherit it.
    pub(crate) fn take_stdin() -> Result<Lifeline> {
        BOOTSTRAPPED.store(true, std::sync::atomic::Ordering::Release);
        // SAFETY: fd 0 is the socket our parent gave us as stdin; we own it
        // from here on (nothing else in this process uses stdin).
        unsafe {
            let fd = libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3);
            if fd < 0 {
                return Err(std::io::Error::last_os_error().into());
            }
            let null = std::fs::File::open("/dev/null")?;
            libc::dup2(null.as_raw_fd(), 0);
            Ok(Lifeline(UnixStream::from_raw_fd(fd)))
        }
    }

    /// The socket itself.
    pub(crate) fn stream(&self) -> &UnixStream {
        &self.0
    }

    /// A second handle on the same socket.
    pub(crate) fn try_clone(&self) -> Result<Lifeline> {
        Ok(Lifeline(self.0.try_clone()?))
    }

    /// Send `value` as one frame, with `fds` alongside.
    pub(crate) fn send<T: Serialize + ?Sized>(
        &self,
        value: &T,
        fds: &[BorrowedFd<'_>],
    ) -> Result<()> {
        let body = crate::codec::encode(value)?;
        self.send_bytes(&body, fds)
    }

    /// Send `body` as one frame, with `fds` alongside.
    pub(crate) fn send_bytes(&self, body: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
        let len = u32::try_from(body.len())
            .ok()
            .filter(|&n| n <= MAX_LIFELINE_FRAME)
            .ok_or(Error::FrameTooLarge {
                size: body.len() as u64,
                max: MAX_LIFELINE_FRAME,
            })?;
        let mut stream = &self.0;
        let mut header = [0u8; 8];
        header[..4].copy_from_slice(&len.to_le_bytes());
        header[4..].copy_from_slice(&(fds.len() as u32).to_le_bytes());
        stream.write_all(&header)?;
        super::scm::send_fds(self.0.as_fd(), fds)?;
        stream.write_all(body)?;
        Ok(())
    }

    /// Receive one frame: its body and the descriptors sent with it.
    /// `Ok(None)` is end of file before a frame began.
    pub(crate) fn recv_bytes(&self) -> Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
        let mut stream = &self.0;
        let mut header = [0u8; 8];
        let mut got = 0;
        while got < header.len() {
            match stream.read(&mut header[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(Error::Eof),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        let len = u32::from_le_bytes(header[..4].try_into().unwrap());
        let count = u32::from_le_bytes(header[4..].try_into().unwrap()) as usize;
        if len > MAX_LIFELINE_FRAME {
            return Err(Error::FrameTooLarge {
                size: len as u64,
                max: MAX_LIFELINE_FRAME,
            });
        }
        let fds = super::scm::recv_fds(self.0.as_fd(), count)?;
        let mut body = vec![0; len as usize];
        stream.read_exact(&mut body).map_err(eof)?;
        Ok(Some((body, fds)))
    }

    /// Receive one frame and decode it; end of file is [`Error::Eof`].
    pub(crate) fn recv<T: DeserializeOwned>(&self) -> Result<(T, Vec<OwnedFd>)> {
        let (body, fds) = self.recv_bytes()?.ok_or(Error::Eof)?;
        Ok((crate::codec::decode(&body)?, fds))
    }
}

impl AsFd for Lifeline {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

fn eof(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        Error::Eof
    } else {
        e.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_descriptors_both_ways() {
        let (a, b) = UnixStream::pair().unwrap();
        let (a, b) = (Lifeline(a), Lifeline(b));
        let files: Vec<std::fs::File> = (0..300)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let fds: Vec<BorrowedFd> = files.iter().map(|f| f.as_fd()).collect();
        a.send(&("hello", 7u32), &fds).unwrap();
        let ((text, n), got): ((String, u32), _) = b.recv().unwrap();
        assert_eq!((text.as_str(), n, got.len()), ("hello", 7, 300));
        b.send(&42u8, &[]).unwrap();
        let (n, fds) = a.recv::<u8>().unwrap();
        assert_eq!((n, fds.len()), (42, 0));
        drop(b);
        assert!(
            matches!(a.recv_bytes(), Ok(None)),
            "end of file between frames"
        );
        assert!(matches!(a.recv::<u8>(), Err(Error::Eof)));
    }
}
