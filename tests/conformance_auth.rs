//! CONFORMANCE.md "Auth" (CPython's OtherTest and ChallengeResponseTest),
//! over real loopback sockets, with hand-made peers playing the other side.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::TestManager;
use managers::auth::{ClientHandshake, ServerHandshake};
use managers::wire::{raw_frame, read_frame};
use managers::{Error, ManagerOptions};

fn server_with_key(key: &[u8]) -> TestManager {
    let manager = TestManager::with_options(
        ManagerOptions::new()
            .address("127.0.0.1:0")
            .authkey(key)
            .handshake_timeout(Duration::from_secs(2)),
    );
    manager.start_in_thread().unwrap();
    manager
}

fn client_with_key(server: &TestManager, key: &[u8]) -> TestManager {
    TestManager::with_options(
        ManagerOptions::new()
            .address(server.address().unwrap())
            .authkey(key),
    )
}

fn raw_connect(server: &TestManager) -> TcpStream {
    let managers::Address::Tcp(addr) = server.address().unwrap() else {
        unreachable!("tcp server")
    };
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// A fake server on a loopback port that answers one connection with
/// `respond` (given the client's hello), then hangs up.
fn fake_server(respond: impl FnOnce(&[u8], &mut TcpStream) + Send + 'static) -> ManagerOptions {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut hello = Vec::new();
        read_frame(&mut stream, &mut hello, 128).unwrap();
        respond(&hello, &mut stream);
    });
    ManagerOptions::new().address(address).authkey(b"key")
}

fn assert_still_serving(server: &TestManager, key: &[u8]) {
    let client = client_with_key(server, key);
    client.connect().unwrap();
    assert_eq!(client.maths().unwrap().add(2, 3).unwrap(), 5);
}

// "Garbage instead of a challenge or a response fails with an
// authentication error on both sides." — the client's side: garbage
// where the challenge should be.
#[test]
fn garbage_challenge_is_an_authentication_error_for_the_client() {
    let options = fake_server(|_, stream| {
        stream
            .write_all(&raw_frame(b"this is not a challenge"))
            .unwrap();
    });
    let err = TestManager::with_options(options).connect().unwrap_err();
    assert!(matches!(err, Error::Authentication(_)), "{err}");
}

// Same line, the client's side: garbage where the verdict should be.
#[test]
fn garbage_verdict_is_an_authentication_error_for_the_client() {
    let options = fake_server(|hello, stream| {
        let (_, challenge) = ServerHandshake::start(b"key", hello).unwrap();
        stream.write_all(&raw_frame(&challenge)).unwrap();
        let mut response = Vec::new();
        read_frame(stream, &mut response, 128).unwrap();
        stream.write_all(&raw_frame(b"\x07garbage")).unwrap();
    });
    let err = TestManager::with_options(options).connect().unwrap_err();
    assert!(matches!(err, Error::Authentication(_)), "{err}");
}

// Same line, the server's side: garbage instead of the greeting. The
// server refuses (closes the connection) and goes on serving.
#[test]
fn garbage_greeting_is_refused_by_the_server() {
    assert!(matches!(
        ServerHandshake::start(b"key", b"GET / HTTP/1.1\r\n"),
        Err(Error::Authentication(_))
    ));
    let server = server_with_key(b"key");
    let mut stream = raw_connect(&server);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut rest = Vec::new();
    // The server hangs up without sending anything a client could decode.
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "server answered garbage with {rest:?}");
    assert_still_serving(&server, b"key");
    assert_eq!(server.number_of_objects().unwrap(), 0);
}

// Same line, the server's side: garbage instead of the response to its
// challenge. The client is told it failed and the connection is closed.
#[test]
fn garbage_response_is_refused_by_the_server() {
    let server = server_with_key(b"key");
    let mut stream = raw_connect(&server);
    let (_, hello) = ClientHandshake::start(b"key");
    stream.write_all(&raw_frame(&hello)).unwrap();
    let mut challenge = Vec::new();
    read_frame(&mut stream, &mut challenge, 128).unwrap();
    stream.write_all(&raw_frame(b"not a digest")).unwrap();
    let mut verdict = Vec::new();
    read_frame(&mut stream, &mut verdict, 128).unwrap();
    assert_eq!(verdict, [0], "refusal verdict");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "connection closed after the refusal");
    assert_still_serving(&server, b"key");
}

// "Right key both ways succeeds; wrong key either way fails." — right key.
#[test]
fn right_key_both_ways_succeeds() {
    let server = server_with_key(b"shared secret");
    assert_still_serving(&server, b"shared secret");
    assert_eq!(server.number_of_objects().unwrap(), 0);
}

// Same line: the client has the wrong key.
#[test]
fn wrong_client_key_fails() {
    let server = server_with_key(b"right");
    let err = client_with_key(&server, b"wrong").connect().unwrap_err();
    assert!(matches!(err, Error::Authentication(_)), "{err}");
    assert_still_serving(&server, b"right");
}

// Same line: the server has the wrong key (an impostor that accepts the
// client anyway cannot prove it knows the key).
#[test]
fn wrong_server_key_fails() {
    let options = fake_server(|hello, stream| {
        let (impostor, challenge) = ServerHandshake::start(b"not the key", hello).unwrap();
        stream.write_all(&raw_frame(&challenge)).unwrap();
        let mut response = Vec::new();
        read_frame(stream, &mut response, 128).unwrap();
        // It refuses the genuine client (wrong key), as a real server would.
        let verdict = impostor.verdict(&response);
        assert!(!verdict.accepted);
        stream.write_all(&raw_frame(&verdict.body)).unwrap();
    });
    let err = TestManager::with_options(options).connect().unwrap_err();
    assert!(matches!(err, Error::Authentication(_)), "{err}");

    let options = fake_server(|hello, stream| {
        let (_, challenge) = ServerHandshake::start(b"not the key", hello).unwrap();
        stream.write_all(&raw_frame(&challenge)).unwrap();
        let mut response = Vec::new();
        read_frame(stream, &mut response, 128).unwrap();
        // It claims success with a digest it cannot compute.
        let mut forged = vec![1u8];
        forged.extend_from_slice(&[0u8; 32]);
        stream.write_all(&raw_frame(&forged)).unwrap();
    });
    let err = TestManager::with_options(options).connect().unwrap_err();
    assert!(matches!(err, Error::Authentication(_)), "{err}");
    assert!(
        err.to_string().contains("does not know the authkey"),
        "{err}"
    );
}
