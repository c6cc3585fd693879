//! A small blocking Redis (or Valkey) client: what the distributed pool
//! needs, no more. One TCP connection per `Redis`, commands and
//! pipelines of commands, RESP2 replies read with bounds
//! ([`resp`]), and a connection that broke is made again on the next
//! command (never a command repeated behind its caller's back: a
//! command whose reply was lost is the caller's error).
//!
//! Why not the `redis` crate: with no default features it still brings
//! 48 crates (url, idna and its Unicode tables among them) to a build that
//! runs on 2 cores, and the pool needs a dozen stream commands on a
//! blocking socket. This client is about 300 lines, fuzzable, and has no
//! dependency.
#![forbid(unsafe_code)]

pub mod resp;

use std::borrow::Borrow;
use std::io::{self, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::error::{Error, Result};
pub(crate) use resp::Reply;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a non-blocking command's reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a Redis is: `redis://[[user]:password@]host[:port][/db]`, or the
/// primary that Sentinels name:
/// `redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]`
/// (the credentials are the primary's; Sentinels are asked without).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RedisUrl {
    target: Target,
    db: u32,
    user: Option<String>,
    password: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Direct(String, u16),
    Sentinel {
        sentinels: Vec<(String, u16)>,
        service: String,
    },
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        match &self.target {
            Target::Direct(host, port) => write!(f, "redis://{host}:{port}/{}", self.db),
            Target::Sentinel { sentinels, service } => {
                let hosts: Vec<String> =
                    sentinels.iter().map(|(h, p)| format!("{h}:{p}")).collect();
                write!(
                    f,
                    "redis+sentinel://{}/{service}/{}",
                    hosts.join(","),
                    self.db
                )
            }
        }
    }
}

impl std::fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

fn bad_url(url: &str, why: &str) -> Error {
    Error::Redis(format!(
        "{why} in the URL {url:?} (expected redis://[[user]:password@]host[:port][/db] or \
         redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db])"
    ))
}

/// `text` with its `%XX` escapes decoded (a password with `@`, `:` or
/// `/` in it is written so in a URL); `None` if an escape is broken.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `host[:port]` or `[v6]:port`, the port 6379 (26379 for a Sentinel) if
/// not given.
fn host_port(url: &str, text: &str, default: u16) -> Result<(String, u16)> {
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| bad_url(url, "an unclosed [ in the host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(bad_url(url, "no host"));
    }
    let port = match port {
        None => default,
        Some(p) => p.parse().map_err(|_| bad_url(url, "a bad port"))?,
    };
    Ok((host.to_string(), port))
}

impl std::str::FromStr for RedisUrl {
    type Err = Error;

    fn from_str(url: &str) -> Result<RedisUrl> {
        let (sentinel, rest) = if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("redis://") {
            (false, rest)
        } else {
            return Err(bad_url(url, "no redis:// or redis+sentinel:// scheme"));
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (credentials, hosts) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, authority),
        };
        let decode =
            |text: &str| percent_decode(text).ok_or_else(|| bad_url(url, "a bad %-escape"));
        let (user, password) = match credentials {
            None => (None, None),
            Some(c) => match c.split_once(':') {
                Some((u, p)) => (
                    (!u.is_empty()).then(|| decode(u)).transpose()?,
                    Some(decode(p)?),
                ),
                None => (Some(decode(c)?), None),
            },
        };
        let mut path = path.split(['?', '#']).next().unwrap_or("").split('/');
        let target = if sentinel {
            let sentinels = hosts
                .split(',')
                .map(|h| host_port(url, h, 26379))
                .collect::<Result<Vec<_>>>()?;
            let service = path.next().unwrap_or("");
            if service.is_empty() {
                return Err(bad_url(url, "no service (the Sentinels' master name)"));
            }
            Target::Sentinel {
                sentinels,
                service: service.to_string(),
            }
        } else {
            let (host, port) = host_port(url, hosts, 6379)?;
            Target::Direct(host, port)
        };
        let db = match path.next().unwrap_or("") {
            "" => 0,
            db => db
                .parse()
                .map_err(|_| bad_url(url, "a bad database number"))?,
        };
        if path.next().is_some_and(|p| !p.is_empty()) {
            return Err(bad_url(url, "a path too long"));
        }
        Ok(RedisUrl {
            target,
            db,
            user,
            password,
        })
    }
}

