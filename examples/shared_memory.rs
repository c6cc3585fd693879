//! Python docs' "Sharing state between processes" with shared memory: a
//! child sets a `Value` of f64 and negates an `Array` of i32; then four
//! processes each make 10,000 locked increments of one `Value`.
//!
//! `cargo run --example shared_memory` prints
//!
//! ```text
//! 3.1415927
//! [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]
//! 40000
//! ```

use managers::process::{SharedArray, SharedValue};
use managers::Process;

// The docs' number, not an approximation of pi.
#[allow(clippy::approx_constant)]
fn f(n: SharedValue<f64>, a: SharedArray<i32>) -> managers::Result<()> {
    n.set_value(3.1415927)?;
    for i in 0..a.len() as i64 {
        a.set(i, -a.get(i)?)?;
    }
    Ok(())
}

fn count(counter: SharedValue<i64>, times: u32) -> managers::Result<()> {
    for _ in 0..times {
        // `with counter.get_lock(): counter.value += 1`
        let held = counter.lock()?;
        held.set(held.get() + 1);
    }
    Ok(())
}

fn main() -> managers::Result<()> {
    managers::bootstrap();

    let num = SharedValue::new(0.0f64)?;
    let arr = SharedArray::from_slice(&(0..10).collect::<Vec<i32>>())?;
    let p = Process::new(f, (num.clone(), arr.clone()));
    p.start()?;
    p.join()?;
    println!("{}", num.value()?);
    println!("{:?}", arr.to_vec()?);

    let counter = SharedValue::new(0i64)?;
    let workers: Vec<Process> = (0..4)
        .map(|_| Process::new(count, (counter.clone(), 10_000)))
        .collect();
    for w in &workers {
        w.start()?;
    }
    for w in &workers {
        w.join()?;
    }
    println!("{}", counter.value()?);
    Ok(())
}
