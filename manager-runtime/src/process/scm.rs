//! File descriptors over a Unix socket (SCM_RIGHTS), for lifelines and
//! pipes.
//!
//! Descriptors travel attached to one marker byte per
//! [`FDS_PER_MESSAGE`], so that the receiver, which knows from the frame
//! before how many to expect, reads exactly those bytes and finds the
//! descriptors with them. Every read of a socket that may carry
//! descriptors goes through [`recv`], which keeps any that arrive (a plain
//! `read` would make the kernel close them).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{Error, Result};

/// File descriptors sent with one `sendmsg` (the kernel takes at most 253).
pub(crate) const FDS_PER_MESSAGE: usize = 250;

/// The space a control message of `count` descriptors needs.
fn cmsg_space(count: usize) -> usize {
    // SAFETY: CMSG_SPACE only computes a size.
    unsafe { libc::CMSG_SPACE((count * std::mem::size_of::<RawFd>()) as u32) as usize }
}

/// `u64` words of a control buffer with room for one batch of descriptors
/// (and then some: the kernel may add a header of its own).
const CONTROL_WORDS: usize = (FDS_PER_MESSAGE + 8) * std::mem::size_of::<RawFd>() / 8 + 8;

/// The marker bytes that carry `count` descriptors.
pub(crate) fn markers(count: usize) -> usize {
    count.div_ceil(FDS_PER_MESSAGE)
}

/// Send `fds`, [`FDS_PER_MESSAGE`] at a time, each batch attached to one
/// marker byte.
pub(crate) fn send_fds(socket: BorrowedFd<'_>, fds: &[BorrowedFd<'_>]) -> Result<()> {
    for chunk in fds.chunks(FDS_PER_MESSAGE) {
        let raw: Vec<RawFd> = chunk.iter().map(|fd| fd.as_raw_fd()).collect();
        send_batch(socket, &raw)?;
    }
    Ok(())
}

fn send_batch(socket: BorrowedFd<'_>, fds: &[RawFd]) -> Result<()> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    // u64 elements keep the control buffer aligned for `cmsghdr`.
    let mut control = vec![0u64; cmsg_space(fds.len()).div_ceil(8)];
    // SAFETY: the msghdr points at the iovec and control buffer above,
    // which outlive the call; CMSG_FIRSTHDR/CMSG_DATA stay inside the
    // control buffer, sized by CMSG_SPACE for exactly `fds.len()`
    // descriptors, which are open (borrowed by the caller).
    unsafe {
        let mut message: libc::msghdr = std::mem::zeroed();
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        message.msg_controllen = cmsg_space(fds.len()) as _;
        let header = libc::CMSG_FIRSTHDR(&message);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
        std::ptr::copy_nonoverlapping(
            fds.as_ptr(),
            libc::CMSG_DATA(header) as *mut RawFd,
            fds.len(),
        );
        loop {
            if libc::sendmsg(socket.as_raw_fd(), &message, libc::MSG_NOSIGNAL) == 1 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        }
    }
}

/// One `recvmsg` into `buf` (`nonblocking`: `Ok(None)` if nothing is
/// there); descriptors that came with the bytes are appended to `fds`,
/// close-on-exec. `Ok(Some(0))` is end of file.
pub(crate) fn recv(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    nonblocking: bool,
    fds: &mut Vec<OwnedFd>,
) -> std::io::Result<Option<usize>> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // Room for one batch: the kernel stops a read after a segment that
    // carried descriptors, and a batch is at most FDS_PER_MESSAGE. On the
    // stack and not zeroed: every read of a pipe comes here, often while
    // spinning, and the kernel writes what it reports.
    let mut control = std::mem::MaybeUninit::<[u64; CONTROL_WORDS]>::uninit();
    let flags = libc::MSG_CMSG_CLOEXEC | if nonblocking { libc::MSG_DONTWAIT } else { 0 };
    // SAFETY: the msghdr points at `buf` (valid for writes of its length)
    // and the control buffer above (valid for writes of its size, aligned
    // for `cmsghdr`), both outliving the call.
    let (n, message) = unsafe {
        let mut message: libc::msghdr = std::mem::zeroed();
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        message.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = libc::recvmsg(socket.as_raw_fd(), &mut message, flags);
        (n, message)
    };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.kind() {
            std::io::ErrorKind::WouldBlock if nonblocking => Ok(None),
            std::io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: the kernel wrote `msg_controllen` bytes of control messages
    // into the buffer `message` points at (none when it is 0:
    // CMSG_FIRSTHDR is then null); CMSG_FIRSTHDR/CMSG_NXTHDR walk only
    // those, and each descriptor the kernel installed in this process is
    // ours, taken once.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(header) as *const RawFd;
                let bytes = (*header).cmsg_len as usize - (data as usize - header as usize);
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            header = libc::CMSG_NXTHDR(&message, header);
        }
    }
    if message.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(std::io::Error::other(
            "file descriptors were cut off (more came at once than one batch)",
        ));
    }
    Ok(Some(n as usize))
}

/// Receive the `count` descriptors announced by a frame, reading exactly
/// their marker bytes.
pub(crate) fn recv_fds(socket: BorrowedFd<'_>, count: usize) -> Result<Vec<OwnedFd>> {
    let mut fds = Vec::with_capacity(count.min(4096));
    for _ in 0..markers(count) {
        let mut byte = [0u8; 1];
        let before = fds.len();
        loop {
            match recv(socket, &mut byte, false, &mut fds)? {
                Some(0) => return Err(Error::Eof),
                Some(_) => break,
                None => continue,
            }
        }
        if fds.len() == before {
            return Err(Error::protocol(
                "file descriptors announced on the socket did not arrive",
                None,
            ));
        }
    }
    if fds.len() != count {
        return Err(Error::protocol(
            format!("{count} file descriptors announced, {} arrived", fds.len()),
            None,
        ));
    }
    Ok(fds)
}
