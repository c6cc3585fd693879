//! An insertion-ordered hash table of values, laid out as CPython's dict:
//! entries in a vector in insertion order, an index of their positions
//! hashed by key, and holes left by removals, compacted once they outnumber
//! the entries. The index stores positions only (the key lives once, in its
//! slot, and a position takes 4 bytes).
//!
//! While every key and every value is an integer that fits in an `i64`
//! (the common dict of ints), the entries are kept as two `i64`s, 16 bytes
//! an entry instead of 64 (issue 19: a 1M-entry int dict in a quarter of
//! CPython's memory); the first entry of another kind turns the table into
//! one of `Value`s, once, keeping every position. Reads hand out values as
//! `Cow`: borrowed from a table of values, made on the spot from ints.
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use crate::value::Value;

/// Keys and values in insertion order; lookup, insertion and removal in
/// constant time.
#[derive(Debug, Default, Clone)]
pub(super) struct Table {
    slots: Slots,
    index: HashTable<u32>,
    hasher: RandomState,
}

/// The entries, by position.
#[derive(Debug, Clone)]
enum Slots {
    /// Every key and value an `i64`; a removed entry's bit set in `holes`.
    Ints {
        entries: Vec<(i64, i64)>,
        holes: Vec<u64>,
    },
    /// Any values; a removed entry is `None`.
    Values(Vec<Option<(Value, Value)>>),
}

impl Default for Slots {
    fn default() -> Self {
        Slots::Ints {
            entries: Vec::new(),
            holes: Vec::new(),
        }
    }
}

/// The value as an `i64`, if it is an integer that fits one.
fn small(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => i64::try_from(*i).ok(),
        _ => None,
    }
}

fn int(i: i64) -> Value {
    Value::Int(i128::from(i))
}

fn is_hole(holes: &[u64], slot: usize) -> bool {
    holes
        .get(slot / 64)
        .is_some_and(|word| word >> (slot % 64) & 1 == 1)
}

/// A position as the index stores it.
fn position(slot: usize) -> u32 {
    u32::try_from(slot).expect("a table holds fewer than 2^32 entries")
}

impl Slots {
    /// Positions, holes included.
    fn len(&self) -> usize {
        match self {
            Slots::Ints { entries, .. } => entries.len(),
            Slots::Values(slots) => slots.len(),
        }
    }

    fn is_full(&self, slot: usize) -> bool {
        match self {
            Slots::Ints { entries, holes } => slot < entries.len() && !is_hole(holes, slot),
            Slots::Values(slots) => slots.get(slot).is_some_and(Option::is_some),
        }
    }

    /// The entry at `slot`, if it is full.
    fn entry(&self, slot: usize) -> Option<(Cow<'_, Value>, Cow<'_, Value>)> {
        match self {
            Slots::Ints { entries, holes } => {
                let &(key, value) = entries.get(slot)?;
                (!is_hole(holes, slot)).then(|| (Cow::Owned(int(key)), Cow::Owned(int(value))))
            }
            Slots::Values(slots) => {
                let (key, value) = slots.get(slot)?.as_ref()?;
                Some((Cow::Borrowed(key), Cow::Borrowed(value)))
            }
        }
    }

