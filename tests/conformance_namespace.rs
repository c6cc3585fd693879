//! CONFORMANCE.md, "Namespace": CPython's `test_namespace`, with another
//! process reading and writing the attributes.

mod common;

use std::collections::BTreeMap;

use common::sync::{
    assert_no_objects, current_thread_runtime, not_in_redis_pass, spawn_with_tokens,
    started_sync_manager, worker_session, WORKER_LIMIT,
};
use common::worker::expect_success;
use managers::sync::NamespaceProxy;
use managers::value::Value;
use managers::{Error, Proxy, SyncError};
use serde::{Deserialize, Serialize};

fn is_key_error<T: std::fmt::Debug>(result: &managers::Result<T>) -> bool {
    matches!(result, Err(Error::Sync(SyncError::KeyError(_))))
}

// "Attributes set through the proxy are visible to other processes"
#[test]
fn attributes_are_visible_to_other_processes() {
    let manager = started_sync_manager();
    let ns = manager.namespace().unwrap();
    ns.set("name", "Bob").unwrap();
    ns.set("job", "Builder").unwrap();
    ns.set("scores", &vec![1.5, 2.5]).unwrap();
    let child = spawn_with_tokens(&manager, "worker_reads_and_writes_namespace", &[ns.token()]);
    expect_success(child, WORKER_LIMIT);
    assert_eq!(ns.get::<String>("name").unwrap(), "Robert");
    assert_eq!(ns.get::<u32>("from_child").unwrap(), 7);
    assert!(!ns.contains("job").unwrap(), "the child deleted it");
    drop(ns);
    assert_no_objects(&manager);
}

#[test]
#[ignore = "worker process of attributes_are_visible_to_other_processes"]
fn worker_reads_and_writes_namespace() {
    let (manager, tokens) = worker_session();
    let ns: NamespaceProxy = manager.proxy_from_token(&tokens[0]).unwrap();
    assert_eq!(ns.get::<String>("name").unwrap(), "Bob");
    assert_eq!(ns.get::<String>("job").unwrap(), "Builder");
    assert_eq!(ns.get::<Vec<f64>>("scores").unwrap(), [1.5, 2.5]);
    ns.set("name", "Robert").unwrap();
    ns.set("from_child", &7).unwrap();
    ns.delete("job").unwrap();
}

// "its printed form is `Namespace(name='Bob')` style" (CPython: set name and
// job, delete job, `str(n) == "Namespace(name='Bob')"`)
#[test]
fn the_printed_form_is_python_s() {
    let manager = started_sync_manager();
    let ns = manager.namespace().unwrap();
    assert_eq!(ns.to_string(), "Namespace()");
    ns.set("name", "Bob").unwrap();
    ns.set("job", "Builder").unwrap();
    assert_eq!(
        (
            ns.get::<String>("name").unwrap(),
            ns.get::<String>("job").unwrap()
        ),
        ("Bob".to_string(), "Builder".to_string())
    );
    ns.delete("job").unwrap();
    assert_eq!(ns.to_string(), "Namespace(name='Bob')");
    assert_eq!(ns.repr().unwrap(), "Namespace(name='Bob')");
    assert!(ns.contains("name").unwrap());
    assert!(!ns.contains("job").unwrap());

    // The example: items sorted, values as Python prints them.
    ns.set("y", "hello").unwrap();
    ns.set("x", &10).unwrap();
    ns.delete("name").unwrap();
    assert_eq!(ns.to_string(), "Namespace(x=10, y='hello')");
    ns.set("z", &(None::<i32>, true, 2.25, vec![1, 2])).unwrap();
    assert_eq!(
        ns.to_string(),
        "Namespace(x=10, y='hello', z=[None, True, 2.25, [1, 2]])"
    );
    // Debug names the proxy and the object.
    assert!(format!("{ns:?}").contains("typeid 'Namespace'"), "{ns:?}");
    drop(ns);
    assert_no_objects(&manager);
}

