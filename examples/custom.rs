//! A custom shared type: a restricted exposed set, a method that returns
//! another shared object as a proxy, and a method with a typed error.
//!
//! `cargo run --example custom`

use std::collections::BTreeMap;

use managers::{manager, shared};
use serde::{Deserialize, Serialize};

/// Why an account operation failed; the client receives it typed.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum BankError {
    /// Not enough money.
    Insufficient {
        /// What the account holds.
        balance: u64,
        /// What was asked.
        wanted: u64,
    },
    /// No account of that name.
    NoAccount(String),
}

/// One account, only ever handed out by the bank (no create method).
#[derive(Default)]
pub struct Account {
    owner: String,
    balance: u64,
}

#[shared]
impl Account {
    /// Who owns it.
    pub fn owner(&self) -> String {
        self.owner.clone()
    }

    /// Add money; returns the new balance.
    pub fn deposit(&mut self, amount: u64) -> u64 {
        self.balance += amount;
        self.balance
    }

    /// Take money out, or say why not.
    pub fn withdraw(&mut self, amount: u64) -> Result<u64, BankError> {
        if amount > self.balance {
            return Err(BankError::Insufficient {
                balance: self.balance,
                wanted: amount,
            });
        }
        self.balance -= amount;
        Ok(self.balance)
    }
}

/// A bank whose audit method is kept off the wire.
#[derive(Default)]
pub struct Bank {
    opened: BTreeMap<String, u64>,
}

#[shared(exposed(open, accounts))]
impl Bank {
    /// Open an account: the result is a proxy to a new server-side object.
    #[proxy]
    pub fn open(&mut self, owner: String, initial: u64) -> Account {
        self.opened.insert(owner.clone(), initial);
        Account {
            owner,
            balance: initial,
        }
    }

    /// Names of the accounts opened so far.
    pub fn accounts(&self) -> Vec<String> {
        self.opened.keys().cloned().collect()
    }

    /// Public in Rust, but not in the exposed set: no proxy method, and the
    /// server refuses it whatever a client sends.
    pub fn audit(&self) -> u64 {
        self.opened.values().sum()
    }
}

manager! {
    /// Serves banks; accounts exist only as results of `Bank::open`.
    pub struct BankManager {
        Bank: Bank,
        #[create_method = false]
        Account: Account,
    }
}

fn main() -> managers::Result<()> {
    managers::bootstrap();
    let manager = BankManager::new();
    manager.start()?;

    let bank = manager.bank()?;
    let alice = bank.open("alice".to_string(), 100)?;
    println!("opened account of {}", alice.owner()?);
    println!("deposit 50 -> balance {}", alice.deposit(50)?);
    match alice.withdraw(500)? {
        Ok(balance) => println!("withdrew, balance {balance}"),
        Err(e) => println!("withdraw 500 refused with a typed error: {e:?}"),
    }
    println!("withdraw 30 -> {:?}", alice.withdraw(30)?);
    println!("accounts: {:?}", bank.accounts()?);
    println!("objects on the server: {}", manager.number_of_objects()?);
    drop((alice, bank));
    println!(
        "objects after dropping the proxies: {}",
        manager.number_of_objects()?
    );
    manager.shutdown()
}
