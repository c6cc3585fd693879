//! CONFORMANCE.md "Remote manager" (CPython's _TestRemoteManager and the
//! seed's queue example): a TCP server with an authkey, reached by clients
//! that know only its address and key.

use managers::sync::server::ManagedQueue;
use managers::sync::QueueProxy;
use managers::{manager, Error, ManagerOptions};

manager! {
    /// The seed's queue manager: `get_queue` hands out the one queue.
    pub struct QueueManager {
        #[singleton]
        get_queue: ManagedQueue = || ManagedQueue::new(0),
    }
}

/// What CPython's test sends: (None, True, 2.25, unicode text, bytes).
type Mixed = (Option<()>, bool, f64, String, Vec<u8>);

fn serving(key: &[u8]) -> (QueueManager, managers::Address) {
    let server =
        QueueManager::with_options(ManagerOptions::new().address("127.0.0.1:0").authkey(key));
    server.start_in_thread().unwrap();
    let address = server.address().unwrap();
    (server, address)
}

fn client(address: &managers::Address, key: &[u8]) -> managers::Result<QueueManager> {
    let manager =
        QueueManager::with_options(ManagerOptions::new().address(address.clone()).authkey(key));
    manager.connect()?;
    Ok(manager)
}

// "Server on 127.0.0.1 with an authkey; a client with the same key puts a
// tuple of (none, true, 2.25, unicode text, bytes), another gets it equal."
#[test]
fn a_tuple_put_by_one_client_is_got_equal_by_another() {
    let (server, address) = serving(b"abracadabra");
    let sent: Mixed = (
        None,
        true,
        2.25,
        "h\u{e9}llo w\u{f6}rld \u{2603} \u{1f600}".to_string(),
        b"\x00\x01bytes\xff".to_vec(),
    );
    {
        let putter = client(&address, b"abracadabra").unwrap();
        let queue: QueueProxy<Mixed> = putter.get_queue().unwrap().retype();
        queue.put(sent.clone()).unwrap();
    }
    let getter = client(&address, b"abracadabra").unwrap();
    let queue: QueueProxy<Mixed> = getter.get_queue().unwrap().retype();
    assert_eq!(queue.get().unwrap(), sent);
    drop(queue);
    drop(getter);
    assert_eq!(server.number_of_objects().unwrap(), 0);
}

// "A wrong authkey is refused with an authentication error on the client,
// and the server goes on serving others."
#[test]
fn a_wrong_authkey_is_refused_and_others_are_served() {
    let (server, address) = serving(b"abracadabra");
    let honest = client(&address, b"abracadabra").unwrap();
    let queue: QueueProxy<i64> = honest.get_queue().unwrap().retype();
    for attempt in 0..10 {
        let err = client(&address, b"open sesame").expect_err("refused");
        assert!(matches!(err, Error::Authentication(_)), "{err}");
        queue.put(attempt).unwrap();
    }
    assert_eq!(queue.qsize().unwrap(), 10);
    drop(queue);
    drop(honest);
    assert_eq!(server.number_of_objects().unwrap(), 0);
}

// "An empty authkey works."
#[test]
fn an_empty_authkey_works() {
    let (server, address) = serving(b"");
    let manager = client(&address, b"").unwrap();
    let queue: QueueProxy<String> = manager.get_queue().unwrap().retype();
    queue.put("empty key".into()).unwrap();
    assert_eq!(queue.get().unwrap(), "empty key");
    assert!(matches!(
        client(&address, b"not empty"),
        Err(Error::Authentication(_))
    ));
    drop(queue);
    drop(manager);
    assert_eq!(server.number_of_objects().unwrap(), 0);
}
