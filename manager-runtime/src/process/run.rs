//! What a child process does, from its lifeline to its exit code.
//!
//! [`bootstrap`](crate::bootstrap) calls [`run_child`] in a process started
//! with the process marker: read the start message, check it comes from
//! this very executable image, take the authkey and name, decode the
//! arguments (adopting proxies, taking descriptors), tell the parent, run
//! the target, release what the arguments held, exit.

use std::panic::AssertUnwindSafe;

use super::child::{Notice, Start};
use super::image::SameImage;
use super::lifeline::Lifeline;
use super::Identity;
use crate::crossing::{self, Received, Scope};
use crate::error::Result;

/// Run this child's target and exit with its code.
pub(crate) fn run_child() -> ! {
    let code = match child_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("managers: the process could not run its target: {e}");
            1
        }
    };
    std::process::exit(code)
}

fn child_main() -> Result<i32> {
    let lifeline = Lifeline::take_stdin()?;
    let (start, fds): (Start, _) = lifeline.recv()?;
    let (target, sessions) = match prepare(start, fds) {
        Ok(prepared) => prepared,
        Err(e) => {
            let _ = lifeline.send(&Err::<(), String>(e.to_string()), &[]);
            return Err(e);
        }
    };
    lifeline.send(&Ok::<(), String>(()), &[])?;
    watch(lifeline)?;
    let code = std::panic::catch_unwind(AssertUnwindSafe(target)).unwrap_or(1);
    // The arguments are gone with the target: release what their proxies
    // held (each session confirms), so the parent's count is exact once it
    // has joined us.
    drop(sessions);
    Ok(code)
}

type Target = Box<dyn FnOnce() -> i32>;

fn prepare(start: Start, fds: Vec<std::os::fd::OwnedFd>) -> Result<(Target, Scope)> {
    let same = SameImage::check(&start.image)?;
    crate::authkey::inherit_process_authkey(start.authkey);
    super::set_current(Identity {
        name: start.name,
        identity: start.identity,
        daemon: start.daemon,
        parent: Some(start.parent),
    });
    let entry = start.entry.resolve(&same);
    // Proxies that later arrive through a queue or a pipe reach these
    // servers the way the parent does.
    crossing::learn(&start.sessions);
    let received = Received::new(fds, start.sessions, true);
    let (target, sessions) = crossing::decoding(received, || entry(&start.args));
    Ok((target?, sessions))
}

/// Watch the lifeline on a thread: end of file means the parent is gone,
/// and so is this process (unless the parent detached it).
fn watch(lifeline: Lifeline) -> Result<()> {
    std::thread::Builder::new()
        .name("managers-lifeline".into())
        .spawn(move || loop {
            match lifeline.recv::<Notice>() {
                Ok((Notice::Detach, _)) => return,
                Err(_) => {
                    // SAFETY: raise(3) on ourselves; SIGKILL ends us at once,
                    // whatever the target is doing.
                    unsafe {
                        libc::raise(libc::SIGKILL);
                    }
                }
            }
        })?;
    Ok(())
}
