//! Issue 17: no safe call and no authenticated peer can make a process
//! jump, race or touch freed memory; and whatever crosses to a process
//! crosses every channel the same way.
//!
//! Workers and children are this binary re-executed: its own `main`
//! (harness = false) starts with `managers::bootstrap()`. Every pool,
//! process and server is dropped (terminated) however its test ends.

mod common;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use managers::sync::SyncManager;
use managers::{Error, MethodRef, Pool, Proxy, Shared, TaskRef};

fn main() {
    managers::bootstrap();
    macro_rules! named {
        ($($test:ident),* $(,)?) => { &[$((stringify!($test), $test as fn())),*] };
    }
    common::harness::run(named![
        forged_task_offsets_are_refused_where_they_are_decoded,
        garbage_task_refs_never_reach_a_worker,
        the_managers_pool_refuses_forged_tasks_at_submit,
    ]);
}

fn sqr(x: i64) -> i64 {
    x * x
}

/// A `TaskRef` as it is encoded (postcard: the image's variant and fields,
/// then the offset), so that a test can move the offset as an attacker
/// would. Decoding a real `TaskRef` into it checks the layout still agrees.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Image {
    BuildId(Vec<u8>),
    File(u64, u64, u64, i64),
    Unknown,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Forged {
    image: Image,
    entry: u64,
}

/// The real task's encoding, as a `Forged`.
fn genuine() -> Forged {
    let task = TaskRef::new::<_, (i64,), i64>(sqr).unwrap();
    let bytes = managers::wire::encode(&task).unwrap();
    let forged: Forged = managers::wire::decode(&bytes).unwrap();
    assert_eq!(managers::wire::encode(&forged).unwrap(), bytes);
    forged
}

/// The shifts of issue 17's report, and more.
const SHIFTS: [i64; 10] = [1, 3, 64, -64, 4096, 1 << 20, -1, 2, 16, -4096];

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

