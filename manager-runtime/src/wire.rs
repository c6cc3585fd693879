//! Framing and messages.
//!
//! A frame is a little-endian `u32` length followed by that many bytes. The
//! length is checked against the configured maximum *before* any buffer is
//! allocated. After the handshake, each frame holds a postcard-encoded
//! message header, followed (for calls, creations and replies) by the
//! postcard-encoded payload, so arguments are never copied into the header.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

pub use crate::codec::{append, decode, encode};
use crate::error::{Error, RemoteError};

/// Default maximum frame size: 64 MiB.
pub const DEFAULT_MAX_FRAME: u32 = 64 * 1024 * 1024;

/// Bytes of the length prefix.
pub const PREFIX: usize = 4;

/// What a client asks of the server. Followed in the frame by the payload
/// for `Call` and `Create`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum Request<'a> {
    /// First message after the handshake: which client session this
    /// connection belongs to (references are owned by sessions).
    Hello {
        /// Random id chosen by the client process.
        session: u128,
        /// Whether the connection carries one call at a time from a
        /// blocking client (the server may give it a thread of its own).
        blocking: bool,
        /// Whether the client asks for its bytes to go through shared
        /// memory (a blocking client on a Unix socket). The server answers
        /// with one byte: with the ring's descriptors attached (granted),
        /// or without (refused).
        ring: bool,
    },
    /// Call `method` on object `object`; the payload is the argument tuple.
    Call {
        /// Request id, echoed in the reply.
        id: u64,
        /// Object id.
        object: u64,
        /// Method name.
        method: &'a str,
        /// The method's index in its type's table, as the client's proxy
        /// has it (tried before a lookup by name).
        index: Option<u32>,
        /// Signature fingerprint the client was built with.
        fingerprint: u64,
    },
    /// Create an object of `typeid`; the payload is the constructor's
    /// argument tuple.
    Create {
        /// Request id.
        id: u64,
        /// Registered typeid.
        typeid: &'a str,
    },
    /// Take one more reference to `object` for this session.
    Incref {
        /// Request id.
        id: u64,
        /// Object id.
        object: u64,
    },
    /// Release `count` references of this session (no reply).
    Decref {
        /// Object id.
        object: u64,
        /// How many references to release.
        count: u64,
    },
    /// How many objects the server holds.
    NumberOfObjects {
        /// Request id.
        id: u64,
    },
    /// A description of every object and its refcount.
    DebugInfo {
        /// Request id.
        id: u64,
    },
    /// Release every reference this session holds, and answer when done
    /// (a client's last handle going away).
    Release {
        /// Request id.
        id: u64,
    },
    /// Stop the server.
    Shutdown {
        /// Request id.
        id: u64,
    },
    /// Withdraw request `id`, whose caller gave up (a deadline passed, a
    /// future was dropped). A call still waiting on the server (a `get` on
    /// an empty queue, an `acquire` of a held lock) stops waiting and is
    /// answered with [`RemoteError::Cancelled`]; one already answered, or
    /// running, is left alone and gets no second answer.
    Cancel {
        /// The request to withdraw.
        id: u64,
    },
}

/// The server's answer to a request. Followed in the frame by the result
/// payload when `result` is `Ok`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Response {
    /// The id of the request answered.
    pub id: u64,
    /// Success (payload follows) or the server's refusal.
    pub result: Result<(), RemoteError>,
}

/// One object as `debug_info()` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebugEntry {
    /// Object id.
    pub id: u64,
    /// Typeid it was created or returned as.
    pub typeid: String,
    /// References held on it by all sessions.
    pub refcount: u64,
}

/// Start a frame in `buf`: reserve the length prefix, then append `header`.
pub fn begin_frame<H: Serialize>(buf: &mut Vec<u8>, header: &H) -> Result<(), Error> {
    buf.clear();
    buf.extend_from_slice(&[0; PREFIX]);
    append(buf, header)
}

/// Append a whole request frame to `out` (which may hold frames already):
/// the header, then the postcard encoding of `args` if any, encoded in
/// place. On an error `out` is left as it was.
pub fn push_request<H: Serialize, A: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    header: &H,
    args: Option<&A>,
    max: u32,
) -> Result<(), Error> {
    push_with(out, max, 0, |out| {
        append(out, header)?;
        args.map_or(Ok(()), |args| append(out, args))
    })
}

