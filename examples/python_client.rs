//! Our client on a CPython manager server, in pickle mode: connects to
//! HOST:PORT with authkey KEY, where a Python manager registers
//! `get_queue` (a `queue.Queue`) and `get_dict` (a `dict`, served with
//! `DictProxy`); prints `get_dict()['python']`, sets
//! `get_dict()['rust'] = 42` and puts `'from rust'` on `get_queue()`.
//!
//! The Python side (3.11, 3.12 or 3.13):
//!
//! ```python
//! import queue
//! from multiprocessing.managers import BaseManager, DictProxy
//! q, d = queue.Queue(), {'python': 'hello from python'}
//! class M(BaseManager): pass
//! M.register('get_queue', callable=lambda: q)
//! M.register('get_dict', callable=lambda: d, proxytype=DictProxy)
//! M(address=('127.0.0.1', 50000), authkey=b'KEY').get_server().serve_forever()
//! ```
//!
//! then `cargo run --example python_client -- 127.0.0.1:50000 KEY`.

use managers::server::Registry;
use managers::sync::{DictProxy, QueueProxy};
use managers::value::Value;
use managers::{BaseManager, ManagerOptions, Serializer};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(address), Some(key)) = (args.next(), args.next()) else {
        eprintln!("usage: python_client HOST:PORT AUTHKEY   (e.g. 127.0.0.1:50000 secret)");
        std::process::exit(2);
    };
    let run = || -> managers::Result<()> {
        let options = ManagerOptions::new()
            .try_address(address.as_str())?
            .authkey(key.as_str())
            .serializer(Serializer::Pickle);
        let manager = BaseManager::new(Registry::new, options);
        manager.connect()?;
        // Any Python value: printed as Python would.
        let dict: DictProxy<String, Value> = manager.create("get_dict", &())?;
        println!("{}", dict.get("python")?.repr());
        dict.set("rust".into(), Value::Int(42))?;
        let queue: QueueProxy<String> = manager.create("get_queue", &())?;
        queue.put("from rust".into())?;
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("python_client: {e}");
        std::process::exit(1);
    }
}
