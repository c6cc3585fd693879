//! RESP2, the protocol of Redis and Valkey: commands out as arrays of bulk
//! strings, replies in as one of five types. Replies are bounded (depth,
//! element count, string length) so that a broken or hostile server is an
//! error, never an allocation it chose or a stack overflow.
#![forbid(unsafe_code)]

use std::io::{BufRead, Read};

/// The longest bulk string accepted (Redis' own `proto-max-bulk-len`).
pub const MAX_BULK: usize = 512 << 20;
/// The most elements an array reply may announce.
const MAX_ELEMENTS: usize = 1 << 24;
/// How deep arrays may nest (stream replies nest four deep).
const MAX_DEPTH: usize = 8;
/// The longest status, error or number line.
const MAX_LINE: usize = 64 << 10;

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK` and other status lines.
    Status(String),
    /// `-ERR ...`: the command failed; the connection is fine.
    Error(String),
    /// `:n`
    Int(i64),
    /// `$n` and its bytes.
    Bulk(Vec<u8>),
    /// `*n` and its elements.
    Array(Vec<Reply>),
    /// `$-1` or `*-1`.
    Nil,
}

/// Why a reply could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The connection failed or closed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The bytes are not RESP2, or break a bound.
    #[error("malformed reply: {0}")]
    Malformed(String),
}

fn malformed(what: impl Into<String>) -> ReplyError {
    ReplyError::Malformed(what.into())
}

/// Append one command (an array of bulk strings) to `out`.
pub fn encode_command(out: &mut Vec<u8>, args: &[Vec<u8>]) {
    out.push(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.push(b'$');
        out.extend_from_slice(arg.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// One line without its CRLF.
fn line(input: &mut impl BufRead) -> Result<Vec<u8>, ReplyError> {
    let mut bytes = Vec::new();
    // A line is read up to its LF, at most MAX_LINE bytes of it.
    let read = std::io::Read::by_ref(input)
        .take(MAX_LINE as u64 + 2)
        .read_until(b'\n', &mut bytes)?;
    if read == 0 {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    if !bytes.ends_with(b"\r\n") {
        return Err(if read > MAX_LINE {
            malformed("a line longer than 64 KiB")
        } else {
            std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()
        });
    }
    bytes.truncate(bytes.len() - 2);
    Ok(bytes)
}

fn number(bytes: &[u8]) -> Result<i64, ReplyError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            malformed(format!(
                "not a number: {:?}",
                String::from_utf8_lossy(bytes)
            ))
        })
}

/// A length of `kind` (`-1`: nil), at most `max`.
fn length(bytes: &[u8], max: usize, kind: &str) -> Result<Option<usize>, ReplyError> {
    match number(bytes)? {
        -1 => Ok(None),
        n if n >= 0 && (n as u64) <= max as u64 => Ok(Some(n as usize)),
        n => Err(malformed(format!("{kind} of length {n}"))),
    }
}

/// Read one whole reply.
pub fn read_reply(input: &mut impl BufRead) -> Result<Reply, ReplyError> {
    read_at(input, 0)
}

fn read_at(input: &mut impl BufRead, depth: usize) -> Result<Reply, ReplyError> {
    let line = line(input)?;
    let (&kind, rest) = line
        .split_first()
        .ok_or_else(|| malformed("an empty line"))?;
    let text = || String::from_utf8_lossy(rest).into_owned();
    match kind {
        b'+' => Ok(Reply::Status(text())),
        b'-' => Ok(Reply::Error(text())),
        b':' => Ok(Reply::Int(number(rest)?)),
        b'$' => {
            let Some(len) = length(rest, MAX_BULK, "a bulk string")? else {
                return Ok(Reply::Nil);
            };
            let mut bytes = Vec::with_capacity(len.min(1 << 20));
            let read = std::io::Read::by_ref(input)
                .take(len as u64 + 2)
                .read_to_end(&mut bytes)?;
            if read != len + 2 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
            if !bytes.ends_with(b"\r\n") {
                return Err(malformed("a bulk string not ended by CRLF"));
            }
            bytes.truncate(len);
            Ok(Reply::Bulk(bytes))
        }
        b'*' => {
            let Some(len) = length(rest, MAX_ELEMENTS, "an array")? else {
                return Ok(Reply::Nil);
            };
            if depth >= MAX_DEPTH {
                return Err(malformed("arrays nested too deep"));
            }
            let mut items = Vec::with_capacity(len.min(1024));
            for _ in 0..len {
                items.push(read_at(input, depth + 1)?);
            }
            Ok(Reply::Array(items))
        }
        other => Err(malformed(format!("a reply of type {:?}", other as char))),
    }
}

impl Reply {
    /// The bytes of a bulk or status reply.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Bulk(b) => Some(b),
            Reply::Status(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// The elements of an array reply (none for nil).
    pub fn items(&self) -> Option<&[Reply]> {
        match self {
            Reply::Array(items) => Some(items),
            Reply::Nil => Some(&[]),
            _ => None,
        }
    }

    /// The bytes of a bulk or status reply, taken.
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Reply::Bulk(b) => Some(b),
            Reply::Status(s) => Some(s.into_bytes()),
            _ => None,
        }
    }

    /// The elements of an array reply (none for nil), taken.
    pub fn into_items(self) -> Option<Vec<Reply>> {
        match self {
            Reply::Array(items) => Some(items),
            Reply::Nil => Some(Vec::new()),
            _ => None,
        }
    }

    /// An integer reply, or a bulk string holding one.
    pub fn int(&self) -> Option<i64> {
        match self {
            Reply::Int(n) => Some(*n),
            Reply::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Reply, ReplyError> {
        read_reply(&mut &bytes[..])
    }

    #[test]
    fn every_type_parses() {
        assert_eq!(parse(b"+OK\r\n").unwrap(), Reply::Status("OK".into()));
        assert_eq!(
            parse(b"-ERR wrong\r\n").unwrap(),
            Reply::Error("ERR wrong".into())
        );
        assert_eq!(parse(b":-42\r\n").unwrap(), Reply::Int(-42));
        assert_eq!(
            parse(b"$3\r\na\r\n\r\n").unwrap(),
            Reply::Bulk(b"a\r\n".to_vec())
        );
        assert_eq!(parse(b"$-1\r\n").unwrap(), Reply::Nil);
        assert_eq!(parse(b"*-1\r\n").unwrap(), Reply::Nil);
        assert_eq!(
            parse(b"*2\r\n$1\r\nx\r\n*1\r\n:1\r\n").unwrap(),
            Reply::Array(vec![
                Reply::Bulk(b"x".to_vec()),
                Reply::Array(vec![Reply::Int(1)])
            ])
        );
    }

    #[test]
    fn commands_encode_as_bulk_arrays() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"GET".to_vec(), b"k\r\n".to_vec()]);
        assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$3\r\nk\r\n\r\n");
        assert_eq!(
            parse(&out).unwrap(),
            Reply::Array(vec![
                Reply::Bulk(b"GET".to_vec()),
                Reply::Bulk(b"k\r\n".to_vec())
            ])
        );
    }

    #[test]
    fn bad_replies_are_errors_not_allocations_or_overflows() {
        for bad in [
            &b"$999999999999\r\n"[..],
            b"*99999999999\r\n",
            b"$-2\r\n",
            b"$3\r\nabcd\r\n",
            b"$3\r\nab",
            b":12x\r\n",
            b"?\r\n",
            b"\r\n",
            b"+OK",
            b"",
        ] {
            assert!(
                parse(bad).is_err(),
                "{:?} parsed",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = b"*1\r\n".repeat(MAX_DEPTH + 1);
        assert!(matches!(parse(&deep), Err(ReplyError::Malformed(_))));
        let long = [b"+".as_slice(), &vec![b'a'; MAX_LINE + 10], b"\r\n"].concat();
        assert!(matches!(parse(&long), Err(ReplyError::Malformed(_))));
    }
}