/// Append a frame whose body `body` writes to `out`, followed by `more`
/// bytes the caller writes after `out` (0: the frame is whole in `out`);
/// on an error (or a body over `max`) `out` is left as it was.
fn push_with(
    out: &mut Vec<u8>,
    max: u32,
    more: usize,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), Error>,
) -> Result<(), Error> {
    let start = out.len();
    out.extend_from_slice(&[0; PREFIX]);
    if let Err(e) = body(out) {
        out.truncate(start);
        return Err(e);
    }
    let len = out.len() - start - PREFIX + more;
    if len > max as usize {
        out.truncate(start);
        return Err(Error::FrameTooLarge {
            size: len as u64,
            max,
        });
    }
    out[start..start + PREFIX].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// Fill in the length prefix of a frame built with [`begin_frame`].
pub fn finish_frame(buf: &mut [u8], max: u32) -> Result<(), Error> {
    let len = buf.len() - PREFIX;
    if len > max as usize {
        return Err(Error::FrameTooLarge {
            size: len as u64,
            max,
        });
    }
    buf[..PREFIX].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// Append a whole frame (`header`, then `payload` as is) to `out`, which
/// may already hold frames: several replies then leave in one write.
pub fn push_frame<H: Serialize>(
    out: &mut Vec<u8>,
    header: &H,
    payload: &[u8],
    max: u32,
) -> Result<(), Error> {
    push_with(out, max, 0, |out| {
        append(out, header)?;
        out.extend_from_slice(payload);
        Ok(())
    })
}

/// Append the start of a frame whose body is `header` then `payload_len`
/// bytes the caller writes after it, without copying them here (a large
/// reply leaves in one vectored write). On an error `out` is left as it was.
pub fn push_frame_head<H: Serialize>(
    out: &mut Vec<u8>,
    header: &H,
    payload_len: usize,
    max: u32,
) -> Result<(), Error> {
    push_with(out, max, payload_len, |out| append(out, header))
}

/// Whether `buffered` (bytes already read, not yet consumed) holds at
/// least one whole frame.
pub fn holds_frame(buffered: &[u8]) -> bool {
    buffered.len() >= PREFIX
        && buffered.len() - PREFIX
            >= u32::from_le_bytes(buffered[..PREFIX].try_into().expect("prefix")) as usize
}

/// Read one frame into `buf` (blocking) with as few reads as possible: the
/// body lands at `buf[PREFIX..returned]`. Only for a stream on which the
/// peer sends nothing beyond this frame until we write again (a blocking
/// request/response connection), since it may read ahead.
pub fn read_reply(r: &mut impl Read, buf: &mut Vec<u8>, max: u32) -> Result<usize, Error> {
    const INITIAL: usize = 4096;
    if buf.len() < INITIAL {
        buf.resize(INITIAL, 0);
    }
    let mut filled = 0;
    let mut total = PREFIX;
    while filled < total {
        let n = r.read(&mut buf[filled..]).map_err(eof_to_gone)?;
        if n == 0 {
            return Err(Error::gone("the connection closed inside a frame", None));
        }
        filled += n;
        if total == PREFIX && filled >= PREFIX {
            let len = check_len(buf[..PREFIX].try_into().expect("prefix"), max)?;
            total = PREFIX + len;
            if buf.len() < total {
                buf.resize(total, 0);
            }
        }
    }
    Ok(total)
}

/// Build a whole frame from raw bytes (used by the handshake).
pub fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn check_len(prefix: [u8; PREFIX], max: u32) -> Result<usize, Error> {
    let len = u32::from_le_bytes(prefix);
    if len > max {
        return Err(Error::FrameTooLarge {
            size: len as u64,
            max,
        });
    }
    Ok(len as usize)
}

fn eof_to_gone(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => Error::gone("the connection failed", Some(e)),
        _ => Error::Io(e),
    }
}

/// Read one frame into `buf` (blocking).
pub fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>, max: u32) -> Result<(), Error> {
    let mut prefix = [0; PREFIX];
    r.read_exact(&mut prefix).map_err(eof_to_gone)?;
    let len = check_len(prefix, max)?;
    buf.clear();
    buf.resize(len, 0);
    r.read_exact(buf).map_err(eof_to_gone)
}

