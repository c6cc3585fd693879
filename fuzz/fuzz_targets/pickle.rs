//! The pickle codec of `Serializer::Pickle` on arbitrary bytes: what a
//! CPython client (or an impostor) sends a pickle-mode server. Also the
//! frame reader and both handshake steps of `multiprocessing.connection`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use managers::proxy::Token;
use managers::python::pickle::{decode_with, encode, Limits, Object};
use managers::python::value::{py_token, to_object, to_value, ProxyOf};
use managers::python::{frame, handshake};

struct Tokens;

impl ProxyOf for Tokens {
    fn proxy(&self, token: &Token) -> Object {
        Object::Token(Box::new(py_token(token)))
    }
}

const LIMITS: Limits = Limits {
    max_depth: 128,
    max_objects: 100_000,
    max_range: 10_000,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(obj) = decode_with(data, LIMITS) {
        // Re-encoding is stable (bytes compare, so NaN is fine).
        let bytes = encode(&obj);
        let again = decode_with(&bytes, LIMITS).expect("our own encoding decodes");
        assert_eq!(encode(&again), bytes);
        if let Ok(value) = to_value(obj) {
            let back = encode(&to_object(&value, &Tokens));
            decode_with(&back, LIMITS).expect("a value's encoding decodes");
        }
    }
    let mut buf = Vec::new();
    let max = u64::from(data.first().copied().unwrap_or(0)) * 4;
    if frame::read(&mut &data[..], &mut buf, max).is_ok() {
        assert!(buf.len() as u64 <= max);
    }
    if let Some(challenge) = handshake::Challenge::sent_as(data) {
        assert!(!challenge.verify(b"key", b""));
    }
    let _ = handshake::answer(b"key", data);
});
