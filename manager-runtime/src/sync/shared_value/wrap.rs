//! How a typed proxy wraps the proxy `#[shared]` generated: arguments in
//! as [`Value`], results out as the caller's types, Python's exceptions
//! folded into the crate's error.

use serde::de::DeserializeOwned;

use crate::error::{Error, Result, SyncError};
use crate::proxy::ProxyBase;
use crate::value::Value;

/// `Result<Result<T, SyncError>>` from a raw proxy as the typed proxies'
/// `Result<T>`.
pub(crate) fn flatten<T>(result: Result<std::result::Result<T, SyncError>>) -> Result<T> {
    result?.map_err(Error::Sync)
}

/// Turn a value from a reply of `base`'s object into `T`, adopting the
/// proxies nested in it into `base`'s session.
///
/// Each token of this server in a reply came with a reference granted to
/// the session, which a proxy decoded from it adopts. A token decoded as
/// something else (a `Value`, or nothing when decoding fails) would leave
/// that reference held until the session ends, so every grant is adopted
/// by a guard first and given back when the guards drop; a token that
/// became a proxy keeps its object alive through that proxy.
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

/// The impls every typed proxy of these families shares: `From` the
/// generated proxy it wraps (its `raw` field), [`Proxy`](crate::Proxy),
/// `Clone`, `Debug`, and serde as the token. `Display` is each type's own.
///
/// `typed_proxy!(ValueProxy<T>, SharedValueProxy)` for a proxy generic over
/// its element type (with a `_type: PhantomData<fn() -> T>` field),
/// `typed_proxy!(BarrierProxy, RawBarrierProxy)` for one that is not.
macro_rules! typed_proxy {
    ($typed:ident<$t:ident>, $raw:ty) => {
        impl<$t> ::core::convert::From<$raw> for $typed<$t> {
            fn from(raw: $raw) -> Self {
                $typed {
                    raw,
                    _type: ::core::marker::PhantomData,
                }
            }
        }
        typed_proxy!(@common [$t] $typed<$t>, $raw);
    };
    ($typed:ident, $raw:ty) => {
        impl ::core::convert::From<$raw> for $typed {
            fn from(raw: $raw) -> Self {
                $typed { raw }
            }
        }
        typed_proxy!(@common [] $typed, $raw);
    };
    (@common [$($t:ident)?] $typed:ty, $raw:ty) => {
        impl<$($t)?> $crate::proxy::Proxy for $typed {
            fn from_base(base: $crate::proxy::ProxyBase) -> Self {
                <$raw as $crate::proxy::Proxy>::from_base(base).into()
            }

            fn base(&self) -> &$crate::proxy::ProxyBase {
                $crate::proxy::Proxy::base(&self.raw)
            }
        }

        impl<$($t)?> ::core::clone::Clone for $typed {
            /// Another reference to the same object.
            fn clone(&self) -> Self {
                ::core::clone::Clone::clone(&self.raw).into()
            }
        }

        impl<$($t)?> ::core::fmt::Debug for $typed {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Debug::fmt(&self.raw, f)
            }
        }

        impl<$($t)?> ::serde::Serialize for $typed {
            /// As its token, so a container stores it as a proxy.
            fn serialize<S: ::serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::core::result::Result<S::Ok, S::Error> {
                ::serde::Serialize::serialize(&self.raw, serializer)
            }
        }

        impl<'de, $($t)?> ::serde::Deserialize<'de> for $typed {
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