/// Write a finished frame (blocking).
pub fn write_frame(w: &mut impl Write, frame: &[u8]) -> Result<(), Error> {
    w.write_all(frame).map_err(eof_to_gone)
}

/// Read one frame into `buf` (async). Returns `Ok(false)` on a clean end of
/// stream before any byte of a new frame.
pub async fn read_frame_async<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: u32,
) -> Result<bool, Error> {
    let mut prefix = [0; PREFIX];
    let mut got = 0;
    while got < PREFIX {
        let n = r.read(&mut prefix[got..]).await.map_err(eof_to_gone)?;
        if n == 0 {
            if got == 0 {
                return Ok(false);
            }
            return Err(Error::gone("the stream ended inside a frame", None));
        }
        got += n;
    }
    let len = check_len(prefix, max)?;
    // Grow with what arrives (at most doubling it), not with what a peer
    // announces: a frame announced and never sent costs a small buffer.
    buf.clear();
    while buf.len() < len {
        let start = buf.len();
        let step = (len - start).min(start.max(64 * 1024));
        buf.resize(start + step, 0);
        r.read_exact(&mut buf[start..]).await.map_err(eof_to_gone)?;
    }
    Ok(true)
}

/// A connection's read buffer: bytes read and not yet consumed, from which
/// whole frames are taken and decoded in place (no copy into a frame of
/// their own). One read brings every frame that has arrived; the buffer
/// grows with what arrives (at most doubling per read, up to the frame
/// being read), not with what a peer announces, and only its new part is
/// ever zeroed.
#[derive(Debug)]
pub struct Inbox {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max: u32,
}

/// Where a whole frame's body lies in an [`Inbox`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameAt {
    start: usize,
    end: usize,
}

impl Inbox {
    /// An empty inbox for frames of at most `max` bytes.
    pub fn new(max: u32) -> Inbox {
        Inbox {
            buf: vec![0; 8 * 1024],
            start: 0,
            end: 0,
            max,
        }
    }

    /// The next whole frame, if one is buffered; an error if its prefix
    /// announces more than the maximum.
    pub fn next_frame(&self) -> Result<Option<FrameAt>, Error> {
        let buffered = &self.buf[self.start..self.end];
        if buffered.len() < PREFIX {
            return Ok(None);
        }
        let len = check_len(buffered[..PREFIX].try_into().expect("prefix"), self.max)?;
        if buffered.len() - PREFIX < len {
            return Ok(None);
        }
        let start = self.start + PREFIX;
        Ok(Some(FrameAt {
            start,
            end: start + len,
        }))
    }

    /// Whether a whole frame is buffered (or a bad prefix, which
    /// [`next_frame`](Self::next_frame) reports).
    pub fn holds_frame(&self) -> bool {
        !matches!(self.next_frame(), Ok(None))
    }

    /// The body of a frame found by [`next_frame`](Self::next_frame).
    pub fn body(&self, frame: &FrameAt) -> &[u8] {
        &self.buf[frame.start..frame.end]
    }

