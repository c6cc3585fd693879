//! A real Redis for the tests that need one: `redis-server` started on a
//! loopback port of its own, stopped when dropped (a panicking test
//! included), and a few raw commands to look into it.
//!
//! Without `redis-server` on the PATH, [`RedisServer::start`] prints a loud
//! SKIPPED line naming the package to install and returns `None`, unless
//! `MANAGERS_REQUIRE_REDIS` is set (`.ci/run` sets it): then a missing
//! Redis is a failure.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` of this test's own.
pub struct RedisServer {
    child: Child,
    port: u16,
}

/// A primary, one replica and three Sentinels watching them (service
/// `mm`, down after 1 s), all of this test's own.
pub struct RedisFailover {
    pub primary: RedisServer,
    pub replica: RedisServer,
    sentinels: Vec<RedisServer>,
    _dir: TempDir,
}

/// The URL of a `redis-server` shared by every test of this process (the
/// conformance tests' pass with `MANAGERS_TEST_BACKEND=redis`): started on
/// first use, stopped by a watchdog shell once this process is gone (a
/// static is never dropped). A missing Redis is a failure: that pass is
/// asked for only where Redis is installed.
pub fn process_redis_url() -> String {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        assert!(
            installed(),
            "MANAGERS_TEST_BACKEND=redis: redis-server is not installed \
             (apt-get install redis-server redis-sentinel)"
        );
        for _ in 0..5 {
            let port = free_port();
            let script = format!(
                "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no \
                 --protected-mode no >/dev/null 2>&1 & r=$!; \
                 while kill -0 {me} 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.2; done; \
                 kill $r 2>/dev/null",
                me = std::process::id()
            );
            let mut watchdog = Command::new("sh")
                .args(["-c", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("sh starts");
            // Reaped whenever it ends (with this process, as a rule).
            std::thread::spawn(move || watchdog.wait());
            let begun = Instant::now();
            while begun.elapsed() < Duration::from_secs(10) {
                if ping(port) {
                    return format!("redis://127.0.0.1:{port}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("a redis-server for this test process did not start");
    })
    .clone()
}

/// Whether a Redis answers PING on `port`.
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("+PONG")
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether `redis-server` can be run here.
fn installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    listener.local_addr().unwrap().port()
}

impl RedisServer {
    /// Start one, ready for commands; `None` (after a SKIPPED line) if
    /// Redis is not installed and not required.
    pub fn start(test: &str) -> Option<RedisServer> {
        RedisServer::start_with(test, &[])
    }

    /// [`start`](Self::start) with more arguments for `redis-server`.
    pub fn start_with(test: &str, extra: &[&str]) -> Option<RedisServer> {
        if !installed() {
            if std::env::var_os("MANAGERS_REQUIRE_REDIS").is_some() {
                panic!(
                    "{test}: redis-server is required (MANAGERS_REQUIRE_REDIS) but not installed"
                );
            }
            println!(
                "\n*** SKIPPED {test}: redis-server is not installed \
                 (apt-get install redis-server redis-sentinel) ***\n"
            );
            return None;
        }
        // A port taken between the probe and the start: try another.
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server starts");
            let mut server = RedisServer { child, port };
            let begun = Instant::now();
            while begun.elapsed() < Duration::from_secs(10) {
                if server.command(&["PING"]).is_ok_and(|r| r == "PONG") {
                    return Some(server);
                }
                if server.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(server);
        }
        panic!("{test}: redis-server did not start");
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILL it (as a machine's loss would).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// One command, its reply as text (a number, a status, a bulk string;
    /// an array's length for an array). Errors are `Err`.
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut out = format!("*{}\r\n", args.len());
        for arg in args {
            out.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(out.as_bytes())?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        let (kind, rest) = line.split_at(1.min(line.len()));
        match kind {
            "+" | ":" | "*" => Ok(rest.to_string()),
            "$" if rest == "-1" => Ok(String::new()),
            "$" => {
                let mut value = String::new();
                reader.read_line(&mut value)?;
                Ok(value.trim_end().to_string())
            }
            _ => Err(std::io::Error::other(line.to_string())),
        }
    }

    /// The keys matching `pattern`, sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let out = format!("*2\r\n$4\r\nKEYS\r\n${}\r\n{pattern}\r\n", pattern.len());
        stream.write_all(out.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let count: usize = line.trim_end().trim_start_matches('*').parse().unwrap();
        let mut keys = Vec::with_capacity(count);
        for _ in 0..count {
            let (mut length, mut key) = (String::new(), String::new());
            reader.read_line(&mut length).unwrap();
            reader.read_line(&mut key).unwrap();
            keys.push(key.trim_end().to_string());
        }
        keys.sort();
        keys
    }

    /// A command whose reply is a number.
    pub fn number(&self, args: &[&str]) -> i64 {
        self.command(args)
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("{args:?} gave no number"))
    }
}

impl RedisFailover {
    /// Start them, the replica in sync and every Sentinel knowing the
    /// others; `None` as [`RedisServer::start`].
    ///
    /// Up to three clusters, each on new ports: a Sentinel that could not
    /// bind its port (picked free, taken by another process meanwhile)
    /// never meets the others (seen once in CI: "the Sentinels never
    /// agreed").
    pub fn start(test: &str) -> Option<RedisFailover> {
        for attempt in 1..=3 {
            match Self::start_once(test)? {
                Ok(cluster) => return Some(cluster),
                Err(why) => eprintln!("{test}: {why} (cluster {attempt} of 3)"),
            }
        }
        panic!("{test}: the Sentinels never agreed, three clusters tried");
    }

    fn start_once(test: &str) -> Option<Result<RedisFailover, String>> {
        let primary = RedisServer::start(test)?;
        let primary_port = primary.port.to_string();
        let replica = RedisServer::start_with(test, &["--replicaof", "127.0.0.1", &primary_port])?;
        let dir = std::env::temp_dir().join(format!(
            "managers-sentinels-{}-{}",
            std::process::id(),
            primary.port
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = TempDir(dir);
        let mut sentinels = Vec::new();
        for n in 0..3 {
            let port = free_port();
            let conf = dir.0.join(format!("sentinel{n}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {}\n\
                     sentinel monitor mm 127.0.0.1 {primary_port} 2\n\
                     sentinel down-after-milliseconds mm 1000\n\
                     sentinel failover-timeout mm 5000\n",
                    dir.0.display()
                ),
            )
            .unwrap();
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server --sentinel starts");
            sentinels.push(RedisServer { child, port });
        }
        let mut cluster = RedisFailover {
            primary,
            replica,
            sentinels,
            _dir: dir,
        };
        // Ready: the replica in sync, each Sentinel seeing the replica and
        // two other Sentinels.
        let begun = Instant::now();
        loop {
            let synced = cluster.replica_synced();
            let known = cluster.sentinels.iter().all(|s| {
                s.command(&["SENTINEL", "master", "mm"]).is_ok()
                    && s.sentinel_field("num-other-sentinels") == Some(2)
                    && s.sentinel_field("num-slaves") == Some(1)
            });
            if synced && known {
                return Some(Ok(cluster));
            }
            if begun.elapsed() > Duration::from_secs(30) {
                let mut alive = 0;
                for sentinel in &mut cluster.sentinels {
                    alive += usize::from(matches!(sentinel.child.try_wait(), Ok(None)));
                }
                return Some(Err(format!(
                    "the Sentinels did not agree in 30 s ({alive} of 3 running, replica in sync: {synced})"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn replica_synced(&self) -> bool {
        raw_lines(self.replica.port, &["INFO", "replication"])
            .iter()
            .any(|l| l.trim() == "master_link_status:up")
    }

    /// The URL through the Sentinels.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/mm", hosts.join(","))
    }

    /// Whether the replica has been promoted.
    pub fn replica_is_primary(&self) -> bool {
        raw_lines(self.replica.port, &["ROLE"])
            .iter()
            .any(|l| l.trim() == "master")
    }
}

impl RedisServer {
    /// A number in the reply of `SENTINEL master mm` (field, value, ...).
    fn sentinel_field(&self, field: &str) -> Option<i64> {
        let lines = raw_lines(self.port, &["SENTINEL", "master", "mm"]);
        let at = lines.iter().position(|l| l.trim() == field)?;
        // field, then the value's $len line, then the value
        lines.get(at + 2)?.trim().parse().ok()
    }
}

/// A command's whole reply, line by line (for looking into it).
fn raw_lines(port: u16, args: &[&str]) -> Vec<String> {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return Vec::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut out = format!("*{}\r\n", args.len());
    for arg in args {
        out.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    if stream.write_all(out.as_bytes()).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = std::io::Read::read(&mut stream, &mut buf) {
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
        // The rest of a reply follows at once.
        let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
    }
    String::from_utf8_lossy(&bytes)
        .split("\r\n")
        .map(str::to_string)
        .collect()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
