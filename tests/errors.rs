//! Errors and options as users expect (issue 12): causes kept as
//! `source()` chains, lifecycle errors a caller can match on, a bad address
//! reported as an error rather than a panic, an authkey never printed.

use std::error::Error as _;
use std::io::ErrorKind;

use managers::sync::SyncManager;
use managers::value::ValueError;
use managers::{Error, ManagerOptions};

/// The error and its causes, joined as `a: b: c`.
fn chain(err: &Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn missing_socket() -> String {
    let dir = std::env::temp_dir().join(format!("managers-errors-{}", std::process::id()));
    dir.join("nobody.sock").display().to_string()
}

#[test]
fn connecting_to_nothing_keeps_the_io_error_as_its_source() {
    let manager = SyncManager::with_options(ManagerOptions::new().address(missing_socket()));
    let err = manager.connect().unwrap_err();
    let Error::Connect { address, source } = &err else {
        panic!("expected Connect, got {err:?}");
    };
    assert!(address.ends_with("nobody.sock"), "{address}");
    assert_eq!(source.kind(), ErrorKind::NotFound);
    let io = err
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .expect("the io::Error is the source");
    assert_eq!(io.kind(), ErrorKind::NotFound);
    // Display names what failed; the cause is the next link, not repeated.
    assert!(!err.to_string().contains(&io.to_string()), "{err}");
    assert!(chain(&err).ends_with(&io.to_string()), "{}", chain(&err));
}

#[test]
fn binding_a_taken_address_is_a_bind_error_with_its_cause() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let manager = SyncManager::with_options(ManagerOptions::new().address(address));
    let err = manager.start_in_thread().unwrap_err();
    match &err {
        Error::Bind { address: a, source } => {
            assert_eq!(*a, address.to_string());
            assert_eq!(source.kind(), ErrorKind::AddrInUse);
        }
        other => panic!("expected Bind, got {other:?}"),
    }
}

#[test]
fn a_server_that_goes_away_is_server_gone() {
    let manager = SyncManager::new();
    manager.start_in_thread().unwrap();
    let event = manager.event().unwrap();
    manager.shutdown().unwrap();
    let err = event.is_set().unwrap_err();
    assert!(matches!(err, Error::ServerGone { .. }), "{err:?}");
    assert!(err.to_string().starts_with("the manager's server is gone"));
}

#[test]
fn a_value_of_the_wrong_type_is_a_codec_error_whose_source_is_the_value_error() {
    let manager = SyncManager::new();
    manager.start_in_thread().unwrap();
    let list = manager.list_from([1_i64, 2]).unwrap();
    let as_text: managers::sync::ListProxy<String> = manager
        .proxy_from_token(managers::Proxy::token(&list))
        .unwrap();
    let err = as_text.get(0).unwrap_err();
    assert!(matches!(err, Error::Codec { .. }), "{err:?}");
    let cause = err
        .source()
        .and_then(|s| s.downcast_ref::<ValueError>())
        .expect("the ValueError is the source");
    assert!(matches!(cause, ValueError::InvalidType { .. }), "{cause:?}");
}

#[test]
fn lifecycle_errors_are_variants_to_match() {
    let manager = SyncManager::new();
    assert!(matches!(manager.client(), Err(Error::NotStarted)));
    assert!(matches!(
        manager.dict::<String, i64>(),
        Err(Error::NotStarted)
    ));
    assert!(matches!(manager.connect(), Err(Error::NoAddress)));
    manager.start_in_thread().unwrap();
    assert!(matches!(
        manager.start_in_thread(),
        Err(Error::AlreadyStarted)
    ));
    assert!(matches!(manager.connect(), Err(Error::AlreadyStarted)));
    let address = manager.address().unwrap();
    let other = SyncManager::with_options(ManagerOptions::new().address(address));
    other.connect().unwrap();
    assert!(matches!(
        other.start_in_thread(),
        Err(Error::AlreadyConnected)
    ));
    other.shutdown().unwrap();
    assert!(matches!(other.connect(), Err(Error::ShutDown)));
    manager.shutdown().unwrap();
    assert!(matches!(manager.start_in_thread(), Err(Error::ShutDown)));
}

#[test]
fn a_bad_address_is_an_error_where_it_is_used_not_a_panic() {
    let options = ManagerOptions::new().address("no-port-here");
    let manager = SyncManager::with_options(options.clone());
    for err in [
        manager.connect().unwrap_err(),
        manager.start_in_thread().unwrap_err(),
        manager.get_server().unwrap_err(),
    ] {
        match err {
            Error::InvalidAddress { text, .. } => assert_eq!(text, "no-port-here"),
            other => panic!("expected InvalidAddress, got {other:?}"),
        }
    }
    assert!(matches!(
        ManagerOptions::new().try_address("no-port-here"),
        Err(Error::InvalidAddress { .. })
    ));
    // A later good address replaces the bad one.
    let fixed = SyncManager::with_options(options.address("127.0.0.1:0"));
    fixed.start_in_thread().unwrap();
    fixed.shutdown().unwrap();
}

#[test]
fn options_debug_never_shows_the_authkey() {
    let key = b"correct horse battery staple";
    let options = ManagerOptions::new()
        .address("127.0.0.1:50000")
        .authkey(key);
    let printed = format!("{options:?}");
    assert!(!printed.contains("correct horse"), "{printed}");
    // Not as bytes either.
    let as_bytes = format!("{:?}", key.to_vec());
    assert!(!printed.contains(&as_bytes[1..20]), "{printed}");
    assert!(printed.contains("28 bytes"), "{printed}");
    assert!(printed.contains("127.0.0.1:50000"), "{printed}");
    // A Redis URL's password stays out too.
    let printed = format!(
        "{:?}",
        ManagerOptions::new().redis("redis://:hunter2secret@10.0.0.5:6379")
    );
    assert!(!printed.contains("hunter2secret"), "{printed}");
    assert!(printed.contains("redis: true"), "{printed}");
}

#[test]
fn a_gateway_that_does_not_parse_is_an_error_on_use() {
    let manager = managers::sync::SyncManager::with_options(
        ManagerOptions::new()
            .gateways(["not an address"])
            .address("127.0.0.1:1"),
    );
    match manager.connect() {
        Err(managers::Error::InvalidAddress { text, .. }) => assert_eq!(text, "a gateway"),
        other => panic!("a bad gateway: {other:?}"),
    }
}
