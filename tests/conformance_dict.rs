//! CONFORMANCE.md, "dict": CPython's `_TestContainers` dict tests
//! (`test_dict`, `test_dict_iter`, `test_dict_proxy_nested`,
//! `test_nested_queue`) against `SyncManager::dict`, plus the rest of
//! `DictProxy`'s method set and the documentation's example of a dict and
//! a list shared with a worker process.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::check::expect_sync_error;
use common::sync::{
    assert_no_objects, not_in_redis_pass, rebuild, spawn_with_tokens, started_sync_manager,
    worker_session, WORKER_LIMIT,
};
use common::worker::expect_success;
use managers::sync::{DictProxy, ListProxy, QueueProxy};
use managers::value::Value;
use managers::{Proxy, SyncError};
use serde::{Deserialize, Serialize};

fn chr(i: u32) -> String {
    char::from_u32(i).unwrap().to_string()
}

fn strings<const N: usize>(entries: [(&str, i64); N]) -> Vec<(String, i64)> {
    entries.map(|(k, v)| (k.to_string(), v)).into()
}

/// "copy, keys, values, items equal a plain map built the same way." —
/// `test_dict`.
#[test]
fn copy_keys_values_and_items_equal_a_plain_map() {
    let manager = started_sync_manager();
    let d = manager.dict::<u32, String>().unwrap();
    let indices: Vec<u32> = (65..70).collect();
    for &i in &indices {
        d.set(i, chr(i)).unwrap();
    }
    let plain: HashMap<u32, String> = indices.iter().map(|&i| (i, chr(i))).collect();
    assert_eq!(d.to_map::<HashMap<_, _>>().unwrap(), plain);
    assert_eq!(
        d.copy().unwrap(),
        indices.iter().map(|&i| (i, chr(i))).collect::<Vec<_>>(),
        "in insertion order"
    );
    let mut keys = d.keys().unwrap();
    keys.sort();
    assert_eq!(keys, indices);
    let mut values = d.values().unwrap();
    values.sort();
    assert_eq!(values, indices.iter().map(|&i| chr(i)).collect::<Vec<_>>());
    let mut items = d.items().unwrap();
    items.sort();
    assert_eq!(
        items,
        indices.iter().map(|&i| (i, chr(i))).collect::<Vec<_>>()
    );
    assert_eq!(
        d.to_map::<BTreeMap<_, _>>().unwrap(),
        plain.into_iter().collect::<BTreeMap<_, _>>()
    );
    drop(d);
    assert_no_objects(&manager);
}

/// "get with default, setdefault, pop, popitem, update, clear, len,
/// contains, delete item ..."
#[test]
fn get_setdefault_pop_popitem_update_clear_len_contains_delete() {
    let manager = started_sync_manager();
    let d = manager
        .dict_from(strings([("a", 1), ("b", 2), ("c", 3)]))
        .unwrap();
    assert_eq!(d.len().unwrap(), 3);
    assert!(d.contains("a").unwrap());
    assert!(!d.contains("z").unwrap());
    assert_eq!(d.get("b").unwrap(), 2);
    assert_eq!(d.get_or("b", 0).unwrap(), 2);
    assert_eq!(d.get_or("z", 0).unwrap(), 0);
    assert_eq!(d.get_opt("z").unwrap(), None);
    assert!(
        !d.contains("z").unwrap(),
        "get with a default does not insert"
    );

    assert_eq!(d.setdefault("a".into(), 100).unwrap(), 1);
    assert_eq!(d.setdefault("d".into(), 4).unwrap(), 4);
    assert_eq!(d.get("d").unwrap(), 4);

    assert_eq!(d.pop("a").unwrap(), 1);
    assert_eq!(d.pop_or("a", -1).unwrap(), -1);
    assert_eq!(
        d.popitem().unwrap(),
        ("d".to_string(), 4),
        "last in, first out"
    );
    assert_eq!(d.keys().unwrap(), ["b", "c"]);

    d.update(strings([("c", 30), ("e", 5)])).unwrap();
    d.update(HashMap::from([("f".to_string(), 6)])).unwrap();
    assert_eq!(
        d.items().unwrap(),
        strings([("b", 2), ("c", 30), ("e", 5), ("f", 6)])
    );
    let other = manager.dict_from(strings([("g", 7)])).unwrap();
    d.update(&other).unwrap();
    assert_eq!(d.get("g").unwrap(), 7);

    d.del("b").unwrap();
    assert!(!d.contains("b").unwrap());
    assert_eq!(d.len().unwrap(), 4);
    d.clear().unwrap();
    assert_eq!(d.len().unwrap(), 0);
    assert!(d.is_empty().unwrap());
    expect_sync_error(
        d.popitem(),
        SyncError::KeyError("'popitem(): dictionary is empty'".into()),
    );
    drop((d, other));
    assert_no_objects(&manager);
}

