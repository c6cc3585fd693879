//! Round trips through `Value` and through postcard, errors, and Python's
//! equality, hashing and ordering.
#![forbid(unsafe_code)]

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Debug;
use std::hash::{BuildHasher, RandomState};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::*;
use crate::address::Address;

fn token(id: u64) -> Token {
    Token {
        typeid: "list".to_owned(),
        address: Address::Tcp("127.0.0.1:5000".parse().unwrap()),
        id,
    }
}

/// `v` goes to a `Value`, the `Value` through postcard, and back by both the
/// owned and the borrowed deserializer.
fn round_trip<T>(v: &T) -> Value
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let value = to_value(v).unwrap();
    let bytes = postcard::to_allocvec(&value).unwrap();
    let decoded: Value = postcard::from_bytes(&bytes).unwrap();
    assert_identical(&decoded, &value);
    assert_eq!(&from_value_ref::<T>(&value).unwrap(), v);
    assert_eq!(&from_value::<T>(value.clone()).unwrap(), v);
    value
}

/// Equal and of the same shape: `==` alone would accept `1` for `1.0`.
fn assert_identical(a: &Value, b: &Value) {
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

fn list(items: impl IntoIterator<Item = Value>) -> Value {
    Value::List(items.into_iter().collect())
}

fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

#[test]
fn primitives() {
    assert_identical(&round_trip(&true), &Value::Bool(true));
    assert_identical(&round_trip(&-5i8), &Value::Int(-5));
    assert_identical(&round_trip(&u64::MAX), &Value::Int(u64::MAX.into()));
    assert_identical(&round_trip(&i64::MIN), &Value::Int(i64::MIN.into()));
    assert_identical(&round_trip(&i128::MIN), &Value::Int(i128::MIN));
    assert_identical(&round_trip(&2.25f64), &Value::Float(2.25));
    assert_identical(&round_trip(&1.5f32), &Value::Float(1.5));
    assert_identical(&round_trip(&'x'), &Value::from("x"));
    assert_identical(&round_trip(&"Bob".to_owned()), &Value::from("Bob"));
    assert_identical(&round_trip(&()), &Value::None);
}

#[test]
fn options() {
    assert_identical(&round_trip(&Some(3u16)), &Value::Int(3));
    assert_identical(&round_trip(&None::<u16>), &Value::None);
    assert_identical(
        &round_trip(&vec![Some("a".to_owned()), None]),
        &list(["a".into(), Value::None]),
    );
}

#[test]
fn sequences_and_tuples() {
    assert_identical(
        &round_trip(&vec![1.5, 2.0]),
        &list([1.5.into(), 2.0.into()]),
    );
    assert_identical(
        &round_trip(&(1u8, "two".to_owned(), 3.0f64)),
        &list([1.into(), "two".into(), 3.0.into()]),
    );
    round_trip(&[1u32, 2, 3]);
    round_trip(&BTreeSet::from([3, 1, 2]));
    round_trip(&HashSet::from(["x".to_owned(), "y".to_owned()]));
    round_trip(&Vec::<Vec<i32>>::from([vec![], vec![1], vec![2, 3]]));
}

#[test]
fn maps() {
    let m: HashMap<String, Vec<f64>> =
        HashMap::from([("a".to_owned(), vec![1.0, 2.5]), ("b".to_owned(), vec![])]);
    round_trip(&m);
    let b: BTreeMap<i64, bool> = BTreeMap::from([(-1, true), (7, false)]);
    assert_identical(
        &round_trip(&b),
        &Value::Map(vec![
            (Value::Int(-1), Value::Bool(true)),
            (Value::Int(7), Value::Bool(false)),
        ]),
    );
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Person {
    name: String,
    age: u32,
    tags: Vec<String>,
    nick: Option<String>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Meters(f64);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Pair(i32, String);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Unit;

#[test]
fn structs() {
    let bob = Person {
        name: "Bob".to_owned(),
        age: 10,
        tags: vec!["x".to_owned()],
        nick: None,
    };
    assert_identical(
        &round_trip(&bob),
        &map([
            ("name", "Bob".into()),
            ("age", 10.into()),
            ("tags", list(["x".into()])),
            ("nick", Value::None),
        ]),
    );
    assert_identical(&round_trip(&Meters(2.5)), &Value::Float(2.5));
    assert_identical(
        &round_trip(&Pair(-1, "p".to_owned())),
        &list([Value::Int(-1), "p".into()]),
    );
    assert_identical(&round_trip(&Unit), &Value::None);
}

#[test]
fn struct_fields_in_any_order_or_as_a_list() {
    let shuffled = map([
        ("nick", "B".into()),
        ("tags", list([])),
        ("age", 3.into()),
        ("name", "Bo".into()),
    ]);
    let p: Person = from_value(shuffled).unwrap();
    assert_eq!(p.nick.as_deref(), Some("B"));
    let as_list = list(["Bo".into(), 3.into(), list([]), Value::None]);
    let p: Person = from_value(as_list).unwrap();
    assert_eq!((p.name.as_str(), p.age, p.nick), ("Bo", 3, None));
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Empty,
    Circle(f64),
    Rect(u32, u32),
    Named { name: String, sides: u8 },
}

#[test]
fn enums_are_externally_tagged() {
    assert_identical(&round_trip(&Shape::Empty), &Value::from("Empty"));
    assert_identical(
        &round_trip(&Shape::Circle(1.5)),
        &map([("Circle", 1.5.into())]),
    );
    assert_identical(
        &round_trip(&Shape::Rect(2, 3)),
        &map([("Rect", list([2.into(), 3.into()]))]),
    );
    assert_identical(
        &round_trip(&Shape::Named {
            name: "tri".to_owned(),
            sides: 3,
        }),
        &map([("Named", map([("name", "tri".into()), ("sides", 3.into())]))]),
    );
    round_trip(&vec![Shape::Empty, Shape::Circle(0.0)]);
    round_trip(&Ok::<i32, String>(4));
    round_trip(&Err::<i32, String>("no".to_owned()));
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    Num(i64),
    Text(String),
    Many(Vec<Untagged>),
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Internal {
    A { x: i32 },
    B { s: String },
}

#[test]
fn self_describing_features_use_deserialize_any() {
    round_trip(&Untagged::Many(vec![
        Untagged::Num(-3),
        Untagged::Text("t".to_owned()),
    ]));
    round_trip(&vec![
        Internal::A { x: 1 },
        Internal::B { s: "b".to_owned() },
    ]);
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Holder {
    label: String,
    #[serde(with = "token_serde")]
    owner: Token,
    others: Vec<TokenValue>,
    maybe: Option<TokenValue>,
}

#[test]
fn tokens_stay_tokens() {
    let tokens = vec![TokenValue(token(1)), TokenValue(token(2))];
    assert_identical(
        &round_trip(&tokens),
        &list([Value::from(token(1)), Value::from(token(2))]),
    );
    let holder = Holder {
        label: "h".to_owned(),
        owner: token(3),
        others: vec![TokenValue(token(4))],
        maybe: Some(TokenValue(token(5))),
    };
    let value = round_trip(&holder);
    let ids: Vec<u64> = value.tokens().map(|t| t.id).collect();
    assert_eq!(ids, [3, 4, 5]);
    assert_eq!(
        value.repr(),
        "{'label': 'h', 'owner': <Proxy typeid 'list' id 3 at 127.0.0.1:5000>, \
         'others': [<Proxy typeid 'list' id 4 at 127.0.0.1:5000>], \
         'maybe': <Proxy typeid 'list' id 5 at 127.0.0.1:5000>}"
    );
}

#[test]
fn token_value_in_plain_postcard_is_the_token() {
    let holder = Holder {
        label: "h".to_owned(),
        owner: token(3),
        others: vec![TokenValue(token(4))],
        maybe: None,
    };
    let bytes = postcard::to_allocvec(&holder).unwrap();
    assert_eq!(postcard::from_bytes::<Holder>(&bytes).unwrap(), holder);
    // Transparent: the same bytes as the bare token.
    assert_eq!(
        postcard::to_allocvec(&TokenValue(token(9))).unwrap(),
        postcard::to_allocvec(&token(9)).unwrap()
    );
}

#[test]
fn untagged_readers_see_a_token_as_its_struct() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(i64),
        Proxy(TokenValue),
    }
    round_trip(&vec![
        Either::Number(1),
        Either::Proxy(TokenValue(token(6))),
    ]);
}

#[test]
fn values_nested_in_user_types_pass_through_unchanged() {
    let inner = Value::Map(vec![
        (Value::Int(1), Value::Bytes(vec![0, 255])),
        ("t".into(), Value::from(token(7))),
        ("l".into(), list([Value::None, Value::Float(f64::INFINITY)])),
    ]);
    assert_identical(&to_value(&inner).unwrap(), &inner);
    assert_identical(&from_value::<Value>(inner.clone()).unwrap(), &inner);
    assert_identical(&from_value_ref::<Value>(&inner).unwrap(), &inner);
    let pair = ("key".to_owned(), inner.clone());
    assert_identical(&round_trip(&pair), &list(["key".into(), inner.clone()]));
    let back: HashMap<String, Value> = from_value(map([("k", inner.clone())])).unwrap();
    assert_identical(&back["k"], &inner);
}

#[test]
fn value_postcard_round_trip_of_every_variant() {
    let all = list([
        Value::None,
        Value::Bool(false),
        Value::Int(i128::MAX),
        Value::Int(-1),
        Value::Float(-0.5),
        Value::Float(f64::NAN),
        Value::from("s"),
        Value::Bytes(vec![1, 2, 3]),
        list([]),
        Value::Map(vec![(Value::None, Value::None), (Value::None, 1.into())]),
        Value::from(token(8)),
    ]);
    let bytes = postcard::to_allocvec(&all).unwrap();
    assert_identical(&postcard::from_bytes::<Value>(&bytes).unwrap(), &all);
}

#[test]
fn deeply_nested_wire_input_is_refused() {
    let mut deep = Value::None;
    for _ in 0..200 {
        deep = list([deep]);
    }
    let bytes = postcard::to_allocvec(&deep).unwrap();
    let err = postcard::from_bytes::<Value>(&bytes).unwrap_err();
    assert!(matches!(err, postcard::Error::SerdeDeCustom), "{err:?}");
}

#[test]
fn bytes_and_byte_lists() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Blob(#[serde(with = "bytes_field")] Vec<u8>);

    mod bytes_field {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(b)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            <&[u8]>::deserialize(d).map(<[u8]>::to_vec)
        }
    }

    assert_identical(
        &to_value(&Blob(vec![1, 2])).unwrap(),
        &Value::Bytes(vec![1, 2]),
    );
    assert_eq!(
        from_value_ref::<Blob>(&Value::Bytes(vec![1, 2])).unwrap(),
        Blob(vec![1, 2])
    );
    let from_bytes: Vec<u8> = from_value(Value::Bytes(vec![7, 8])).unwrap();
    assert_eq!(from_bytes, [7, 8]);
    let from_list: Vec<u8> = from_value(list([7.into(), 8.into()])).unwrap();
    assert_eq!(from_list, [7, 8]);
    let err = from_value::<Vec<u8>>(list([256.into()])).unwrap_err();
    assert_eq!(err.to_string(), "integer 256 is out of range for u8");
}

#[test]
fn lenient_conversions() {
    assert_eq!(from_value::<f64>(Value::Int(3)).unwrap(), 3.0);
    assert_eq!(from_value::<f32>(Value::Float(0.5)).unwrap(), 0.5);
    assert_eq!(from_value::<Option<u8>>(Value::Int(3)).unwrap(), Some(3));
    assert_eq!(from_value::<Option<u8>>(Value::None).unwrap(), None);
    from_value::<()>(Value::None).unwrap();
    from_value::<Unit>(Value::None).unwrap();
    assert_eq!(
        from_value::<(i32, String)>(list([1.into(), "a".into()])).unwrap(),
        (1, "a".to_owned())
    );
    assert_eq!(
        from_value::<Shape>(map([("Empty", Value::None)])).unwrap(),
        Shape::Empty
    );
}

#[test]
fn clear_errors() {
    let err = from_value::<i64>(Value::from("x")).unwrap_err();
    assert_eq!(err.to_string(), "expected an integer, found a string");
    let err = from_value::<u8>(Value::Int(300)).unwrap_err();
    assert_eq!(
        err,
        ValueError::OutOfRange {
            value: "300".to_owned(),
            target: "u8"
        }
    );
    assert_eq!(
        from_value::<u64>(Value::Int(-1)).unwrap_err().to_string(),
        "integer -1 is out of range for u64"
    );
    assert_eq!(
        from_value::<i32>(Value::Float(1.0))
            .unwrap_err()
            .to_string(),
        "expected an integer, found a float"
    );
    assert_eq!(
        from_value::<String>(Value::Int(5)).unwrap_err().to_string(),
        "expected a string, found an integer"
    );
    assert_eq!(
        from_value::<Vec<i32>>(Value::from("no"))
            .unwrap_err()
            .to_string(),
        "expected a list, found a string"
    );
    assert_eq!(
        from_value::<Shape>(Value::Int(1)).unwrap_err().to_string(),
        "expected an enum variant (a string or a single-entry map), found an integer"
    );
    assert!(matches!(
        from_value::<(i32, i32)>(list([1.into(), 2.into(), 3.into()])),
        Err(ValueError::InvalidLength { len: 3, .. })
    ));
    assert!(from_value::<Shape>(Value::from("Nope"))
        .unwrap_err()
        .to_string()
        .contains("unknown variant `Nope`"));
    assert!(from_value::<char>(Value::from("ab")).is_err());
    assert_eq!(
        to_value(&u128::MAX).unwrap_err().to_string(),
        format!("integer {} is out of range for i128", u128::MAX)
    );
}

fn hash(v: &Value) -> u64 {
    // One fixed state, so that equal values must hash alike.
    thread_local!(static STATE: RandomState = RandomState::new());
    STATE.with(|s| s.hash_one(v))
}

fn assert_same(a: Value, b: Value) {
    assert_eq!(a, b);
    assert_eq!(b, a);
    assert_eq!(a.cmp(&b), Ordering::Equal);
    assert_eq!(hash(&a), hash(&b), "{a:?} and {b:?} hash alike");
}

#[test]
fn numbers_are_equal_across_kinds() {
    assert_same(Value::Int(1), Value::Float(1.0));
    assert_same(Value::Bool(true), Value::Int(1));
    assert_same(Value::Bool(false), Value::Float(-0.0));
    assert_same(Value::Float(0.0), Value::Float(-0.0));
    assert_same(Value::Int(-(1 << 60)), Value::Float(-(2f64.powi(60))));
    assert_same(Value::Float(f64::NAN), Value::Float(-f64::NAN));
    assert_same(
        list([Value::Int(1), "a".into()]),
        list([Value::Float(1.0), "a".into()]),
    );
    assert_ne!(Value::Int(1), Value::Float(1.5));
    assert_ne!(Value::Int(1), Value::from("1"));
    assert_ne!(Value::Int(0), Value::None);
    assert_ne!(Value::Bytes(vec![97]), list([97.into()]));
    // 2^53 + 1 has no float: the comparison is exact, not rounded.
    assert_ne!(Value::Int((1 << 53) + 1), Value::Float(2f64.powi(53)));
    assert_eq!(
        Value::Int((1 << 53) + 1).cmp(&Value::Float(2f64.powi(53))),
        Ordering::Greater
    );
    assert_eq!(
        Value::Int(i128::MAX).cmp(&Value::Float(2f64.powi(127))),
        Ordering::Less
    );
    assert_eq!(
        Value::Int(i128::MIN).cmp(&Value::Float(-(2f64.powi(127)))),
        Ordering::Equal
    );
}

#[test]
fn maps_are_equal_in_any_order() {
    let a = map([("x", 1.into()), ("y", list([2.into()]))]);
    let b = map([("y", list([2.0.into()])), ("x", true.into())]);
    assert_same(a.clone(), b);
    assert_ne!(a, map([("x", 1.into())]));
    assert_ne!(a, map([("x", 1.into()), ("y", list([3.into()]))]));
    let mut set = HashSet::new();
    set.insert(a);
    assert!(set.contains(&map([("y", list([2.into()])), ("x", 1.into())])));
}

#[test]
fn python_dict_lookup_by_equal_number() {
    let mut dict = HashMap::new();
    dict.insert(Value::Int(1), "one");
    assert_eq!(dict.get(&Value::Float(1.0)), Some(&"one"));
    assert_eq!(dict.get(&Value::Bool(true)), Some(&"one"));
}

#[test]
fn python_ordering() {
    let lt = Some(Ordering::Less);
    assert_eq!(Value::Int(1).py_cmp(&Value::Float(1.5)), lt);
    assert_eq!(Value::Bool(false).py_cmp(&Value::Int(1)), lt);
    assert_eq!(Value::from("a").py_cmp(&Value::from("b")), lt);
    assert_eq!(Value::from("B").py_cmp(&Value::from("a")), lt);
    assert_eq!(Value::Bytes(vec![1]).py_cmp(&Value::Bytes(vec![1, 0])), lt);
    assert_eq!(list([1.into()]).py_cmp(&list([1.into(), 0.into()])), lt);
    assert_eq!(
        list([1.into(), "z".into()]).py_cmp(&list([2.into(), 0.into()])),
        lt
    );
    // Python raises TypeError for these.
    assert_eq!(Value::from("a").py_cmp(&Value::Int(1)), None);
    assert_eq!(Value::Int(1).py_cmp(&Value::from("a")), None);
    assert_eq!(Value::None.py_cmp(&Value::None), None);
    assert_eq!(map([]).py_cmp(&map([])), None);
    assert_eq!(
        list(["a".into()]).py_cmp(&list([1.into()])),
        None,
        "first unequal pair not comparable"
    );
    assert_eq!(Value::from(token(1)).py_cmp(&Value::from(token(2))), None);
    assert_eq!(
        list([Value::None]).py_cmp(&list([Value::None])),
        Some(Ordering::Equal),
        "equal lists never compare their elements"
    );
}

#[test]
fn sorting_mixed_numbers_and_the_total_order() {
    let mut numbers = [
        Value::Float(2.5),
        Value::Int(-3),
        Value::Bool(true),
        Value::Float(f64::NAN),
        Value::Int(2),
        Value::Float(f64::NEG_INFINITY),
    ];
    numbers.sort_by(|a, b| a.py_cmp(b).unwrap());
    assert_eq!(
        numbers.iter().map(Value::repr).collect::<Vec<_>>(),
        ["-inf", "-3", "True", "2", "2.5", "nan"]
    );

    let mut mixed = [
        Value::from(token(1)),
        map([]),
        list([]),
        Value::Bytes(vec![]),
        Value::from(""),
        Value::Int(5),
        Value::None,
    ];
    mixed.sort();
    assert_eq!(
        mixed.iter().map(Value::type_name).collect::<Vec<_>>(),
        ["NoneType", "int", "str", "bytes", "list", "dict", "proxy"]
    );
    assert_eq!(
        Value::from(token(1)).cmp(&Value::from(token(2))),
        Ordering::Less
    );
}

#[test]
fn conversions_and_accessors() {
    assert_eq!(Value::Bool(true).as_int(), Some(1));
    assert_eq!(Value::Int(2).as_float(), Some(2.0));
    assert_eq!(Value::from("s").as_str(), Some("s"));
    assert_eq!(Value::from("s").as_int(), None);
    assert_identical(&Value::from(7u8), &Value::Int(7));
    assert_identical(&Value::default(), &Value::None);
}

#[test]
fn borrowed_reads_borrow() {
    let value = list(["name".into(), Value::Bytes(vec![1, 2])]);
    let (s, b): (&str, &[u8]) = from_value_ref(&value).unwrap();
    assert_eq!((s, b), ("name", &[1u8, 2][..]));
}
