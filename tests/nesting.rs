//! Proxies nested across managers: "a token carries its server's address,
//! so a dict on one manager can hold a proxy to a list on another", with
//! refcounts right on both servers.

mod common;

use std::time::Duration;

use common::sync::{connect_session, settled_object_count, started_sync_manager};
use managers::sync::{DictProxy, ListProxy};
use managers::Proxy;

/// How long releases sent by other sessions may take to arrive (they
/// travel without waiting for an answer).
const SETTLE: Duration = Duration::from_secs(3);

#[test]
fn a_dict_on_one_manager_holds_a_list_on_another() {
    let a = started_sync_manager();
    let b = started_sync_manager();
    let list: ListProxy<i64> = b.list_from([1, 2]).unwrap();
    let dict: DictProxy<String, ListProxy<i64>> = a.dict().unwrap();
    dict.set("remote".into(), list.clone()).unwrap();

    // The proxy that comes back out of A's dict talks to B.
    let again = dict.get("remote").unwrap();
    assert_eq!(managers::Proxy::token(&again).address, b.address().unwrap());
    again.append(3).unwrap();
    assert_eq!(list.to_vec().unwrap(), vec![1, 2, 3]);

    // A's dict keeps B's list alive after every client proxy is gone.
    drop((list, again));
    assert_eq!(
        settled_object_count(&b, 1, SETTLE),
        1,
        "held by the dict on A"
    );
    let back = dict.get("remote").unwrap();
    assert_eq!(back.len().unwrap(), 3);
    drop(back);

    // Once A lets go, B frees the list.
    dict.clear().unwrap();
    assert_eq!(
        settled_object_count(&b, 0, SETTLE),
        0,
        "released when the holder let go"
    );
    drop(dict);
    assert_eq!(a.number_of_objects().unwrap(), 0);
}

#[test]
fn a_proxy_handed_over_as_text_is_rebuilt_typed() {
    let owner = started_sync_manager();
    let list: ListProxy<String> = owner.list().unwrap();
    list.append("from the owner".into()).unwrap();
    let text = list.token().to_text();

    // Another session (another process would do the same) rebuilds it.
    let other = connect_session(&owner);
    let token = managers::proxy::Token::from_text(&text).unwrap();
    let rebuilt: ListProxy<String> = other.proxy_from_token(&token).unwrap();
    rebuilt.append("from the other".into()).unwrap();
    assert_eq!(list.len().unwrap(), 2);

    // The rebuilt proxy holds its own reference.
    drop(list);
    assert_eq!(rebuilt.len().unwrap(), 2);
    drop(rebuilt);
    assert_eq!(settled_object_count(&owner, 0, SETTLE), 0);
    assert!(managers::proxy::Token::from_text("not hex").is_err());
}
