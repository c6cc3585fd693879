//! Issue 12: `Server::serve()` runs on the caller's tokio runtime, and
//! `serve_forever()` called inside a runtime serves from a thread of its
//! own instead of panicking.

mod common;

use std::time::Duration;

use common::TestManager;
use managers::sync::SyncManager;
use managers::ManagerOptions;

fn client_of(address: managers::Address) -> SyncManager {
    SyncManager::with_options(ManagerOptions::new().address(address))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_on_the_callers_runtime() {
    let server = SyncManager::new().get_server().unwrap();
    let address = server.address().clone();
    let stopper = server.stopper();
    let serving = tokio::spawn(server.serve());
    // An async client and a blocking one (on a blocking thread).
    let client = client_of(address.clone());
    let dict = tokio::task::spawn_blocking(move || {
        client.connect().unwrap();
        let dict = client.dict::<i64, i64>().unwrap();
        dict.set(1, 2).unwrap();
        (client, dict)
    })
    .await
    .unwrap();
    let async_dict = dict.1.to_async();
    assert_eq!(async_dict.get(&1).await.unwrap(), 2);
    stopper.stop();
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("serve() returns once stopped")
        .unwrap()
        .unwrap();
    // Stopped means gone: the blocking connection was closed too.
    let (_client, dict) = dict;
    let after = tokio::task::spawn_blocking(move || dict.get(&1))
        .await
        .unwrap();
    assert!(after.is_err(), "the server still answered: {after:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn serve_forever_inside_a_runtime_does_not_panic() {
    let server = TestManager::new().get_server().unwrap();
    let address = server.address().clone();
    let stopper = server.stopper();
    let stopping = std::thread::spawn(move || {
        let client = TestManager::with_options(ManagerOptions::new().address(address));
        client.connect().unwrap();
        assert_eq!(client.maths().unwrap().add(2, 3).unwrap(), 5);
        stopper.stop();
    });
    // Blocks this runtime's only thread until stopped, as a plain call would.
    server.serve_forever().unwrap();
    stopping.join().unwrap();
}
