//! Hostile input to the Python protocol's decoders, deterministically: the
//! CI form of `fuzz/fuzz_targets/pickle.rs`. Seeded-random bytes, and
//! CPython's own pickles (the fixtures) cut, flipped and padded, go to the
//! pickle decoder, the frame reader and both handshake steps: no panic, no
//! stack overflow, no allocation beyond the input's size, and whatever
//! decodes re-encodes stably.

use std::time::{Duration, Instant};

use managers::proxy::Token;
use managers::python::pickle::{decode_with, encode, Limits, Object};
use managers::python::value::{py_token, to_object, to_value, ProxyOf};
use managers::python::{frame, handshake};

const FIXTURES: &str = include_str!("fixtures/cpython/pickles.txt");

/// xorshift64*, as in `reliability_input.rs`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

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

/// What the fuzz target checks, on one input. Returns whether it decoded.
fn exercise(data: &[u8]) -> bool {
    let decoded = decode_with(data, LIMITS);
    if let Ok(obj) = &decoded {
        let bytes = encode(obj);
        let again = decode_with(&bytes, LIMITS).expect("our own encoding decodes");
        assert_eq!(encode(&again), bytes, "re-encoding is stable");
        if let Ok(value) = to_value(obj.clone()) {
            decode_with(&encode(&to_object(&value, &Tokens)), LIMITS).expect("a value decodes");
        }
    }
    let mut buf = Vec::new();
    let max = u64::from(data.first().copied().unwrap_or(0)) * 4;
    if frame::read(&mut &data[..], &mut buf, max).is_ok() {
        assert!(buf.len() as u64 <= max);
    } else {
        assert!(
            buf.capacity() <= data.len().max(64 * 1024),
            "allocated past the input"
        );
    }
    if let Some(challenge) = handshake::Challenge::sent_as(data) {
        assert!(!challenge.verify(b"key", data));
    }
    let _ = handshake::answer(b"key", data);
    decoded.is_ok()
}

fn fixtures() -> Vec<Vec<u8>> {
    FIXTURES
        .lines()
        .map(|line| {
            let hex = line.split('\t').nth(2).expect("hex");
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn seeded_malformed_pickles() {
    let started = Instant::now();
    let seeds = fixtures();
    let mut rng = Rng(0x5eed_0f71_c4a1);
    let (mut random, mut mutated, mut decoded) = (0, 0, 0);
    for _ in 0..10_000 {
        let len = rng.below(64);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if rng.below(2) == 0 {
            // Start like a real pickle half the time.
            bytes.splice(0..0, [0x80, 4]);
        }
        decoded += usize::from(exercise(&bytes));
        random += 1;
    }
    for _ in 0..20_000 {
        let mut bytes = seeds[rng.below(seeds.len())].clone();
        match rng.below(4) {
            0 => bytes.truncate(rng.below(bytes.len())),
            1 => {
                for _ in 0..=rng.below(3) {
                    let at = rng.below(bytes.len());
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
            2 => {
                let at = rng.below(bytes.len());
                let junk: Vec<u8> = (0..rng.below(8)).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, junk);
            }
            _ => {
                let at = rng.below(bytes.len());
                bytes[at] = rng.next() as u8;
            }
        }
        decoded += usize::from(exercise(&bytes));
        mutated += 1;
    }
    // Whole fixtures decode: the mutations above start from valid input.
    assert!(seeds.iter().all(|s| exercise(s)));
    eprintln!(
        "{random} random + {mutated} mutated pickles, {decoded} decoded, in {:?}",
        started.elapsed()
    );
    assert!(
        decoded > 1_000,
        "mutations of valid pickles decode often: {decoded}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn deep_and_wide_pickles_are_refused_quickly() {
    // 100,000 nested lists, a million-element shared fan-out, a long memo.
    let mut deep = vec![0x80, 4];
    deep.extend(std::iter::repeat_n(b']', 100_000));
    deep.extend(std::iter::repeat_n(b'a', 99_999));
    deep.push(b'.');
    assert!(decode_with(&deep, Limits::default()).is_err());
    let mut wide = vec![0x80, 4, b']', 0x94, b']', b'('];
    wide.extend(std::iter::repeat_n([b'h', 0], 1_000_000).flatten());
    wide.extend_from_slice(b"e.");
    let started = Instant::now();
    assert!(
        decode_with(&wide, LIMITS).is_err(),
        "a million references over the limit"
    );
    assert!(decode_with(&wide, Limits::default()).is_ok());
    assert!(started.elapsed() < Duration::from_secs(10));
}
