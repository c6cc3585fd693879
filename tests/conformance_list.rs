//! CONFORMANCE.md, "list": CPython's `_TestContainers` list tests
//! (`test_list`, `test_list_iter`, `test_list_proxy_in_list`) against
//! `SyncManager::list`, plus the rest of `ListProxy`'s method set.

mod common;

use common::check::expect_sync_error;
use common::sync::{assert_no_objects, not_in_redis_pass, started_sync_manager};
use managers::sync::ListProxy;
use managers::value::Value;
use managers::{Error, Proxy, SyncError};

fn index_error<T: std::fmt::Debug>(result: managers::Result<T>) {
    match result {
        Err(Error::Sync(SyncError::IndexError(_))) => {}
        other => panic!("expected an IndexError, got {other:?}"),
    }
}

/// "Build from a sequence; index, negative index, slices `[2:5]`, ..."
#[test]
fn build_from_a_sequence_then_index_and_slice() {
    let manager = started_sync_manager();
    let a = manager.list_from(0..10).unwrap();
    assert_eq!(a.to_vec().unwrap(), (0..10).collect::<Vec<_>>());
    assert_eq!(a.slice(..).unwrap(), (0..10).collect::<Vec<_>>());
    assert_eq!(a.get(2).unwrap(), 2);
    assert_eq!(a.get(-1).unwrap(), 9);
    assert_eq!(a.get(-10).unwrap(), 0);
    assert_eq!(a.slice(2..5).unwrap(), [2, 3, 4]);
    assert_eq!(a.slice(8..100).unwrap(), [8, 9], "bounds clamp");
    assert_eq!(a.slice(-3..).unwrap(), [7, 8, 9]);
    assert_eq!(a.slice(..-8).unwrap(), [0, 1]);
    assert_eq!(a.slice(-3..=-1).unwrap(), [7, 8, 9]);
    let (start, stop) = (5, 2);
    assert_eq!(a.slice(start..stop).unwrap(), Vec::<i64>::new());
    assert_eq!(a.slice_step(.., 3).unwrap(), [0, 3, 6, 9]);
    assert_eq!(a.slice_step(..5, -1).unwrap(), [9, 8, 7, 6]);
    assert_eq!(a.slice_step(5.., -1).unwrap(), [5, 4, 3, 2, 1, 0]);
    assert_eq!(a.slice_step(4.., -2).unwrap(), [4, 2, 0]);
    expect_sync_error(
        a.slice_step(.., 0),
        SyncError::ValueError("slice step cannot be zero".into()),
    );

    let b = manager.list::<i64>().unwrap();
    assert_eq!(b.to_vec().unwrap(), Vec::<i64>::new());
    assert!(b.is_empty().unwrap());
    drop((a, b));
    assert_no_objects(&manager);
}

/// "... extend, `*= n`, `+`, len ..." — CPython's `test_list` sequence.
#[test]
fn extend_imul_concat_and_repeat() {
    let manager = started_sync_manager();
    let a = manager.list_from(0..10).unwrap();
    let b = manager.list::<i64>().unwrap();
    b.extend(0..5).unwrap();
    assert_eq!(b.to_vec().unwrap(), [0, 1, 2, 3, 4]);
    assert_eq!(b.get(2).unwrap(), 2);
    assert_eq!(b.slice(2..10).unwrap(), [2, 3, 4]);

    b.imul(2).unwrap();
    assert_eq!(b.to_vec().unwrap(), [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]);
    assert_eq!(b.len().unwrap(), 10);
    assert_eq!(
        b.concat([5, 6]).unwrap(),
        [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6]
    );
    assert_eq!(b.len().unwrap(), 10, "`+` leaves the list as it was");
    assert_eq!(a.to_vec().unwrap(), (0..10).collect::<Vec<_>>());

    // `+` and `+=` with another list proxy, read in the server.
    let c = manager.list_from([7, 8]).unwrap();
    assert_eq!(c.concat(&c).unwrap(), [7, 8, 7, 8]);
    c.extend(&c).unwrap();
    assert_eq!(c.to_vec().unwrap(), [7, 8, 7, 8]);

    assert_eq!(c.repeat(2).unwrap(), [7, 8, 7, 8, 7, 8, 7, 8]);
    assert_eq!(c.repeat(0).unwrap(), Vec::<i64>::new());
    c.imul(0).unwrap();
    assert_eq!(c.len().unwrap(), 0, "`*= 0` empties the list");
    drop((a, b, c));
    assert_no_objects(&manager);
}