/// A command's arguments, as bytes.
pub(crate) trait Arg {
    /// The argument's bytes.
    fn arg(self) -> Vec<u8>;
}

impl Arg for &str {
    fn arg(self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}

impl Arg for &String {
    fn arg(self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}

impl Arg for String {
    fn arg(self) -> Vec<u8> {
        self.into_bytes()
    }
}

impl Arg for &[u8] {
    fn arg(self) -> Vec<u8> {
        self.to_vec()
    }
}

impl Arg for Vec<u8> {
    fn arg(self) -> Vec<u8> {
        self
    }
}

impl Arg for u64 {
    fn arg(self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

/// A command: `cmd!["XADD", key, "*", "h", bytes]`.
macro_rules! cmd {
    ($($arg:expr),+ $(,)?) => {
        vec![$($crate::redis::Arg::arg($arg)),+]
    };
}
pub(crate) use cmd;

/// A command's arguments.
pub(crate) type Command = Vec<Vec<u8>>;

/// One connection to a Redis, made again after it broke.
pub(crate) struct Redis {
    url: RedisUrl,
    stream: Option<BufReader<TcpStream>>,
    /// Connections made so far (a new one may reach another primary,
    /// or a restarted Redis that lost what it held).
    connections: u64,
}

impl Redis {
    /// A client of the Redis at `url`, connected now (so that a wrong URL
    /// or a Redis that is not there is an error at once).
    pub(crate) fn connect(url: &RedisUrl) -> Result<Redis> {
        let mut redis = Redis {
            url: url.clone(),
            stream: None,
            connections: 0,
        };
        redis.stream()?;
        Ok(redis)
    }

    fn failed(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::Redis(format!("{what} {}: {e}", self.url))
    }

    /// A connection to the primary: the URL's host, or where the
    /// Sentinels say the primary is (asked again until one answers with a
    /// primary that takes the connection, for as long as a connection may
    /// take: a failover in progress is waited out that long).
    fn open(&self) -> Result<BufReader<TcpStream>> {
        match &self.url.target {
            Target::Direct(host, port) => self.dial(host, *port, CONNECT_TIMEOUT),
            Target::Sentinel { sentinels, service } => {
                let begun = std::time::Instant::now();
                let mut last = String::from("no Sentinel answered");
                while begun.elapsed() < CONNECT_TIMEOUT {
                    for (host, port) in sentinels {
                        match self.primary_from(host, *port, service) {
                            Ok(stream) => return Ok(stream),
                            Err(e) => last = e.to_string(),
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(Error::Redis(format!("no primary for {}: {last}", self.url)))
            }
        }
    }

    /// Ask the Sentinel at `host:port` where the primary of `service` is,
    /// and connect there if it says it is a primary.
    fn primary_from(&self, host: &str, port: u16, service: &str) -> Result<BufReader<TcpStream>> {
        let timeout = Duration::from_millis(500);
        let mut sentinel = self.dial(host, port, timeout)?;
        let reply = exchange_on(
            &mut sentinel,
            &[cmd!["SENTINEL", "get-master-addr-by-name", service]],
            timeout,
        )?;
        let addr = reply[0].items().unwrap_or_default();
        let (Some(ip), Some(p)) = (
            addr.first().and_then(Reply::bytes),
            addr.get(1).and_then(Reply::int),
        ) else {
            return Err(Error::Redis(format!(
                "the Sentinel {host}:{port} knows no {service}"
            )));
        };
        let ip = String::from_utf8_lossy(ip).into_owned();
        let port = u16::try_from(p).map_err(|_| Error::Redis(format!("a bad port {p}")))?;
        let mut primary = self.dial(&ip, port, timeout)?;
        // Before the failover ends, the old primary may still be named,
        // or a replica: only a primary will do.
        let role = exchange_on(&mut primary, &[cmd!["ROLE"]], timeout)?;
        let is_primary = role[0]
            .items()
            .and_then(|r| r.first())
            .and_then(Reply::bytes)
            .is_some_and(|r| r == b"master");
        if !is_primary {
            return Err(Error::Redis(format!("{ip}:{port} is not a primary (yet)")));
        }
        Ok(primary)
    }

    fn dial(&self, host: &str, port: u16, timeout: Duration) -> Result<BufReader<TcpStream>> {
        let addrs = (host, port)
            .to_socket_addrs()
            .map_err(|e| self.failed("cannot resolve", e))?;
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    return Ok(BufReader::with_capacity(64 << 10, stream));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(Error::Redis(format!(
            "cannot connect to {host}:{port}: {}",
            last.map_or("no address".to_string(), |e| e.to_string())
        )))
    }

    /// The connection, made (and authenticated, its database selected) if
    /// there is none.
    fn stream(&mut self) -> Result<&mut BufReader<TcpStream>> {
        if self.stream.is_none() {
            let stream = self.open()?;
            self.stream = Some(stream);
            self.connections += 1;
            let mut hello: Vec<Command> = Vec::new();
            match (&self.url.user, &self.url.password) {
                (Some(user), Some(password)) => hello.push(cmd!["AUTH", user, password]),
                (None, Some(password)) => hello.push(cmd!["AUTH", password]),
                _ => {}
            }
            if self.url.db != 0 {
                hello.push(cmd!["SELECT", u64::from(self.url.db)]);
            }
            if !hello.is_empty() {
                let replies = self.exchange(&hello, REPLY_TIMEOUT)?;
                if let Some(Reply::Error(e)) = replies.iter().find(|r| matches!(r, Reply::Error(_)))
                {
                    self.stream = None;
                    return Err(self.failed("refused by", e));
                }
            }
        }
        Ok(self.stream.as_mut().expect("connected above"))
    }

    /// Send `commands` in one write and read their replies; the connection
    /// is dropped (made again next time) if anything fails on it.
    fn exchange<C: Borrow<Command>>(
        &mut self,
        commands: &[C],
        timeout: Duration,
    ) -> Result<Vec<Reply>> {
        let stream = self.stream.as_mut().expect("connected by the caller");
        let result = exchange_on(stream, commands, timeout);
        if result.is_err() {
            self.stream = None;
        }
        result.map_err(|e| self.failed("lost the connection to", e))
    }

    /// Run `commands` as one pipeline (one write, one wait), each reply
    /// as it came (a Redis error reply is a [`Reply::Error`] here). The
    /// commands may be shared (`Arc<Command>`): they are encoded, not
    /// copied first.
    pub(crate) fn pipeline<C: Borrow<Command>>(&mut self, commands: &[C]) -> Result<Vec<Reply>> {
        self.pipeline_waiting(commands, Duration::ZERO)
    }

    /// A pipeline whose last command may block for `block` (an `XREAD
    /// BLOCK`).
    pub(crate) fn pipeline_waiting<C: Borrow<Command>>(
        &mut self,
        commands: &[C],
        block: Duration,
    ) -> Result<Vec<Reply>> {
        self.stream()?;
        self.exchange(commands, REPLY_TIMEOUT + block)
    }

    /// Run one command; a Redis error reply is an [`Error::Redis`].
    pub(crate) fn call(&mut self, command: Command) -> Result<Reply> {
        self.call_waiting(command, Duration::ZERO)
    }

    /// Wait at most `timeout` for a reply Redis sends unasked (a message
    /// of a channel this connection subscribed to): `None` if none came.
    /// A failure drops the connection (subscribe again on a new one).
    pub(crate) fn next_message(&mut self, timeout: Duration) -> Result<Option<Reply>> {
        use std::io::BufRead;
        let Some(stream) = self.stream.as_mut() else {
            return Err(Error::Redis(format!("not connected to {}", self.url)));
        };
        let read = (|| {
            stream.get_ref().set_read_timeout(Some(timeout))?;
            if stream.buffer().is_empty() {
                match stream.fill_buf() {
                    // Nothing came: nothing was consumed either.
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        return Ok(None)
                    }
                    Err(e) => return Err(Error::Io(e)),
                    Ok([]) => return Err(Error::Eof),
                    Ok(_) => {}
                }
            }
            resp::read_reply(stream).map(Some).map_err(|e| match e {
                resp::ReplyError::Io(e) => Error::Io(e),
                other => Error::Redis(other.to_string()),
            })
        })();
        if read.is_err() {
            self.stream = None;
        }
        read
    }

    /// The connection's socket, if it is connected (to look at it without
    /// a command).
    pub(crate) fn socket(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.stream.as_ref().map(|s| s.get_ref().as_fd())
    }

    /// Close the connection: the next command makes a new one.
    pub(crate) fn disconnect(&mut self) {
        self.stream = None;
    }

    /// How many connections it made so far: a change means it connected
    /// again (perhaps to a new primary that lost recent writes).
    pub(crate) fn connections(&self) -> u64 {
        self.connections
    }

    /// One command that may block for `block`.
    pub(crate) fn call_waiting(&mut self, command: Command, block: Duration) -> Result<Reply> {
        let name = String::from_utf8_lossy(&command[0]).into_owned();
        let reply = self
            .pipeline_waiting(std::slice::from_ref(&command), block)?
            .pop()
            .expect("one reply per command");
        match reply {
            Reply::Error(e) => Err(Error::Redis(format!("{name}: {e}"))),
            reply => Ok(reply),
        }
    }
}

/// A stream entry's fields, as name and value.
pub(crate) type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// Send `commands` on `stream` in one write and read their replies.
fn exchange_on<C: Borrow<Command>>(
    stream: &mut BufReader<TcpStream>,
    commands: &[C],
    timeout: Duration,
) -> Result<Vec<Reply>> {
    let mut out = Vec::new();
    for command in commands {
        resp::encode_command(&mut out, command.borrow());
    }
    // A Redis that stops reading (paused, stopped) must not hold a
    // writer forever either.
    stream.get_ref().set_read_timeout(Some(timeout))?;
    stream.get_ref().set_write_timeout(Some(timeout))?;
    stream.get_mut().write_all(&out)?;
    let mut replies = Vec::with_capacity(commands.len());
    for _ in commands {
        replies.push(resp::read_reply(stream).map_err(|e| match e {
            resp::ReplyError::Io(e) => Error::Io(e),
            other => Error::Redis(other.to_string()),
        })?);
    }
    Ok(replies)
}

/// The entries of an `XREAD`/`XREADGROUP` reply for one stream (or of an
/// `XRANGE`/`XCLAIM` reply, `entries_of`): id and fields, in order, moved
/// out of the reply (a chunk's bytes are not copied again).
pub(crate) fn stream_entries(reply: Reply) -> Vec<(String, Fields)> {
    let Some(streams) = reply.into_items() else {
        return Vec::new();
    };
    streams
        .into_iter()
        .filter_map(|stream| stream.into_items()?.into_iter().nth(1).map(entries_of))
        .flatten()
        .collect()
}

/// The entries of a list of stream entries.
pub(crate) fn entries_of(reply: Reply) -> Vec<(String, Fields)> {
    let Some(entries) = reply.into_items() else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter_map(|entry| {
            let mut items = entry.into_items()?.into_iter();
            let id = String::from_utf8(items.next()?.into_bytes()?).ok()?;
            // A deleted entry still pending comes as (id, nil).
            let mut fields = items.next()?.into_items()?.into_iter();
            let mut pairs = Vec::with_capacity(fields.len() / 2);
            while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
                if let (Some(k), Some(v)) = (k.into_bytes(), v.into_bytes()) {
                    pairs.push((k, v));
                }
            }
            Some((id, pairs))
        })
        .collect()
}

/// The value of `field` among an entry's fields.
pub(crate) fn field<'a>(fields: &'a [(Vec<u8>, Vec<u8>)], field: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(k, _)| k == field.as_bytes())
        .map(|(_, v)| v.as_slice())
}

/// The value of `field` among an entry's fields, taken out of them.
pub(crate) fn take_field(fields: &mut [(Vec<u8>, Vec<u8>)], field: &str) -> Option<Vec<u8>> {
    fields
        .iter_mut()
        .find(|(k, _)| k == field.as_bytes())
        .map(|(_, v)| std::mem::take(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_hide_their_password() {
        let direct = |host: &str, port| Target::Direct(host.into(), port);
        let url: RedisUrl = "redis://:secret@127.0.0.1:7001/2".parse().unwrap();
        assert_eq!(
            (
                &url.target,
                url.db,
                url.user.as_deref(),
                url.password.as_deref()
            ),
            (&direct("127.0.0.1", 7001), 2, None, Some("secret"))
        );
        assert!(!format!("{url:?} {url}").contains("secret"));
        let url: RedisUrl = "redis://alice:pw@[::1]".parse().unwrap();
        assert_eq!(
            (&url.target, url.user.as_deref()),
            (&direct("::1", 6379), Some("alice"))
        );
        let url: RedisUrl = "redis://localhost".parse().unwrap();
        assert_eq!((&url.target, url.db), (&direct("localhost", 6379), 0));
        let url: RedisUrl = "redis+sentinel://:pw@a:1,b,[::1]:3/mm/4".parse().unwrap();
        assert_eq!(
            url.target,
            Target::Sentinel {
                sentinels: vec![("a".into(), 1), ("b".into(), 26379), ("::1".into(), 3)],
                service: "mm".into()
            }
        );
        assert_eq!((url.db, url.password.as_deref()), (4, Some("pw")));
        assert!(!url.to_string().contains("pw"));
        let url: RedisUrl = "redis://bob%40x:p%3As%2Fw@h".parse().unwrap();
        assert_eq!(
            (url.user.as_deref(), url.password.as_deref()),
            (Some("bob@x"), Some("p:s/w"))
        );
        for bad in [
            "localhost:6379",
            "redis://",
            "redis://h:port",
            "redis://h/x",
            "redis://[::1",
            "redis+sentinel://a:1",
            "redis+sentinel://a:1,/mm",
            "redis://h/1/2",
            "redis://:p%4@h",
        ] {
            let err = bad.parse::<RedisUrl>().unwrap_err().to_string();
            assert!(err.contains("redis://"), "{bad}: {err}");
        }
    }

    #[test]
    fn stream_replies_are_read_as_entries() {
        let entry = |id: &str, k: &str, v: &str| {
            Reply::Array(vec![
                Reply::Bulk(id.into()),
                Reply::Array(vec![Reply::Bulk(k.into()), Reply::Bulk(v.into())]),
            ])
        };
        let reply = Reply::Array(vec![Reply::Array(vec![
            Reply::Bulk(b"s".to_vec()),
            Reply::Array(vec![
                entry("1-0", "h", "x"),
                Reply::Array(vec![Reply::Bulk(b"2-0".to_vec()), Reply::Nil]),
            ]),
        ])]);
        let entries = stream_entries(reply);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0, "1-0");
        assert_eq!(field(&entries[0].1, "h"), Some(&b"x"[..]));
        assert!(entries[1].1.is_empty(), "a deleted entry has no fields");
        assert!(stream_entries(Reply::Nil).is_empty());
        let mut fields = entries[0].1.clone();
        assert_eq!(take_field(&mut fields, "h"), Some(b"x".to_vec()));
        assert_eq!(field(&fields, "h"), Some(&b""[..]), "taken");
    }
}
