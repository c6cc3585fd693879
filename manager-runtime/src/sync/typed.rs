//! How a typed proxy wraps the proxy `#[shared]` generated: arguments in
//! as [`Value`], results out as the caller's types, Python's exceptions
//! folded into the crate's error, and the impls every typed proxy shares.
#![forbid(unsafe_code)]

use serde::de::DeserializeOwned;

use crate::proxy::ProxyBase;
use crate::value::Value;
use crate::{Error, Result, SyncError};

/// `Result<Result<T, SyncError>>` from a raw proxy as the typed proxies'
/// `Result<T>`: Python's exception becomes [`Error::Sync`].
pub(crate) fn flatten<T>(result: Result<std::result::Result<T, SyncError>>) -> Result<T> {
    result?.map_err(Error::Sync)
}

/// Turn a value from a reply of `base`'s object into `T`, adopting the
/// proxies nested in it into `base`'s session.
///
/// Each token of this server in a reply came with a reference granted to
/// the session, which a proxy decoded from it adopts. A token decoded as
/// something else (a bare `Value::Token`, or nothing when decoding fails)
/// would leave that reference held until the session ends, so every grant
/// is adopted by a guard first and given back when the guards drop; a
/// token that became a proxy keeps its object alive through that proxy.
/// (That proxy then counts one reference more than the session holds,
/// which is harmless: a session's release is capped at what it holds.)
pub(crate) fn decode<T: DeserializeOwned>(base: &ProxyBase, value: Value) -> Result<T> {
    let client = base.client();
    let guards: Vec<ProxyBase> = value
        .tokens()
        .filter(|token| token.address == *client.address())
        .map(|token| ProxyBase::adopt(client.clone(), token.clone()))
        .collect();
    let decoded = base.decode_value(value);
    drop(guards);
    decoded
}

/// The impls a hand-written typed proxy (an iterator's) shares with the
/// generated ones, for a struct whose `raw` field is the generated proxy
/// it wraps, with a `_type: PhantomData<fn() -> ...>` field and further
/// fields with their initial values (`typed_proxy!(IterProxy<T>,
/// RawIterProxy, failed: false)`): `raw()`, `From` that proxy,
/// [`Proxy`](crate::Proxy), `Clone` (another reference), `Debug`,
/// `Display`, and serde as the token (so a container stores it as a
/// proxy, and a proxy in a reply is adopted by its session).
macro_rules! typed_proxy {
    ($typed:ident<$($t:ident),+>, $raw:ty $(, $field:ident: $value:expr)*) => {
        impl<$($t),+> ::core::convert::From<$raw> for $typed<$($t),+> {
            fn from(raw: $raw) -> Self {
                $typed {
                    raw,
                    _type: ::core::marker::PhantomData,
                    $($field: $value,)*
                }
            }
        }

        impl<$($t),+> $typed<$($t),+> {
            /// The dynamically typed proxy this one wraps.
            pub fn raw(&self) -> &$raw {
                &self.raw
            }
        }

        impl<$($t),+> $crate::Proxy for $typed<$($t),+> {
            fn from_base(base: $crate::proxy::ProxyBase) -> Self {
                <$raw as $crate::Proxy>::from_base(base).into()
            }

            fn base(&self) -> &$crate::proxy::ProxyBase {
                $crate::Proxy::base(&self.raw)
            }
        }

        impl<$($t),+> ::core::clone::Clone for $typed<$($t),+> {
            /// Another reference to the same object.
            fn clone(&self) -> Self {
                ::core::clone::Clone::clone(&self.raw).into()
            }
        }

        impl<$($t),+> ::core::fmt::Debug for $typed<$($t),+> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Debug::fmt(&self.raw, f)
            }
        }

        impl<$($t),+> ::core::fmt::Display for $typed<$($t),+> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Display::fmt(&self.raw, f)
            }
        }

        impl<$($t),+> ::serde::Serialize for $typed<$($t),+> {
            /// As its token, so a container stores it as a proxy.
            fn serialize<S: ::serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::core::result::Result<S::Ok, S::Error> {
                ::serde::Serialize::serialize(&self.raw, serializer)
            }
        }

        impl<'de, $($t),+> ::serde::Deserialize<'de> for $typed<$($t),+> {
            /// A proxy inside a manager's reply, adopted by its session.
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::core::result::Result<Self, D::Error> {
                <$raw as ::serde::Deserialize<'de>>::deserialize(deserializer).map(Into::into)
            }
        }
    };
}