/// "... len, contains, count, index ..."
#[test]
fn len_contains_count_and_index() {
    let manager = started_sync_manager();
    let a = manager
        .list_from(["x", "y", "x", "z"].map(String::from))
        .unwrap();
    assert_eq!(a.len().unwrap(), 4);
    assert!(a.contains("y").unwrap());
    assert!(!a.contains("w").unwrap());
    assert_eq!(a.count("x").unwrap(), 2);
    assert_eq!(a.count("w").unwrap(), 0);
    assert_eq!(a.index("x").unwrap(), 0);
    assert_eq!(a.index("z").unwrap(), 3);
    assert_eq!(a.index_in("x", 1..).unwrap(), 2);
    expect_sync_error(
        a.index("w"),
        SyncError::ValueError("'w' is not in list".into()),
    );
    expect_sync_error(
        a.index_in("z", ..3),
        SyncError::ValueError("'z' is not in list".into()),
    );

    // Python's equality: 1, 1.0 and True are one value.
    let numbers = manager
        .list_from([Value::from(1), Value::Float(1.0), Value::Bool(true)])
        .unwrap();
    assert_eq!(numbers.count(&Value::from(1)).unwrap(), 3);
    drop((a, numbers));
    assert_no_objects(&manager);
}

/// "... insert, pop, remove ..."
#[test]
fn insert_pop_and_remove() {
    let manager = started_sync_manager();
    let a = manager.list_from([1, 2, 3]).unwrap();
    a.insert(0, 0).unwrap();
    a.insert(-1, 25).unwrap();
    a.insert(100, 4).unwrap();
    a.insert(-100, -1).unwrap();
    assert_eq!(a.to_vec().unwrap(), [-1, 0, 1, 2, 25, 3, 4]);

    assert_eq!(a.pop().unwrap(), 4);
    assert_eq!(a.pop_at(0).unwrap(), -1);
    assert_eq!(a.pop_at(-2).unwrap(), 25);
    assert_eq!(a.to_vec().unwrap(), [0, 1, 2, 3]);

    a.append(1).unwrap();
    a.remove(&1).unwrap();
    assert_eq!(a.to_vec().unwrap(), [0, 2, 3, 1], "the first occurrence");
    expect_sync_error(
        a.remove(&7),
        SyncError::ValueError("list.remove(x): x not in list".into()),
    );
    a.clear().unwrap();
    expect_sync_error(a.pop(), SyncError::IndexError("pop from empty list".into()));
    drop(a);
    assert_no_objects(&manager);
}

/// "... reverse, sort ..."
#[test]
fn reverse_and_sort() {
    let manager = started_sync_manager();
    let a = manager.list_from([3, 1, 4, 1, 5, 9, 2, 6]).unwrap();
    assert_eq!(a.reversed().unwrap(), [6, 2, 9, 5, 1, 4, 1, 3]);
    assert_eq!(a.get(0).unwrap(), 3, "reversed() leaves the list as it was");
    a.reverse().unwrap();
    assert_eq!(a.to_vec().unwrap(), [6, 2, 9, 5, 1, 4, 1, 3]);
    a.sort(false).unwrap();
    assert_eq!(a.to_vec().unwrap(), [1, 1, 2, 3, 4, 5, 6, 9]);
    a.sort(true).unwrap();
    assert_eq!(a.to_vec().unwrap(), [9, 6, 5, 4, 3, 2, 1, 1]);

    // Python's order across numeric types; strings and tuples too.
    let mixed = manager
        .list_from([Value::Float(2.5), Value::Bool(true), Value::from(-3)])
        .unwrap();
    mixed.sort(false).unwrap();
    assert_eq!(
        mixed.to_vec().unwrap(),
        [Value::from(-3), Value::Bool(true), Value::Float(2.5)]
    );
    let pairs = manager
        .list_from([(2, "b".to_string()), (1, "z".into()), (2, "a".into())])
        .unwrap();
    pairs.sort(false).unwrap();
    assert_eq!(
        pairs.to_vec().unwrap(),
        [(1, "z".to_string()), (2, "a".into()), (2, "b".into())]
    );

    // Values Python cannot order fail with TypeError.
    let incomparable = manager
        .list_from([Value::from(1), Value::from("a")])
        .unwrap();
    match incomparable.sort(false) {
        Err(Error::Sync(SyncError::TypeError(message))) => {
            assert!(message.contains("not supported"), "{message}")
        }
        other => panic!("expected a TypeError, got {other:?}"),
    }
    drop((a, mixed, pairs, incomparable));
    assert_no_objects(&manager);
}

