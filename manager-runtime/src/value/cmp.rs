//! Equality, hashing and ordering, as Python has them.
//!
//! Numbers compare by their exact mathematical value whatever their variant,
//! so `Bool(true) == Int(1) == Float(1.0)` and all three hash alike (Python's
//! `{1: 'a'}[1.0]` finds the entry). Maps are equal when they hold the same
//! entries in any order.
//!
//! Python's `nan != nan` would break `Eq`, and a server cannot hash or sort
//! with it; here every NaN equals every other NaN and sorts after every other
//! number. Python gives no useful answer there either: `sorted` with a NaN is
//! in an unspecified order.
#![forbid(unsafe_code)]

use std::cmp::Ordering;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hash, Hasher};

use super::Value;
use crate::address::Address;
use crate::token::Token;

/// A number, with `bool` as the integer it is in Python.
#[derive(Clone, Copy)]
enum Number {
    Int(i128),
    Float(f64),
}

impl Value {
    fn number(&self) -> Option<Number> {
        match *self {
            Value::Bool(b) => Some(Number::Int(b.into())),
            Value::Int(i) => Some(Number::Int(i)),
            Value::Float(f) => Some(Number::Float(f)),
            _ => None,
        }
    }

    /// Rank of each kind in the total order: `None`, numbers, strings,
    /// bytes, lists, maps, tokens.
    fn rank(&self) -> u8 {
        match self {
            Value::None => 0,
            Value::Bool(_) | Value::Int(_) | Value::Float(_) => 1,
            Value::Str(_) => 2,
            Value::Bytes(_) => 3,
            Value::List(_) => 4,
            Value::Map(_) => 5,
            Value::Token(_) => 6,
        }
    }

    /// Compare as Python's `<` does: `None` where Python raises `TypeError`.
    ///
    /// Numbers compare with numbers, strings with strings, bytes with bytes,
    /// and lists element by element (the first unequal pair decides, then the
    /// length). `None`, maps and proxies have no order, not even with
    /// themselves. NaN follows the total order of the module docs.
    ///
    /// ```
    /// use std::cmp::Ordering;
    /// use manager_runtime::value::Value;
    ///
    /// assert_eq!(Value::Int(1).py_cmp(&Value::Float(1.5)), Some(Ordering::Less));
    /// assert_eq!(Value::from("a").py_cmp(&Value::Int(1)), None);
    /// ```
    pub fn py_cmp(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
            (Value::Bytes(a), Value::Bytes(b)) => Some(a.cmp(b)),
            (Value::List(a), Value::List(b)) => match a.iter().zip(b).find(|(x, y)| x != y) {
                Some((x, y)) => x.py_cmp(y),
                None => Some(a.len().cmp(&b.len())),
            },
            _ => Some(number_cmp(self.number()?, other.number()?)),
        }
    }
}

/// The total order on numbers: exact values, NaN last and equal to itself.
fn number_cmp(a: Number, b: Number) -> Ordering {
    match (a, b) {
        (Number::Int(a), Number::Int(b)) => a.cmp(&b),
        (Number::Float(a), Number::Float(b)) => match (a.is_nan(), b.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => a.partial_cmp(&b).expect("neither is NaN"),
        },
        (Number::Int(i), Number::Float(f)) => int_float_cmp(i, f),
        (Number::Float(f), Number::Int(i)) => int_float_cmp(i, f).reverse(),
    }
}

/// 2^127 as a float: the first float above every `i128`.
const I128_END: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;

/// Compare an integer with a float exactly, without rounding the integer.
fn int_float_cmp(i: i128, f: f64) -> Ordering {
    if f.is_nan() {
        return Ordering::Less;
    }
    if f >= I128_END {
        return Ordering::Less;
    }
    if f < -I128_END {
        return Ordering::Greater;
    }
    // In range, the integral part of `f` is an exact `i128`.
    let whole = f.trunc();
    match i.cmp(&(whole as i128)) {
        Ordering::Equal => 0.0.partial_cmp(&(f - whole)).expect("finite"),
        unequal => unequal,
    }
}

/// The integer a float is exactly equal to, if any: such floats must hash as
/// that integer.
fn float_as_int(f: f64) -> Option<i128> {
    (f.trunc() == f && (-I128_END..I128_END).contains(&f)).then_some(f as i128)
}

