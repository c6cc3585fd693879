//! CONFORMANCE.md, "set (CPython 3.14)": "All set operations and `add
//! clear copy difference discard intersection isdisjoint issubset
//! issuperset pop remove symmetric_difference union update`" — CPython
//! 3.14's `_TestContainers` set tests against `SyncManager::set`, each
//! Python operator through its method (`|` is `union`, `&=` is
//! `intersection_update`, `<` is `is_proper_subset`, ...).

use std::collections::{BTreeSet, HashSet};

mod common;

use common::check::expect_sync_error;
use common::sync::{assert_no_objects, not_in_redis_pass, started_sync_manager};
use managers::sync::{ListProxy, SetProxy};
use managers::value::Value;
use managers::{Proxy, SyncError};

/// The elements of a set proxy, for comparing with a literal.
fn contents(set: &SetProxy<i64>) -> BTreeSet<i64> {
    set.to_set().unwrap()
}

fn sorted(items: Vec<i64>) -> Vec<i64> {
    let mut items = items;
    items.sort();
    items
}

/// `test_set_init`, `test_set_contains`: "... add ... len".
#[test]
fn build_add_len_and_contains() {
    let manager = started_sync_manager();
    let a = manager.set::<i64>().unwrap();
    assert_eq!(a.len().unwrap(), 0);
    assert!(a.is_empty().unwrap());
    a.add(1).unwrap();
    assert_eq!(a.len().unwrap(), 1);
    a.add(1).unwrap();
    assert_eq!(a.len().unwrap(), 1, "an element is there once");
    assert!(a.contains(&1).unwrap());
    assert!(!a.contains(&2).unwrap());

    let b = manager.set_from([1, 2, 3, 2, 1]).unwrap();
    assert_eq!(b.len().unwrap(), 3);
    assert_eq!(contents(&b), BTreeSet::from([1, 2, 3]));
    assert_eq!(b.repr().unwrap(), "{1, 2, 3}");
    assert_eq!(a.repr().unwrap(), "{1}");
    a.clear().unwrap();
    assert_eq!(a.repr().unwrap(), "set()");

    // Python's equality: 1, 1.0 and True are one element.
    let numbers = manager
        .set_from([Value::from(1), Value::Float(1.0), Value::Bool(true)])
        .unwrap();
    assert_eq!(numbers.len().unwrap(), 1);
    drop((a, b, numbers));
    assert_no_objects(&manager);
}

/// "... clear copy ... discard ... pop remove ..."
#[test]
fn clear_copy_discard_pop_and_remove() {
    let manager = started_sync_manager();
    let a = manager.set_from([1, 2, 3]).unwrap();
    let copy: HashSet<i64> = a.to_set().unwrap();
    assert_eq!(copy, HashSet::from([1, 2, 3]));
    assert_eq!(sorted(a.copy().unwrap()), [1, 2, 3]);
    a.add(4).unwrap();
    assert_eq!(copy.len(), 3, "a copy is a plain set");

    a.discard(&4).unwrap();
    a.discard(&4).unwrap();
    assert_eq!(contents(&a), BTreeSet::from([1, 2, 3]));
    a.remove(&3).unwrap();
    expect_sync_error(a.remove(&3), SyncError::KeyError("3".into()));
    assert_eq!(contents(&a), BTreeSet::from([1, 2]));

    let popped = a.pop().unwrap();
    assert!([1, 2].contains(&popped));
    assert!(!a.contains(&popped).unwrap());
    a.pop().unwrap();
    expect_sync_error(
        a.pop(),
        SyncError::KeyError("'pop from an empty set'".into()),
    );

    a.update([5, 6]).unwrap();
    a.clear().unwrap();
    assert_eq!(a.len().unwrap(), 0);
    drop(a);
    assert_no_objects(&manager);
}

