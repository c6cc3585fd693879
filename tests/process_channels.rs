//! CONFORMANCE.md "Processes and shared memory", the Pipe and Queue lines
//! (CPython _TestConnection, _TestQueue, TestSimpleQueue), between real
//! processes, and issue 8's channel tests: both directions, one-way pipes,
//! end of file when the peer exits, 16 MiB messages, 4 producers x 4
//! consumers x 10,000 items, JoinableQueue join, grandchildren.
//!
//! Children are this binary re-executed: its own `main` (harness = false)
//! starts with `managers::bootstrap()`. A `Process` dropped while a test
//! panics kills its child.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use managers::process::{
    Connection, JoinableQueue, Lock, Pipe, Queue, RecvOnly, SendOnly, SimpleQueue,
};
use managers::value::Value;
use managers::{Error, Process, SyncError};

fn main() {
    managers::bootstrap();
    common::harness::run(named![
        a_pipe_carries_values_and_bytes_both_ways,
        a_one_way_pipe_carries_16_mib_to_the_parent,
        end_of_file_when_the_peer_exits,
        a_queue_from_a_child_arrives_in_order,
        queue_limits_and_timeouts_between_processes,
        four_producers_four_consumers_lose_and_repeat_nothing,
        items_outlive_their_producer,
        a_killed_producer_leaves_the_queue_usable,
        joinable_queue_join_waits_for_four_workers,
        simple_queue_between_processes,
        grandchildren_use_a_queue_and_a_pipe,
        pipes_go_through_shared_memory_unless_asked_for_sockets,
        a_sender_blocked_on_a_full_pipe_sees_its_reader_killed,
        a_thousand_pipes_leave_no_descriptor_or_mapping_behind,
        four_producers_share_one_pipe_end_under_a_lock,
        four_producers_send_on_one_pipe_end_at_once,
        a_writer_killed_mid_message_breaks_the_pipe_for_the_others,
    ]);
}

fn within<T>(limit: Duration, what: &str, f: impl FnOnce() -> T) -> T {
    let begun = Instant::now();
    let result = f();
    assert!(begun.elapsed() < limit, "{what} took {:?}", begun.elapsed());
    result
}

fn join_ok(p: &Process) {
    assert!(
        p.join_timeout(Duration::from_secs(60)).unwrap(),
        "{p:?} did not end"
    );
    assert_eq!(p.exitcode(), Some(0), "{p:?}");
}

