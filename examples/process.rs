//! The manager example of Python's docs, with a worker `Process`: the
//! worker gets a dict and a list proxy as its arguments, fills the dict and
//! reverses the list; the parent joins it and prints both.
//!
//! `cargo run --example process` prints
//!
//! ```text
//! {1: '1', '2': 2, 0.25: None}
//! [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
//! ```

use managers::sync::{DictProxy, ListProxy, SyncManager};
use managers::value::Value;
use managers::Process;

fn f(d: DictProxy<Value, Value>, l: ListProxy<i64>) -> managers::Result<()> {
    d.set(1.into(), "1".into())?;
    d.set("2".into(), 2.into())?;
    d.set(0.25.into(), Value::None)?;
    l.reverse()
}

fn main() -> managers::Result<()> {
    managers::bootstrap();
    let manager = SyncManager::new();
    manager.start()?;
    let d = manager.dict()?;
    let l = manager.list_from(0..10)?;

    let p = Process::new(f, (d.clone(), l.clone()));
    p.start()?;
    p.join()?;

    println!("{}", d.repr()?);
    println!("{}", l.repr()?);
    Ok(())
}
