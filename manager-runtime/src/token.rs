//! Tokens: the name of one object on one server.
//!
//! A token is plain data (typeid, server address, object id) and sits at
//! the bottom of the crate, below values, the protocol, servers and
//! clients. One thing makes it more than data: a token of a server that is
//! serialized inside a reply grants the caller a reference. The server
//! installs that behaviour for the duration of encoding a reply
//! ([`granting`]); everywhere else serializing a token writes its fields.

use std::cell::Cell;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::error::Result;

/// Names one object on one server: typeid, server address, object id.
///
/// Serializing a token inside a method's result gives the caller's session a
/// reference to the object, which the proxy decoded from it adopts.
///
/// A token written as text rebuilds a proxy in another process (Python's
/// pickled proxy); the object must still be alive there, held by a proxy:
///
/// ```
/// # extern crate manager_runtime as managers;
/// # fn main() -> managers::Result<()> {
/// use managers::proxy::{Proxy, Token};
/// let manager = managers::sync::SyncManager::new();
/// manager.start_in_thread()?;
/// let queue = manager.queue::<u32>(0)?;
/// let text = queue.token().to_text(); // hand it to another process...
/// let token = Token::from_text(&text)?; // ...which reads it back
/// let same: managers::sync::QueueProxy<u32> = manager.proxy_from_token(&token)?;
/// same.put(7)?;
/// assert_eq!(queue.get()?, 7);
/// assert!(Token::from_text("not a token").is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct Token {
    /// The typeid the object was registered or returned as.
    pub typeid: String,
    /// The address of the server that owns it.
    pub address: Address,
    /// The object's id; never reused within one server's life.
    pub id: u64,
}

/// What happens to a token serialized while a reply is being encoded.
pub(crate) trait Grant {
    /// `token` is about to reach the caller: give its session a reference;
    /// `Some(address)` if the caller is to reach the object there instead
    /// (a gateway handing out a built-in kept in its Redis as its own).
    fn grant(&self, token: &Token) -> Option<Address>;
}

thread_local! {
    /// The grant of the reply being encoded on this thread, if any.
    static GRANTING: Cell<Option<*const dyn Grant>> = const { Cell::new(None) };
}

/// Run `encode` with `grant` told of every token serialized meanwhile on
/// this thread.
#[cfg(feature = "manager")]
pub(crate) fn granting<R>(grant: &dyn Grant, encode: impl FnOnce() -> R) -> R {
    struct Restore(Option<*const dyn Grant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            GRANTING.with(|c| c.set(self.0));
        }
    }
    // SAFETY (of the later dereference): the pointer is only read while
    // `grant` is borrowed here; `Restore` puts the previous one back before
    // this function returns or unwinds.
    let erased: *const (dyn Grant + '_) = grant;
    // SAFETY: only the lifetime is erased; see above.
    let erased: *const dyn Grant = unsafe { std::mem::transmute(erased) };
    let _restore = Restore(GRANTING.with(|c| c.replace(Some(erased))));
    encode()
}

impl Serialize for Token {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename = "Token")]
        struct Fields<'a> {
            typeid: &'a str,
            address: &'a Address,
            id: u64,
        }
        let readdressed = match GRANTING.with(Cell::get) {
            // SAFETY: set only by `granting`, whose borrow outlives this call.
            Some(grant) => unsafe { (*grant).grant(self) },
            None => None,
        };
        Fields {
            typeid: &self.typeid,
            address: readdressed.as_ref().unwrap_or(&self.address),
            id: self.id,
        }
        .serialize(serializer)
    }
}

impl Token {
    /// A text form for handing the object to another process (argv, a
    /// file, a message): pass it to
    /// [`BaseManager::proxy_from_token`](crate::BaseManager::proxy_from_token)
    /// there after [`Token::from_text`].
    pub fn to_text(&self) -> String {
        let fields = (self.typeid.as_str(), &self.address, self.id);
        let bytes = postcard::to_stdvec(&fields).expect("a token always encodes");
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Read a token written by [`Token::to_text`].
    pub fn from_text(text: &str) -> Result<Token> {
        let bad = || crate::Error::Codec {
            context: format!("`{text}` is not a token's text form"),
            source: None,
        };
        if text.len() % 2 != 0 || !text.is_ascii() {
            return Err(bad());
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16))
            .collect::<std::result::Result<Vec<u8>, _>>()
            .map_err(|_| bad())?;
        let ((typeid, address, id), rest): ((String, Address, u64), _) =
            postcard::take_from_bytes(&bytes).map_err(|_| bad())?;
        if !rest.is_empty() {
            return Err(bad());
        }
        Ok(Token {
            typeid,
            address,
            id,
        })
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "typeid '{}' id {} at {}",
            self.typeid, self.id, self.address
        )
    }
}
