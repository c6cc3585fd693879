//! Tokens and the base every generated proxy wraps.
//!
//! A proxy holds one [`Token`] and a handle on the client session that owns
//! its reference. Reference counting is local first: cloning a proxy only
//! bumps a counter in the session; when the last local proxy of an object
//! drops, the session tells the server, in one message that is not waited
//! for, to release the references it held.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::client::Client;
use crate::error::Result;

/// Names one object on one server: typeid, server address, object id.
///
/// Serializing a token inside a method's result gives the caller's session a
/// reference to the object, which the proxy decoded from it adopts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct Token {
    /// The typeid the object was registered or returned as.
    pub typeid: String,
    /// The address of the server that owns it.
    pub address: Address,
    /// The object's id; never reused within one server's life.
    pub id: u64,
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
        crate::object::grant_to_caller(self);
        Fields {
            typeid: &self.typeid,
            address: &self.address,
            id: self.id,
        }
        .serialize(serializer)
    }
}

thread_local! {
    /// The session whose reply is being decoded on this thread, if any.
    static DECODING_FOR: std::cell::RefCell<Option<Client>> = const { std::cell::RefCell::new(None) };
}

/// Run `decode` with `client` as the session that adopts any proxy decoded
/// meanwhile.
pub(crate) fn decoding_for<R>(client: &Client, decode: impl FnOnce() -> R) -> R {
    struct Restore(Option<Client>);
    impl Drop for Restore {
        fn drop(&mut self) {
            DECODING_FOR.with(|c| *c.borrow_mut() = self.0.take());
        }
    }
    let previous = DECODING_FOR.with(|c| c.borrow_mut().replace(client.clone()));
    let _restore = Restore(previous);
    decode()
}

impl<'de> Deserialize<'de> for ProxyBase {
    /// A proxy inside a reply: the server granted this session a reference,
    /// which the new proxy adopts.
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let token = crate::value::token_serde::deserialize(deserializer)?;
        let client = DECODING_FOR.with(|c| c.borrow().clone()).ok_or_else(|| {
            serde::de::Error::custom("a proxy can only be decoded from a manager's reply")
        })?;
        if token.address == *client.address() {
            return Ok(ProxyBase::adopt(client, token));
        }
        // A proxy to an object of another manager: the server that sent it
        // holds a reference there, not us; take our own.
        Client::for_address(&token.address, client.authkey())
            .and_then(|other| ProxyBase::from_token(&other, token))
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for ProxyBase {
    /// A proxy travels as its token, marked so that a shared container keeps
    /// it as a proxy.
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        crate::value::token_serde::serialize(&self.token, serializer)
    }
}

impl Token {
    /// A text form for handing the object to another process (argv, a
    /// file, a message): pass it to
    /// [`BaseManager::proxy_from_token`](crate::BaseManager::proxy_from_token)
    /// there after [`Token::from_text`].
    pub fn to_text(&self) -> String {
        let fields = (self.typeid.as_str(), &self.address, self.id);
        let bytes = crate::wire::encode(&fields).expect("a token always encodes");
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Read a token written by [`Token::to_text`].
    pub fn from_text(text: &str) -> Result<Token> {
        let bad = || crate::Error::Codec(format!("`{text}` is not a token's text form"));
        if text.len() % 2 != 0 || !text.is_ascii() {
            return Err(bad());
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16))
            .collect::<std::result::Result<Vec<u8>, _>>()
            .map_err(|_| bad())?;
        let (typeid, address, id): (String, Address, u64) =
            crate::wire::decode(&bytes).map_err(|_| bad())?;
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

/// Implemented by every generated proxy (blocking and async).
pub trait Proxy: Sized {
    /// Wrap a base that already owns a reference.
    fn from_base(base: ProxyBase) -> Self;
    /// The base this proxy wraps.
    fn base(&self) -> &ProxyBase;
    /// The token of the object.
    fn token(&self) -> &Token {
        self.base().token()
    }
}

/// A counted reference to a remote object, through one client session.
pub struct ProxyBase {
    client: Client,
    token: Token,
}

impl ProxyBase {
    /// Adopt a token whose server-side reference the session already holds.
    pub(crate) fn adopt(client: Client, token: Token) -> Self {
        client.retain(token.id, 1);
        ProxyBase { client, token }
    }

    /// Build a base for a token that came from elsewhere (another process, a
    /// container): takes a new reference on the server if this session holds
    /// none yet.
    pub fn from_token(client: &Client, token: Token) -> Result<Self> {
        client.incref(&token)?;
        Ok(ProxyBase {
            client: client.clone(),
            token,
        })
    }

    /// The object's token.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The session this proxy calls through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Call a method (blocking) and decode a plain result.
    pub fn call<A: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        fingerprint: u64,
        args: &A,
    ) -> Result<R> {
        self.client
            .call(self.token.id, method, fingerprint, args, |bytes| {
                crate::wire::decode(bytes)
            })
    }

    /// Call a method (blocking) whose result holds shared objects.
    pub fn call_adopt<A: Serialize, W: Adopt>(
        &self,
        method: &str,
        fingerprint: u64,
        args: &A,
    ) -> Result<W::Output> {
        self.client
            .call(self.token.id, method, fingerprint, args, |bytes| {
                let wire: W::Wire = crate::wire::decode(bytes)?;
                Ok(W::adopt(wire, &self.client))
            })
    }

    /// Call a method (async) and decode a plain result.
    pub async fn call_async<A: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        fingerprint: u64,
        args: &A,
    ) -> Result<R> {
        let bytes = self
            .client
            .call_async(self.token.id, method, fingerprint, args)
            .await?;
        decoding_for(&self.client, || crate::wire::decode(&bytes))
    }