/// "... a missing key fails with KeyError's equivalent."
#[test]
fn a_missing_key_is_a_key_error() {
    let manager = started_sync_manager();
    let d = manager.dict_from(strings([("a", 1)])).unwrap();
    expect_sync_error(d.get("missing"), SyncError::KeyError("'missing'".into()));
    expect_sync_error(d.del("missing"), SyncError::KeyError("'missing'".into()));
    expect_sync_error(d.pop("missing"), SyncError::KeyError("'missing'".into()));
    let numbers = manager.dict::<i64, i64>().unwrap();
    expect_sync_error(numbers.get(&7), SyncError::KeyError("7".into()));
    assert_eq!(d.len().unwrap(), 1, "nothing changed");
    drop((d, numbers));
    assert_no_objects(&manager);
}

/// Keys compare and hash as Python's: `1`, `1.0` and `True` are one key;
/// entries keep their insertion order.
#[test]
fn keys_follow_python_equality_and_insertion_order() {
    let manager = started_sync_manager();
    let d = manager.dict::<Value, String>().unwrap();
    d.set(Value::from(1), "int".into()).unwrap();
    d.set(Value::Float(1.0), "float".into()).unwrap();
    d.set(Value::Bool(true), "bool".into()).unwrap();
    d.set(Value::from("x"), "str".into()).unwrap();
    assert_eq!(d.len().unwrap(), 2);
    assert_eq!(d.get(&Value::Float(1.0)).unwrap(), "bool");
    assert_eq!(d.keys().unwrap(), [Value::from(1), Value::from("x")]);
    assert_eq!(d.repr().unwrap(), "{1: 'bool', 'x': 'str'}");
    drop(d);
    assert_no_objects(&manager);
}

/// "Iteration while the dict is cleared fails (RuntimeError in Python)
/// rather than returning wrong data." — `test_dict_iter`.
#[test]
fn iteration_while_the_dict_is_cleared_fails() {
    if not_in_redis_pass("a dict's iterator in Redis iterates the keys as they were") {
        return;
    }
    let manager = started_sync_manager();
    let d = manager.dict::<u32, String>().unwrap();
    let indices: Vec<u32> = (65..70).collect();
    for &i in &indices {
        d.set(i, chr(i)).unwrap();
    }
    let mut it = d.iter().unwrap();
    assert_eq!(
        it.by_ref().collect::<managers::Result<Vec<_>>>().unwrap(),
        indices
    );
    assert!(it.next().is_none(), "exhausted");
    drop(it);

    let mut it = d.iter().unwrap();
    assert_eq!(it.next().unwrap().unwrap(), 65);
    d.clear().unwrap();
    expect_sync_error(
        it.next().unwrap(),
        SyncError::RuntimeError("dictionary changed size during iteration".into()),
    );
    assert!(it.next().is_none(), "nothing after the error");
    drop(it);

    // A key added, or one swapped for another, is noticed as well; a value
    // changed is not a change of the keys.
    d.set(1, "one".into()).unwrap();
    let mut it = d.iter().unwrap();
    d.set(1, "uno".into()).unwrap();
    d.set(2, "two".into()).unwrap();
    expect_sync_error(
        it.next().unwrap(),
        SyncError::RuntimeError("dictionary changed size during iteration".into()),
    );
    drop(it);
    let mut it = d.iter().unwrap();
    d.del(&1).unwrap();
    d.set(3, "three".into()).unwrap();
    expect_sync_error(
        it.next().unwrap(),
        SyncError::RuntimeError("dictionary keys changed during iteration".into()),
    );
    drop((it, d));
    assert_no_objects(&manager);
}