// "names starting with `_` belong to the proxy, not the shared object"
#[test]
fn underscore_names_belong_to_the_proxy() {
    let manager = started_sync_manager();
    let ns = manager.namespace().unwrap();
    ns.set("name", "Bob").unwrap();
    for name in ["_hidden", "__dict__", "_"] {
        let set = ns.set(name, "hidden");
        assert!(
            matches!(set, Err(Error::Sync(SyncError::ValueError(_)))),
            "{name}: {set:?}"
        );
        assert!(ns.get::<String>(name).is_err(), "{name}");
        assert!(ns.delete(name).is_err(), "{name}");
        assert!(ns.contains(name).is_err(), "{name}");
    }
    // Nothing reached the shared object, and a client that sends such a
    // name anyway is refused by the server too.
    assert_eq!(ns.attributes().unwrap(), ["name"]);
    let raw = ns.setattr("_hidden", Value::from(1));
    assert!(
        matches!(raw, Err(managers::Error::Sync(SyncError::ValueError(_)))),
        "{raw:?}"
    );
    assert_eq!(ns.attributes().unwrap(), ["name"]);
    assert_eq!(ns.to_string(), "Namespace(name='Bob')");
    drop(ns);
    assert_no_objects(&manager);
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Person {
    name: String,
    age: u32,
}

// "Attributes set through the proxy ...": typed get/set/delete, missing
// attributes, and every attribute at once.
#[test]
fn typed_attributes_and_missing_ones() {
    let manager = started_sync_manager();
    let ns = manager.namespace().unwrap();
    ns.set("name", "Ann").unwrap();
    ns.set("age", &41_u32).unwrap();
    ns.set("age", &42_u32).unwrap();
    assert_eq!(ns.attributes().unwrap(), ["name", "age"]);
    assert_eq!(
        ns.to_map::<Person>().unwrap(),
        Person {
            name: "Ann".into(),
            age: 42
        }
    );
    let map: BTreeMap<String, Value> = ns.to_map().unwrap();
    assert_eq!(map["age"], Value::from(42));
    // A wrongly typed read is a decoding error, not garbage.
    assert!(matches!(ns.get::<String>("age"), Err(Error::Codec { .. })));

    assert!(is_key_error(&ns.get::<u32>("missing")));
    assert!(is_key_error(&ns.delete("missing")));
    ns.delete("age").unwrap();
    assert!(is_key_error(&ns.get::<u32>("age")));
    assert_eq!(ns.attributes().unwrap(), ["name"]);
    drop(ns);
    assert_no_objects(&manager);
}

// "Proxies dropped => number_of_objects() == 0", through a namespace: an
// attribute holding a proxy keeps its object alive until it is replaced,
// deleted, or the namespace goes.
#[test]
fn attributes_keep_nested_proxies_alive() {
    if not_in_redis_pass("objects in Redis live by leases, not by the proxies they hold") {
        return;
    }
    let manager = started_sync_manager();
    let ns = manager.namespace().unwrap();
    ns.set("done", &manager.event().unwrap()).unwrap();
    ns.set("count", &manager.value(&0_i64).unwrap()).unwrap();
    ns.set("also", &manager.event().unwrap()).unwrap();
    assert_eq!(manager.number_of_objects().unwrap(), 4);
    ns.get::<managers::sync::EventProxy>("done")
        .unwrap()
        .set()
        .unwrap();
    let count: managers::sync::ValueProxy<i64> = ns.get("count").unwrap();
    count.set(&5).unwrap();
    drop(count);
    assert!(ns
        .get::<managers::sync::EventProxy>("done")
        .unwrap()
        .is_set()
        .unwrap());

    // Read as plain values rather than proxies, the tokens hold nothing.
    let untyped: BTreeMap<String, Value> = ns.to_map().unwrap();
    assert!(matches!(untyped["done"], Value::Token(_)));
    assert!(ns.get::<String>("count").is_err());
    drop(untyped);
    assert_eq!(manager.number_of_objects().unwrap(), 4);

    ns.set("done", &false).unwrap();
    assert_eq!(manager.number_of_objects().unwrap(), 3, "replaced");
    ns.delete("count").unwrap();
    assert_eq!(manager.number_of_objects().unwrap(), 2, "deleted");
    // A namespace holding itself does not keep itself alive.
    ns.set("me", &ns).unwrap();
    let me: NamespaceProxy = ns.get("me").unwrap();
    assert!(!me.get::<bool>("done").unwrap());
    drop((ns, me));
    assert_no_objects(&manager);
}

// "Attributes set through the proxy are visible ...", through the async
// proxy; `_` names are refused there too.
#[test]
fn the_async_proxy_reads_and_writes_attributes() {
    let manager = started_sync_manager();
    let ns = manager.namespace().unwrap().to_async();
    let runtime = current_thread_runtime();
    runtime.block_on(async {
        ns.set("name", "Bob").await.unwrap();
        ns.set("job", "Builder").await.unwrap();
        assert_eq!(ns.get::<String>("name").await.unwrap(), "Bob");
        ns.delete("job").await.unwrap();
        assert!(!ns.contains("job").await.unwrap());
        assert_eq!(ns.attributes().await.unwrap(), ["name"]);
        assert_eq!(ns.repr().await.unwrap(), "Namespace(name='Bob')");
        let map: BTreeMap<String, String> = ns.to_map().await.unwrap();
        assert_eq!(map["name"], "Bob");
        assert!(matches!(
            ns.set("_hidden", &1).await,
            Err(Error::Sync(SyncError::ValueError(_)))
        ));
        assert!(is_key_error(&ns.get::<String>("job").await));
    });
    let blocking = ns.to_blocking();
    assert_eq!(blocking.to_string(), "Namespace(name='Bob')");
    drop((ns, blocking));
    assert_no_objects(&manager);
}
