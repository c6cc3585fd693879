//! Core behaviour on in-process servers: refcounts, signature checks,
//! panics, serialized mutation, async and blocking proxies, calls in flight,
//! lifecycle rules of thread servers, connecting with an authkey. (What
//! CONFORMANCE.md lists is in the conformance_* files.)

mod common;

use std::time::{Duration, Instant};

use common::sync::client_options;
use common::{started_test_manager, MathsClass, TestManager, ValueError};
use managers::proxy::MethodRef;
use managers::server::Shared;
use managers::{Error, ManagerOptions, Proxy, RemoteError};

#[test]
fn all_proxies_dropped_means_no_objects() {
    let manager = started_test_manager();
    assert_eq!(manager.number_of_objects().unwrap(), 0);
    let a = manager.maths().unwrap();
    let b = a.clone();
    let tool = manager.tool().unwrap();
    let inner = tool.maths().unwrap();
    assert_eq!(manager.number_of_objects().unwrap(), 3);
    let info = manager.debug_info().unwrap();
    assert_eq!(info.len(), 3);
    assert!(info.iter().all(|e| e.refcount == 1), "{info:?}");
    drop(a);
    assert_eq!(b.add(1, 1).unwrap(), 2, "a clone keeps the object alive");
    assert_eq!(manager.number_of_objects().unwrap(), 3);
    drop((b, tool, inner));
    assert_eq!(manager.number_of_objects().unwrap(), 0);
}

/// A typed proxy sends the method's index in its table with the name; the
/// server trusts the index only where the name there agrees.
#[test]
fn a_method_index_is_a_hint_the_name_checks() {
    let manager = started_test_manager();
    let maths = manager.maths().unwrap();
    let methods = <MathsClass as Shared>::METHODS;
    let at = |name: &str| methods.iter().position(|m| m.name == name).unwrap();
    let fp = |name: &str| methods[at(name)].fingerprint;
    let add = |method: MethodRef<'_>| maths.base().call::<_, i64>(method, &(2i64, 3i64));
    assert_eq!(
        add(MethodRef::at(at("add") as u32, "add", fp("add"))).unwrap(),
        5
    );
    // An index naming another method, or past the table: the name decides
    // (a server built from another version of the type orders it so).
    for index in [at("mul") as u32, methods.len() as u32, u32::MAX] {
        let method = MethodRef::at(index, "add", fp("add"));
        assert_eq!(add(method).unwrap(), 5, "index {index}");
    }
    // The right index with another signature: refused, as by name.
    let err = add(MethodRef::at(at("add") as u32, "add", 0xdead_beef)).unwrap_err();
    assert!(
        matches!(err, Error::Remote(RemoteError::SignatureMismatch { .. })),
        "{err}"
    );
    // Outside a registration's exposed list: refused at the right index too.
    let add_only = manager.add_only().unwrap();
    assert_eq!(add_only.add(2, 3).unwrap(), 5);
    let mul = MethodRef::at(at("mul") as u32, "mul", fp("mul"));
    let err = add_only
        .base()
        .call::<_, i64>(mul, &(2i64, 3i64))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Remote(RemoteError::NotExposed { method, .. }) if method == "mul"),
        "{err}"
    );
}

#[test]
fn signature_mismatch_is_a_clear_error() {
    let manager = started_test_manager();
    let maths = manager.maths().unwrap();
    let err = maths
        .base()
        .call::<_, i64>(MethodRef::named("add", 0xdead_beef), &(1i64, 2i64))
        .unwrap_err();
    assert!(
        matches!(err, Error::Remote(RemoteError::SignatureMismatch { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("different versions"), "{err}");
}

#[test]
fn a_panic_is_an_error_for_that_caller_only() {
    let manager = started_test_manager();
    let tool = manager.tool().unwrap();
    let other = manager.maths().unwrap();
    let err = tool.boom().unwrap_err();
    assert!(
        matches!(&err, Error::Remote(RemoteError::Panic(m)) if m.contains("boom from the server")),
        "{err}"
    );
    assert_eq!(tool.add(3).unwrap(), 3, "the object still works");
    assert_eq!(other.add(1, 2).unwrap(), 3, "other callers unaffected");
}

#[test]
fn mut_methods_are_serialized() {
    let manager = started_test_manager();
    let tool = manager.tool().unwrap();
    std::thread::scope(|s| {
        for _ in 0..8 {
            let tool = tool.clone();
            s.spawn(move || {
                for _ in 0..100 {
                    tool.add(1).unwrap();
                }
            });
        }
    });
    assert_eq!(tool.add(0).unwrap(), 800);
}

#[test]
fn async_and_blocking_proxies_against_one_server() {
    let manager = started_test_manager();
    let blocking = manager.tool().unwrap();
    blocking.add(10).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let tool = blocking.to_async();
        assert_eq!(tool.add(5).await.unwrap(), 15);
        let maths = manager.maths_async().await.unwrap();
        assert_eq!(maths.mul(6, 7).await.unwrap(), 42);
        let inner = tool.maths().await.unwrap();
        assert_eq!(inner.add(1, 1).await.unwrap(), 2);
        assert_eq!(
            tool.fail("x".into()).await.unwrap(),
            Err(ValueError("x".into()))
        );
    });
    assert_eq!(blocking.add(0).unwrap(), 15);
}

#[test]
fn many_calls_in_flight_on_one_connection() {
    let manager = started_test_manager();
    let tool = manager.tool().unwrap().to_async();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let begun = Instant::now();
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..64u64 {
            let tool = tool.clone();
            calls.spawn(async move { (i, tool.sleep(200 + i).await) });
        }
        let mut seen = 0;
        while let Some(done) = calls.join_next().await {
            let (i, result) = done.unwrap();
            assert_eq!(result.unwrap(), 200 + i);
            seen += 1;
        }
        assert_eq!(seen, 64);
        // Sequentially this would take over 12 s; in flight together it
        // takes about the longest single call.
        assert!(
            begun.elapsed() < Duration::from_secs(6),
            "{:?}",
            begun.elapsed()
        );
    });
}

