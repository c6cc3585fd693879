//! Python docs' `Pool` examples: a pool of 5 maps `f(x) = x*x` over
//! `[1, 2, 3]`; a pool of 4 maps it over `range(10)`, then the same with
//! `imap_unordered`, gets four workers' pids with `apply_async`, loses
//! patience with a 10-second task; then a task kills its worker, which the
//! caller is told, and the same pool goes on. Well under 10 seconds: the
//! sleeping task ends with the pool, it is not waited for.
//!
//! `cargo run --example pool`

use std::time::Duration;

use managers::{Error, Pool};

fn f(x: i64) -> i64 {
    x * x
}

fn pid() -> u32 {
    std::process::id()
}

fn sleep(seconds: u64) {
    std::thread::sleep(Duration::from_secs(seconds));
}

fn abort() {
    std::process::abort();
}

fn main() -> managers::Result<()> {
    managers::bootstrap();

    let pool = Pool::new(5)?;
    println!("{:?}", pool.map(f, [1, 2, 3], None)?);
    drop(pool);

    let pool = Pool::new(4)?;
    // print "[0, 1, 4,..., 81]"
    println!("{:?}", pool.map(f, 0..10, None)?);

    // print the same numbers in arbitrary order
    for square in pool.imap_unordered(f, 0..10, None)? {
        println!("{}", square?);
    }

    // evaluate "os.getpid()" asynchronously, four times: several workers
    let pending: Vec<_> = (0..4)
        .map(|_| pool.apply_async(pid, ()))
        .collect::<managers::Result<_>>()?;
    let pids = pending
        .iter()
        .map(|r| r.get_timeout(Duration::from_secs(1)))
        .collect::<managers::Result<Vec<u32>>>()?;
    println!("{pids:?}");

    // make a single worker sleep for 10 seconds
    let slow = pool.apply_async(sleep, (10,))?;
    match slow.get_timeout(Duration::from_secs(1)) {
        Err(Error::Timeout { .. }) => {
            println!("We lacked patience and got a multiprocessing.TimeoutError")
        }
        other => println!("unexpected: {other:?}"),
    }

    // a task that kills its worker: its caller is told, the pool goes on
    match pool.apply(abort, ()) {
        Err(Error::WorkerDied { pid, exitcode }) => {
            println!("the worker (pid {pid}) died running the task (exit code {exitcode})")
        }
        other => println!("unexpected: {other:?}"),
    }
    println!("{:?}", pool.map(f, 0..10, None)?);

    // `with Pool(...) as pool:` ends by terminating: the sleeper too
    drop(pool);
    Ok(())
}
