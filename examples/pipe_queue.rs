//! Python docs' "Exchanging objects between processes": one child sends
//! `[42, None, 'hello']` through a `Pipe`, another puts it on a `Queue`;
//! the parent prints what it receives from each, in Python's repr.
//!
//! `cargo run --example pipe_queue` prints
//!
//! ```text
//! [42, None, 'hello']
//! [42, None, 'hello']
//! ```

use managers::process::{Connection, Pipe, Queue};
use managers::value::Value;
use managers::Process;

fn message() -> Value {
    Value::List(vec![42.into(), Value::None, "hello".into()])
}

fn send_through_pipe(conn: Connection) -> managers::Result<()> {
    conn.send(&message())
}

fn put_on_queue(q: Queue<Value>) -> managers::Result<()> {
    q.put(message())
}

fn main() -> managers::Result<()> {
    managers::bootstrap();

    let (parent_conn, child_conn) = Pipe::duplex()?;
    let p = Process::new(send_through_pipe, (child_conn,));
    p.start()?;
    println!("{}", parent_conn.recv::<Value>()?.repr());
    p.join()?;

    let q = Queue::new(0)?;
    let p = Process::new(put_on_queue, (q.clone(),));
    p.start()?;
    println!("{}", q.get()?.repr());
    p.join()?;
    Ok(())
}