/// "... delete item, set item."
#[test]
fn delete_and_set_items_and_slices() {
    let manager = started_sync_manager();
    let a = manager.list_from(0..6).unwrap();
    a.set(0, 100).unwrap();
    a.set(-1, 500).unwrap();
    a.del(1).unwrap();
    a.del(-2).unwrap();
    assert_eq!(a.to_vec().unwrap(), [100, 2, 3, 500]);

    a.set_slice(1..3, [20, 21, 22, 23]).unwrap();
    assert_eq!(a.to_vec().unwrap(), [100, 20, 21, 22, 23, 500]);
    a.set_slice(..0, [-1]).unwrap();
    a.del_slice(2..4).unwrap();
    assert_eq!(a.to_vec().unwrap(), [-1, 100, 22, 23, 500]);
    a.del_slice(-2..).unwrap();
    assert_eq!(a.to_vec().unwrap(), [-1, 100, 22]);
    a.set_slice(.., Vec::new()).unwrap();
    assert!(a.is_empty().unwrap());
    drop(a);
    assert_no_objects(&manager);
}

/// "An index out of range fails with IndexError's equivalent."
#[test]
fn an_index_out_of_range_is_an_index_error() {
    let manager = started_sync_manager();
    let a = manager.list_from([1, 2, 3]).unwrap();
    expect_sync_error(
        a.get(3),
        SyncError::IndexError("list index out of range".into()),
    );
    index_error(a.get(-4));
    index_error(a.set(3, 0));
    index_error(a.set(-4, 0));
    index_error(a.del(10));
    expect_sync_error(
        a.pop_at(3),
        SyncError::IndexError("pop index out of range".into()),
    );
    assert_eq!(a.to_vec().unwrap(), [1, 2, 3], "nothing changed");
    drop(a);
    assert_no_objects(&manager);
}

/// "A list of list proxies; an append through a nested proxy is seen from
/// the outer list." — `test_list`'s `e = self.list([a, b])`, `f =
/// self.list([a])`, `a.append('hello')`.
#[test]
fn a_list_of_list_proxies_sees_appends_through_the_nested_proxy() {
    let manager = started_sync_manager();
    let a = manager.list_from((0..10).map(Value::from)).unwrap();
    let b = manager.list_from((0..5).map(Value::from)).unwrap();
    b.imul(2).unwrap();
    let e: ListProxy<ListProxy<Value>> = manager.list_from([a.clone(), b.clone()]).unwrap();
    let elements: Vec<Vec<Value>> = e
        .to_vec()
        .unwrap()
        .iter()
        .map(|inner| inner.to_vec().unwrap())
        .collect();
    assert_eq!(elements[0], (0..10).map(Value::from).collect::<Vec<_>>());
    assert_eq!(elements[1].len(), 10);

    let f = manager.list_from([a.clone()]).unwrap();
    a.append(Value::from("hello")).unwrap();
    let seen = f.get(0).unwrap().to_vec().unwrap();
    assert_eq!(seen.len(), 11);
    assert_eq!(seen[10], Value::from("hello"));
    drop((a, b, e, f));
    assert_no_objects(&manager);
}

/// "A list of list proxies ..." — `test_list_proxy_in_list`: writes
/// through nested proxies, and the nested lists outlive the client's own
/// proxies for as long as the outer list holds them.
#[test]
fn nested_list_proxies_in_a_list() {
    if not_in_redis_pass("objects in Redis live by leases, not by the proxies they hold") {
        return;
    }
    let manager = started_sync_manager();
    let inner: Vec<ListProxy<i64>> = (0..3).map(|_| manager.list_from(0..3).unwrap()).collect();
    let a = manager.list_from(inner).unwrap();
    assert_eq!(manager.number_of_objects().unwrap(), 4);
    let elements: Vec<Vec<i64>> = a
        .to_vec()
        .unwrap()
        .iter()
        .map(|inner| inner.to_vec().unwrap())
        .collect();
    assert_eq!(elements, vec![vec![0, 1, 2]; 3]);

    a.get(0).unwrap().set(-1, 55).unwrap();
    assert_eq!(a.get(0).unwrap().to_vec().unwrap(), [0, 1, 55]);
    for i in 1..3 {
        assert_eq!(a.get(i).unwrap().to_vec().unwrap(), [0, 1, 2]);
    }
    assert_eq!(a.get(1).unwrap().pop().unwrap(), 2);
    assert_eq!(a.get(1).unwrap().len().unwrap(), 2);
    for i in [0, 2] {
        assert_eq!(a.get(i).unwrap().len().unwrap(), 3);
    }

    // Removing an element releases the list it named; a popped one lives
    // on in the proxy the caller gets.
    a.del(1).unwrap();
    assert_eq!(manager.number_of_objects().unwrap(), 3);
    let popped = a.pop().unwrap();
    assert_eq!(popped.to_vec().unwrap(), [0, 1, 2]);
    assert_eq!(a.len().unwrap(), 1);
    drop(popped);
    assert_eq!(manager.number_of_objects().unwrap(), 2);
    // The last holder going takes the nested objects with it.
    drop(a);
    assert_no_objects(&manager);
}