    /// The key at `slot` (every indexed slot is full).
    fn key(&self, slot: usize) -> Cow<'_, Value> {
        self.entry(slot).expect("indexed slots are full").0
    }

    /// Whether the key at `slot` equals `key` (Python's equality).
    fn key_is(&self, slot: usize, key: &Value) -> bool {
        match (self, key) {
            (Slots::Ints { entries, .. }, Value::Int(wanted)) => {
                i128::from(entries[slot].0) == *wanted
            }
            (Slots::Ints { entries, .. }, key) => *key == int(entries[slot].0),
            (Slots::Values(slots), key) => {
                slots[slot].as_ref().expect("indexed slots are full").0 == *key
            }
        }
    }

    /// From here on, values of any kind.
    fn widen(&mut self) -> &mut Vec<Option<(Value, Value)>> {
        if let Slots::Ints { entries, holes } = self {
            let slots = entries
                .iter()
                .enumerate()
                .map(|(slot, &(key, value))| {
                    (!is_hole(holes, slot)).then(|| (int(key), int(value)))
                })
                .collect();
            *self = Slots::Values(slots);
        }
        match self {
            Slots::Values(slots) => slots,
            Slots::Ints { .. } => unreachable!("widened above"),
        }
    }

    fn push(&mut self, key: Value, value: Value) {
        if let Slots::Ints { entries, .. } = self {
            if let (Some(k), Some(v)) = (small(&key), small(&value)) {
                entries.push((k, v));
                return;
            }
        }
        self.widen().push(Some((key, value)));
    }

    /// Set the value of the full `slot`; the old one.
    fn replace_value(&mut self, slot: usize, value: Value) -> Value {
        if let Slots::Ints { entries, .. } = self {
            if let Some(v) = small(&value) {
                return int(std::mem::replace(&mut entries[slot].1, v));
            }
        }
        let entry = self.widen()[slot].as_mut().expect("indexed slots are full");
        std::mem::replace(&mut entry.1, value)
    }

    /// Empty the full `slot`; its entry.
    fn take(&mut self, slot: usize) -> (Value, Value) {
        match self {
            Slots::Ints { entries, holes } => {
                if holes.len() <= slot / 64 {
                    holes.resize(slot / 64 + 1, 0);
                }
                holes[slot / 64] |= 1 << (slot % 64);
                let (key, value) = entries[slot];
                (int(key), int(value))
            }
            Slots::Values(slots) => slots[slot].take().expect("indexed slots are full"),
        }
    }

    /// Drop trailing holes; then the last position, if any.
    fn last(&mut self) -> Option<usize> {
        while self.len() > 0 && !self.is_full(self.len() - 1) {
            match self {
                Slots::Ints { entries, .. } => {
                    entries.pop();
                }
                Slots::Values(slots) => {
                    slots.pop();
                }
            }
        }
        self.len().checked_sub(1)
    }

    /// Remove the full last slot; its entry.
    fn pop(&mut self) -> Option<(Value, Value)> {
        let slot = self.last()?;
        let entry = self.take(slot);
        self.last();
        Some(entry)
    }

    /// Keep only the full slots, in order.
    fn close_holes(&mut self) {
        match self {
            Slots::Ints { entries, holes } => {
                let mut slot = 0;
                entries.retain(|_| {
                    slot += 1;
                    !is_hole(holes, slot - 1)
                });
                holes.clear();
            }
            Slots::Values(slots) => slots.retain(Option::is_some),
        }
    }
}

impl Table {
    fn position(&self, key: &Value) -> Option<usize> {
        let hash = self.hasher.hash_one(key);
        self.index
            .find(hash, |&slot| self.slots.key_is(slot as usize, key))
            .map(|&slot| slot as usize)
    }

    fn unindex(&mut self, key: &Value) -> Option<usize> {
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        let entry = self
            .index
            .find_entry(hash, |&slot| slots.key_is(slot as usize, key))
            .ok()?;
        Some(entry.remove().0 as usize)
    }

    fn reindex(&mut self, slot: usize) {
        let Table {
            slots,
            index,
            hasher,
        } = self;
        let hash = hasher.hash_one(&*slots.key(slot));
        index.insert_unique(hash, position(slot), |&other| {
            hasher.hash_one(&*slots.key(other as usize))
        });
    }

    /// How many entries.
    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether `key` is present.
    pub(super) fn contains(&self, key: &Value) -> bool {
        self.position(key).is_some()
    }

