//! CONFORMANCE.md "Processes and shared memory", the Value, Array and lock
//! lines (CPython _TestValue, _TestArray, _TestLock), between processes,
//! and issue 8's: several processes with and without the lock (with it, no
//! lost update), a `#[derive(Pod)]` struct, a lock whose owner dies.
//!
//! Children are this binary re-executed: its own `main` (harness = false)
//! starts with `managers::bootstrap()`.

mod common;

use std::time::Duration;

use managers::process::{
    Lock, Queue, RLock, RawArray, RawValue, SharedArray, SharedLock, SharedValue,
};
use managers::{Error, Pod, Process};

fn main() {
    managers::bootstrap();
    common::harness::run(named![
        values_written_by_a_child_are_read_by_the_parent,
        locked_increments_from_four_processes_are_exact,
        raw_increments_from_four_processes_may_lose_but_never_invent,
        arrays_written_by_a_child_are_read_by_the_parent,
        a_pod_struct_is_shared,
        a_lock_excludes_another_process,
        a_lock_whose_owner_process_died_is_owner_died_once,
    ]);
}

fn join_ok(p: &Process) {
    assert!(
        p.join_timeout(Duration::from_secs(60)).unwrap(),
        "{p:?} did not end"
    );
    assert_eq!(p.exitcode(), Some(0), "{p:?}");
}

fn write_values(
    i: SharedValue<i32>,
    d: SharedValue<f64>,
    h: SharedValue<i16>,
    c: SharedValue<u8>,
) -> managers::Result<()> {
    assert_eq!(
        (i.value()?, d.value()?, h.value()?, c.value()?),
        (5, 1.25, -1, b'x')
    );
    i.set_value(-7)?;
    d.set_value(2.5)?;
    h.set_value(i16::MIN)?;
    c.set_value(b'y')
}

// "Value('i', 5), Value('d', 1.25), Value('h', -1), Value('c', b'x') read
// back what was set, from the parent after a child wrote them."
fn values_written_by_a_child_are_read_by_the_parent() {
    let (i, d, h, c) = (
        SharedValue::new(5i32).unwrap(),
        SharedValue::new(1.25f64).unwrap(),
        SharedValue::new(-1i16).unwrap(),
        SharedValue::new(b'x').unwrap(),
    );
    let p = Process::new(write_values, (i.clone(), d.clone(), h.clone(), c.clone()));
    p.start().unwrap();
    join_ok(&p);
    assert_eq!(
        (
            i.value().unwrap(),
            d.value().unwrap(),
            h.value().unwrap(),
            c.value().unwrap()
        ),
        (-7, 2.5, i16::MIN, b'y')
    );
    // "get_lock() returns the lock given": the supplied one, shared.
    let lock = Lock::new().unwrap();
    let v = SharedValue::with_lock(0u8, lock.clone()).unwrap();
    assert!(matches!(v.get_lock(), SharedLock::Lock(_)));
    let _held = lock.guard().unwrap();
    assert!(
        !v.get_lock().acquire_with(false, None).unwrap(),
        "it is the same lock"
    );
}

const TIMES: u64 = 10_000;

fn locked_increments(counter: SharedValue<u64>) -> managers::Result<()> {
    for _ in 0..TIMES {
        let held = counter.lock()?;
        held.set(held.get() + 1);
    }
    Ok(())
}

// "with the default lock, N processes x M locked increments give exactly
// N x M".
fn locked_increments_from_four_processes_are_exact() {
    let counter = SharedValue::new(0u64).unwrap();
    let workers: Vec<Process> = (0..4)
        .map(|_| Process::new(locked_increments, (counter.clone(),)))
        .collect();
    for w in &workers {
        w.start().unwrap();
    }
    for w in &workers {
        join_ok(w);
    }
    assert_eq!(counter.value().unwrap(), 4 * TIMES);
}

fn raw_increments(counter: RawValue<u64>) {
    for _ in 0..TIMES {
        counter.set_value(counter.value() + 1);
    }
}

// Without a lock ("documented as not process-safe"): updates may be lost,
// none is made up.
fn raw_increments_from_four_processes_may_lose_but_never_invent() {
    let counter = RawValue::new(0u64).unwrap();
    let workers: Vec<Process> = (0..4)
        .map(|_| Process::new(raw_increments, (counter.clone(),)))
        .collect();
    for w in &workers {
        w.start().unwrap();
    }
    for w in &workers {
        join_ok(w);
    }
    let total = counter.value();
    assert!((1..=4 * TIMES).contains(&total), "{total}");
}

fn negate(
    arr: SharedArray<i32>,
    zeros: SharedArray<f64>,
    chars: SharedArray<u8>,
    raw: RawArray<i64>,
) -> managers::Result<()> {
    {
        let held = arr.lock()?;
        for i in 0..held.len() as i64 {
            held.set(i, -held.get(i)?)?;
        }
    }
    assert_eq!(zeros.to_vec()?, [0.0; 4]);
    zeros.set_slice(Some(1), Some(3), &[1.5, 2.5])?;
    assert_eq!(chars.value()?, b"hello");
    chars.set_value(b"bye")?;
    raw.set(-1, 99)?;
    Ok(())
}