#[test]
fn lifecycle_rules() {
    let manager = TestManager::new();
    assert!(manager.maths().is_err(), "no server yet");
    manager.start_in_thread().unwrap();
    let err = manager.start_in_thread().unwrap_err();
    assert!(err.to_string().contains("already started"), "{err}");
    let maths = manager.maths().unwrap();
    manager.shutdown().unwrap();
    manager.shutdown().unwrap();
    let err = manager.start_in_thread().unwrap_err();
    assert!(err.to_string().contains("shut down"), "{err}");
    let err = maths.add(1, 1).unwrap_err();
    assert!(matches!(err, Error::ServerGone { .. }), "{err}");
}

#[test]
fn connect_to_a_server_started_elsewhere() {
    let owner = started_test_manager();
    let client = TestManager::with_options(client_options(&owner));
    client.connect().unwrap();
    let maths = client.maths().unwrap();
    assert_eq!(maths.add(20, 22).unwrap(), 42);
    assert_eq!(owner.number_of_objects().unwrap(), 1);
    drop(maths);
    // The client's references are gone with its proxies.
    assert_eq!(client.number_of_objects().unwrap(), 0);
}

#[test]
fn serve_forever_and_connect_with_an_authkey() {
    let server = TestManager::with_options(
        ManagerOptions::new()
            .address("127.0.0.1:0")
            .authkey(b"secret"),
    )
    .get_server()
    .unwrap();
    let address = server.address().clone();
    let stopper = server.stopper();
    let serving = std::thread::spawn(move || server.serve_forever());

    let wrong = TestManager::with_options(
        ManagerOptions::new()
            .address(address.clone())
            .authkey(b"wrong"),
    );
    let err = wrong.connect().unwrap_err();
    assert!(matches!(err, Error::Authentication(_)), "{err}");
    assert!(err.to_string().contains("authentication failed"), "{err}");

    let client = TestManager::with_options(
        ManagerOptions::new()
            .address(address.clone())
            .authkey(b"secret"),
    );
    client.connect().unwrap();
    assert_eq!(client.maths().unwrap().mul(3, 4).unwrap(), 12);

    let empty_key = TestManager::with_options(ManagerOptions::new().address(address).authkey(b""));
    assert!(matches!(empty_key.connect(), Err(Error::Authentication(_))));

    stopper.stop();
    serving.join().unwrap().unwrap();
}

#[test]
fn connection_limit_is_a_clear_error() {
    // The owner's own session holds one connection; room for one more.
    let owner = TestManager::with_options(ManagerOptions::new().max_connections(2));
    owner.start_in_thread().unwrap();
    let connect = || {
        let client = TestManager::with_options(client_options(&owner));
        client.connect().map(|()| client)
    };
    let first = connect().unwrap();
    let err = connect().unwrap_err();
    assert!(matches!(err, Error::LimitReached(_)), "{err}");
    assert!(err.to_string().contains("connection limit"), "{err}");
    assert_eq!(
        first.maths().unwrap().add(1, 2).unwrap(),
        3,
        "others still served"
    );
    drop(first);
    // A slot frees when a client goes (the server notices the close).
    let deadline = Instant::now() + Duration::from_secs(5);
    let again = loop {
        match connect() {
            Ok(client) => break client,
            Err(Error::LimitReached(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(again.maths().unwrap().mul(2, 3).unwrap(), 6);
}