/// Echo: each value comes back doubled, each byte message reversed; stops
/// at end of file.
fn echo(conn: Connection) -> managers::Result<()> {
    loop {
        match conn.recv::<Value>() {
            Ok(Value::Int(n)) => conn.send(&Value::Int(n * 2))?,
            Ok(Value::Bytes(b)) => {
                conn.send_bytes(&b.iter().rev().copied().collect::<Vec<u8>>())?;
                let raw = conn.recv_bytes()?;
                conn.send_bytes(&raw)?;
            }
            Ok(other) => conn.send(&other)?,
            Err(Error::Eof) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

// "send/recv of several values in order; send_bytes/recv_bytes including
// offset/size forms; a Connection sent to a child process still works
// there"
fn a_pipe_carries_values_and_bytes_both_ways() {
    let (ours, theirs) = Pipe::duplex().unwrap();
    let p = Process::new(echo, (theirs,));
    p.start().unwrap();
    for n in 0..100 {
        ours.send(&Value::Int(n)).unwrap();
    }
    for n in 0..100 {
        assert_eq!(ours.recv::<Value>().unwrap(), Value::Int(2 * n));
    }
    let list = Value::List(vec![42.into(), Value::None, "hello".into()]);
    ours.send(&list).unwrap();
    assert_eq!(ours.recv::<Value>().unwrap(), list);
    ours.send(&Value::Bytes(b"abc".to_vec())).unwrap();
    let buf = *b"0123456789";
    ours.send_bytes(&buf[2..2 + 5]).unwrap(); // offset 2, size 5
    let mut into = [0u8; 16];
    let n = ours.recv_bytes_into(&mut into[3..]).unwrap(); // at offset 3
    assert_eq!(&into[3..3 + n], b"cba");
    assert_eq!(ours.recv_bytes().unwrap(), b"23456");
    assert!(!ours.poll().unwrap());
    drop(ours); // the child reads end of file and returns
    join_ok(&p);
}

fn send_big(conn: Connection<SendOnly>) -> managers::Result<()> {
    let message: Vec<u8> = (0..16u32 << 20).map(|i| (i % 253) as u8).collect();
    conn.send_bytes(&message)?;
    conn.send(&"done")
}

// "duplex=false: the reader cannot send and the writer cannot receive"
// (that much is the type system's; see ui-tests/ui/pipe_ends.rs), and a
// 16 MiB message from a child.
fn a_one_way_pipe_carries_16_mib_to_the_parent() {
    let (reader, writer): (Connection<RecvOnly>, Connection<SendOnly>) = Pipe::simplex().unwrap();
    let p = Process::new(send_big, (writer,));
    p.start().unwrap();
    let message = reader.recv_bytes().unwrap();
    assert_eq!(message.len(), 16 << 20);
    assert!(message
        .iter()
        .enumerate()
        .all(|(i, b)| *b == (i % 253) as u8));
    assert_eq!(reader.recv::<String>().unwrap(), "done");
    join_ok(&p);
    // Our copy of the writer closed when the child took it: end of file.
    assert!(matches!(reader.recv::<u8>(), Err(Error::Eof)));
}

fn exit_at_once(_conn: Connection) {}

fn hold_until_killed(conn: Connection) {
    conn.send(&"ready").unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

// "recv after the peer closed is EOFError", whether the peer returned or
// was killed: never a hang.
fn end_of_file_when_the_peer_exits() {
    let (ours, theirs) = Pipe::duplex().unwrap();
    let p = Process::new(exit_at_once, (theirs,));
    p.start().unwrap();
    within(Duration::from_secs(10), "recv after exit", || {
        assert!(matches!(ours.recv::<u8>(), Err(Error::Eof)));
    });
    join_ok(&p);
    let (ours, theirs) = Pipe::duplex().unwrap();
    let p = Process::new(hold_until_killed, (theirs,));
    p.start().unwrap();
    assert_eq!(ours.recv::<String>().unwrap(), "ready");
    p.kill().unwrap();
    within(Duration::from_secs(10), "recv after kill", || {
        assert!(matches!(ours.recv::<u8>(), Err(Error::Eof)));
    });
    p.join().unwrap();
    assert!(matches!(ours.send(&1u8), Err(Error::Eof)));
}

fn put_twenty(queue: Queue<u32>) -> managers::Result<()> {
    for i in 0..20 {
        queue.put(i)?;
    }
    Ok(())
}

// CONFORMANCE Queue: "20 items put by a child process arrive in order,
// then Empty."
fn a_queue_from_a_child_arrives_in_order() {
    let queue = Queue::new(0).unwrap();
    let p = Process::new(put_twenty, (queue.clone(),));
    p.start().unwrap();
    for i in 0..20 {
        assert_eq!(queue.get_timeout(Duration::from_secs(20)).unwrap(), i);
    }
    join_ok(&p);
    assert!(matches!(
        queue.get_nowait(),
        Err(Error::Sync(SyncError::Empty))
    ));
}

fn fill_then_report(queue: Queue<u32>, report: Queue<bool>) -> managers::Result<()> {
    for i in 0..3 {
        queue.put(i)?;
    }
    let full = queue.full();
    let refused = matches!(
        queue.put_timeout(9, Duration::from_millis(100)),
        Err(Error::Sync(SyncError::Full))
    );
    report.put(full && refused)
}

// "same put/get/Empty/Full/qsize rules as the manager queue, between
// processes; close() then put fails".
fn queue_limits_and_timeouts_between_processes() {
    let queue: Queue<u32> = Queue::new(3).unwrap();
    let report = Queue::new(0).unwrap();
    let p = Process::new(fill_then_report, (queue.clone(), report.clone()));
    p.start().unwrap();
    assert!(
        report.get_timeout(Duration::from_secs(20)).unwrap(),
        "the child saw Full"
    );
    join_ok(&p);
    assert_eq!(queue.qsize(), 3);
    assert!(queue.full());
    assert!(matches!(
        queue.put_nowait(3),
        Err(Error::Sync(SyncError::Full))
    ));
    let begun = Instant::now();
    assert!(matches!(
        queue.put_timeout(3, Duration::from_millis(200)),
        Err(Error::Sync(SyncError::Full))
    ));
    assert!(begun.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        [
            queue.get().unwrap(),
            queue.get().unwrap(),
            queue.get().unwrap()
        ],
        [0, 1, 2]
    );
    let begun = Instant::now();
    assert!(matches!(
        queue.get_timeout(Duration::from_millis(200)),
        Err(Error::Sync(SyncError::Empty))
    ));
    assert!(begun.elapsed() >= Duration::from_millis(200));
    queue.close();
    assert!(queue.put(1).is_err());
    queue.join_thread().unwrap();
}

const PER_PRODUCER: u32 = 10_000;

fn produce(id: u8, queue: Queue<Option<(u8, u32)>>) -> managers::Result<()> {
    for seq in 0..PER_PRODUCER {
        queue.put(Some((id, seq)))?;
    }
    Ok(())
}

fn consume(
    queue: Queue<Option<(u8, u32)>>,
    results: Queue<Vec<(u8, u32)>>,
) -> managers::Result<()> {
    let mut got = Vec::new();
    while let Some(item) = queue.get()? {
        got.push(item);
    }
    results.put(got)
}

// Issue 8: "Queue with 4 producers x 4 consumers x 10,000 items, nothing
// lost or duplicated" (and each producer's items in order for any one
// consumer: the queue is FIFO).
fn four_producers_four_consumers_lose_and_repeat_nothing() {
    let queue = Queue::with_capacity(1000, 1 << 20).unwrap();
    let results = Queue::new(0).unwrap();
    let consumers: Vec<Process> = (0..4)
        .map(|_| Process::new(consume, (queue.clone(), results.clone())))
        .collect();
    let producers: Vec<Process> = (0..4u8)
        .map(|id| Process::new(produce, (id, queue.clone())))
        .collect();
    for p in consumers.iter().chain(&producers) {
        p.start().unwrap();
    }
    for p in &producers {
        join_ok(p);
    }
    for _ in &consumers {
        queue.put(None).unwrap();
    }
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for _ in &consumers {
        let got = results.get_timeout(Duration::from_secs(60)).unwrap();
        for id in 0..4u8 {
            let mine: Vec<u32> = got
                .iter()
                .filter(|(p, _)| *p == id)
                .map(|(_, s)| *s)
                .collect();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "producer {id}'s items out of order"
            );
        }
        total += got.len();
        seen.extend(got);
    }
    for p in &consumers {
        join_ok(p);
    }
    assert_eq!(
        total,
        4 * PER_PRODUCER as usize,
        "nothing lost, nothing twice"
    );
    assert_eq!(seen.len(), total);
    assert!(queue.empty());
}

fn put_and_exit(queue: Queue<u32>) -> managers::Result<()> {
    for i in 0..1000 {
        queue.put(i)?;
    }
    // Exit at once: nothing may be left in a buffer of this process.
    std::process::exit(0)
}

// Issue 8: "once put returns, the item survives its producer exiting".
fn items_outlive_their_producer() {
    let queue = Queue::new(0).unwrap();
    let p = Process::new(put_and_exit, (queue.clone(),));
    p.start().unwrap();
    join_ok(&p);
    assert_eq!(queue.qsize(), 1000);
    for i in 0..1000 {
        assert_eq!(queue.get_nowait().unwrap(), i);
    }
}

fn put_forever(queue: Queue<u64>) -> managers::Result<()> {
    for i in 0.. {
        queue.put(i)?;
    }
    Ok(())
}

// A producer killed at any point (perhaps holding the queue's lock, half
// way through a put): the queue stays whole and usable.
fn a_killed_producer_leaves_the_queue_usable() {
    for _ in 0..5 {
        let queue: Queue<u64> = Queue::with_capacity(64, 4096).unwrap();
        let p = Process::new(put_forever, (queue.clone(),));
        p.start().unwrap();
        let mut next = 0;
        for _ in 0..2000 {
            assert_eq!(queue.get_timeout(Duration::from_secs(20)).unwrap(), next);
            next += 1;
        }
        p.kill().unwrap();
        p.join().unwrap();
        while let Ok(item) = queue.get_timeout(Duration::from_millis(50)) {
            assert_eq!(item, next, "what is left is whole and in order");
            next += 1;
        }
        queue.put(7).unwrap();
        assert_eq!(queue.get_timeout(Duration::from_secs(5)).unwrap(), 7);
    }
}

fn work(queue: JoinableQueue<Option<u32>>, done: Queue<u32>) -> managers::Result<()> {
    while let Some(n) = queue.get()? {
        std::thread::sleep(Duration::from_millis(2));
        done.put(n)?;
        queue.task_done()?;
    }
    queue.task_done()
}

// CONFORMANCE JoinableQueue: "join() returns once 4 worker processes have
// called task_done() for every item".
fn joinable_queue_join_waits_for_four_workers() {
    let queue = JoinableQueue::new(0).unwrap();
    let done = Queue::new(0).unwrap();
    let workers: Vec<Process> = (0..4)
        .map(|_| Process::new(work, (queue.clone(), done.clone())))
        .collect();
    for w in &workers {
        w.start().unwrap();
    }
    for n in 0..40 {
        queue.put(Some(n)).unwrap();
    }
    within(Duration::from_secs(30), "join", || queue.join().unwrap());
    assert_eq!(done.qsize(), 40, "every task was done before join returned");
    for _ in &workers {
        queue.put(None).unwrap();
    }
    queue.join().unwrap();
    for w in &workers {
        join_ok(w);
    }
    assert!(matches!(
        queue.task_done(),
        Err(Error::Sync(SyncError::ValueError(_)))
    ));
}

fn simple_put(queue: SimpleQueue<String>) -> managers::Result<()> {
    queue.put("one".into())?;
    queue.put("two".into())
}

// CONFORMANCE: "SimpleQueue has empty, put, get, close".
fn simple_queue_between_processes() {
    let queue = SimpleQueue::new().unwrap();
    assert!(queue.empty());
    let p = Process::new(simple_put, (queue.clone(),));
    p.start().unwrap();
    assert_eq!(queue.get().unwrap(), "one");
    assert_eq!(queue.get().unwrap(), "two");
    join_ok(&p);
    assert!(queue.empty());
    queue.close();
    assert!(queue.put("three".into()).is_err());
}

fn middle(queue: Queue<String>, conn: Connection) -> managers::Result<()> {
    let leaf = Process::new(leaf, (queue, conn));
    leaf.start()?;
    leaf.join()?;
    match leaf.exitcode() {
        Some(0) => Ok(()),
        other => Err(Error::Spawn(format!("the grandchild ended with {other:?}"))),
    }
}

fn leaf(queue: Queue<String>, conn: Connection) -> managers::Result<()> {
    let name = managers::current_process().name().to_string();
    queue.put(name.clone())?;
    conn.send(&name)
}

// "Everything here works from a Process started by a Process."
fn grandchildren_use_a_queue_and_a_pipe() {
    let queue = Queue::new(0).unwrap();
    let (ours, theirs) = Pipe::duplex().unwrap();
    let p = Process::new(middle, (queue.clone(), theirs));
    p.start().unwrap();
    let expected = format!("{}:1", p.name());
    assert_eq!(
        queue.get_timeout(Duration::from_secs(30)).unwrap(),
        expected
    );
    assert_eq!(ours.recv::<String>().unwrap(), expected);
    join_ok(&p);
}

/// Send back what comes, and a connection that comes with a message: its
/// first value, doubled, through it.
fn relay(conn: Connection) -> managers::Result<()> {
    let inner: Connection = conn.recv()?;
    let n: u64 = inner.recv()?;
    inner.send(&(2 * n))?;
    loop {
        match conn.recv_bytes() {
            Ok(bytes) => conn.send_bytes(&bytes)?,
            Err(Error::Eof) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

// Issue 19: `Pipe` through shared memory. Both kinds of pipe carry the
// same things (values, a connection in a message, messages larger than
// the 64 KiB lane, in order); the socket kind's descriptor polls as a
// socket's does.
fn pipes_go_through_shared_memory_unless_asked_for_sockets() {
    let (a, b) = Pipe::duplex().unwrap();
    assert!(a.is_shared_memory() && b.is_shared_memory());
    let (r, w) = Pipe::simplex().unwrap();
    assert!(r.is_shared_memory() && w.is_shared_memory());
    let (sa, sb) = Pipe::duplex_socket().unwrap();
    assert!(!sa.is_shared_memory() && !sb.is_shared_memory());
    let (sr, sw) = Pipe::simplex_socket().unwrap();
    assert!(!sr.is_shared_memory() && !sw.is_shared_memory());
    drop((r, w, sr, sw));
    for (ours, theirs) in [(a, b), (sa, sb)] {
        let shm = ours.is_shared_memory();
        let p = Process::new(relay, (theirs,));
        p.start().unwrap();
        // A connection of the other kind crosses in a message.
        let (near, far) = if shm {
            Pipe::duplex_socket().unwrap()
        } else {
            Pipe::duplex().unwrap()
        };
        ours.send(&far).unwrap();
        drop(far);
        near.send(&21u64).unwrap();
        assert_eq!(near.recv::<u64>().unwrap(), 42, "shm {shm}");
        for len in [0usize, 1, 65_535, 65_536, 65_537, 300_001] {
            let message: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            ours.send_bytes(&message).unwrap();
            assert_eq!(
                ours.recv_bytes().unwrap(),
                message,
                "shm {shm}, {len} bytes"
            );
        }
        if !shm {
            // Nothing to read: the socket is not readable; an echo makes it so.
            use std::os::fd::AsRawFd;
            let mut fd = libc::pollfd {
                fd: ours.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd, valid for the call.
            assert_eq!(unsafe { libc::poll(&mut fd, 1, 0) }, 0);
            ours.send_bytes(b"x").unwrap();
            // SAFETY: as above.
            assert_eq!(unsafe { libc::poll(&mut fd, 1, 10_000) }, 1);
            assert_eq!(ours.recv_bytes().unwrap(), b"x");
        }
        assert!(!ours.poll_timeout(Duration::from_millis(20)).unwrap());
        drop(ours);
        join_ok(&p);
    }
}

// Issue 19's faults for pipes: a sender waiting for room (its reader
// stopped reading) whose reader is SIGKILLed gets end of file, not a hang,
// through shared memory as through a socket.
fn a_sender_blocked_on_a_full_pipe_sees_its_reader_killed() {
    for shm in [true, false] {
        let (ours, theirs) = if shm {
            Pipe::duplex().unwrap()
        } else {
            Pipe::duplex_socket().unwrap()
        };
        let p = Process::new(hold_until_killed, (theirs,));
        p.start().unwrap();
        assert_eq!(ours.recv::<String>().unwrap(), "ready");
        let pid = p.pid().unwrap();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let at = Instant::now();
            // SAFETY: kill(2) of our own child, which has not been reaped
            // (the test joins it after this thread ends).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            at
        });
        let chunk = vec![7u8; 32 * 1024];
        let mut sent = 0usize;
        let ended = loop {
            match ours.send_bytes(&chunk) {
                Ok(()) => sent += chunk.len(),
                Err(e) => break e,
            }
            assert!(sent < 1 << 30, "a gigabyte into a pipe nobody reads");
        };
        let ended_at = Instant::now();
        let killed_at = killer.join().unwrap();
        assert!(matches!(ended, Error::Eof), "shm {shm}: {ended:?}");
        // The sender was still waiting when the kill was sent.
        assert!(
            ended_at >= killed_at,
            "shm {shm}: the send ended before the kill"
        );
        assert!(
            ended_at.saturating_duration_since(killed_at) < Duration::from_secs(5),
            "shm {shm}: the sender saw the end {:?} after the kill",
            ended_at.saturating_duration_since(killed_at)
        );
        // It had filled the lane (64 KiB: one whole message and most of
        // the next), or the socket's buffer, and waited.
        assert!(sent >= 32 * 1024, "shm {shm}: {sent} bytes sent");
        assert!(matches!(ours.send(&1u8), Err(Error::Eof)));
        p.join().unwrap();
    }
}

fn count_lines(path: &str, containing: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| l.contains(containing))
        .count()
}

fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

// Issue 19: 1,000 pipes made, used both ways and dropped: this process's
// descriptors and mappings are as many as before.
fn a_thousand_pipes_leave_no_descriptor_or_mapping_behind() {
    let (fds, maps) = (
        descriptors(),
        count_lines("/proc/self/maps", "managers-pipe"),
    );
    for i in 0..1_000u32 {
        let (a, b) = Pipe::duplex().unwrap();
        a.send(&i).unwrap();
        assert_eq!(b.recv::<u32>().unwrap(), i);
        b.send(&(i + 1)).unwrap();
        assert_eq!(a.recv::<u32>().unwrap(), i + 1);
        let (r, w) = Pipe::simplex().unwrap();
        w.send_bytes(b"one way").unwrap();
        assert_eq!(r.recv_bytes().unwrap(), b"one way");
        if i == 0 {
            assert!(count_lines("/proc/self/maps", "managers-pipe") >= maps + 2);
        }
    }
    assert_eq!(descriptors(), fds);
    assert_eq!(count_lines("/proc/self/maps", "managers-pipe"), maps);
}

/// Message `i` of producer `base`: its number, and its number again as
/// text padded to a length that varies, so messages of every size meet.
fn numbered(base: u32, i: u32) -> (u32, String) {
    (
        base + i,
        format!("{:>width$}", i, width = (i % 300) as usize),
    )
}

fn produce_under(writer: Connection<SendOnly>, lock: Lock, base: u32) -> managers::Result<()> {
    for i in 0..2_000 {
        let _held = lock.guard()?;
        writer.send(&numbered(base, i))?;
    }
    Ok(())
}

fn produce_freely(writer: Connection<SendOnly>, base: u32) -> managers::Result<()> {
    for i in 0..2_000 {
        writer.send(&numbered(base, i))?;
    }
    Ok(())
}

/// Start `producers` (each holding a clone of the pipe's writing end,
/// ours dropped) and read their 8,000 messages: each whole, each once.
fn every_message_whole_and_once(reader: &Connection<RecvOnly>, producers: &[Process]) {
    for p in producers {
        p.start().unwrap();
    }
    let mut seen = BTreeSet::new();
    within(
        Duration::from_secs(60),
        "8,000 messages from 4 producers",
        || {
            for _ in 0..8_000 {
                let (n, text): (u32, String) = reader.recv().unwrap();
                assert_eq!(text.trim_start(), (n % 10_000).to_string());
                assert!(seen.insert(n), "{n} twice");
            }
        },
    );
    for p in producers {
        join_ok(p);
    }
    assert_eq!(seen.len(), 8_000);
    assert!(matches!(reader.recv::<u32>(), Err(Error::Eof)));
}

// Python's pattern (a `multiprocessing.Queue` is one): one pipe end in
// four producer processes, each message sent under a process-shared lock.
// Through shared memory each send starts where the last writer left the
// lane, whichever process it was: every message arrives whole, once.
fn four_producers_share_one_pipe_end_under_a_lock() {
    let (reader, writer) = Pipe::simplex().unwrap();
    assert!(reader.is_shared_memory());
    let lock = Lock::new().unwrap();
    let producers: Vec<Process> = (0..4)
        .map(|p| {
            let args = (writer.try_clone().unwrap(), lock.clone(), p * 10_000);
            Process::new(produce_under, args)
        })
        .collect();
    drop(writer);
    every_message_whole_and_once(&reader, &producers);
}

// As above without the user's lock (a pool's initializer argument reaches
// every worker so): the lane's own writers' lock keeps each message whole.
fn four_producers_send_on_one_pipe_end_at_once() {
    let (reader, writer) = Pipe::simplex().unwrap();
    let producers: Vec<Process> = (0..4)
        .map(|p| Process::new(produce_freely, (writer.try_clone().unwrap(), p * 10_000)))
        .collect();
    drop(writer);
    every_message_whole_and_once(&reader, &producers);
}

fn send_a_megabyte(
    writer: Connection<SendOnly>,
    ready: Connection<SendOnly>,
) -> managers::Result<()> {
    ready.send(&"sending")?;
    writer.send_bytes(&vec![1u8; 1 << 20])
}

// A process SIGKILLed in the middle of a message (the lane full, nobody
// reading) holds the lane's writers' lock: another holder of the same end
// is told the pipe is broken (the dead one's pid is gone) instead of
// waiting for ever.
fn a_writer_killed_mid_message_breaks_the_pipe_for_the_others() {
    let (reader, writer) = Pipe::simplex().unwrap();
    let (ready_rx, ready_tx) = Pipe::simplex().unwrap();
    let p = Process::new(send_a_megabyte, (writer.try_clone().unwrap(), ready_tx));
    p.start().unwrap();
    assert_eq!(ready_rx.recv::<String>().unwrap(), "sending");
    // Let it fill the lane and wait for room, holding the lock.
    std::thread::sleep(Duration::from_millis(200));
    p.kill().unwrap();
    p.join().unwrap();
    let e = within(
        Duration::from_secs(10),
        "a send after the holder died",
        || writer.send(&1u32).unwrap_err(),
    );
    assert!(e.to_string().contains("died while it sent"), "{e}");
    // And for good: the lane holds half a message.
    let e = writer.send(&2u32).unwrap_err();
    assert!(e.to_string().contains("the pipe is broken"), "{e}");
    drop(reader);
}
