//! A user's `#[shared]` type called from CPython clients (3.11-3.13) on a
//! pickle-mode server: positional arguments converted into the method's
//! types, results back as Python values, typed errors raised as Python
//! exceptions carrying their text, arguments that do not fit refused.
//! The client is `tests/python/user_types.py`.

mod python_common;

use std::time::Duration;

use managers::server::{Constructor, Registry};
use managers::shared;
use python_common::{pythons, run, script, PickleServer};
use serde::{Deserialize, Serialize};

/// An account: a balance and its entries.
pub struct Ledger {
    balance: i64,
    entries: Vec<(i64, String)>,
}

/// A point, a struct argument (a dict in Python).
#[derive(Debug, Serialize, Deserialize)]
pub struct Point {
    x: i64,
    y: f64,
}

/// Why a withdrawal fails.
#[derive(Debug, Serialize, Deserialize)]
pub enum LedgerError {
    /// Named after Python's exception: raised as `ValueError(text)`.
    ValueError(String),
    /// Any other variant: `RuntimeError` carrying it.
    Overdrawn { short: i64 },
}

#[shared(
    typeid = "Ledger",
    exposed(deposit, withdraw, entries, shift, rate, owner)
)]
impl Ledger {
    /// Add `amount`; the new balance.
    pub fn deposit(&mut self, amount: i64, note: String) -> i64 {
        self.balance += amount;
        self.entries.push((amount, note));
        self.balance
    }

    /// Take `amount` out, if there is enough.
    pub fn withdraw(&mut self, amount: u32) -> Result<i64, LedgerError> {
        if amount == 0 {
            return Err(LedgerError::ValueError("cannot withdraw 0".into()));
        }
        let amount = i64::from(amount);
        if amount > self.balance {
            return Err(LedgerError::Overdrawn {
                short: amount - self.balance,
            });
        }
        self.balance -= amount;
        Ok(self.balance)
    }

    /// Every entry.
    pub fn entries(&self) -> Vec<(i64, String)> {
        self.entries.clone()
    }

    /// `p` moved by `by` on both axes.
    pub fn shift(&self, p: Point, by: i64) -> Point {
        Point {
            x: p.x + by,
            y: p.y + by as f64,
        }
    }

    /// A rate by name, if known.
    pub fn rate(&self, name: String) -> Option<f64> {
        (name == "usual").then_some(0.25)
    }

    /// Who owns a key of these bytes.
    pub fn owner(&self, key: Vec<u8>) -> String {
        format!("owner of {} bytes", key.len())
    }

    /// Not exposed.
    pub fn secret(&self) -> i64 {
        7
    }
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register::<Ledger>(
        "Ledger",
        None,
        Some(Constructor::new(|(opening,): (i64,)| Ledger {
            balance: opening,
            entries: vec![(opening, "opening".into())],
        })),
    );
    registry
}

#[test]
fn cpython_clients_call_a_users_shared_type() {
    let server = PickleServer::serving(registry);
    let mut args = server.args();
    args.push("-v".to_string());
    let mut failures = Vec::new();
    for python in pythons() {
        let ran = run(
            &python,
            &script("user_types.py"),
            &args,
            b"",
            Duration::from_secs(60),
        );
        if ran.ok && ran.stdout.starts_with("ok ") {
            eprintln!("CPython {}: {}", python.version, ran.stdout.trim());
            eprint!("{}", ran.stderr);
        } else {
            failures.push(format!(
                "CPython {}:\n{}\n{}",
                python.version, ran.stdout, ran.stderr
            ));
        }
    }
    drop(server);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
