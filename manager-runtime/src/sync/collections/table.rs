//! An insertion-ordered hash table of values, laid out as CPython's dict:
//! entries in a vector in insertion order, an index of their positions
//! hashed by key, and holes left by removals, compacted once they outnumber
//! the entries. The index stores positions only (the key lives once, in its
//! slot), so an entry costs its key and value plus about ten bytes.
#![forbid(unsafe_code)]

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use crate::value::Value;

/// Keys and values in insertion order; lookup, insertion and removal in
/// constant time.
#[derive(Debug, Default, Clone)]
pub(super) struct Table {
    slots: Vec<Option<(Value, Value)>>,
    index: HashTable<usize>,
    hasher: RandomState,
}

/// The key stored at `slot` (every indexed slot is full).
fn key_at(slots: &[Option<(Value, Value)>], slot: usize) -> &Value {
    &slots[slot].as_ref().expect("indexed slots are full").0
}

impl Table {
    fn position(&self, key: &Value) -> Option<usize> {
        let hash = self.hasher.hash_one(key);
        self.index
            .find(hash, |&slot| key_at(&self.slots, slot) == key)
            .copied()
    }

    fn unindex(&mut self, key: &Value) -> Option<usize> {
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        let entry = self
            .index
            .find_entry(hash, |&slot| key_at(slots, slot) == key)
            .ok()?;
        Some(entry.remove().0)
    }

    fn reindex(&mut self, slot: usize) {
        let Table {
            slots,
            index,
            hasher,
        } = self;
        let hash = hasher.hash_one(key_at(slots, slot));
        index.insert_unique(hash, slot, |&other| hasher.hash_one(key_at(slots, other)));
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
    pub(super) fn get(&self, key: &Value) -> Option<&Value> {
        let slot = self.position(key)?;
        self.slots[slot].as_ref().map(|(_, value)| value)
    }

    /// Set `key` to `value`; an existing key keeps its position and its
    /// old value is returned.
    pub(super) fn insert(&mut self, key: Value, value: Value) -> Option<Value> {
        if let Some(slot) = self.position(&key) {
            let entry = self.slots[slot].as_mut().expect("indexed slots are full");
            return Some(std::mem::replace(&mut entry.1, value));
        }
        self.slots.push(Some((key, value)));
        self.reindex(self.slots.len() - 1);
        None
    }

    /// Remove `key`, returning its entry.
    pub(super) fn remove(&mut self, key: &Value) -> Option<(Value, Value)> {
        let slot = self.unindex(key)?;
        let entry = self.slots[slot].take();
        self.compact();
        entry
    }

    /// Remove the most recently inserted entry (Python's `popitem`).
    pub(super) fn pop_last(&mut self) -> Option<(Value, Value)> {
        while let Some(None) = self.slots.last() {
            self.slots.pop();
        }
        let key = key_at(&self.slots, self.slots.len().checked_sub(1)?).clone();
        self.unindex(&key);
        self.slots.pop().flatten()
    }

    /// Remove every entry, returning them in order.
    pub(super) fn drain(&mut self) -> Vec<(Value, Value)> {
        self.index.clear();
        self.slots.drain(..).flatten().collect()
    }

    /// The entries in insertion order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &(Value, Value)> + Clone {
        self.slots.iter().flatten()
    }

    /// The keys in insertion order.
    pub(super) fn keys(&self) -> impl Iterator<Item = &Value> + Clone {
        self.iter().map(|(key, _)| key)
    }

    /// The first entry at or after position `slot`, with the position after
    /// it: how an iterator walks the table between calls. Positions stay
    /// valid until an entry is removed.
    pub(super) fn next_from(&self, slot: usize) -> Option<(&(Value, Value), usize)> {
        self.slots
            .get(slot..)?
            .iter()
            .enumerate()
            .find_map(|(n, entry)| entry.as_ref().map(|entry| (entry, slot + n + 1)))
    }

    /// Drop the holes once they outnumber the entries.
    fn compact(&mut self) {
        let holes = self.slots.len() - self.index.len();
        if holes <= 8 || holes <= self.index.len() {
            return;
        }
        self.slots.retain(Option::is_some);
        self.index.clear();
        for slot in 0..self.slots.len() {
            self.reindex(slot);
        }
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
        table.keys().cloned().collect()
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
        assert_eq!(table.get(&Value::from(2)), Some(&Value::from(99)));
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
        assert_eq!(table.get(&Value::from(1)), Some(&Value::from("bool")));
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
            seen.push(key.clone());
            slot = next;
        }
        assert_eq!(seen, [0, 2, 3].map(Value::from));
        assert!(table.next_from(100).is_none());
    }
}
