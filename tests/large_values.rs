//! Large values (issue 11): payloads of several MiB round-trip byte-exact
//! through the paths that avoid copying them (results encoded from a
//! borrow, replies written behind their header without being joined to
//! it), through typed and untyped proxies, blocking and async, and around
//! the size from which a reply is written so.

mod common;

use common::sync::{assert_no_objects, current_thread_runtime, started_in_thread};
use managers::sync::SyncManager;
use managers::value::Value;
use managers::{manager, shared, ManagerOptions};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes that serialize as bytes (a `Value::Bytes`), not as a list of ints.
#[derive(Debug, Clone, PartialEq)]
struct Blob(Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl serde::de::Visitor<'_> for Bytes {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
        }
        deserializer.deserialize_byte_buf(Bytes)
    }
}

/// `len` bytes of a pattern that a shifted or truncated copy would not match.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ ((i >> 8) as u8) ^ ((i >> 16) as u8) ^ seed)
        .collect()
}

const MIB: usize = 1 << 20;

/// Calls bounded in time, so a reply cut short fails the test instead of
/// hanging it.
fn bounded() -> ManagerOptions {
    ManagerOptions::new().call_timeout(std::time::Duration::from_secs(60))
}

#[test]
fn a_large_value_round_trips_through_typed_and_untyped_proxies() {
    let manager = started_in_thread(SyncManager::with_options(bounded()));
    let first = Blob(pattern(5 * MIB + 3, 1));
    let typed = manager.value(&first).unwrap();
    assert_eq!(typed.get().unwrap(), first);

    // What the typed proxy stored is the dynamic value any proxy reads.
    let raw = typed.retype::<Value>();
    assert_eq!(raw.get().unwrap(), Value::Bytes(first.0.clone()));

    // And what an untyped proxy stores, the typed one reads.
    let second = pattern(3 * MIB, 2);
    raw.set(&Value::Bytes(second.clone())).unwrap();
    assert_eq!(typed.get().unwrap(), Blob(second.clone()));

    let third = Blob(pattern(4 * MIB + 1, 3));
    typed.set(&third).unwrap();
    assert_eq!(raw.get().unwrap(), Value::Bytes(third.0.clone()));

    // Large values of other shapes: a long string, a list of many items.
    let text = "ünïcode ".repeat(MIB / 4);
    let words = manager.value(&text).unwrap();
    assert_eq!(words.get().unwrap(), text);
    let numbers: Vec<i64> = (0..200_000).map(|i| i * 7 - 3).collect();
    let list = manager.value(&numbers).unwrap();
    assert_eq!(list.get().unwrap(), numbers);

    drop((typed, raw, words, list));
    assert_no_objects(&manager);
}

#[test]
fn a_large_value_round_trips_through_async_proxies() {
    let manager = started_in_thread(SyncManager::with_options(bounded()));
    let runtime = current_thread_runtime();
    runtime.block_on(async {
        let first = Blob(pattern(6 * MIB, 4));
        let value = manager.value_async(&first).await.unwrap();
        assert_eq!(value.get().await.unwrap(), first);
        let second = Blob(pattern(2 * MIB + 7, 5));
        value.set(&second).await.unwrap();
        assert_eq!(value.get().await.unwrap(), second);
        assert_eq!(
            value.retype::<Value>().get().await.unwrap(),
            Value::Bytes(second.0.clone())
        );
        // The blocking proxy of the same value reads the same bytes.
        let blocking = value.to_blocking();
        let read = tokio::task::spawn_blocking(move || blocking.get().unwrap())
            .await
            .unwrap();
        assert_eq!(read, second);
    });
    drop(runtime);
    assert_no_objects(&manager);
}

#[test]
fn values_around_the_vectored_reply_size_round_trip() {
    // Replies from 64 KiB on are written behind their header, not joined
    // to it: every size around that edge comes back whole.
    let manager = started_in_thread(SyncManager::with_options(bounded()));
    let value = manager.value(&Blob(Vec::new())).unwrap();
    for len in (64 * 1024 - 8)..(64 * 1024 + 8) {
        let blob = Blob(pattern(len, len as u8));
        value.set(&blob).unwrap();
        assert_eq!(value.get().unwrap(), blob, "{len} bytes");
    }
    drop(value);
    assert_no_objects(&manager);
}

/// A custom type whose results borrow from it, or come later.
#[derive(Default)]
pub struct Store {
    data: Vec<u8>,
    text: String,
}

#[shared]
impl Store {
    /// Replace the contents.
    pub fn fill(&mut self, data: Vec<u8>, text: String) {
        self.data = data;
        self.text = text;
    }