// "Array: from a size (zeroed) and from a sequence; ... slices assigned
// (arr[2:5] = ...), a child negating every element is seen by the parent;
// Array('c', ...) has value and raw."
fn arrays_written_by_a_child_are_read_by_the_parent() {
    let arr = SharedArray::from_slice(&(0..10).collect::<Vec<i32>>()).unwrap();
    let zeros = SharedArray::<f64>::zeroed(4).unwrap();
    let chars = SharedArray::from_slice(b"hello\0\0\0").unwrap();
    let raw = RawArray::from_slice(&[1i64, 2, 3]).unwrap();
    let p = Process::new(
        negate,
        (arr.clone(), zeros.clone(), chars.clone(), raw.clone()),
    );
    p.start().unwrap();
    join_ok(&p);
    assert_eq!(
        arr.to_vec().unwrap(),
        (0..10).map(|i| -i).collect::<Vec<i32>>()
    );
    assert_eq!(zeros.to_vec().unwrap(), [0.0, 1.5, 2.5, 0.0]);
    assert_eq!(chars.value().unwrap(), b"bye");
    assert_eq!(chars.raw().unwrap(), b"bye\0o\0\0\0");
    assert_eq!(raw.to_vec().unwrap(), [1, 2, 99]);
    assert!(matches!(
        arr.get(10),
        Err(Error::Sync(managers::SyncError::IndexError(_)))
    ));
}

#[derive(Clone, Copy, Debug, PartialEq, Pod)]
#[repr(C)]
struct Particle {
    position: [f64; 3],
    id: u32,
    charge: i8,
    // Pod refuses padding: the three bytes a #[repr(C)] struct would leave
    // uninitialized are a field.
    _pad: [u8; 3],
}

fn move_particles(particles: SharedArray<Particle>) -> managers::Result<()> {
    for i in 0..particles.len() as i64 {
        let mut p = particles.get(i)?;
        p.position[0] += 1.0;
        p.charge = -p.charge;
        particles.set(i, p)?;
    }
    Ok(())
}

// Issue 8: "a #[repr(C)] plain-old-data struct" as the element type.
fn a_pod_struct_is_shared() {
    let start: Vec<Particle> = (0..3)
        .map(|id| Particle {
            position: [id as f64, 0.5, -0.5],
            id,
            charge: 1,
            _pad: [0; 3],
        })
        .collect();
    let particles = SharedArray::from_slice(&start).unwrap();
    let p = Process::new(move_particles, (particles.clone(),));
    p.start().unwrap();
    join_ok(&p);
    let moved = particles.to_vec().unwrap();
    for (before, after) in start.iter().zip(&moved) {
        assert_eq!(after.position[0], before.position[0] + 1.0);
        assert_eq!((after.id, after.charge), (before.id, -1));
    }
}

fn hold(lock: RLock, told: Queue<u8>, go: Queue<u8>) -> managers::Result<()> {
    let _held = lock.guard()?;
    assert!(
        lock.acquire()? && lock.release().is_ok(),
        "re-entrant in the child too"
    );
    told.put(1)?;
    go.get()?;
    Ok(())
}

// CONFORMANCE Lock/RLock semantics across processes: another process
// cannot take it, nor release it.
fn a_lock_excludes_another_process() {
    let lock = RLock::new().unwrap();
    let (told, go) = (Queue::new(0).unwrap(), Queue::new(0).unwrap());
    let p = Process::new(hold, (lock.clone(), told.clone(), go.clone()));
    p.start().unwrap();
    told.get_timeout(Duration::from_secs(20)).unwrap();
    assert!(!lock.try_acquire().unwrap());
    assert!(!lock.acquire_timeout(Duration::from_millis(100)).unwrap());
    assert!(lock.release().is_err(), "not ours to release");
    go.put(1).unwrap();
    assert!(lock.acquire_timeout(Duration::from_secs(20)).unwrap());
    lock.release().unwrap();
    join_ok(&p);
}

fn die_holding(lock: Lock, counter: SharedValue<u64>, told: Queue<u8>) -> managers::Result<()> {
    lock.acquire()?;
    counter.set_value(1)?;
    told.put(1)?;
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}

// Issue 8: "A process that dies while holding one never hangs the others:
// the next owner gets an OwnerDied error it can recover from; CPython hangs
// here."
fn a_lock_whose_owner_process_died_is_owner_died_once() {
    let lock = Lock::new().unwrap();
    let counter = SharedValue::new(0u64).unwrap();
    let told = Queue::new(0).unwrap();
    let p = Process::new(die_holding, (lock.clone(), counter.clone(), told.clone()));
    p.start().unwrap();
    told.get_timeout(Duration::from_secs(20)).unwrap();
    assert!(!lock.try_acquire().unwrap(), "held by the child");
    p.kill().unwrap();
    p.join().unwrap();
    assert!(matches!(
        lock.acquire_timeout(Duration::from_secs(10)),
        Err(Error::OwnerDied)
    ));
    // Recover: look at the data, then take the lock as usual.
    assert_eq!(counter.value().unwrap(), 1);
    assert!(lock.acquire_timeout(Duration::from_secs(10)).unwrap());
    lock.release().unwrap();
}
