//! A pool task as a manager's server receives it from a client: a
//! `TaskRef` decoded from arbitrary bytes (`wire::decode::<TaskRef>`), and
//! when one decodes, the rest of the input as its calls, submitted to a
//! live `Pool` (`Pool::submit_encoded`) as the server's `submit` does.
//!
//! What must hold: only the offset of a real pool task's entry decodes
//! (this binary's `square`, `concat`, `tally`: the fuzzer finds them through
//! the comparisons), and whatever the calls' bytes, the worker answers
//! with a result or an error; it never dies (`Error::WorkerDied`), so a
//! forged task can make no process jump anywhere.
//!
//! The workers are this binary re-executed: libFuzzer ignores the
//! `--managers-process` argument (flags starting with `--` are the
//! target's), and `init` runs `managers::bootstrap()` before any input.

#![no_main]

use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use managers::process::TaskRef;
use managers::{Error, Pool};

fn square(x: i64) -> i64 {
    x.wrapping_mul(x)
}

fn concat(a: String, b: Vec<u8>) -> usize {
    a.len() + b.len()
}

fn tally(items: Vec<(u8, Option<String>)>) -> u64 {
    items
        .iter()
        .map(|(n, s)| u64::from(*n) + s.as_ref().map_or(0, |s| s.len() as u64))
        .sum()
}

static POOL: OnceLock<Pool> = OnceLock::new();

fn pool() -> &'static Pool {
    POOL.get_or_init(|| Pool::new(1).expect("a pool"))
}

fuzz_target!(
    init: {
        managers::bootstrap();
        // The tasks this program submits anywhere: their entries are in
        // the table a decoded offset is checked against.
        for task in [
            TaskRef::new::<_, (i64,), i64>(square),
            TaskRef::new::<_, (String, Vec<u8>), usize>(concat),
            TaskRef::new::<_, (Vec<(u8, Option<String>)>,), u64>(tally),
        ] {
            task.expect("a fn item's task");
        }
        pool();
    },
    |data: &[u8]| {
        let Some((&split, data)) = data.split_first() else {
            return;
        };
        let split = usize::from(split).min(data.len());
        let (task, calls) = data.split_at(split);
        let Ok(task) = managers::wire::decode::<TaskRef>(task) else {
            return;
        };
        let count = u32::from(calls.first().copied().unwrap_or(1) % 4);
        let (sender, received) = mpsc::channel();
        let submitted = pool().submit_encoded(
            &task,
            vec![(calls.to_vec(), count.max(1))],
            Box::new(move |_, result| {
                let _ = sender.send(result);
            }),
        );
        if submitted.is_err() {
            return;
        }
        match received.recv_timeout(Duration::from_secs(30)) {
            Ok(Err(Error::WorkerDied { pid, exitcode })) => {
                panic!("worker {pid} died ({exitcode}) on a decoded task")
            }
            Ok(_) => {}
            Err(e) => panic!("no answer: {e}"),
        }
    }
);
