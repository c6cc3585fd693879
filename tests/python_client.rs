//! Our client in pickle mode on CPython manager servers (3.11, 3.12,
//! 3.13; `serve_forever()` in the script's process, and a server process
//! Python's `Manager.start()` spawned): every built-in through our typed
//! proxies (dict, list, queue, lock, rlock, semaphore, condition, barrier,
//! event, namespace, value, array), the registered `get_queue` and
//! `get_dict` typeids, a proxy returned by a method, a proxy as an
//! argument, Python's exceptions as ours, references released, a wrong key
//! refused, proxies handed to a child process that uses them on the
//! CPython server. The server is `tests/python/cpython_server.py`.
//!
//! Children are this binary re-executed: its own `main` (harness = false)
//! starts with `managers::bootstrap()`.

mod common;
mod python_common;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use managers::sync::{DictProxy, QueueProxy, SyncManager};
use managers::value::Value;
use managers::{Error, ManagerOptions, Process, Serializer, SyncError};
use python_common::{pythons, script, Python, KEY};

fn main() {
    managers::bootstrap();
    common::harness::run(named![
        our_client_drives_cpython_servers,
        a_wrong_key_is_refused_by_cpython,
        proxies_to_a_cpython_server_work_in_a_child_process,
    ]);
}

/// A CPython server; killed (and reaped) on drop.
struct CpythonServer {
    child: Child,
    address: String,
}

impl CpythonServer {
    fn start(python: &Python, started_by_python: bool) -> CpythonServer {
        let mut command = Command::new(&python.path);
        command
            .arg(script("cpython_server.py"))
            .args(["127.0.0.1", "0", KEY])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if started_by_python {
            command.arg("--manager");
        }
        let mut child = command.spawn().expect("start python");
        let mut line = String::new();
        let read =
            std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
        let mut server = CpythonServer {
            child,
            address: String::new(),
        };
        let parts: Vec<&str> = line.split_whitespace().collect();
        match (read, parts.as_slice()) {
            (Ok(_), ["ready", host, port]) => server.address = format!("{host}:{port}"),
            _ => panic!("CPython {} server said {line:?}", python.version),
        }
        server
    }

    fn options(&self, key: &str) -> ManagerOptions {
        ManagerOptions::new()
            .try_address(self.address.as_str())
            .unwrap()
            .authkey(key)
            .serializer(Serializer::Pickle)
            .call_timeout(Duration::from_secs(20))
    }
}

