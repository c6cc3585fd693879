//! CPython's own manager protocol: an unchanged CPython client can use our
//! server, and our client a CPython server.
//!
//! This module is the protocol layer of it, which knows no server and no
//! client: [`frame`] (`multiprocessing.connection`'s length prefixes),
//! [`handshake`] (its challenge-response on the authkey, as 3.11, 3.12
//! and 3.13 speak it), [`pickle`] (a codec that turns a short allowlist of
//! globals into data and runs nothing) and [`value`] (Python values as the
//! runtime's [`Value`](crate::value::Value), so the same built-ins and
//! `#[shared]` types serve both kinds of client).

pub mod frame;
pub mod handshake;
pub mod names;
pub mod pickle;
pub mod table;
pub mod value;
