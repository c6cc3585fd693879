//! `multiprocessing.connection`'s framing: a 4-byte big-endian signed
//! length, or `-1` followed by an 8-byte big-endian length for messages
//! over 2 GiB, then the message. Lengths are checked against the maximum
//! before anything is allocated, and buffers grow with the bytes that
//! arrive, not with the length announced.
#![forbid(unsafe_code)]

use std::io::{Read, Write};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::Error;

/// The longest message either side reads during the handshake (CPython's
/// `recv_bytes(256)`).
pub const HANDSHAKE_MAX: u64 = 256;

/// Lengths above this use the 8-byte form.
const SHORT_MAX: usize = 0x7fff_ffff;

/// Append the length prefix of a message of `len` bytes to `out`.
pub fn push_header(len: usize, out: &mut Vec<u8>) {
    if len > SHORT_MAX {
        out.extend_from_slice(&(-1i32).to_be_bytes());
        out.extend_from_slice(&(len as u64).to_be_bytes());
    } else {
        out.extend_from_slice(&(len as i32).to_be_bytes());
    }
}

/// A whole frame holding `body`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    push_header(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

fn check(len: u64, max: u64) -> Result<usize, Error> {
    if len > max {
        return Err(Error::FrameTooLarge {
            size: len,
            max: u32::try_from(max).unwrap_or(u32::MAX),
        });
    }
    usize::try_from(len).map_err(|_| Error::protocol("message too large for this machine", None))
}

fn short_len(prefix: [u8; 4]) -> Result<Option<u64>, Error> {
    match i32::from_be_bytes(prefix) {
        -1 => Ok(None),
        n if n < 0 => Err(Error::protocol(
            format!("negative message length {n}"),
            None,
        )),
        n => Ok(Some(n as u64)),
    }
}

fn gone(e: std::io::Error) -> Error {
    use std::io::ErrorKind::*;
    match e.kind() {
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe => {
            Error::gone("the connection failed", Some(e))
        }
        _ => Error::Io(e),
    }
}

/// Read one message into `buf` (blocking).
pub fn read(r: &mut impl Read, buf: &mut Vec<u8>, max: u64) -> Result<(), Error> {
    let mut prefix = [0; 4];
    r.read_exact(&mut prefix).map_err(gone)?;
    let len = match short_len(prefix)? {
        Some(len) => len,
        None => {
            let mut long = [0; 8];
            r.read_exact(&mut long).map_err(gone)?;
            u64::from_be_bytes(long)
        }
    };
    let len = check(len, max)?;
    buf.clear();
    while buf.len() < len {
        let start = buf.len();
        let step = (len - start).min(start.max(64 * 1024));
        buf.resize(start + step, 0);
        r.read_exact(&mut buf[start..]).map_err(gone)?;
    }
    Ok(())
}

/// Write one message (blocking).
pub fn write(w: &mut impl Write, body: &[u8]) -> Result<(), Error> {
    w.write_all(&frame(body)).map_err(gone)
}

/// Read one message into `buf` (async). `Ok(false)`: the stream ended
/// cleanly before a new message.
pub async fn read_async<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: u64,
) -> Result<bool, Error> {
    let mut prefix = [0; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut prefix[got..]).await.map_err(gone)?;
        if n == 0 {
            if got == 0 {
                return Ok(false);
            }
            return Err(Error::gone("stream ended inside a message", None));
        }
        got += n;
    }
    let len = match short_len(prefix)? {
        Some(len) => len,
        None => {
            let mut long = [0; 8];
            r.read_exact(&mut long).await.map_err(gone)?;
            u64::from_be_bytes(long)
        }
    };
    let len = check(len, max)?;
    buf.clear();
    while buf.len() < len {
        let start = buf.len();
        let step = (len - start).min(start.max(64 * 1024));
        buf.resize(start + step, 0);
        r.read_exact(&mut buf[start..]).await.map_err(gone)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_headers() {
        let mut out = Vec::new();
        push_header(5, &mut out);
        assert_eq!(out, [0, 0, 0, 5]);
        out.clear();
        push_header(0x8000_0000, &mut out);
        assert_eq!(out, [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0]);
    }

    #[test]
    fn round_trip_and_limits() {
        let framed = frame(b"hello");
        let mut buf = Vec::new();
        read(&mut &framed[..], &mut buf, 16).unwrap();
        assert_eq!(buf, b"hello");
        let err = read(&mut &framed[..], &mut buf, 4).unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { size: 5, max: 4 }));
    }

    #[test]
    fn long_form_checked_before_allocating() {
        let mut announced = (-1i32).to_be_bytes().to_vec();
        announced.extend_from_slice(&(5u64 << 32).to_be_bytes());
        let mut buf = Vec::new();
        let err = read(&mut &announced[..], &mut buf, 1 << 20).unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { .. }));
        assert_eq!(buf.capacity(), 0);
        let mut long = (-1i32).to_be_bytes().to_vec();
        long.extend_from_slice(&3u64.to_be_bytes());
        long.extend_from_slice(b"abc");
        read(&mut &long[..], &mut buf, 16).unwrap();
        assert_eq!(buf, b"abc");
    }

    #[test]
    fn negative_and_truncated_refused() {
        let mut buf = Vec::new();
        let negative = (-2i32).to_be_bytes();
        assert!(matches!(
            read(&mut &negative[..], &mut buf, 16),
            Err(Error::Protocol { .. })
        ));
        let mut truncated = frame(b"hello");
        truncated.truncate(6);
        assert!(matches!(
            read(&mut &truncated[..], &mut buf, 16),
            Err(Error::ServerGone { .. })
        ));
    }
}
