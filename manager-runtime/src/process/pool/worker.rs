//! A pool worker: the child side, and the messages it exchanges with the
//! pool over its `Connection`.
//!
//! The worker is a [`Process`](crate::Process) whose target is [`serve`]:
//! it runs the initializer, says it is ready, then answers task messages
//! one at a time until its connection closes (or after `maxtasks` tasks).
//! A task message is a [`Run`] header and the encoded arguments of `count`
//! calls; the answer a [`Done`] header and, on success, the encoded results,
//! each one message (the answer written in its two parts, not joined first).
#![forbid(unsafe_code)]

use std::panic::AssertUnwindSafe;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::crossing::{self, Carried, Keep, Route, Scope, ServerInfo, SharedCarried};
use crate::error::{Error, Result};
use crate::process::connection::Connection;
use crate::process::image::{FnRef, ImageId, SameImage};
use crate::process::target::{process_entry_of, Exit, Function, ProcessEntry, TaskEntry};

/// The header of a task: which function, how many calls.
#[derive(Serialize, Deserialize)]
pub(super) struct Run {
    pub(super) id: u64,
    pub(super) entry: FnRef<TaskEntry>,
    pub(super) count: u32,
}

/// How a task ended.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Outcome {
    /// The results follow the header.
    Ok,
    /// A call panicked, with this message.
    Panicked(String),
    /// Its arguments could not be decoded or a result encoded: what was
    /// being done, and why it failed.
    Failed {
        context: String,
        cause: Option<String>,
    },
}

/// The header of an answer.
#[derive(Serialize, Deserialize)]
pub(super) struct Done {
    pub(super) id: u64,
    pub(super) outcome: Outcome,
}

/// A chunk's answer as its job takes it: its encoded results at `bytes[start..]`.
pub(super) struct Results {
    pub(super) bytes: Vec<u8>,
    pub(super) start: usize,
}

