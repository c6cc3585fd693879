//! This process's authkey (Python's `current_process().authkey`), and the
//! random bytes keys, challenges and ids are made of. Plain data: the
//! process primitives and the manager both read it.
#![forbid(unsafe_code)]

/// `N` bytes from the OS random source (challenges, session ids, keys).
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    getrandom::getrandom(&mut bytes).expect("the OS random source failed");
    bytes
}

static PROCESS_AUTHKEY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// This process's authkey: random, made on first use, or the one a parent
/// handed down (Python's `current_process().authkey`).
pub(crate) fn process_authkey() -> &'static [u8] {
    PROCESS_AUTHKEY.get_or_init(|| random_bytes::<32>().to_vec())
}

/// Adopt the authkey a parent process handed down. Must run before anything
/// reads [`process_authkey`]; returns whether it did.
pub(crate) fn inherit_process_authkey(key: Vec<u8>) -> bool {
    PROCESS_AUTHKEY.set(key).is_ok()
}