/// A plain list, or the list proxy of `test_dict_proxy_nested`'s
/// `outer = self.list([[88, 99], l])`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Inner {
    Plain(Vec<i64>),
    Proxy(ListProxy<DictProxy<String, i64>>),
}

/// "Nested proxies in a dict survive dropping the outer references and
/// `clear()` of the holder; a plain (non-proxy) inner list stays a plain
/// value." — `test_dict_proxy_nested`.
#[test]
fn nested_proxies_survive_dropped_references_and_clear() {
    if not_in_redis_pass("objects in Redis live by leases, not by the proxies they hold") {
        return;
    }
    let manager = started_sync_manager();
    let pets = manager
        .dict_from(strings([("ferrets", 2), ("hamsters", 4)]))
        .unwrap();
    let supplies = manager
        .dict_from(strings([("water", 10), ("feed", 3)]))
        .unwrap();
    let d = manager
        .dict_from([
            ("pets".to_string(), pets.clone()),
            ("supplies".to_string(), supplies.clone()),
        ])
        .unwrap();

    assert_eq!(supplies.get("water").unwrap(), 10);
    assert_eq!(d.get("supplies").unwrap().get("water").unwrap(), 10);

    d.get("supplies")
        .unwrap()
        .set("blankets".into(), 5)
        .unwrap();
    assert_eq!(supplies.get("blankets").unwrap(), 5);
    assert_eq!(d.get("supplies").unwrap().get("blankets").unwrap(), 5);

    d.get("supplies").unwrap().set("water".into(), 7).unwrap();
    assert_eq!(supplies.get("water").unwrap(), 7);
    assert_eq!(d.get("supplies").unwrap().get("water").unwrap(), 7);

    drop((pets, supplies));
    assert_eq!(manager.number_of_objects().unwrap(), 3, "d holds both");
    assert_eq!(d.get("pets").unwrap().get("ferrets").unwrap(), 2);
    d.get("supplies")
        .unwrap()
        .set("blankets".into(), 11)
        .unwrap();
    assert_eq!(d.get("supplies").unwrap().get("blankets").unwrap(), 11);

    let pets = d.get("pets").unwrap();
    let supplies = d.get("supplies").unwrap();
    d.clear().unwrap();
    assert_eq!(d.len().unwrap(), 0);
    assert_eq!(supplies.get("water").unwrap(), 7);
    assert_eq!(pets.get("hamsters").unwrap(), 4);

    let l = manager.list_from([pets.clone(), supplies.clone()]).unwrap();
    l.get(0).unwrap().set("marmots".into(), 1).unwrap();
    assert_eq!(pets.get("marmots").unwrap(), 1);
    assert_eq!(l.get(0).unwrap().get("marmots").unwrap(), 1);

    drop((pets, supplies));
    assert_eq!(l.get(0).unwrap().get("marmots").unwrap(), 1);

    let outer = manager
        .list_from([Inner::Plain(vec![88, 99]), Inner::Proxy(l.clone())])
        .unwrap();
    match outer.get(0).unwrap() {
        Inner::Plain(items) => assert_eq!(items, [88, 99], "not a proxy"),
        other => panic!("expected a plain list, got {other:?}"),
    }
    match outer.get(-1).unwrap() {
        Inner::Proxy(l) => assert_eq!(l.get(-1).unwrap().get("feed").unwrap(), 3),
        other => panic!("expected a list proxy, got {other:?}"),
    }

    // When the last holder goes, the nested objects go.
    drop((d, l));
    assert_eq!(
        manager.number_of_objects().unwrap(),
        4,
        "outer holds l, l both dicts"
    );
    drop(outer);
    assert_no_objects(&manager);
}