    /// The value of `key`.
    pub(super) fn get(&self, key: &Value) -> Option<Cow<'_, Value>> {
        let slot = self.position(key)?;
        self.slots.entry(slot).map(|(_, value)| value)
    }

    /// Set `key` to `value`; an existing key keeps its position and its
    /// old value is returned.
    pub(super) fn insert(&mut self, key: Value, value: Value) -> Option<Value> {
        if let Some(slot) = self.position(&key) {
            return Some(self.slots.replace_value(slot, value));
        }
        self.slots.push(key, value);
        self.reindex(self.slots.len() - 1);
        None
    }

    /// Remove `key`, returning its entry.
    pub(super) fn remove(&mut self, key: &Value) -> Option<(Value, Value)> {
        let slot = self.unindex(key)?;
        let entry = self.slots.take(slot);
        self.compact();
        Some(entry)
    }

    /// Remove the most recently inserted entry (Python's `popitem`).
    pub(super) fn pop_last(&mut self) -> Option<(Value, Value)> {
        let slot = self.slots.last()?;
        let key = self.slots.key(slot).into_owned();
        self.unindex(&key);
        self.slots.pop()
    }

    /// Remove every entry, returning them in order. The table is then as
    /// new (of ints again).
    pub(super) fn drain(&mut self) -> Vec<(Value, Value)> {
        let entries = self.iter().map(owned).collect();
        self.index.clear();
        self.slots = Slots::default();
        entries
    }

    /// The entries in insertion order.
    pub(super) fn iter(&self) -> Entries<'_> {
        Entries {
            slots: &self.slots,
            at: 0,
        }
    }

    /// The keys in insertion order.
    pub(super) fn keys(&self) -> impl Iterator<Item = Cow<'_, Value>> + Clone {
        self.iter().map(|(key, _)| key)
    }

    /// The first entry at or after position `slot`, with the position after
    /// it: how an iterator walks the table between calls. Positions stay
    /// valid until an entry is removed.
    pub(super) fn next_from(&self, slot: usize) -> Option<(Pair<'_>, usize)> {
        (slot..self.slots.len())
            .find_map(|slot| self.slots.entry(slot).map(|entry| (entry, slot + 1)))
    }

    /// Drop the holes once they outnumber the entries.
    fn compact(&mut self) {
        let holes = self.slots.len() - self.index.len();
        if holes <= 8 || holes <= self.index.len() {
            return;
        }
        self.slots.close_holes();
        self.index.clear();
        for slot in 0..self.slots.len() {
            self.reindex(slot);
        }
    }
}

/// An entry of a table as values of its own.
pub(super) fn owned((key, value): Pair<'_>) -> (Value, Value) {
    (key.into_owned(), value.into_owned())
}

/// An entry as a table hands it out.
pub(super) type Pair<'a> = (Cow<'a, Value>, Cow<'a, Value>);

/// The entries of a [`Table`] in insertion order.
#[derive(Clone)]
pub(super) struct Entries<'a> {
    slots: &'a Slots,
    at: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Pair<'a>;

    fn next(&mut self) -> Option<Pair<'a>> {
        while self.at < self.slots.len() {
            self.at += 1;
            if let Some(entry) = self.slots.entry(self.at - 1) {
                return Some(entry);
            }
        }
        None
    }
}