    /// A borrowed slice, encoded from the borrow.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// A borrowed string, from a `&mut self` method.
    pub fn push_text(&mut self, more: String) -> &str {
        self.text.push_str(&more);
        &self.text
    }

    /// A result that is not ready at the first poll: written by the task
    /// that waits for it.
    pub async fn data_later(&self) -> Vec<u8> {
        tokio::task::yield_now().await;
        self.data.clone()
    }

    /// The same, borrowed.
    pub async fn data_later_borrowed(&self) -> &[u8] {
        tokio::task::yield_now().await;
        &self.data
    }
}

manager! {
    /// A manager serving `Store`s.
    pub struct StoreManager {
        Store: Store,
    }
}

#[test]
fn borrowed_and_late_large_results_round_trip() {
    let manager = started_in_thread(StoreManager::with_options(bounded()));
    let store = manager.store().unwrap();
    let data = pattern(3 * MIB + 5, 6);
    let text = "x".repeat(100 * 1024);
    store.fill(data.clone(), text.clone()).unwrap();
    assert_eq!(store.data().unwrap(), data);
    assert_eq!(store.data_later().unwrap(), data);
    assert_eq!(store.data_later_borrowed().unwrap(), data);
    assert_eq!(store.push_text("yz".into()).unwrap(), text.clone() + "yz");
    // Small borrowed results too.
    store.fill(vec![1, 2, 3], String::new()).unwrap();
    assert_eq!(store.data().unwrap(), vec![1, 2, 3]);
    assert_eq!(store.data_later_borrowed().unwrap(), vec![1, 2, 3]);
    assert_eq!(store.push_text("a".into()).unwrap(), "a");

    let runtime = current_thread_runtime();
    runtime.block_on(async {
        let store = store.to_async();
        store.fill(data.clone(), text.clone()).await.unwrap();
        assert_eq!(store.data().await.unwrap(), data);
        assert_eq!(store.data_later().await.unwrap(), data);
        assert_eq!(store.data_later_borrowed().await.unwrap(), data);
    });
    drop(runtime);
    drop(store);
    assert_no_objects(&manager);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Empty,
    Circle(f64),
    Line(i64, i64),
    Rect { w: u32, h: u32 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Drawing {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    note: Option<String>,
    shapes: Vec<Shape>,
    weights: std::collections::BTreeMap<String, f32>,
    raw: Value,
}

#[test]
fn a_typed_set_stores_the_value_to_value_gives() {
    // The typed proxy writes the value's wire form straight from the
    // user's type; what the server stores must be exactly `to_value(x)`,
    // as untyped proxies (and Python) read it.
    let manager = started_in_thread(SyncManager::with_options(bounded()));
    let drawing = |note: Option<&str>| Drawing {
        name: "plan".into(),
        note: note.map(Into::into),
        shapes: vec![
            Shape::Empty,
            Shape::Circle(0.5),
            Shape::Line(-1, 1),
            Shape::Rect { w: 3, h: 4 },
        ],
        weights: [("a".to_string(), 1.5), ("b".to_string(), -2.0)].into(),
        raw: Value::List(vec![Value::None, Value::Bytes(vec![9; 10])]),
    };
    let value = manager.value(&drawing(None)).unwrap();
    for note in [Some("n"), None] {
        let x = drawing(note);
        value.set(&x).unwrap();
        assert_eq!(
            value.retype::<Value>().get().unwrap(),
            managers::value::to_value(&x).unwrap()
        );
        assert_eq!(value.get().unwrap(), x);
    }
    // What it cannot write directly goes the long way, with the same
    // error as before for what cannot be a value at all.
    let big = manager.value(&0_u128).unwrap();
    big.set(&(i128::MAX as u128)).unwrap();
    assert_eq!(big.get().unwrap(), i128::MAX as u128);
    let err = big.set(&u128::MAX).unwrap_err();
    let expected = managers::Error::from(managers::value::to_value(&u128::MAX).unwrap_err());
    assert_eq!(format!("{err:?}"), format!("{expected:?}"));
    assert_eq!(big.get().unwrap(), i128::MAX as u128);
    // A proxy inside the value (a token only `to_value` writes).
    let inner = manager.value(&1_i64).unwrap();
    let holder = manager
        .value(&None::<managers::sync::ValueProxy<i64>>)
        .unwrap();
    holder.set(&Some(inner.clone())).unwrap();
    let back = holder.get().unwrap().expect("a proxy");
    back.set(&5).unwrap();
    assert_eq!(inner.get().unwrap(), 5);
    drop((value, big, inner, holder, back));
    assert_no_objects(&manager);
}