    /// Call a method (async) whose result holds shared objects.
    pub async fn call_adopt_async<A: Serialize, W: Adopt>(
        &self,
        method: &str,
        fingerprint: u64,
        args: &A,
    ) -> Result<W::Output> {
        let bytes = self
            .client
            .call_async(self.token.id, method, fingerprint, args)
            .await?;
        let wire: W::Wire = crate::wire::decode(&bytes)?;
        Ok(W::adopt(wire, &self.client))
    }

    /// Turn a dynamic value from a reply into `T`; proxies inside it are
    /// adopted by this proxy's session.
    pub fn decode_value<T: DeserializeOwned>(&self, value: crate::value::Value) -> Result<T> {
        decoding_for(&self.client, || crate::value::from_value(value)).map_err(Into::into)
    }

    /// Write `<Name typeid 'T' id N at ADDRESS>`; used by generated proxies'
    /// `Debug` and `Display`.
    pub fn describe(&self, proxy: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{proxy} {}>", self.token)
    }
}

impl Clone for ProxyBase {
    /// Another local reference; the server is not contacted.
    fn clone(&self) -> Self {
        self.client.retain(self.token.id, 0);
        ProxyBase {
            client: self.client.clone(),
            token: self.token.clone(),
        }
    }
}

impl Drop for ProxyBase {
    fn drop(&mut self) {
        self.client.release(self.token.id);
    }
}

impl fmt::Debug for ProxyBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.describe("Proxy", f)
    }
}

/// How a result that holds shared objects becomes proxies on the client.
pub trait Adopt {
    /// What travels: the same shape with tokens for objects.
    type Wire: DeserializeOwned;
    /// What the caller gets: the same shape with proxies.
    type Output;
    /// Turn tokens into proxies of `client`'s session.
    fn adopt(wire: Self::Wire, client: &Client) -> Self::Output;
}

/// A method returning a shared object `P` stands for.
pub struct AdoptProxy<P>(std::marker::PhantomData<P>);

impl<P: Proxy> Adopt for AdoptProxy<P> {
    type Wire = Token;
    type Output = P;
    fn adopt(token: Token, client: &Client) -> P {
        P::from_base(ProxyBase::adopt(client.clone(), token))
    }
}

/// A method returning `Result<object, E>`.
pub struct AdoptResult<P, E>(std::marker::PhantomData<(P, E)>);

impl<P: Proxy, E: DeserializeOwned> Adopt for AdoptResult<P, E> {
    type Wire = std::result::Result<Token, E>;
    type Output = std::result::Result<P, E>;
    fn adopt(wire: Self::Wire, client: &Client) -> Self::Output {
        wire.map(|token| AdoptProxy::<P>::adopt(token, client))
    }
}

/// A method returning `Option<object>`.
pub struct AdoptOption<P>(std::marker::PhantomData<P>);

impl<P: Proxy> Adopt for AdoptOption<P> {
    type Wire = Option<Token>;
    type Output = Option<P>;
    fn adopt(wire: Self::Wire, client: &Client) -> Self::Output {
        wire.map(|token| AdoptProxy::<P>::adopt(token, client))
    }
}