impl FromIterator<(Value, Value)> for Table {
    fn from_iter<I: IntoIterator<Item = (Value, Value)>>(entries: I) -> Table {
        let mut table = Table::default();
        for (key, value) in entries {
            table.insert(key, value);
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(table: &Table) -> Vec<Value> {
        table.keys().map(Cow::into_owned).collect()
    }

    fn compact_ints(table: &Table) -> bool {
        matches!(table.slots, Slots::Ints { .. })
    }

    #[test]
    fn a_table_of_ints_is_kept_as_ints_until_another_kind_comes() {
        let mut table: Table = (0..200)
            .map(|i| (Value::from(i), Value::from(-i)))
            .collect();
        assert!(compact_ints(&table));
        // Python's equality finds int keys from equal floats and bools.
        assert_eq!(
            table.get(&Value::Float(7.0)).as_deref(),
            Some(&Value::from(-7))
        );
        assert_eq!(
            table.get(&Value::Bool(true)).as_deref(),
            Some(&Value::from(-1))
        );
        assert!(!table.contains(&Value::Float(7.5)));
        assert!(!table.contains(&Value::from("7")));
        // An int value replaces in place; removals leave holes, compacted.
        assert_eq!(
            table.insert(Value::Float(3.0), Value::from(33)),
            Some(Value::from(-3))
        );
        for i in 10..150 {
            assert_eq!(
                table.remove(&Value::from(i)),
                Some((Value::from(i), Value::from(-i)))
            );
        }
        assert!(compact_ints(&table));
        assert!(table.slots.len() < 200, "holes were compacted");
        assert_eq!(table.len(), 60);
        assert_eq!(
            table.pop_last(),
            Some((Value::from(199), Value::from(-199)))
        );
        let order = keys(&table);
        assert_eq!(
            order[..10],
            (0..10).map(Value::from).collect::<Vec<_>>()[..]
        );
        assert_eq!(order[10], Value::from(150));

        // An int beyond i64, then a string: the table widens, once, keeping
        // every entry, its position and its lookups.
        table.insert(Value::from(1), Value::Int(i128::MAX));
        assert!(!compact_ints(&table));
        table.insert(Value::from("k"), Value::from("v"));
        assert_eq!(
            table.get(&Value::from(1)).as_deref(),
            Some(&Value::Int(i128::MAX))
        );
        assert_eq!(
            table.get(&Value::from(3)).as_deref(),
            Some(&Value::from(33))
        );
        let mut widened = order.clone();
        widened.push(Value::from("k"));
        assert_eq!(keys(&table), widened);

        // Emptied, it is a table of ints again.
        assert_eq!(table.drain().len(), widened.len());
        assert!(compact_ints(&table) && table.len() == 0);
        table.insert(Value::from(5), Value::from(6));
        assert!(compact_ints(&table));
        assert_eq!(
            table.iter().map(owned).collect::<Vec<_>>(),
            [(Value::from(5), Value::from(6))]
        );
    }

    #[test]
    fn keeps_insertion_order_through_updates_and_removals() {
        let mut table: Table = (0..5)
            .map(|i| (Value::from(i), Value::from(i * 10)))
            .collect();
        assert_eq!(
            table.insert(Value::from(2), Value::from(99)),
            Some(Value::from(20))
        );
        assert_eq!(
            table.remove(&Value::from(1)),
            Some((Value::from(1), Value::from(10)))
        );
        table.insert(Value::from(1), Value::from(11));
        assert_eq!(keys(&table), [0, 2, 3, 4, 1].map(Value::from));
        assert_eq!(
            table.get(&Value::from(2)).as_deref(),
            Some(&Value::from(99))
        );
        assert_eq!(table.pop_last(), Some((Value::from(1), Value::from(11))));
        assert_eq!(table.len(), 4);
    }

    #[test]
    fn python_equal_keys_are_one_key() {
        let mut table = Table::default();
        table.insert(Value::from(1), Value::from("int"));
        table.insert(Value::Float(1.0), Value::from("float"));
        table.insert(Value::Bool(true), Value::from("bool"));
        assert_eq!(table.len(), 1);
        assert_eq!(
            table.get(&Value::from(1)).as_deref(),
            Some(&Value::from("bool"))
        );
    }

    #[test]
    fn compaction_keeps_lookups_and_order() {
        let mut table: Table = (0..100).map(|i| (Value::from(i), Value::None)).collect();
        for i in (0..100).filter(|i| i % 10 != 0) {
            table.remove(&Value::from(i));
        }
        assert!(table.slots.len() < 100, "holes were compacted");
        assert_eq!(
            keys(&table),
            (0..10).map(|i| Value::from(i * 10)).collect::<Vec<_>>()
        );
        assert!(table.contains(&Value::from(50)));
        assert_eq!(table.pop_last(), Some((Value::from(90), Value::None)));
    }

    #[test]
    fn walking_by_position_skips_holes() {
        let mut table: Table = (0..4).map(|i| (Value::from(i), Value::None)).collect();
        table.remove(&Value::from(1));
        let mut slot = 0;
        let mut seen = Vec::new();
        while let Some(((key, _), next)) = table.next_from(slot) {
            seen.push(key.into_owned());
            slot = next;
        }
        assert_eq!(seen, [0, 2, 3].map(Value::from));
        assert!(table.next_from(100).is_none());
    }
}