// Issue 17 (1): moving a TaskRef's offset by 1, 3, 64, -64, 4096 or 1 MiB
// was accepted 6 times out of 6 and killed the worker with SIGSEGV. Now no
// such TaskRef can be made: decoding refuses it, saying why, and the pool
// goes on.
fn forged_task_offsets_are_refused_where_they_are_decoded() {
    let pool = Pool::new(1).unwrap();
    let real = genuine();
    for shift in SHIFTS {
        let mut forged = real.clone();
        forged.entry = forged.entry.wrapping_add_signed(shift);
        let bytes = managers::wire::encode(&forged).unwrap();
        match managers::wire::decode::<TaskRef>(&bytes) {
            Ok(task) => panic!("an offset moved by {shift} decoded: {task:?}"),
            Err(e) => {
                let text = chain(&e);
                assert!(
                    text.contains("is not the entry of a pool task"),
                    "{shift}: {text}"
                );
            }
        }
    }
    // The genuine one still decodes and runs, and so does a map.
    let bytes = managers::wire::encode(&real).unwrap();
    let task: TaskRef = managers::wire::decode(&bytes).unwrap();
    let (sender, received) = std::sync::mpsc::channel();
    pool.submit_encoded(
        &task,
        TaskRef::chunks([(7i64,)], Some(1), 1).unwrap(),
        Box::new(move |_, result| {
            let _ = sender.send(result);
        }),
    )
    .unwrap();
    let chunk = received
        .recv_timeout(Duration::from_secs(30))
        .unwrap()
        .unwrap();
    assert_eq!(TaskRef::decode::<i64>(&chunk).unwrap(), [49]);
    assert_eq!(pool.map(sqr, 0..100, None).unwrap()[99], 99 * 99);
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

// Issue 17 (1): garbage and truncated TaskRefs, and genuine ones with
// garbage calls, give errors; no worker ever dies.
fn garbage_task_refs_never_reach_a_worker() {
    let pool = Pool::new(1).unwrap();
    let real = managers::wire::encode(&genuine()).unwrap();
    let mut rng = Rng(0x5eed_1717);
    let mut decoded = 0;
    let begun = Instant::now();
    for round in 0..3000 {
        let mut bytes = real.clone();
        match round % 4 {
            0 => bytes.truncate(rng.next() as usize % bytes.len()),
            1 => {
                let at = rng.next() as usize % bytes.len();
                bytes[at] ^= 1 << (rng.next() % 8);
            }
            2 => bytes = (0..rng.next() % 64).map(|_| rng.next() as u8).collect(),
            _ => {
                let at = bytes.len() - 1 - rng.next() as usize % 4;
                bytes[at] = rng.next() as u8;
            }
        }
        let Ok(task) = managers::wire::decode::<TaskRef>(&bytes) else {
            continue;
        };
        // Only the genuine entry decodes (or an image we refuse).
        decoded += 1;
        let garbage: Vec<u8> = (0..rng.next() % 32).map(|_| rng.next() as u8).collect();
        let (sender, received) = std::sync::mpsc::channel();
        let submitted = pool.submit_encoded(
            &task,
            vec![(garbage, 1 + (rng.next() % 3) as u32)],
            Box::new(move |_, result| {
                let _ = sender.send(result);
            }),
        );
        if submitted.is_err() {
            continue;
        }
        match received.recv_timeout(Duration::from_secs(30)).unwrap() {
            Err(Error::WorkerDied { pid, exitcode }) => {
                panic!("worker {pid} died ({exitcode}) on round {round}")
            }
            Ok(_) | Err(_) => {}
        }
    }
    assert!(decoded > 0, "some rounds keep the genuine task");
    assert!(begun.elapsed() < Duration::from_secs(120));
    assert_eq!(pool.map(sqr, 0..10, None).unwrap()[9], 81);
}

// Issue 17 (1): the manager's Pool took a TaskRef from any authenticated
// peer; a forged one is now refused at submit with the reason, the
// server's workers never see it, and the pool goes on.
fn the_managers_pool_refuses_forged_tasks_at_submit() {
    let manager = SyncManager::new();
    manager.start().unwrap();
    let pool = manager.pool(Some(1)).unwrap();
    let submit = <managers::sync::server::ManagedPool as Shared>::METHODS
        .iter()
        .find(|m| m.name == "submit")
        .expect("the pool's submit method");
    let method = MethodRef::named(submit.name, submit.fingerprint);
    let chunks = TaskRef::chunks([(3i64,)], Some(1), 1).unwrap();
    let real = genuine();
    for shift in SHIFTS {
        let mut forged = real.clone();
        forged.entry = forged.entry.wrapping_add_signed(shift);
        let sent: managers::Result<managers::value::Value> =
            pool.raw().base().call(method, &(&forged, &chunks));
        match sent {
            Err(e @ Error::Remote(_)) => {
                let text = chain(&e);
                assert!(text.contains("is not the entry of a pool task"), "{text}");
            }
            other => panic!("a task moved by {shift} was not refused: {other:?}"),
        }
    }
    let truncated = managers::wire::encode(&real).unwrap();
    let sent: managers::Result<managers::value::Value> = pool.raw().base().call(
        method,
        &(
            serde_bytes_as_tuple(&truncated[..truncated.len() - 1]),
            &chunks,
        ),
    );
    assert!(matches!(sent, Err(Error::Remote(_))), "{sent:?}");
    assert_eq!(pool.map(sqr, 0..10, None).unwrap()[9], 81);
    assert_eq!(pool.apply(sqr, (12,)).unwrap(), 144);
}

/// `bytes` written as their own elements (a tuple of u8), so that a call's
/// arguments start with exactly these bytes.
fn serde_bytes_as_tuple(bytes: &[u8]) -> RawBytes<'_> {
    RawBytes(bytes)
}

struct RawBytes<'a>(&'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut tuple = serializer.serialize_tuple(self.0.len())?;
        for byte in self.0 {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }
}
