//! CONFORMANCE.md "Custom managers" (the seed's MathsClass and CPython's
//! _TestMyManager), on in-process servers. The lines that need a server
//! process are in conformance_lifecycle.rs; the iterator line in
//! conformance_iterator.rs.

mod common;

use common::sync::assert_no_objects;
use common::{started_test_manager, ValueError};
use managers::proxy::MethodRef;
use managers::{Error, Proxy, RemoteError};

// "MathsClass: `add(4, 3) == 7`, `mul(7, 8) == 56`."
#[test]
fn maths_add_and_mul() {
    let manager = started_test_manager();
    let maths = manager.maths().unwrap();
    assert_eq!(maths.add(4, 3).unwrap(), 7);
    assert_eq!(maths.mul(7, 8).unwrap(), 56);
    drop(maths);
    assert_no_objects(&manager);
}

// "A type with `exposed = (f, _h)`: f callable, a method outside the exposed
// set is refused by the server (not just missing on the proxy)."
#[test]
fn exposed_set_is_enforced_by_the_server() {
    let manager = started_test_manager();
    let tool = manager.tool().unwrap();
    assert_eq!(tool.f().unwrap(), "f()");
    assert_eq!(tool._h().unwrap(), "_h()");
    // `g` has no proxy method; a client that sends it anyway is refused.
    let err = tool
        .base()
        .call::<_, String>(MethodRef::named("g", 0), &())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Remote(RemoteError::NotExposed { method, .. }) if method == "g"),
        "{err}"
    );
    // A typeid registered with a smaller exposed set refuses the rest.
    let add_only = manager.add_only().unwrap();
    assert_eq!(add_only.add(2, 2).unwrap(), 4);
    let err = add_only.mul(2, 2).unwrap_err();
    assert!(
        matches!(err, Error::Remote(RemoteError::NotExposed { .. })),
        "{err}"
    );
    drop((tool, add_only));
    assert_no_objects(&manager);
}

// "A method that fails returns the caller's typed error (ValueError in Python)."
#[test]
fn typed_errors_reach_the_client() {
    let manager = started_test_manager();
    let tool = manager.tool().unwrap();
    assert_eq!(
        tool.fail("bad".into()).unwrap(),
        Err(ValueError("bad".into()))
    );
    assert_eq!(tool.square_of(5).unwrap(), Ok(25));
    assert_eq!(
        tool.square_of(-1).unwrap(),
        Err(ValueError("-1 is negative".into()))
    );
    drop(tool);
    assert_no_objects(&manager);
}
