//! Request decoding, as a server does it after the handshake: the message
//! header (`decode_header::<Request>`), then payloads: a typed argument
//! tuple (`wire::decode::<(i64, String)>`) and the dynamic value of the
//! built-ins (`postcard::from_bytes::<Value>`), which is then compared,
//! hashed, printed and re-encoded as the server would.

#![no_main]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use libfuzzer_sys::fuzz_target;
use managers::value::{self, Value};
use managers::wire::{self, Request, Response};

fn exercise(value: &Value) {
    let _ = value.repr();
    let _ = value.is_truthy();
    let _ = value.py_cmp(value);
    let _ = value.cmp(value);
    let _ = *value == value.clone();
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    let _ = hasher.finish();
    let _ = value.tokens().count();
    // Re-encoding is stable: bytes -> value -> bytes -> value -> bytes.
    let bytes = wire::encode(value).unwrap();
    let again: Value = wire::decode(&bytes).unwrap();
    assert_eq!(wire::encode(&again).unwrap(), bytes);
    let _ = value::from_value_ref::<(i64, String)>(value);
    let _ = value::from_value_ref::<Vec<Option<u8>>>(value);
}

fuzz_target!(|data: &[u8]| {
    if let Ok((request, payload)) = wire::decode_header::<Request>(data) {
        if matches!(request, Request::Call { .. } | Request::Create { .. }) {
            let _ = wire::decode::<(i64, String)>(payload);
            if let Ok(value) = wire::decode::<Value>(payload) {
                exercise(&value);
            }
        }
    }
    let _ = wire::decode_header::<Response>(data);
    let _ = wire::decode::<(i64, String)>(data);
    if let Ok(value) = postcard::from_bytes::<Value>(data) {
        exercise(&value);
    }
});