fn address_cmp(a: &Address, b: &Address) -> Ordering {
    match (a, b) {
        (Address::Tcp(a), Address::Tcp(b)) => a.cmp(b),
        (Address::Unix(a), Address::Unix(b)) => a.cmp(b),
        (Address::Tcp(_), Address::Unix(_)) => Ordering::Less,
        (Address::Unix(_), Address::Tcp(_)) => Ordering::Greater,
    }
}

fn token_cmp(a: &Token, b: &Token) -> Ordering {
    a.typeid
        .cmp(&b.typeid)
        .then_with(|| address_cmp(&a.address, &b.address))
        .then_with(|| a.id.cmp(&b.id))
}

/// A map's entries in the total order: its canonical form, independent of
/// insertion order. Costly on nested maps (every comparison while sorting
/// recurses), so only a tie-break after cheaper tests.
fn sorted_entries(entries: &[(Value, Value)]) -> Vec<&(Value, Value)> {
    let mut sorted: Vec<_> = entries.iter().collect();
    sorted.sort_unstable();
    sorted
}

fn entry_hash(entry: &(Value, Value)) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(entry)
}

/// An order-independent digest of a map's entries: equal maps have equal
/// digests whatever their insertion order.
fn map_digest(entries: &[(Value, Value)]) -> u64 {
    entries
        .iter()
        .fold(0u64, |sum, entry| sum.wrapping_add(entry_hash(entry)))
}

/// Whether two maps hold the same entries, in any order. Linear in their
/// size (plus hashing), never quadratic: entries are matched through their
/// hashes, so nested maps are not compared pairwise.
fn same_entries(a: &[(Value, Value)], b: &[(Value, Value)]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.iter().zip(b).all(|(x, y)| x == y) {
        return true;
    }
    if map_digest(a) != map_digest(b) {
        return false;
    }
    let mut by_hash: std::collections::HashMap<u64, Vec<usize>> = Default::default();
    for (i, entry) in b.iter().enumerate() {
        by_hash.entry(entry_hash(entry)).or_default().push(i);
    }
    let mut used = vec![false; b.len()];
    a.iter().all(|entry| {
        let candidates = by_hash.get(&entry_hash(entry));
        let found = candidates
            .into_iter()
            .flatten()
            .find(|&&j| !used[j] && b[j] == *entry);
        match found {
            Some(&j) => {
                used[j] = true;
                true
            }
            None => false,
        }
    })
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::None, Value::None) => true,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => same_entries(a, b),
            (Value::Token(a), Value::Token(b)) => a == b,
            _ => match (self.number(), other.number()) {
                (Some(a), Some(b)) => number_cmp(a, b) == Ordering::Equal,
                _ => false,
            },
        }
    }
}

impl Eq for Value {}

/// A total order consistent with `Eq`, for sorting and ordered collections
/// on the server. Kinds come in the order `None`, numbers, strings, bytes,
/// lists, maps, tokens; maps compare by size, then by an order-independent
/// digest of their entries, then (only when two unequal maps share a
/// digest) by their entries in sorted order.
/// Python's own comparison is [`Value::py_cmp`].
impl Ord for Value {
    fn cmp(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => a.cmp(b),
            (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
            (Value::List(a), Value::List(b)) => a.cmp(b),
            (Value::Map(a), Value::Map(b)) => a
                .len()
                .cmp(&b.len())
                .then_with(|| map_digest(a).cmp(&map_digest(b)))
                .then_with(|| {
                    if same_entries(a, b) {
                        Ordering::Equal
                    } else {
                        sorted_entries(a).cmp(&sorted_entries(b))
                    }
                }),
            (Value::Token(a), Value::Token(b)) => token_cmp(a, b),
            _ => match (self.number(), other.number()) {
                (Some(a), Some(b)) => number_cmp(a, b),
                _ => self.rank().cmp(&other.rank()),
            },
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Value) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u8(self.rank());
        match self {
            Value::None => {}
            Value::Bool(b) => state.write_i128((*b).into()),
            Value::Int(i) => state.write_i128(*i),
            Value::Float(f) => match float_as_int(*f) {
                Some(i) => state.write_i128(i),
                None if f.is_nan() => state.write_u64(f64::NAN.to_bits()),
                None => state.write_u64(f.to_bits()),
            },
            Value::Str(s) => s.hash(state),
            Value::Bytes(b) => b.hash(state),
            Value::List(items) => items.hash(state),
            Value::Map(entries) => {
                // Equal maps may list their entries in any order.
                state.write_usize(entries.len());
                state.write_u64(map_digest(entries));
            }
            Value::Token(token) => token.hash(state),
        }
    }
}