/// "An iterator over a list proxy sees `a[0] = 100` written after it was
/// made." — `test_list_iter`.
#[test]
fn an_iterator_sees_writes_made_after_it_was_created() {
    if not_in_redis_pass("a list's iterator in Redis iterates the items as they were") {
        return;
    }
    let manager = started_sync_manager();
    let a = manager.list_from(0..10).unwrap();
    let mut it = a.iter().unwrap();
    assert_eq!(
        it.by_ref().collect::<managers::Result<Vec<_>>>().unwrap(),
        (0..10).collect::<Vec<_>>()
    );
    assert!(it.next().is_none(), "exhausted");
    a.append(10).unwrap();
    assert!(it.next().is_none(), "an exhausted iterator stays exhausted");
    drop(it);

    let mut it = a.iter().unwrap();
    a.set(0, 100).unwrap();
    assert_eq!(it.next().unwrap().unwrap(), 100);
    a.set(1, 101).unwrap();
    assert_eq!(it.next().unwrap().unwrap(), 101);
    drop((a, it));
    assert_no_objects(&manager);
}

/// "A list proxy can contain itself (b.append(b)) without hanging."
#[test]
fn a_list_can_contain_itself() {
    let manager = started_sync_manager();
    let b = manager.list::<Value>().unwrap();
    b.append(Value::from(b.token().clone())).unwrap();
    assert_eq!(b.len().unwrap(), 1);
    let repr = b.repr().unwrap();
    assert!(repr.starts_with("[<Proxy typeid 'list'"), "{repr}");
    assert_eq!(b.get(0).unwrap(), Value::from(b.token().clone()));

    // Read back as a proxy, it is the same list.
    let same: ListProxy<ListProxy<Value>> = b.retype();
    let inner = same.get(0).unwrap();
    assert_eq!(inner.token(), b.token());
    assert_eq!(inner.len().unwrap(), 1);
    drop((inner, same));

    // Holding itself does not keep it alive.
    drop(b);
    assert_no_objects(&manager);
}

/// "A list of list proxies ..." — every stored occurrence of a proxy holds
/// its object; a token of an object that is gone cannot be stored.
#[test]
fn each_occurrence_of_a_nested_proxy_holds_its_object() {
    if not_in_redis_pass("objects in Redis live by leases, not by the proxies they hold") {
        return;
    }
    let manager = started_sync_manager();
    let outer = manager.list::<ListProxy<i64>>().unwrap();
    let inner = manager.list_from([1]).unwrap();
    outer.append(inner.clone()).unwrap();
    outer.extend([inner.clone()]).unwrap();
    outer.imul(2).unwrap();
    assert_eq!(outer.count(&inner).unwrap(), 4);
    drop(inner);
    outer.del_slice(..3).unwrap();
    assert_eq!(
        manager.number_of_objects().unwrap(),
        2,
        "one occurrence left"
    );
    assert_eq!(outer.get(0).unwrap().to_vec().unwrap(), [1]);
    outer.clear().unwrap();
    assert_eq!(manager.number_of_objects().unwrap(), 1);

    let gone = manager.list::<i64>().unwrap();
    let token = gone.token().clone();
    drop(gone);
    let values = manager.list::<Value>().unwrap();
    match values.append(Value::from(token)) {
        Err(Error::Sync(SyncError::ValueError(message))) => {
            assert!(message.contains("cannot store a proxy"), "{message}")
        }
        other => panic!("expected a ValueError, got {other:?}"),
    }
    assert!(values.is_empty().unwrap());
    drop((outer, values));
    assert_no_objects(&manager);
}
