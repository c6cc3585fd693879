//! Sockets: TCP or Unix, blocking (client) and async (server, async client).
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};

use crate::address::Address;
use crate::error::{Error, Result};
use crate::ring::{AsyncRing, ClientRing, RingRead, RingWrite};

/// A connected blocking socket.
pub(crate) enum Stream {
    Tcp(std::net::TcpStream),
    Unix(StdUnixStream),
    /// A Unix socket whose bytes go through shared memory (`ring.rs`).
    Ring(Box<ClientRing>),
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>>),
}

impl Stream {
    /// Bound how long a read may block.
    pub(crate) fn set_read_timeout(
        &mut self,
        timeout: Option<std::time::Duration>,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(timeout),
            Stream::Unix(s) => s.set_read_timeout(timeout),
            Stream::Ring(s) => {
                s.set_read_timeout(timeout);
                Ok(())
            }
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.sock.set_read_timeout(timeout),
        }
    }
}

impl Stream {
    /// The socket to poll for spinning reads; `None` in TLS, where bytes on
    /// the socket are not yet the reply, and on a ring (which spins on its
    /// own).
    pub(crate) fn borrowed_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        match self {
            Stream::Tcp(s) => Some(s.as_fd()),
            Stream::Unix(s) => Some(s.as_fd()),
            Stream::Ring(_) => None,
            #[cfg(feature = "tls")]
            Stream::Tls(_) => None,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Ring(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Ring(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.flush(),
            _ => Ok(()),
        }
    }
}

/// A connection that could not be made: before the first connection this is
/// an I/O error; afterwards it means the server went away.
pub(crate) fn connect_error(e: io::Error, address: &Address, established: bool) -> Error {
    let gone = matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound | io::ErrorKind::ConnectionReset
    );
    if established && gone {
        Error::gone(format!("cannot reconnect to {address}"), Some(e))
    } else {
        Error::Connect {
            address: address.to_string(),
            source: e,
        }
    }
}

/// Connect a blocking socket, in TLS if `tls` says so.
pub(crate) fn connect(address: &Address, tls: &TlsConnect) -> io::Result<Stream> {
    Ok(match address {
        Address::Tcp(addr) => {
            let s = std::net::TcpStream::connect(addr)?;
            s.set_nodelay(true)?;
            match tls {
                #[cfg(feature = "tls")]
                Some(tls) => Stream::Tls(Box::new(tls.wrap_blocking(s)?)),
                _ => Stream::Tcp(s),
            }
        }
        Address::Unix(path) => Stream::Unix(StdUnixStream::connect(path)?),
    })
}

/// How a client connects over TCP: in the clear, or in TLS.
#[cfg(feature = "tls")]
pub(crate) type TlsConnect = Option<crate::tls::TlsClient>;
/// How a client connects over TCP (always in the clear without `tls`).
#[cfg(not(feature = "tls"))]
pub(crate) type TlsConnect = Option<std::convert::Infallible>;

/// A TLS stream splits through tokio's generic halves.
#[cfg(feature = "tls")]
impl Socket for tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    type Read = tokio::io::ReadHalf<Self>;
    type Write = tokio::io::WriteHalf<Self>;
    fn split_owned(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }
}

#[cfg(feature = "tls")]
impl Socket for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    type Read = tokio::io::ReadHalf<Self>;
    type Write = tokio::io::WriteHalf<Self>;
    fn split_owned(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }
}

/// An async socket that splits into owned halves.
pub(crate) trait Socket: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    type Read: AsyncRead + Unpin + Send + 'static;
    type Write: AsyncWrite + Unpin + Send + 'static;
    fn split_owned(self) -> (Self::Read, Self::Write);

    /// The socket under a read half, for spinning reads that bypass the
    /// reactor; `None` where bytes on the socket are not yet the stream's
    /// (TLS).
    fn read_fd(_read: &Self::Read) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }

    /// Whether [`into_movable`](Socket::into_movable) works (not in TLS).
    const MOVABLE: bool = false;

    /// The plain socket out of its runtime, to be served on another.
    fn into_movable(self) -> io::Result<Movable>
    where
        Self: Sized,
    {
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// A socket out of its runtime, on its way to another.
pub(crate) enum Movable {
    Tcp(std::net::TcpStream),
    Unix(StdUnixStream),
}

impl Socket for tokio::net::TcpStream {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;
    fn split_owned(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }

    fn read_fd(read: &Self::Read) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        Some(read.as_ref().as_fd())
    }

    const MOVABLE: bool = true;

    fn into_movable(self) -> io::Result<Movable> {
        self.into_std().map(Movable::Tcp)
    }
}

impl Socket for tokio::net::UnixStream {
    type Read = tokio::net::unix::OwnedReadHalf;
    type Write = tokio::net::unix::OwnedWriteHalf;
    fn split_owned(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }

    fn read_fd(read: &Self::Read) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        Some(read.as_ref().as_fd())
    }

    const MOVABLE: bool = true;

    fn into_movable(self) -> io::Result<Movable> {
        self.into_std().map(Movable::Unix)
    }
}

/// A connection through shared memory, served as any socket: the rings
/// carry the bytes, the Unix socket under them only its end.
impl Socket for AsyncRing {
    type Read = RingRead;
    type Write = RingWrite;
    fn split_owned(self) -> (Self::Read, Self::Write) {
        self.split()
    }

    // No `read_fd`: a ring's reads spin by themselves (for the next
    // request, and for the rest of a large one).
}

/// A bound, not yet serving, listener.
pub(crate) enum Listener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// A private directory holding a server's Unix socket, removed on drop.
#[derive(Debug)]
pub(crate) struct PrivateDir(PathBuf);

impl PrivateDir {
    fn create() -> io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let name: [u8; 8] = crate::authkey::random_bytes();
        let suffix: String = name.iter().map(|b| format!("{b:02x}")).collect();
        let dir = std::env::temp_dir().join(format!("managers-{suffix}"));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(PrivateDir(dir))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Bind `address`, or a fresh Unix socket in a private directory if none.
/// Returns the listener, the address clients should use, and the directory
/// to remove at shutdown.
pub(crate) fn bind(address: Option<&Address>) -> Result<(Listener, Address, Option<PrivateDir>)> {
    match address {
        Some(Address::Tcp(addr)) => {
            let listener = std::net::TcpListener::bind(addr).map_err(|source| Error::Bind {
                address: addr.to_string(),
                source,
            })?;
            let local = listener.local_addr()?;
            Ok((Listener::Tcp(listener), Address::Tcp(local), None))
        }
        Some(Address::Unix(path)) => {
            let listener =
                std::os::unix::net::UnixListener::bind(path).map_err(|source| Error::Bind {
                    address: format!("unix:{}", path.display()),
                    source,
                })?;
            Ok((Listener::Unix(listener), Address::Unix(path.clone()), None))
        }
        None => {
            let dir = PrivateDir::create()?;
            let path = dir.path().join("manager.sock");
            let listener = std::os::unix::net::UnixListener::bind(&path)?;
            Ok((Listener::Unix(listener), Address::Unix(path), Some(dir)))
        }
    }
}