    /// Drop a frame found by [`next_frame`](Self::next_frame), and what
    /// came before it.
    pub fn consume(&mut self, frame: FrameAt) {
        self.start = frame.end;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room to read into, made for the frame being read; report what was
    /// read with [`filled`](Self::filled).
    pub fn spare(&mut self) -> &mut [u8] {
        let buffered = self.end - self.start;
        let need = if buffered >= PREFIX {
            let len = u32::from_le_bytes(
                self.buf[self.start..self.start + PREFIX]
                    .try_into()
                    .expect("prefix"),
            );
            PREFIX + len.min(self.max) as usize
        } else {
            PREFIX
        };
        if self.start + need > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end = buffered;
            self.start = 0;
        }
        if need > self.buf.len() {
            let grown = need.min((2 * self.buf.len()).max(64 * 1024));
            self.buf.resize(grown, 0);
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were read into [`spare`](Self::spare).
    pub fn filled(&mut self, n: usize) {
        debug_assert!(self.end + n <= self.buf.len());
        self.end += n;
    }

    /// Read what has arrived (async); the bytes read, 0 at end of stream.
    pub async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<usize, Error> {
        let n = r.read(self.spare()).await.map_err(eof_to_gone)?;
        self.filled(n);
        Ok(n)
    }

    /// Whether bytes of an unfinished frame are buffered.
    pub fn partial(&self) -> bool {
        self.end > self.start
    }
}

/// Decode a header and return it with the bytes that follow it.
pub fn decode_header<'a, T: Deserialize<'a>>(frame: &'a [u8]) -> Result<(T, &'a [u8]), Error> {
    postcard::take_from_bytes(frame)
        .map_err(|e| Error::protocol("a message header does not decode", Some(e.into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip() {
        let mut buf = Vec::new();
        begin_frame(&mut buf, &Request::NumberOfObjects { id: 7 }).unwrap();
        append(&mut buf, &(1u8, "x")).unwrap();
        finish_frame(&mut buf, DEFAULT_MAX_FRAME).unwrap();
        let mut read = Vec::new();
        read_frame(&mut &buf[..], &mut read, DEFAULT_MAX_FRAME).unwrap();
        let (req, rest): (Request, _) = decode_header(&read).unwrap();
        assert_eq!(req, Request::NumberOfObjects { id: 7 });
        assert_eq!(decode::<(u8, String)>(rest).unwrap(), (1, "x".to_string()));
    }

    #[test]
    fn oversized_prefix_refused_before_allocating() {
        let frame = (u32::MAX).to_le_bytes();
        let mut buf = Vec::new();
        let err = read_frame(&mut &frame[..], &mut buf, 1024).unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { size, max: 1024 } if size == u32::MAX as u64));
        assert_eq!(buf.capacity(), 0);
    }

    #[test]
    fn truncated_frame_is_server_gone() {
        let mut frame = raw_frame(b"hello");
        frame.truncate(6);
        let err = read_frame(&mut &frame[..], &mut Vec::new(), 1024).unwrap_err();
        assert!(matches!(err, Error::ServerGone { .. }));
    }

    #[test]
    fn a_frame_head_counts_the_payload_that_follows_it() {
        let header = Response {
            id: 7,
            result: Ok(()),
        };
        let mut out = vec![0xaa];
        push_frame_head(&mut out, &header, 100_000, 1 << 20).unwrap();
        let header_len = encode(&header).unwrap().len();
        let prefix = u32::from_le_bytes(out[1..1 + PREFIX].try_into().unwrap());
        assert_eq!(prefix as usize, header_len + 100_000);
        assert_eq!(out.len(), 1 + PREFIX + header_len);
        // The payload would take the frame over the maximum: refused, and
        // `out` is as it was.
        let before = out.clone();
        let err = push_frame_head(&mut out, &header, 1 << 20, 1 << 20).unwrap_err();
        assert!(
            matches!(err, Error::FrameTooLarge { size, max } if size == (header_len + (1 << 20)) as u64 && max == 1 << 20)
        );
        assert_eq!(out, before);
    }

    #[test]
    fn pushed_frames_read_back_in_order() {
        let mut out = Vec::new();
        push_frame(
            &mut out,
            &Response {
                id: 1,
                result: Ok(()),
            },
            b"ab",
            1024,
        )
        .unwrap();
        push_frame(
            &mut out,
            &Response {
                id: 2,
                result: Ok(()),
            },
            b"",
            1024,
        )
        .unwrap();
        assert!(holds_frame(&out));
        let first_len = PREFIX + u32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
        assert!(holds_frame(&out[first_len..]));
        assert!(!holds_frame(&out[first_len..out.len() - 1]));
        let mut buf = Vec::new();
        let total = read_reply(&mut &out[..first_len], &mut buf, 1024).unwrap();
        let (header, payload): (Response, _) = decode_header(&buf[PREFIX..total]).unwrap();
        assert_eq!((header.id, payload), (1, &b"ab"[..]));
        assert!(push_frame(&mut out, &1u8, &[0; 100], 10).is_err());
        assert!(
            holds_frame(&out[first_len..]),
            "a refused frame leaves no trace"
        );
    }

    #[test]
    fn trailing_bytes_refused() {
        let bytes = encode(&(1u32, 2u32)).unwrap();
        assert!(decode::<u32>(&bytes).is_err());
    }
}