pub(crate) use typed_proxy;

/// `to_async()` on a blocking typed proxy and `to_blocking()` on its async
/// form (each another reference to the same object), for two typed proxies
/// whose `raw` fields are the two raw proxies of one type:
/// `flavours!(QueueProxy<T>, QueueAsyncProxy)`.
macro_rules! flavours {
    ($blocking:ident $(<$($t:ident),+>)?, $asynchronous:ident) => {
        impl$(<$($t),+>)? $blocking$(<$($t),+>)? {
            /// The async proxy of the same object (another reference).
            pub fn to_async(&self) -> $asynchronous$(<$($t),+>)? {
                self.raw.to_async().into()
            }
        }

        impl$(<$($t),+>)? $asynchronous$(<$($t),+>)? {
            /// The blocking proxy of the same object (another reference).
            pub fn to_blocking(&self) -> $blocking$(<$($t),+>)? {
                self.raw.to_blocking().into()
            }
        }
    };
}

pub(crate) use flavours;

/// One list of methods, both flavours: emits the methods on the blocking
/// typed proxy and, as `async fn`s, on the async one, from the same bodies.
/// The conveniences over generated methods are written with it.
///
/// ```text
/// dual_proxy! {
///     impl<T> QueueProxy, QueueAsyncProxy where [T: Serialize + DeserializeOwned] {
///         /// Docs, on both.
///         pub fn get(&self) -> Result<T> {
///             wait!(self.get_with(true, None))
///         }
///     }
/// }
/// ```
///
/// In a body, `wait!(call)` is the call itself in the blocking proxy and
/// `call.await` in the async one. A method's own generics are plain names,
/// bounded in its `where [...]` (brackets, so the macro can tell where the
/// body starts). A method whose types differ by flavour (an iterator, a
/// guard) is written out on each proxy instead.
macro_rules! dual_proxy {
    (
        impl $(<$($g:ident),*>)? $blocking:ident, $asynchronous:ident
        $(where [$($bounds:tt)*])?
        { $($methods:tt)* }
    ) => {
        $crate::sync::typed::dual_proxy!(@flavour ($) blocking
            [$($($g),*)?] $blocking [$($($bounds)*)?] $($methods)*);
        $crate::sync::typed::dual_proxy!(@flavour ($) async
            [$($($g),*)?] $asynchronous [$($($bounds)*)?] $($methods)*);
    };
    (@flavour ($d:tt) $flavour:ident [$($g:ident),*] $proxy:ident [$($bounds:tt)*]
        $(
            $(#[$attr:meta])*
            pub fn $name:ident $(<$($mg:ident),*>)?
                (&$this:ident $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty
                $(where [$($mbounds:tt)*])?
                $body:block
        )*
    ) => {
        impl<$($g),*> $proxy<$($g),*> where $($bounds)* {
            $(
                $crate::sync::typed::dual_proxy!(@method ($d) $flavour
                    [$(#[$attr])*] $name [$($($mg),*)?] $this [$($arg: $ty),*] $ret
                    [$($($mbounds)*)?] $body);
            )*
        }
    };
    (@method ($d:tt) blocking [$($attr:tt)*] $name:ident [$($mg:ident),*] $this:ident
        [$($arg:ident: $ty:ty),*] $ret:ty [$($mbounds:tt)*] $body:block) => {
        $($attr)*
        pub fn $name<$($mg),*>(&$this, $($arg: $ty),*) -> $ret where $($mbounds)* {
            #[allow(unused_macros)]
            macro_rules! wait { ($d call:expr) => { $d call } }
            #[allow(unused_macros)]
            macro_rules! owner { () => { $crate::proxy::caller_id() } }
            #[allow(unused_macros)]
            macro_rules! undoable { ($d call:expr, $d proxy:expr, $d undo:expr) => { $d call } }
            $body
        }
    };
    (@method ($d:tt) async [$($attr:tt)*] $name:ident [$($mg:ident),*] $this:ident
        [$($arg:ident: $ty:ty),*] $ret:ty [$($mbounds:tt)*] $body:block) => {
        $($attr)*
        pub async fn $name<$($mg),*>(&$this, $($arg: $ty),*) -> $ret where $($mbounds)* {
            #[allow(unused_macros)]
            macro_rules! wait { ($d call:expr) => { $d call.await } }
            $body
        }
    };
}

pub(crate) use dual_proxy;

/// Who holds an `RLock` or a condition's lock for an async proxy: the
/// calling tokio task, as a thread does for a blocking proxy. A task moves
/// between threads, and threads run many tasks, so the thread's
/// [`caller_id`](crate::proxy::caller_id) would be wrong in both directions.
/// Outside a task (a `block_on` future) it is the calling thread.
pub fn task_owner() -> u64 {
    use std::hash::BuildHasher;
    // Task ids are unique within the process; hashed with keys random per
    // process, so they are distinct across processes and (but for a 2^-64
    // chance) from every thread's id.
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    match tokio::task::try_id() {
        Some(task) => KEYS.get_or_init(Default::default).hash_one(("task", task)),
        None => crate::proxy::caller_id(),
    }
}

/// A typed proxy's result from what the server sent (`R`, the served
/// method's result): values decoded as the caller's types (proxies in them
/// adopted by the caller's session), Python's exception folded into
/// [`Error::Sync`]. `#[shared(typed)]` proxies return through it.
pub trait FromReply<R>: Sized {
    /// `raw`, from a reply of `base`'s object, as `Self`.
    fn from_reply(base: &ProxyBase, raw: R) -> Result<Self>;
}

impl<T: DeserializeOwned> FromReply<Value> for T {
    fn from_reply(base: &ProxyBase, raw: Value) -> Result<T> {
        decode(base, raw)
    }
}

impl<T: DeserializeOwned> FromReply<super::held::Removed> for T {
    fn from_reply(base: &ProxyBase, raw: super::held::Removed) -> Result<T> {
        decode(base, raw.into_value())
    }
}

impl<T: FromReply<R>, R, E: Into<Error>> FromReply<std::result::Result<R, E>> for T {
    fn from_reply(base: &ProxyBase, raw: std::result::Result<R, E>) -> Result<T> {
        T::from_reply(base, raw.map_err(Into::into)?)
    }
}

impl<T: FromReply<R>, R> FromReply<Option<R>> for Option<T> {
    fn from_reply(base: &ProxyBase, raw: Option<R>) -> Result<Option<T>> {
        raw.map(|raw| T::from_reply(base, raw)).transpose()
    }
}

impl<T: FromReply<R>, R> FromReply<Vec<R>> for Vec<T> {
    fn from_reply(base: &ProxyBase, raw: Vec<R>) -> Result<Vec<T>> {
        raw.into_iter()
            .map(|raw| T::from_reply(base, raw))
            .collect()
    }
}

impl<A: FromReply<RA>, B: FromReply<RB>, RA, RB> FromReply<(RA, RB)> for (A, B) {
    fn from_reply(base: &ProxyBase, (a, b): (RA, RB)) -> Result<(A, B)> {
        Ok((A::from_reply(base, a)?, B::from_reply(base, b)?))
    }
}

/// Plain results, as they came.
macro_rules! from_itself {
    ($($ty:ty),* $(,)?) => {$(
        impl FromReply<$ty> for $ty {
            fn from_reply(_: &ProxyBase, raw: $ty) -> Result<$ty> {
                Ok(raw)
            }
        }
    )*};
}

from_itself!(
    (),
    bool,
    u8,
    u16,
    u32,
    u64,
    usize,
    i8,
    i16,
    i32,
    i64,
    isize,
    f32,
    f64,
    String,
    std::time::Duration,
);
