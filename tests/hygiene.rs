//! Generated code must compile with the crate renamed and no prelude, and
//! must not be confused by user items named like std's (after tarpc's
//! `proc_macro_hygene` test). Nothing here needs a server.
#![no_implicit_prelude]
#![deny(warnings)]

extern crate managers as renamed_managers;
extern crate serde;
extern crate std;

use std::convert::From;
use std::string::String;
use std::vec::Vec;

/// A served type: every kind of method `#[shared]` supports.
#[derive(::std::default::Default)]
pub struct Hygiene {
    value: i64,
    log: Vec<String>,
}

/// An error a method returns, typed on both sides.
#[derive(::serde::Serialize, ::serde::Deserialize, ::std::fmt::Debug, ::std::cmp::PartialEq)]
pub struct HygieneError;

/// User types named like the generic parameters generated code declares
/// (`fn serialize<S>`, `fn deserialize<D>`, `Wrapper<T>`, const `K0`): the
/// generated impls must still mean these.
#[derive(::serde::Serialize, ::serde::Deserialize, ::std::fmt::Debug, ::std::cmp::PartialEq)]
pub struct S(pub i64);
/// See [`S`].
#[derive(::serde::Serialize, ::serde::Deserialize, ::std::fmt::Debug, ::std::cmp::PartialEq)]
pub struct D(pub String);
/// See [`S`].
#[derive(::serde::Serialize, ::serde::Deserialize, ::std::fmt::Debug, ::std::cmp::PartialEq)]
pub struct T;
/// See [`S`].
#[allow(non_camel_case_types)]
#[derive(::serde::Serialize, ::serde::Deserialize, ::std::fmt::Debug, ::std::cmp::PartialEq)]
pub struct K0(pub u8);

/// A served type whose methods take and return them.
#[derive(::std::default::Default)]
pub struct Named;

#[renamed_managers::shared]
impl Named {
    /// Every such type, in and out.
    pub fn swap(&self, s: S, d: &D, t: T, k: K0) -> (D, S, T, K0) {
        (D(::std::clone::Clone::clone(&d.0)), s, t, k)
    }

    /// One more, async.
    pub async fn later(&self, d: D) -> D {
        d
    }
}

/// A type returned by proxy.
#[derive(::std::default::Default)]
pub struct Child;

#[renamed_managers::shared]
impl Child {
    /// Says hello.
    pub fn hello(&self) -> String {
        String::from("hello")
    }
}

#[renamed_managers::shared(typeid = "HygieneType")]
impl Hygiene {
    /// A plain `&self` method.
    pub fn get(&self) -> i64 {
        self.value
    }

    /// A `&mut self` method with borrowed arguments.
    pub fn record(&mut self, line: &str, tags: &[u8], _count: &u32) {
        let _ = tags;
        self.log.push(String::from(line));
    }

    /// An async method.
    pub async fn slow(&self, ms: u64) -> u64 {
        ms
    }

    /// An async `&mut self` method.
    pub async fn bump(&mut self) -> i64 {
        self.value += 1;
        self.value
    }

    /// A method returning a typed error.
    pub fn checked(&self, divisor: i64) -> ::std::result::Result<i64, HygieneError> {
        if divisor == 0 {
            ::std::result::Result::Err(HygieneError)
        } else {
            ::std::result::Result::Ok(self.value / divisor)
        }
    }

    /// A method returning a borrowed string, sent as a `String`.
    pub fn first(&self) -> &str {
        self.log.first().map(|s| s.as_str()).unwrap_or("")
    }

    /// A method returning another shared object.
    #[proxy]
    pub fn child(&self) -> Child {
        Child
    }

    /// A method returning a shared object or an error.
    #[proxy]
    pub fn maybe_child(&self, ok: bool) -> ::std::result::Result<Child, HygieneError> {
        if ok {
            ::std::result::Result::Ok(Child)
        } else {
            ::std::result::Result::Err(HygieneError)
        }
    }

    /// A typed `&mut` receiver (the spelling is what this checks).
    #[allow(clippy::needless_arbitrary_self_type)]
    pub fn reset(self: &mut Self, value: i64) -> i64 {
        ::std::mem::replace(&mut self.value, value)
    }

    /// An async method returning another shared object.
    #[proxy]
    pub async fn child_later(&self) -> Child {
        Child
    }

    /// A method returning an optional copy of this type.
    #[proxy]
    pub fn fork(&self) -> ::std::option::Option<Self> {
        ::std::option::Option::None
    }

    /// Not `pub`: not exposed.
    fn hidden(&self) {}

    /// No receiver: not exposed.
    pub fn new() -> Self {
        Hygiene {
            value: 0,
            log: Vec::new(),
        }
    }
}

renamed_managers::manager! {
    /// A manager for the hygiene test.
    pub struct HygieneManager {
        HygieneType: Hygiene,
        Started: Hygiene = |value: i64, name: &str| Hygiene { value, log: ::std::vec![String::from(name)] },
        #[singleton] shared_child: Child = || Child,
        #[exposed(get, checked)] Restricted: Hygiene = Hygiene::new,
        #[create_method = false] Child: Child,
        Named: Named = |s: S, d: D| { let _ = (s, d); Named },
    }
}

#[test]
fn generated_items_need_no_server() {
    use renamed_managers::__private::Shared;
    use std::assert_eq;
    use std::assert_ne;
    use std::iter::Iterator;

    assert_eq!(<Hygiene as Shared>::TYPEID, "HygieneType");
    assert_eq!(<Child as Shared>::TYPEID, "Child");
    let names: Vec<&str> = <Hygiene as Shared>::METHODS
        .iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(
        names,
        [
            "get",
            "record",
            "slow",
            "bump",
            "checked",
            "first",
            "child",
            "maybe_child",
            "reset",
            "child_later",
            "fork"
        ]
    );
    let methods = <Hygiene as Shared>::METHODS;
    for (i, a) in methods.iter().enumerate() {
        for b in &methods[i + 1..] {
            assert_ne!(a.fingerprint, b.fingerprint, "{} and {}", a.name, b.name);
        }
    }
    Hygiene::new().hidden();
    let manager = HygieneManager::new();
    let _: &renamed_managers::BaseManager = &manager;
    let _ = HygieneManager::__registry();
}