impl Drop for CpythonServer {
    fn drop(&mut self) {
        // Closing stdin stops the server; the kill is for a stuck one.
        drop(self.child.stdin.take());
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn key_error(result: managers::Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(Error::Sync(SyncError::KeyError(key))) => key,
        other => panic!("expected a KeyError, got {other:?}"),
    }
}

/// Every built-in of a CPython SyncManager through our typed proxies.
fn drive(server: &CpythonServer, version: &str) -> managers::Result<()> {
    let manager = SyncManager::with_options(server.options(KEY));
    manager.connect()?;
    let baseline = manager.number_of_objects()?;

    // The registered typeids: a dict served with DictProxy, an AutoProxy
    // queue.
    let shared: DictProxy<String, Value> = manager.create("get_dict", &())?;
    assert_eq!(shared.get("python")?, Value::from("hello from python"));
    shared.set("rust".into(), Value::Int(42))?;
    let queue: QueueProxy<String> = manager.create("get_queue", &())?;
    queue.put("from rust".into())?;
    assert_eq!(queue.qsize()?, 1);
    assert_eq!(queue.get()?, "from rust");

    // dict
    let d = manager.dict::<String, i64>()?;
    assert!(d.is_empty()?);
    d.set("a".into(), 1)?;
    d.set("b".into(), 2)?;
    assert_eq!(d.len()?, 2);
    assert!(d.contains("a")? && !d.contains("z")?);
    assert_eq!(d.get("b")?, 2);
    assert_eq!(key_error(d.get("z")), "'z'");
    assert_eq!(d.get_opt("z")?, None);
    assert_eq!(d.get_or("z", 9)?, 9);
    assert_eq!(d.keys()?, ["a", "b"]);
    assert_eq!(d.values()?, [1, 2]);
    assert_eq!(d.items()?, [("a".to_string(), 1), ("b".to_string(), 2)]);
    assert_eq!(d.setdefault("c".into(), 3)?, 3);
    assert_eq!(d.pop("c")?, 3);
    assert_eq!(d.pop_or("c", -1)?, -1);
    d.update(vec![("d".to_string(), 4)])?;
    assert_eq!(d.popitem()?, ("d".to_string(), 4));
    assert_eq!(d.repr()?, "{'a': 1, 'b': 2}");
    // A method returning an object: CPython's #PROXY reply, adopted.
    let keys: Vec<String> = d.iter()?.collect::<managers::Result<_>>()?;
    assert_eq!(keys, ["a", "b"]);
    d.del("a")?;
    assert_eq!(key_error(d.del("a")), "'a'");
    d.clear()?;
    assert_eq!(d.len()?, 0);

    // A proxy as an argument: CPython's server rebuilds it as a proxy of
    // its own inside the list, which comes back to us as a proxy.
    let inner = manager.dict::<String, i64>()?;
    let outer = manager.list::<DictProxy<String, i64>>()?;
    outer.append(inner.clone())?;
    let again = outer.get(0)?;
    again.set("through the list".into(), 1)?;
    assert_eq!(inner.get("through the list")?, 1);
    drop((again, outer, inner));

    // list
    let l = manager.list::<i64>()?;
    l.extend(vec![3, 1, 2])?;
    l.append(5)?;
    assert_eq!(l.to_vec()?, [3, 1, 2, 5]);
    assert_eq!(l.get(-1)?, 5);
    assert!(matches!(
        l.get(10),
        Err(Error::Sync(SyncError::IndexError(_)))
    ));
    l.set(0, 4)?;
    assert_eq!(l.slice(1..3)?, [1, 2]);
    assert_eq!(l.index(&2)?, 2);
    assert_eq!(l.count(&4)?, 1);
    l.insert(0, 7)?;
    assert_eq!(l.pop()?, 5);
    l.remove(&7)?;
    assert!(matches!(
        l.remove(&7),
        Err(Error::Sync(SyncError::ValueError(_)))
    ));
    l.sort(false)?;
    assert_eq!(l.to_vec()?, [1, 2, 4]);
    l.reverse()?;
    assert_eq!(l.to_vec()?, [4, 2, 1]);
    assert_eq!(l.reversed()?, [1, 2, 4]);
    assert!(l.contains(&2)?);
    assert_eq!(l.concat(vec![9])?, [4, 2, 1, 9]);
    l.del(0)?;
    assert_eq!(l.len()?, 2);
    l.clear()?;
    assert!(l.is_empty()?);

    // queue
    let q = manager.queue::<(i64, String)>(2)?;
    q.put((1, "one".into()))?;
    q.put_nowait((2, "two".into()))?;
    assert!(q.full()?);
    assert!(matches!(
        q.put_nowait((3, "x".into())),
        Err(Error::Sync(SyncError::Full))
    ));
    assert_eq!(q.get()?, (1, "one".to_string()));
    assert_eq!(q.get_nowait()?, (2, "two".to_string()));
    assert!(q.empty()?);
    assert!(matches!(q.get_nowait(), Err(Error::Sync(SyncError::Empty))));
    assert!(matches!(
        q.get_timeout(Duration::from_millis(50)),
        Err(Error::Sync(SyncError::Empty))
    ));

    // locks
    let lock = manager.lock()?;
    assert!(lock.acquire()?);
    assert!(!lock.acquire_timeout(Duration::from_millis(20))?);
    lock.release()?;
    assert!(matches!(
        lock.release(),
        Err(Error::Sync(SyncError::RuntimeError(_)))
    ));
    let rlock = manager.rlock()?;
    assert!(rlock.acquire()? && rlock.acquire()?);
    rlock.release()?;
    rlock.release()?;
    let semaphore = manager.semaphore(2)?;
    assert!(semaphore.acquire()? && semaphore.acquire()?);
    assert!(!semaphore.try_acquire()?);
    semaphore.release()?;

    // condition and barrier
    let condition = manager.condition()?;
    assert!(condition.acquire()?);
    assert!(!condition.wait_timeout(Duration::from_millis(20))?);
    condition.notify()?;
    condition.notify_all()?;
    condition.release()?;
    let barrier = manager.barrier(1)?;
    assert_eq!(barrier.parties()?, 1);
    assert_eq!(barrier.wait(None)?, 0);
    assert!(!barrier.broken()?);

    // event
    let event = manager.event()?;
    assert!(!event.is_set()?);
    assert!(!event.wait(Some(Duration::from_millis(10)))?);
    event.set()?;
    assert!(event.is_set()? && event.wait(None)?);
    event.clear()?;

    // namespace
    let ns = manager.namespace()?;
    ns.set("x", &5)?;
    ns.set("name", "rust")?;
    assert_eq!(ns.get::<i64>("x")?, 5);
    assert!(ns.contains("name")? && !ns.contains("nope")?);
    assert!(matches!(
        ns.get::<i64>("nope"),
        Err(Error::Sync(SyncError::KeyError(_)))
    ));
    let mut names = ns.attributes()?;
    names.sort();
    assert_eq!(names, ["name", "x"]);
    ns.delete("x")?;
    assert!(!ns.contains("x")?);

    // value
    let v = manager.value(&2.5f64)?;
    assert_eq!(v.get()?, 2.5);
    v.set(&7.25)?;
    assert_eq!(v.get()?, 7.25);

    // array: an array.array('q' / 'd') in the server, through ArrayProxy.
    let a = manager.array(&[1i64, 2, 3])?;
    assert_eq!(a.len()?, 3);
    assert!(!a.is_empty()?);
    assert_eq!(a.get(-1)?, 3);
    a.set(0, &10)?;
    assert_eq!(a.to_vec()?, [10, 2, 3]);
    assert_eq!(a.slice(Some(1), None)?, [2, 3]);
    assert!(matches!(
        a.get(3),
        Err(Error::Sync(SyncError::IndexError(_)))
    ));
    let floats = manager.array(&[0.5f64, 1.5])?;
    floats.set(1, &2.25)?;
    assert_eq!(floats.to_vec()?, [0.5, 2.25]);
    assert!(manager.array(&["not a character".to_string()]).is_err());

    // Dropping the proxies releases the server's objects.
    drop((shared, queue, d, l, q, lock, rlock, semaphore));
    drop((condition, barrier, event, ns, v, a, floats));
    assert_eq!(
        manager.number_of_objects()?,
        baseline,
        "CPython {version}: every object released"
    );
    Ok(())
}

fn our_client_drives_cpython_servers() {
    let mut failures = Vec::new();
    for python in pythons() {
        for started_by_python in [false, true] {
            let server = CpythonServer::start(&python, started_by_python);
            let how = if started_by_python {
                "Manager.start()"
            } else {
                "serve_forever()"
            };
            match drive(&server, python.version) {
                Ok(()) => eprintln!("CPython {} ({how}): every built-in ok", python.version),
                Err(e) => failures.push(format!("CPython {} ({how}): {e:?}", python.version)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn a_wrong_key_is_refused_by_cpython() {
    let Some(python) = pythons().into_iter().next() else {
        return;
    };
    let server = CpythonServer::start(&python, false);
    let manager = SyncManager::with_options(server.options("not the key"));
    assert!(matches!(manager.connect(), Err(Error::Authentication(_))));
}

/// The child's half: uses the proxies it was given, on the CPython server.
fn use_in_child(dict: DictProxy<String, Value>, queue: QueueProxy<String>) -> managers::Result<()> {
    let said = dict.get("python")?;
    dict.set("child".into(), Value::Str(format!("read {}", said.repr())))?;
    queue.put("from the child".into())?;
    Ok(())
}

/// Run [`use_in_child`] in a child process with clones of the proxies.
fn in_a_child(dict: &DictProxy<String, Value>, queue: &QueueProxy<String>) -> managers::Result<()> {
    let child = Process::new(use_in_child, (dict.clone(), queue.clone()));
    child.start()?;
    assert!(
        child.join_timeout(Duration::from_secs(30))?,
        "the child ended"
    );
    assert_eq!(child.exitcode(), Some(0));
    Ok(())
}

fn proxies_to_a_cpython_server_work_in_a_child_process() {
    let mut failures = Vec::new();
    for python in pythons() {
        for started_by_python in [false, true] {
            let server = CpythonServer::start(&python, started_by_python);
            let checked = || -> managers::Result<()> {
                let manager = SyncManager::with_options(server.options(KEY));
                manager.connect()?;
                let baseline = manager.number_of_objects()?;
                let dict: DictProxy<String, Value> = manager.create("get_dict", &())?;
                let queue: QueueProxy<String> = manager.create("get_queue", &())?;
                let built = manager.dict::<String, Value>()?;
                in_a_child(&dict, &queue)?;
                assert_eq!(dict.get("child")?, Value::from("read 'hello from python'"));
                assert_eq!(queue.get_timeout(Duration::from_secs(5))?, "from the child");
                // A built-in's proxy too, in a second child.
                built.set("python".into(), Value::from("made in rust"))?;
                in_a_child(&built, &queue)?;
                assert_eq!(built.get("child")?, Value::from("read 'made in rust'"));
                assert_eq!(queue.get_timeout(Duration::from_secs(5))?, "from the child");
                // The children's references went with them.
                drop((dict, queue, built));
                assert_eq!(
                    manager.number_of_objects()?,
                    baseline,
                    "every object released"
                );
                Ok(())
            };
            let how = if started_by_python {
                "Manager.start()"
            } else {
                "serve_forever()"
            };
            if let Err(e) = checked() {
                failures.push(format!("CPython {} ({how}): {e:?}", python.version));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