/// "Nested proxies ..." — refcounts through replacement and removal: an
/// overwritten or deleted value gives its object back.
#[test]
fn replaced_and_removed_values_release_their_objects() {
    if not_in_redis_pass("objects in Redis live by leases, not by the proxies they hold") {
        return;
    }
    let manager = started_sync_manager();
    let d = manager.dict::<String, ListProxy<i64>>().unwrap();
    d.set("a".into(), manager.list_from([1]).unwrap()).unwrap();
    d.set("b".into(), manager.list_from([2]).unwrap()).unwrap();
    assert_eq!(manager.number_of_objects().unwrap(), 3);
    d.set("a".into(), manager.list_from([3]).unwrap()).unwrap();
    assert_eq!(
        manager.number_of_objects().unwrap(),
        3,
        "the first list went"
    );
    assert_eq!(d.get("a").unwrap().to_vec().unwrap(), [3]);
    d.del("b").unwrap();
    assert_eq!(manager.number_of_objects().unwrap(), 2);
    let popped = d.pop("a").unwrap();
    assert_eq!(popped.to_vec().unwrap(), [3], "popped, still alive");
    drop(popped);
    assert_eq!(manager.number_of_objects().unwrap(), 1);
    d.setdefault("c".into(), manager.list_from([4]).unwrap())
        .unwrap();
    drop(d);
    assert_no_objects(&manager);
}

/// "A queue proxy stored in a dict still works: values 123 and 456." —
/// `test_nested_queue`, the list half included.
#[test]
fn a_queue_proxy_in_a_list_and_in_a_dict_still_works() {
    let manager = started_sync_manager();
    let a = manager.list::<QueueProxy<i64>>().unwrap();
    a.append(manager.queue(0).unwrap()).unwrap();
    a.get(0).unwrap().put(123).unwrap();
    assert_eq!(a.get(0).unwrap().get().unwrap(), 123);

    let b = manager.dict::<i64, QueueProxy<i64>>().unwrap();
    b.set(0, manager.queue(0).unwrap()).unwrap();
    b.get(&0).unwrap().put(456).unwrap();
    assert_eq!(b.get(&0).unwrap().get().unwrap(), 456);
    drop((a, b));
    assert_no_objects(&manager);
}

/// The documentation's manager example: a worker process writes a dict of
/// mixed keys and reverses a list; the parent sees both.
#[test]
fn a_worker_process_writes_a_dict_and_reverses_a_list() {
    let manager = started_sync_manager();
    let d = manager.dict::<Value, Value>().unwrap();
    let l = manager.list_from(0..10).unwrap();
    let child = spawn_with_tokens(
        &manager,
        "worker_writes_dict_and_reverses_list",
        &[d.token(), l.token()],
    );
    expect_success(child, WORKER_LIMIT);
    assert_eq!(d.repr().unwrap(), "{1: '1', '2': 2, 0.25: None}");
    assert_eq!(l.to_vec().unwrap(), (0..10).rev().collect::<Vec<_>>());
    drop((d, l));
    assert_no_objects(&manager);
}

/// Worker of `a_worker_process_writes_a_dict_and_reverses_a_list`.
#[test]
#[ignore = "worker process, started by its parent test"]
fn worker_writes_dict_and_reverses_list() {
    let (manager, tokens) = worker_session();
    let d: DictProxy<Value, Value> = rebuild(&manager, &tokens[0]);
    let l: ListProxy<i64> = rebuild(&manager, &tokens[1]);
    d.set(Value::from(1), Value::from("1")).unwrap();
    d.set(Value::from("2"), Value::from(2)).unwrap();
    d.set(Value::Float(0.25), Value::None).unwrap();
    l.reverse().unwrap();
}