/// "... union update ..." — `|`, `union`, `|=`, `update`.
#[test]
fn union_and_update() {
    let manager = started_sync_manager();
    let a = manager.set_from([1, 2, 3]).unwrap();
    assert_eq!(sorted(a.union([3, 4, 5]).unwrap()), [1, 2, 3, 4, 5]);
    assert_eq!(contents(&a), BTreeSet::from([1, 2, 3]), "unchanged");
    a.update([4, 5]).unwrap();
    assert_eq!(contents(&a), BTreeSet::from([1, 2, 3, 4, 5]));
    a.update(BTreeSet::from([6])).unwrap();
    assert_eq!(a.len().unwrap(), 6);
    drop(a);
    assert_no_objects(&manager);
}

/// "... intersection ..." — `&`, `intersection`, `&=`,
/// `intersection_update`.
#[test]
fn intersection_and_intersection_update() {
    let manager = started_sync_manager();
    let a = manager.set_from([1, 2, 3]).unwrap();
    assert_eq!(sorted(a.intersection([2, 3, 4]).unwrap()), [2, 3]);
    assert_eq!(a.intersection(Vec::new()).unwrap(), Vec::<i64>::new());
    a.intersection_update([2, 3, 4]).unwrap();
    assert_eq!(contents(&a), BTreeSet::from([2, 3]));
    a.intersection_update([9]).unwrap();
    assert!(a.is_empty().unwrap());
    drop(a);
    assert_no_objects(&manager);
}

/// "... difference ..." — `-`, `difference`, `-=`, `difference_update`.
#[test]
fn difference_and_difference_update() {
    let manager = started_sync_manager();
    let a = manager.set_from([1, 2, 3]).unwrap();
    assert_eq!(sorted(a.difference([2, 9]).unwrap()), [1, 3]);
    assert_eq!(contents(&a), BTreeSet::from([1, 2, 3]), "unchanged");
    a.difference_update([1, 9]).unwrap();
    assert_eq!(contents(&a), BTreeSet::from([2, 3]));
    drop(a);
    assert_no_objects(&manager);
}

/// "... symmetric_difference ..." — `^`, `symmetric_difference`, `^=`,
/// `symmetric_difference_update`.
#[test]
fn symmetric_difference_and_its_update() {
    let manager = started_sync_manager();
    let a = manager.set_from([1, 2, 3]).unwrap();
    assert_eq!(
        sorted(a.symmetric_difference([3, 4, 4]).unwrap()),
        [1, 2, 4]
    );
    assert_eq!(contents(&a), BTreeSet::from([1, 2, 3]), "unchanged");
    a.symmetric_difference_update([3, 4, 4]).unwrap();
    assert_eq!(contents(&a), BTreeSet::from([1, 2, 4]));
    drop(a);
    assert_no_objects(&manager);
}

/// "... isdisjoint issubset issuperset ..." and the comparisons `<=`, `<`,
/// `>=`, `>`.
#[test]
fn isdisjoint_issubset_issuperset_and_comparisons() {
    let manager = started_sync_manager();
    let a = manager.set_from([1, 2]).unwrap();
    assert!(a.isdisjoint([3, 4]).unwrap());
    assert!(!a.isdisjoint([2, 3]).unwrap());
    assert!(a.isdisjoint(Vec::new()).unwrap());

    assert!(a.issubset([1, 2, 3]).unwrap());
    assert!(a.issubset([1, 2]).unwrap());
    assert!(!a.issubset([1, 3]).unwrap());
    assert!(a.is_proper_subset([1, 2, 3]).unwrap());
    assert!(
        !a.is_proper_subset([2, 1, 2]).unwrap(),
        "equal is not proper"
    );

    assert!(a.issuperset([1]).unwrap());
    assert!(a.issuperset([1, 2]).unwrap());
    assert!(!a.issuperset([1, 5]).unwrap());
    assert!(a.is_proper_superset([1]).unwrap());
    assert!(!a.is_proper_superset([1, 2]).unwrap());
    drop(a);
    assert_no_objects(&manager);
}

