//! Values as bytes: postcard, into a caller's buffer or a new one, and
//! back. Plain data, below every layer that sends anything (the process
//! primitives, the manager's frames in `wire.rs`).
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Append a postcard encoding of `value` to `buf`; on an error `buf` is
/// left as it was.
pub fn append<T: Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    /// Encodes straight into the caller's buffer: a byte pushed, a slice
    /// (a string's or a byte string's contents) copied whole.
    struct Tail<'a>(&'a mut Vec<u8>);
    impl postcard::ser_flavors::Flavor for Tail<'_> {
        type Output = ();
        #[inline(always)]
        fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
            self.0.push(byte);
            Ok(())
        }
        #[inline(always)]
        fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
            // A varint (at most 10 bytes) byte by byte: `extend_from_slice`
            // calls `memcpy` for any length, which cost a quarter of a
            // pool's time encoding a `map` of integers.
            if bytes.len() <= 16 {
                self.0.extend(bytes.iter().copied());
            } else {
                self.0.extend_from_slice(bytes);
            }
            Ok(())
        }
        #[inline(always)]
        fn finalize(self) -> postcard::Result<()> {
            Ok(())
        }
    }
    let start = buf.len();
    match postcard::serialize_with_flavor(value, Tail(buf)) {
        Ok(()) => Ok(()),
        Err(e) => {
            buf.truncate(start);
            Err(Error::codec("encoding a message", e))
        }
    }
}

/// Encode a value on its own (payloads, tokens).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    postcard::to_stdvec(value).map_err(|e| Error::codec("encoding a value", e))
}

/// Decode a whole payload; trailing bytes are an error.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Error> {
    let (value, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| Error::codec("decoding a value", e))?;
    if !rest.is_empty() {
        return Err(Error::Codec {
            context: format!("decoding a value: {} unexpected trailing bytes", rest.len()),
            source: None,
        });
    }
    Ok(value)
}