impl Results {
    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// A worker's first message: ready, or why its initializer failed.
pub(super) type Ready = std::result::Result<(), String>;

/// Split a message into its header and the bytes after it.
pub(super) fn split<'a, H: Deserialize<'a>>(bytes: &'a [u8]) -> Result<(H, &'a [u8])> {
    postcard::take_from_bytes(bytes)
        .map_err(|e| Error::protocol("a pool message's header", Some(Box::new(e))))
}

/// The message of a caught panic.
pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// `e` and its sources, as one line.
fn chain(e: &Error) -> String {
    crate::error::chain(e)
}

/// A task's failure as it travels back: a codec error keeps its context
/// and cause apart, so the caller's error reads as its own.
fn failed(e: &Error) -> Outcome {
    match e {
        Error::Codec { context, source } => Outcome::Failed {
            context: context.clone(),
            cause: source.as_deref().map(|s| crate::error::chain(s)),
        },
        other => Outcome::Failed {
            context: "running a pool task".into(),
            cause: Some(chain(other)),
        },
    }
}

/// The initializer and its encoded arguments, as they cross to a worker.
pub(super) type Initializer = Option<(FnRef<ProcessEntry>, SharedCarried)>;

/// An initializer as a builder holds it: the function, its encoded
/// arguments and the clones of the proxies among them (or why it cannot
/// cross, said when the pool or the workers start).
pub(super) type Encoded = Result<(FnRef<ProcessEntry>, Carried, Keep)>;

/// `initializer(initargs...)`, made ready to cross to workers as a
/// `Process`'s arguments do.
pub(super) fn encode_initializer<F, A>(initializer: F, initargs: &A) -> Encoded
where
    F: Function<A>,
    F::Output: Exit,
    A: Serialize + DeserializeOwned + 'static,
{
    let entry = process_entry_of(initializer)?;
    let (args, keep) = Carried::encode(Route::Lifeline, initargs)?;
    Ok((entry, args, keep))
}

/// What every worker is started with, and the clones of the proxies among
/// its arguments, to keep as long as workers may start.
pub(super) fn shared_initializer(encoded: Option<Encoded>) -> Result<(Initializer, Keep)> {
    Ok(match encoded.transpose()? {
        Some((entry, args, keep)) => (Some((entry, SharedCarried::new(args))), keep),
        None => (None, Keep::new()),
    })
}

/// Run a worker's initializer, if it has one: whether it succeeded, and
/// the scope of what its arguments adopted (the sessions of their
/// proxies), to keep as long as the worker lives.
pub(super) fn initialize(initializer: Initializer, same: &SameImage) -> (Ready, Option<Scope>) {
    let Some((entry, args)) = initializer else {
        return (Ok(()), None);
    };
    let mut initialized = None;
    let run = AssertUnwindSafe(|| -> Result<i32> {
        let args = args.into_inner();
        let (target, scope) = args.decode(true, |bytes| entry.resolve(same)(bytes));
        initialized = Some(scope);
        Ok(target?())
    });
    let ready = match std::panic::catch_unwind(run) {
        Ok(Ok(0)) => Ok(()),
        Ok(Ok(code)) => Err(format!(
            "the initializer failed (exit code {code}; its error is on the worker's stderr)"
        )),
        Ok(Err(e)) => Err(format!("the initializer could not run: {}", chain(&e))),
        Err(panic) => Err(format!(
            "the initializer panicked: {}",
            panic_message(&*panic)
        )),
    };
    (ready, initialized)
}

/// A worker's life: initializer, `Ready`, then tasks until the connection
/// closes or `maxtasks` (if not 0) are done. Proxies to `servers` (its
/// pool's manager) are reached the way the pool's process reaches them.
pub(super) fn serve(
    conn: Connection,
    image: ImageId,
    initializer: Initializer,
    maxtasks: u64,
    servers: Vec<ServerInfo>,
) -> Result<()> {
    // A task's panic is its caller's error, reported there: no message on
    // this worker's stderr for it.
    std::panic::set_hook(Box::new(|_| {}));
    let same = SameImage::check(&image)?;
    crossing::learn(&servers);
    // The sessions the initializer's arguments' proxies were adopted
    // through live as long as the worker: what it stored may use them.
    let (ready, _initialized) = initialize(initializer, &same);
    let refused = ready.is_err();
    conn.send(&ready)?;
    if refused {
        return Ok(());
    }
    let mut results = Vec::new();
    let mut done = 0u64;
    loop {
        let (run, args): (Run, Carried) = match conn.recv() {
            Ok(message) => message,
            Err(Error::Eof) => return Ok(()),
            Err(e) => return Err(e),
        };
        let outcome = run_chunk(run.entry.resolve(&same), args, run.count, &mut results);
        let body: &[u8] = if matches!(outcome, Outcome::Ok) {
            &results
        } else {
            &[]
        };
        // While the answer waits for room, the next tasks are taken in:
        // the pool may be waiting for room to send them.
        let header = crate::codec::encode(&Done {
            id: run.id,
            outcome,
        })?;
        conn.send_parts_taking_in(&[&header, body])?;
        done += 1;
        if maxtasks > 0 && done >= maxtasks {
            return Ok(());
        }
    }
}

/// Run the `count` calls of `entry` encoded in `args`, their results onto
/// `results` (cleared first): how it ended. A panic is caught.
pub(super) fn run_chunk(
    entry: TaskEntry,
    args: Carried,
    count: u32,
    results: &mut Vec<u8>,
) -> Outcome {
    results.clear();
    args.decode(false, |args| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| entry(args, count, results))) {
            Ok(Ok(())) => Outcome::Ok,
            Ok(Err(e)) => failed(&e),
            Err(panic) => Outcome::Panicked(panic_message(&*panic)),
        }
    })
    .0
}

impl Outcome {
    /// The chunk's answer as its job takes it: `results` if it ran.
    pub(super) fn into_result(self, results: Results) -> Result<Results> {
        match self {
            Outcome::Ok => Ok(results),
            Outcome::Panicked(message) => Err(Error::TaskPanicked(message)),
            Outcome::Failed { context, cause } => Err(Error::Codec {
                context,
                source: cause.map(Into::into),
            }),
        }
    }
}