/// "All set operations ..." with another set or list proxy as the operand
/// (read in the server, as Python's server reads a proxy of its own), the
/// set itself included.
#[test]
fn operations_with_proxies_as_operands() {
    let manager = started_sync_manager();
    let a = manager.set_from([1, 2, 3]).unwrap();
    let b = manager.set_from([3, 4]).unwrap();
    let l: ListProxy<i64> = manager.list_from([1, 1, 5]).unwrap();
    assert_eq!(sorted(a.union(&b).unwrap()), [1, 2, 3, 4]);
    assert_eq!(a.intersection(&b).unwrap(), [3]);
    assert_eq!(sorted(a.difference(&l).unwrap()), [2, 3]);
    assert_eq!(sorted(a.symmetric_difference(&l).unwrap()), [2, 3, 5]);
    assert!(a.issubset(&a).unwrap());
    assert!(!a.is_proper_subset(&a).unwrap());
    assert!(!a.isdisjoint(&b).unwrap());
    a.symmetric_difference_update(&a).unwrap();
    assert!(a.is_empty().unwrap(), "s ^= s empties s");
    a.update(&l).unwrap();
    assert_eq!(contents(&a), BTreeSet::from([1, 5]));
    a.intersection_update(&b).unwrap();
    assert!(a.is_empty().unwrap());
    drop((a, b, l));
    assert_no_objects(&manager);
}

/// Sets of proxies hold their objects; a popped one reaches the caller.
#[test]
fn a_set_of_proxies_keeps_them_alive() {
    if not_in_redis_pass("objects in Redis live by leases, not by the proxies they hold") {
        return;
    }
    let manager = started_sync_manager();
    let s = manager.set::<ListProxy<i64>>().unwrap();
    let inner = manager.list_from([7]).unwrap();
    s.add(inner.clone()).unwrap();
    s.add(inner.clone()).unwrap();
    assert_eq!(s.len().unwrap(), 1, "one proxy, one element");
    assert!(s.contains(&inner).unwrap());
    drop(inner);
    assert_eq!(manager.number_of_objects().unwrap(), 2);
    let popped = s.pop().unwrap();
    assert_eq!(popped.to_vec().unwrap(), [7]);
    drop(popped);
    assert_eq!(manager.number_of_objects().unwrap(), 1);
    s.add(manager.list().unwrap()).unwrap();
    drop(s);
    assert_no_objects(&manager);
}

/// `iter(s)`: an iterator in the server, failing if the set changes size.
#[test]
fn iteration_and_a_change_of_size_meanwhile() {
    if not_in_redis_pass("a set's iterator in Redis iterates the items as they were") {
        return;
    }
    let manager = started_sync_manager();
    let a = manager.set_from([3, 1, 2]).unwrap();
    let items: Vec<i64> = a.iter().unwrap().collect::<managers::Result<_>>().unwrap();
    assert_eq!(sorted(items), [1, 2, 3]);
    let mut it = a.iter().unwrap();
    it.next().unwrap().unwrap();
    a.add(4).unwrap();
    expect_sync_error(
        it.next().unwrap(),
        SyncError::RuntimeError("Set changed size during iteration".into()),
    );
    drop((a, it));
    assert_no_objects(&manager);
}

/// A set proxy is a proxy like any other: it can be stored and read back.
#[test]
fn a_set_proxy_round_trips_through_a_list() {
    let manager = started_sync_manager();
    let a = manager.set_from([1]).unwrap();
    let holder = manager.list_from([a.clone()]).unwrap();
    let back = holder.get(0).unwrap();
    assert_eq!(back.token(), a.token());
    back.add(2).unwrap();
    assert_eq!(contents(&a), BTreeSet::from([1, 2]));
    drop((a, holder, back));
    assert_no_objects(&manager);
}
