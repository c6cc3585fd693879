//! TLS for TCP managers (feature `tls`), with a certificate generated at
//! test time. The authkey still applies inside the TLS channel.
#![cfg(feature = "tls")]

mod common;

use common::TestManager;
use managers::tls::{TlsClient, TlsServer};
use managers::{Error, ManagerOptions};

struct Identity {
    cert_pem: String,
    key_pem: String,
}

fn identity(names: &[&str]) -> Identity {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let generated = rcgen::generate_simple_self_signed(names).expect("certificate");
    Identity {
        cert_pem: generated.cert.pem(),
        key_pem: generated.signing_key.serialize_pem(),
    }
}

fn tls_server(identity: &Identity, key: &[u8]) -> TestManager {
    let tls = TlsServer::from_pem(identity.cert_pem.as_bytes(), identity.key_pem.as_bytes())
        .expect("server identity");
    let manager = TestManager::with_options(
        ManagerOptions::new()
            .address("127.0.0.1:0")
            .authkey(key)
            .tls_server(tls)
            .tls_client(TlsClient::from_ca_pem(identity.cert_pem.as_bytes(), "localhost").unwrap()),
    );
    manager.start_in_thread().expect("start TLS server");
    manager
}

fn client(server: &TestManager, trusted: &Identity, name: &str, key: &[u8]) -> TestManager {
    TestManager::with_options(
        ManagerOptions::new()
            .address(server.address().unwrap())
            .authkey(key)
            .tls_client(TlsClient::from_ca_pem(trusted.cert_pem.as_bytes(), name).unwrap()),
    )
}

#[test]
fn calls_work_over_tls_blocking_and_async() {
    let server_identity = identity(&["localhost"]);
    let server = tls_server(&server_identity, b"key");
    let client = client(&server, &server_identity, "localhost", b"key");
    client.connect().unwrap();
    let maths = client.maths().unwrap();
    assert_eq!(maths.add(4, 3).unwrap(), 7);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(maths.to_async().mul(7, 8)).unwrap(), 56);
    drop(maths);
    drop(client);
    assert_eq!(server.number_of_objects().unwrap(), 0);
}

/// Connecting `client` fails on the server's certificate.
fn assert_certificate_refused(client: TestManager) {
    let err = client.connect().unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[test]
fn a_server_the_client_does_not_trust_is_refused() {
    let server = tls_server(&identity(&["localhost"]), b"key");
    let stranger = identity(&["localhost"]);
    assert_certificate_refused(client(&server, &stranger, "localhost", b"key"));
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let server_identity = identity(&["localhost"]);
    let server = tls_server(&server_identity, b"key");
    assert_certificate_refused(client(
        &server,
        &server_identity,
        "managers.example",
        b"key",
    ));
}

#[test]
fn the_authkey_still_applies_inside_tls() {
    let server_identity = identity(&["localhost"]);
    let server = tls_server(&server_identity, b"right");
    let err = client(&server, &server_identity, "localhost", b"wrong")
        .connect()
        .unwrap_err();
    assert!(matches!(err, Error::Authentication(_)), "{err}");
}

#[test]
fn a_plain_client_cannot_talk_to_a_tls_server() {
    let server = tls_server(&identity(&["localhost"]), b"key");
    let plain = TestManager::with_options(
        ManagerOptions::new()
            .address(server.address().unwrap())
            .authkey(b"key"),
    );
    assert!(plain.connect().is_err());
    // and the server goes on serving TLS clients
    let server_identity = identity(&["localhost"]);
    let other = tls_server(&server_identity, b"key");
    let ok = client(&other, &server_identity, "localhost", b"key");
    ok.connect().unwrap();
    assert_eq!(ok.maths().unwrap().add(1, 1).unwrap(), 2);
}

#[test]
fn tls_needs_a_tcp_address() {
    let id = identity(&["localhost"]);
    let tls = TlsServer::from_pem(id.cert_pem.as_bytes(), id.key_pem.as_bytes()).unwrap();
    let manager = TestManager::with_options(ManagerOptions::new().tls_server(tls));
    let err = manager.start_in_thread().unwrap_err();
    assert!(err.to_string().contains("TCP"), "{err}");
    assert!(TlsServer::from_pem(b"not pem", b"not pem").is_err());
}
