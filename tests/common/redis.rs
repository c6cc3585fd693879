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
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    listener.local_addr().unwrap().port()
}

impl RedisServer {
    /// Start one, ready for commands; `None` (after a SKIPPED line) if
    /// Redis is not installed and not required.
    pub fn start(test: &str) -> Option<RedisServer> {
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

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
