//! CONFORMANCE.md, "Custom managers": "A method that returns an
//! iterator/generator is served through a proxy that yields the squares 0,
//! 1, 4, 9, ..." — CPython's `_TestMyManager` registers `baz`, a
//! generator, with an `IteratorProxy`; here a user type returns a
//! [`RemoteIter`] from a `#[proxy]` method, and a typeid is built from one
//! directly. Also the `Iterator` objects behind dict and list iteration.

mod common;

use common::sync::{
    assert_no_objects, connect_worker_as, passed_tokens, rebuild, spawn_with_tokens,
    started_in_thread, started_sync_manager, WORKER_LIMIT,
};
use common::worker::{expect_success, worker_context};
use managers::sync::RemoteIterProxy;
use managers::sync::{IterProxy, RemoteIter};
use managers::{manager, shared, Proxy};

/// A type whose methods hand out server-side iterators.
#[derive(Default)]
pub struct Generators;

#[shared]
impl Generators {
    /// The squares of 0..n, computed one at a time in the server.
    #[proxy]
    pub fn squares(&self, n: i64) -> RemoteIter {
        RemoteIter::new((0..n).map(|i| i * i))
    }

    /// Every square, forever: only the items asked for are computed.
    #[proxy]
    pub fn all_squares(&self) -> RemoteIter {
        RemoteIter::new((0u64..).map(|i| i * i))
    }

    /// Items of any serializable type.
    #[proxy]
    pub fn words(&self, text: String) -> RemoteIter {
        let words: Vec<String> = text.split_whitespace().map(String::from).collect();
        RemoteIter::new(words)
    }
}

/// CPython's `baz`: a generator of the squares of 0..10.
fn baz() -> RemoteIter {
    RemoteIter::new((0..10).map(|i| i * i))
}

manager! {
    /// The managers of CPython's `_TestMyManager`, with iterators.
    pub struct IterManager {
        Generators: Generators,
        baz: RemoteIter = baz,
    }
}

fn started() -> IterManager {
    started_in_thread(IterManager::new())
}

fn squares(n: i64) -> Vec<i64> {
    (0..n).map(|i| i * i).collect()
}

/// "A method that returns an iterator/generator is served through a proxy
/// that yields the squares 0, 1, 4, 9, ..."
#[test]
fn a_method_returning_an_iterator_yields_the_squares() {
    let manager = started();
    let generators = manager.generators().unwrap();
    let it: IterProxy<i64> = generators.squares(10).unwrap().into();
    assert_eq!(
        it.collect::<managers::Result<Vec<_>>>().unwrap(),
        squares(10)
    );

    let mut it = generators.squares(3).unwrap().typed::<i64>();
    assert_eq!(it.next().unwrap().unwrap(), 0);
    assert_eq!(it.next().unwrap().unwrap(), 1);
    assert_eq!(it.next().unwrap().unwrap(), 4);
    assert!(it.next().is_none(), "exhausted");
    assert!(it.next().is_none(), "and stays so");
    drop((generators, it));
    assert_no_objects(&manager);
}

/// "... a proxy that yields the squares ..." — a generator: lazy, so an
/// endless one is fine; each iterator is its own object.
#[test]
fn an_endless_generator_yields_what_is_asked_for() {
    let manager = started();
    let generators = manager.generators().unwrap();
    let first = generators.all_squares().unwrap().typed::<u64>();
    let second = generators.all_squares().unwrap().typed::<u64>();
    let five: Vec<u64> = first.take(5).collect::<managers::Result<_>>().unwrap();
    assert_eq!(five, [0, 1, 4, 9, 16]);
    let mut second = second;
    assert_eq!(second.next().unwrap().unwrap(), 0, "its own position");
    let words: Vec<String> = generators
        .words("a generator of words".into())
        .unwrap()
        .typed()
        .collect::<managers::Result<_>>()
        .unwrap();
    assert_eq!(words, ["a", "generator", "of", "words"]);
    drop((generators, second));
    assert_no_objects(&manager);
}

/// "... served through a proxy ..." — CPython's own form: a typeid whose
/// callable is the generator (`MyManager.register('baz', callable=baz,
/// proxytype=IteratorProxy)`), then `list(manager.baz())`.
#[test]
fn a_typeid_built_from_a_generator() {
    let manager = started();
    let baz: IterProxy<i64> = manager.baz().unwrap().into();
    assert_eq!(
        baz.collect::<managers::Result<Vec<_>>>().unwrap(),
        squares(10)
    );
    assert_no_objects(&manager);
}

/// An iterator lives in the server: another process can take items from
/// the same one.
#[test]
fn a_worker_process_advances_the_same_iterator() {
    let manager = started();
    let generators = manager.generators().unwrap();
    let mut it = generators.squares(6).unwrap().typed::<i64>();
    assert_eq!(it.next().unwrap().unwrap(), 0);
    let child = spawn_with_tokens(&manager, "worker_takes_two_squares", &[it.token()]);
    expect_success(child, WORKER_LIMIT);
    assert_eq!(
        it.collect::<managers::Result<Vec<_>>>().unwrap(),
        [9, 16, 25]
    );
    drop(generators);
    assert_no_objects(&manager);
}

/// Worker of `a_worker_process_advances_the_same_iterator`.
#[test]
#[ignore = "worker process, started by its parent test"]
fn worker_takes_two_squares() {
    let ctx = worker_context();
    let manager = connect_worker_as(&ctx, IterManager::with_options);
    let it: IterProxy<i64> = rebuild(&manager, &passed_tokens(&ctx)[0]);
    let two: Vec<i64> = it.take(2).collect::<managers::Result<_>>().unwrap();
    assert_eq!(two, [1, 4]);
}

/// The `Iterator` objects of the built-ins: an iterator keeps its
/// container alive, and goes when its last proxy does.
#[test]
fn a_builtin_iterator_outlives_its_container_proxy() {
    let manager = started_sync_manager();
    let list = manager.list_from(["x".to_string(), "y".into()]).unwrap();
    let dict = manager.dict_from([(1, 'a'), (2, 'b')]).unwrap();
    let mut items = list.iter().unwrap();
    let keys = dict.iter().unwrap();
    let info = manager.debug_info().unwrap();
    assert_eq!(
        info.iter().filter(|e| e.typeid == "Iterator").count(),
        2,
        "{info:?}"
    );
    drop((list, dict));
    assert_eq!(
        manager.number_of_objects().unwrap(),
        2,
        "only the iterators"
    );
    assert_eq!(items.next().unwrap().unwrap(), "x");
    assert_eq!(
        keys.collect::<managers::Result<Vec<i32>>>().unwrap(),
        [1, 2]
    );
    assert_eq!(items.next().unwrap().unwrap(), "y");
    assert!(items.next().is_none());

    // The raw proxy of any iterator becomes a typed one.
    let raw: &RemoteIterProxy = items.raw();
    assert_eq!(raw.token().typeid, "Iterator");
    drop(items);
    assert_no_objects(&manager);
}
