//! Which client process a connection comes from, and noticing its death.
//!
//! A CPython client opens a new connection for every `create`, `incref`
//! and `decref`, so references cannot belong to connections as ours do:
//! they belong to the client *process*. On a Unix socket the kernel names
//! the peer (`SO_PEERCRED`); on loopback TCP the peer's socket is found in
//! `/proc/net/tcp{,6}` and its owner among the processes' descriptors
//! (processes seen before are searched first). A peer that cannot be
//! named (another machine) shares one session that never ends, which is
//! CPython's own behaviour. A named process is watched through a pidfd:
//! when it exits, its references are released.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd};

/// The peer process of a Unix socket.
pub(in crate::server) fn unix_peer(stream: &tokio::net::UnixStream) -> Option<u32> {
    let pid = stream.peer_cred().ok()?.pid()?;
    u32::try_from(pid)
        .ok()
        .filter(|&pid| pid != std::process::id())
}

/// The process on this machine that owns the other end of a loopback TCP
/// connection, searching `known` processes first.
pub(super) fn tcp_peer(local: SocketAddr, peer: SocketAddr, known: &[u32]) -> Option<u32> {
    if !peer.ip().is_loopback() {
        return None;
    }
    let inode = socket_inode(peer, local)?;
    let target = format!("socket:[{inode}]");
    let owns = |pid: u32| -> bool {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return false;
        };
        fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == target.as_str())
        })
    };
    if let Some(&pid) = known.iter().find(|&&pid| owns(pid)) {
        return Some(pid);
    }
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && !known.contains(&pid))
        .find(|&pid| owns(pid))
}

/// The inode of the socket bound to `local` and connected to `remote`.
fn socket_inode(local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let table = if local.is_ipv4() {
        "/proc/net/tcp"
    } else {
        "/proc/net/tcp6"
    };
    let text = std::fs::read_to_string(table).ok()?;
    let want = (hex_address(local), hex_address(remote));
    text.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (l, r) = (fields.get(1)?, fields.get(2)?);
        (l.eq_ignore_ascii_case(&want.0) && r.eq_ignore_ascii_case(&want.1))
            .then(|| fields.get(9)?.parse().ok())
            .flatten()
    })
}

/// An address as `/proc/net/tcp` writes it: the IP in host byte order by
/// 32-bit words, in hex, then `:` and the port.
fn hex_address(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) => format!("{:08X}", u32::from_ne_bytes(v4.octets())),
        std::net::IpAddr::V6(v6) => v6
            .octets()
            .chunks_exact(4)
            .map(|w| format!("{:08X}", u32::from_ne_bytes(w.try_into().expect("4"))))
            .collect(),
    };
    format!("{ip}:{:04X}", addr.port())
}

/// A descriptor that becomes readable when process `pid` exits.
pub(super) fn pidfd(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // or -1; nothing is borrowed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a descriptor just returned to us, owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Wait until the process behind `pidfd` exits.
pub(super) async fn exited(pidfd: OwnedFd) {
    // SAFETY: the AsyncFd owns the descriptor, which stays open and the
    // same until it drops.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)
    };
    match registered {
        Ok(fd) => {
            let _ = fd.readable().await;
        }
        // Not pollable here: never report it gone.
        Err(_) => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_owner_of_a_loopback_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let local = server.local_addr().unwrap();
        let peer = server.peer_addr().unwrap();
        // The peer is this very process; the search skips ourselves, so
        // look it up as a known process.
        assert_eq!(
            tcp_peer(local, peer, &[std::process::id()]),
            Some(std::process::id())
        );
        drop(client);
        assert!(tcp_peer(local, "10.0.0.1:5".parse().unwrap(), &[]).is_none());
    }
}
