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

use managers::process::TaskRef;
use managers::process::{Connection, Lock, Pipe, Queue, SharedArray, SharedValue};
use managers::proxy::MethodRef;
use managers::server::Shared;
use managers::sync::{DictProxy, ListProxy, SyncManager};
use managers::{Error, ManagerOptions, Pool, Process, ProcessError};

fn main() {
    managers::bootstrap();
    common::harness::run(named![
        forged_task_offsets_are_refused_where_they_are_decoded,
        garbage_task_refs_never_reach_a_worker,
        the_managers_pool_refuses_forged_tasks_at_submit,
        pool_initargs_cross_as_process_arguments_do,
        proxies_are_task_arguments_of_both_pools,
        proxies_cross_pipes_and_queues,
        descriptors_cross_pipes,
        what_cannot_cross_is_refused_naming_its_type,
        a_tls_managers_proxy_works_in_a_child,
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
        if let Err(Error::WorkerDied { pid, exitcode }) =
            received.recv_timeout(Duration::from_secs(30)).unwrap()
        {
            panic!("worker {pid} died ({exitcode}) on round {round}")
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
            managers::Proxy::base(&pool).call(method, &(&forged, &chunks));
        match sent {
            Err(e @ Error::Remote(_)) => {
                let text = chain(&e);
                assert!(text.contains("is not the entry of a pool task"), "{text}");
            }
            other => panic!("a task moved by {shift} was not refused: {other:?}"),
        }
    }
    let truncated = managers::wire::encode(&real).unwrap();
    let sent: managers::Result<managers::value::Value> = managers::Proxy::base(&pool).call(
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

/// What a pool worker's initializer was given: issue 17 (9) found
/// `Pool(initializer=init, initargs=(q, lock, v))` impossible.
struct Initialized {
    queue: Queue<u32>,
    lock: Lock,
    value: SharedValue<i64>,
    array: SharedArray<i32>,
    dict: DictProxy<String, u32>,
    conn: Connection,
}

static INITIALIZED: std::sync::OnceLock<Initialized> = std::sync::OnceLock::new();

fn initialize(
    queue: Queue<u32>,
    lock: Lock,
    value: SharedValue<i64>,
    array: SharedArray<i32>,
    dict: DictProxy<String, u32>,
    conn: Connection,
) {
    let held = Initialized {
        queue,
        lock,
        value,
        array,
        dict,
        conn,
    };
    assert!(INITIALIZED.set(held).is_ok(), "initialized once");
}

/// A task using everything its worker's initializer received.
fn use_initialized(i: u32) -> u32 {
    let held = INITIALIZED.get().expect("the initializer ran");
    held.queue.put(i).unwrap();
    {
        let _locked = held.lock.guard().unwrap();
        held.value.update(|v| v + 1).unwrap();
    }
    held.array.set(i64::from(i % 8), 1).unwrap();
    held.dict.set(i.to_string(), i * i).unwrap();
    held.conn.send(&i).unwrap();
    std::process::id()
}

// Issue 17 (9): Pool initargs take queues, locks, shared values and arrays,
// proxies and connections, as a Process's arguments do; the workers use
// them (and workers started later get them too).
fn pool_initargs_cross_as_process_arguments_do() {
    let manager = SyncManager::new();
    manager.start().unwrap();
    let queue = Queue::new(0).unwrap();
    let lock = Lock::new().unwrap();
    let value = SharedValue::new(0i64).unwrap();
    let array = SharedArray::<i32>::zeroed(8).unwrap();
    let dict = manager.dict::<String, u32>().unwrap();
    let (ours, theirs) = Pipe::duplex().unwrap();
    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(5)
        .initializer(
            initialize,
            (
                queue.clone(),
                lock.clone(),
                value.clone(),
                array.clone(),
                dict.clone(),
                theirs,
            ),
        )
        .build()
        .unwrap();
    let pids: std::collections::BTreeSet<u32> = pool
        .map(use_initialized, 0..20u32, Some(1))
        .unwrap()
        .into_iter()
        .collect();
    assert!(pids.len() > 2, "replacement workers ran too: {pids:?}");
    let mut got: Vec<u32> = (0..20)
        .map(|_| queue.get_timeout(Duration::from_secs(10)).unwrap())
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    assert_eq!(value.value().unwrap(), 20);
    assert_eq!(array.to_vec().unwrap(), [1; 8]);
    assert_eq!(dict.len().unwrap(), 20);
    assert_eq!(dict.get("7").unwrap(), 49);
    let mut sent: Vec<u32> = (0..20).map(|_| ours.recv::<u32>().unwrap()).collect();
    sent.sort_unstable();
    assert_eq!(sent, (0..20).collect::<Vec<_>>());
}

fn record(d: DictProxy<String, i64>, i: i64) -> i64 {
    d.set(i.to_string(), i * i).unwrap();
    i
}

fn length(l: ListProxy<i64>) -> usize {
    l.len().unwrap()
}

// Issue 17 (10): a proxy as a task argument failed in the worker with
// "codec error: ... codec error"; Python pickles proxies for pool tasks.
fn proxies_are_task_arguments_of_both_pools() {
    let manager = SyncManager::new();
    manager.start().unwrap();
    let d = manager.dict::<String, i64>().unwrap();
    let l = manager.list_from(0..5i64).unwrap();
    let pool = Pool::new(2).unwrap();
    let done = pool
        .starmap(record, (0..10).map(|i| (d.clone(), i)), None)
        .unwrap();
    assert_eq!(done, (0..10).collect::<Vec<_>>());
    assert_eq!(
        pool.map(length, [l.clone(), l.clone()], None).unwrap(),
        [5, 5]
    );
    assert_eq!(
        pool.apply_async(record, (d.clone(), 10))
            .unwrap()
            .get()
            .unwrap(),
        10
    );
    // A temporary proxy: the pending result keeps its object alive until
    // the worker has it.
    let temporary = pool
        .apply_async(length, (manager.list_from(0..3i64).unwrap(),))
        .unwrap();
    assert_eq!(temporary.get().unwrap(), 3);
    assert_eq!(d.len().unwrap(), 11);
    let managed = manager.pool(Some(2)).unwrap();
    let done = managed
        .starmap(record, (20..30).map(|i| (d.clone(), i)), None)
        .unwrap();
    assert_eq!(done, (20..30).collect::<Vec<_>>());
    assert_eq!(managed.map(length, [l.clone()], None).unwrap(), [5]);
    let pending = managed
        .apply_async(length, (manager.list_from(0..4i64).unwrap(),))
        .unwrap();
    assert_eq!(pending.get().unwrap(), 4);
    assert_eq!(managed.apply(record, (d.clone(), 40)).unwrap(), 40);
    assert_eq!(d.len().unwrap(), 22);
    assert_eq!(d.get("29").unwrap(), 29 * 29);
    drop((pending, temporary, managed, pool, d, l));
    assert_eq!(manager.number_of_objects().unwrap(), 0, "nothing leaked");
}

/// A child's side of `proxies_cross_pipes_and_queues`.
fn receive_proxies(conn: Connection, queue: Queue<ListProxy<i64>>) -> managers::Result<()> {
    let d: DictProxy<String, i64> = conn.recv()?;
    d.set("through a pipe".into(), 1)?;
    let keyed: DictProxy<String, i64> = conn.recv()?;
    keyed.set("another key".into(), 2)?;
    let l = queue.get_timeout(Duration::from_secs(10))?;
    l.append(42)?;
    conn.send(&"done")
}

// Issue 17 (11): a proxy sent through a Pipe or a Queue could not be
// decoded on the other side. Through a pipe it carries how to reach its
// server (here a manager with a key of its own); through a queue, the
// receiver's authkey, as Python does.
fn proxies_cross_pipes_and_queues() {
    let manager = SyncManager::new();
    manager.start().unwrap();
    let keyed = SyncManager::with_options(ManagerOptions::new().authkey(b"not the process key"));
    keyed.start().unwrap();
    let d = manager.dict::<String, i64>().unwrap();
    let other = keyed.dict::<String, i64>().unwrap();
    let l = manager.list::<i64>().unwrap();
    let (ours, theirs) = Pipe::duplex().unwrap();
    let queue = Queue::new(0).unwrap();
    let child = Process::new(receive_proxies, (theirs, queue.clone()));
    child.start().unwrap();
    ours.send(&d).unwrap();
    ours.send(&other).unwrap();
    queue.put(l.clone()).unwrap();
    assert_eq!(ours.recv::<String>().unwrap(), "done");
    child.join().unwrap();
    assert_eq!(child.exitcode(), Some(0));
    assert_eq!(d.get("through a pipe").unwrap(), 1);
    assert_eq!(other.get("another key").unwrap(), 2);
    assert_eq!(l.to_vec().unwrap(), [42]);
}

/// A child's side of `descriptors_cross_pipes`.
fn receive_descriptors(conn: Connection) -> managers::Result<()> {
    let (lock, counter): (Lock, SharedValue<i64>) = conn.recv()?;
    let back: Connection = conn.recv()?;
    for _ in 0..100 {
        let _held = lock.guard()?;
        counter.update(|v| v + 1)?;
    }
    back.send(&"counted")
}

// Issue 17: a descriptor through a Pipe by SCM_RIGHTS, as Python's
// multiprocessing.reduction does: a lock, a shared value, a connection.
fn descriptors_cross_pipes() {
    let (ours, theirs) = Pipe::duplex().unwrap();
    let child = Process::new(receive_descriptors, (theirs,));
    child.start().unwrap();
    let lock = Lock::new().unwrap();
    let counter = SharedValue::new(0i64).unwrap();
    ours.send(&(lock.clone(), counter.clone())).unwrap();
    let (reply, back) = Pipe::duplex().unwrap();
    ours.send(&back).unwrap();
    drop(back);
    for _ in 0..100 {
        let _held = lock.guard().unwrap();
        counter.update(|v| v + 1).unwrap();
    }
    assert_eq!(reply.recv::<String>().unwrap(), "counted");
    child.join().unwrap();
    assert_eq!(child.exitcode(), Some(0));
    assert_eq!(counter.value().unwrap(), 200);
}

fn holds_a_lock(_lock: Lock) {}

// Issue 17: what cannot cross is a clear error naming the type, the cause
// kept (no bare "SerdeSerCustom").
fn what_cannot_cross_is_refused_naming_its_type() {
    let lock = Lock::new().unwrap();
    let queue: Queue<Lock> = Queue::new(0).unwrap();
    match queue.put(lock.clone()) {
        Err(Error::Process(ProcessError::CannotCross { what, route })) => {
            assert_eq!((what, route), ("a Lock", "a Queue"))
        }
        other => panic!("{other:?}"),
    }
    let manager = SyncManager::new();
    manager.start_in_thread().unwrap();
    let managed = manager.pool(Some(1)).unwrap();
    match managed.apply(holds_a_lock, (lock.clone(),)) {
        Err(Error::Process(ProcessError::CannotCross { what, route })) => {
            assert_eq!((what, route), ("a Lock", "a manager's call"))
        }
        other => panic!("{other:?}"),
    }
    let text = chain(&managers::wire::encode(&lock).unwrap_err());
    assert!(
        text.contains("a Lock cannot cross a plain serde encoding"),
        "{text}"
    );
    let value = SharedValue::new(1u8).unwrap();
    let text = chain(&managers::wire::encode(&value).unwrap_err());
    assert!(text.contains("cannot cross"), "{text}");
    assert!(!text.contains("Serde Serialization Error"), "{text}");
}

#[cfg(feature = "tls")]
fn write_through(d: DictProxy<String, i64>) -> managers::Result<()> {
    d.set("from the child".into(), 7)
}

// Issue 17 (11): a TLS manager's proxy handed to a child failed to
// connect (the TLS options were not sent).
#[cfg(feature = "tls")]
fn a_tls_managers_proxy_works_in_a_child() {
    use managers::tls::{TlsClient, TlsServer};
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (generated.cert.pem(), generated.signing_key.serialize_pem());
    let manager = SyncManager::with_options(
        ManagerOptions::new()
            .address("127.0.0.1:0")
            .tls_server(TlsServer::from_pem(cert.as_bytes(), key.as_bytes()).unwrap())
            .tls_client(TlsClient::from_ca_pem(cert.as_bytes(), "localhost").unwrap()),
    );
    manager.start_in_thread().unwrap();
    let d = manager.dict::<String, i64>().unwrap();
    let child = Process::new(write_through, (d.clone(),));
    child.start().unwrap();
    child.join().unwrap();
    assert_eq!(child.exitcode(), Some(0));
    assert_eq!(d.get("from the child").unwrap(), 7);
}

#[cfg(not(feature = "tls"))]
fn a_tls_managers_proxy_works_in_a_child() {
    println!("(built without the `tls` feature: nothing to check)");
}
