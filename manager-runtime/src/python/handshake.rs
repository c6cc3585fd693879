//! `multiprocessing.connection`'s challenge-response on the authkey, as
//! CPython 3.11, 3.12 and 3.13 speak it, both ways.
//!
//! ```text
//! challenger -> answerer   #CHALLENGE# + message
//! answerer -> challenger   HMAC(key, message)
//! challenger -> answerer   #WELCOME#  or  #FAILURE#
//! ```
//!
//! A manager's server challenges first, then answers the client's
//! challenge; the client does the reverse. 3.11 challenges with 20 random
//! bytes and answers with a bare 16-byte HMAC-MD5. 3.12 and later
//! challenge with `{sha256}` and 40 random bytes, answer a prefixed
//! challenge with `{digest}` and that HMAC, and still accept (and send, to
//! a 20-byte challenge) the bare MD5 form. We challenge as 3.12 does: 3.11
//! peers answer it with MD5 over the whole message, which we accept, so
//! every pair of versions agrees. MACs are compared in constant time.
#![forbid(unsafe_code)]

use hmac::{Hmac, Mac};

use crate::error::Error;

/// The challenge's prefix.
pub const CHALLENGE: &[u8] = b"#CHALLENGE#";
/// The verdict of a good answer.
pub const WELCOME: &[u8] = b"#WELCOME#";
/// The verdict of a wrong answer.
pub const FAILURE: &[u8] = b"#FAILURE#";

/// Random bytes of our challenges (CPython 3.12's `MESSAGE_LENGTH`).
const MESSAGE_LENGTH: usize = 40;
/// A legacy (3.11) challenge's length, and a bare MD5 answer's.
const LEGACY_LENGTHS: [usize; 2] = [20, 16];

/// The digests a `{digest}` prefix may name that we compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Digest {
    Md5,
    Sha256,
    Sha384,
}

impl Digest {
    fn named(name: &[u8]) -> Option<Digest> {
        match name {
            b"md5" => Some(Digest::Md5),
            b"sha256" => Some(Digest::Sha256),
            b"sha384" => Some(Digest::Sha384),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Digest::Md5 => "md5",
            Digest::Sha256 => "sha256",
            Digest::Sha384 => "sha384",
        }
    }

    fn mac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
            let mut mac = <M as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Digest::Md5 => run::<Hmac<md5::Md5>>(key, message),
            Digest::Sha256 => run::<Hmac<sha2::Sha256>>(key, message),
            Digest::Sha384 => run::<Hmac<sha2::Sha384>>(key, message),
        }
    }
}

/// Split a challenge or an answer into its digest and payload, as
/// CPython's `_get_digest_name_and_payload` does: a 16- or 20-byte message
/// is the legacy MD5 form (`None`), anything else carries `{digest}`.
fn digest_and_payload(message: &[u8]) -> Result<(Option<Digest>, &[u8]), Error> {
    if LEGACY_LENGTHS.contains(&message.len()) {
        return Ok((None, message));
    }
    if let Some(rest) = message.strip_prefix(b"{") {
        if let Some(close) = rest.iter().take(9).position(|&b| b == b'}') {
            if let Some(digest) = Digest::named(&rest[..close]) {
                return Ok((Some(digest), &rest[close + 1..]));
            }
        }
    }
    Err(Error::Authentication(
        "unsupported message length, missing digest prefix, or unsupported digest".into(),
    ))
}

/// A challenge we sent, waiting for its answer.
pub struct Challenge {
    message: Vec<u8>,
}

impl Challenge {
    /// A fresh challenge and the body to send.
    pub fn new() -> (Challenge, Vec<u8>) {
        let mut message = b"{sha256}".to_vec();
        message.extend_from_slice(&crate::authkey::random_bytes::<MESSAGE_LENGTH>());
        let mut body = CHALLENGE.to_vec();
        body.extend_from_slice(&message);
        (Challenge { message }, body)
    }

    /// The challenge a peer sent as `body` (`#CHALLENGE#` + message), to
    /// check an answer to it (as the peer will).
    pub fn sent_as(body: &[u8]) -> Option<Challenge> {
        body.strip_prefix(CHALLENGE).map(|message| Challenge {
            message: message.to_vec(),
        })
    }

    /// Whether `answer` proves the peer knows `key`: a `{digest}`-prefixed
    /// HMAC of our message, or the bare HMAC-MD5 of 3.11.
    pub fn verify(&self, key: &[u8], answer: &[u8]) -> bool {
        let Ok((digest, mac)) = digest_and_payload(answer) else {
            return false;
        };
        let expected = digest.unwrap_or(Digest::Md5).mac(key, &self.message);
        expected.len() == mac.len() && constant_time_eq(&expected, mac)
    }

    /// The verdict to send for `answer`, and whether it was right.
    pub fn verdict(&self, key: &[u8], answer: &[u8]) -> (&'static [u8], bool) {
        if self.verify(key, answer) {
            (WELCOME, true)
        } else {
            (FAILURE, false)
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Our answer to a peer's challenge body (`#CHALLENGE#` + message).
pub fn answer(key: &[u8], challenge: &[u8]) -> Result<Vec<u8>, Error> {
    let message = challenge.strip_prefix(CHALLENGE).ok_or_else(|| {
        Error::Authentication("the peer is not a Python manager (no challenge)".into())
    })?;
    if message.len() < LEGACY_LENGTHS[0] {
        return Err(Error::Authentication(format!(
            "challenge too short: {} bytes",
            message.len()
        )));
    }
    match digest_and_payload(message)?.0 {
        None => Ok(Digest::Md5.mac(key, message)),
        Some(digest) => {
            let mut out = format!("{{{}}}", digest.name()).into_bytes();
            out.extend_from_slice(&digest.mac(key, message));
            Ok(out)
        }
    }
}

/// What a verdict we received means.
pub fn check_verdict(verdict: &[u8]) -> Result<(), Error> {
    if verdict == WELCOME {
        Ok(())
    } else {
        Err(Error::Authentication("digest sent was rejected".into()))
    }
}

fn closed(peer: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::ServerGone { .. } => Error::Authentication(format!(
            "the {peer} closed the connection during the handshake"
        )),
        Error::FrameTooLarge { .. } | Error::Protocol { .. } => Error::Authentication(format!(
            "the {peer} is not a Python manager (bad handshake)"
        )),
        other => other,
    }
}

/// The server's side over an async stream: challenge the client, then
/// answer its challenge. `Ok(false)`: the client did not know the key and
/// was told so.
pub async fn server_async<S>(stream: &mut S, key: &[u8]) -> Result<bool, Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let (challenge, body) = Challenge::new();
    stream.write_all(&super::frame::frame(&body)).await?;
    let mut buf = Vec::new();
    recv_async(stream, &mut buf).await?;
    let (verdict, accepted) = challenge.verdict(key, &buf);
    stream.write_all(&super::frame::frame(verdict)).await?;
    if !accepted {
        return Ok(false);
    }
    recv_async(stream, &mut buf).await?;
    let response = answer(key, &buf)?;
    stream.write_all(&super::frame::frame(&response)).await?;
    recv_async(stream, &mut buf).await?;
    check_verdict(&buf)?;
    Ok(true)
}

async fn recv_async<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> Result<(), Error> {
    match super::frame::read_async(stream, buf, super::frame::HANDSHAKE_MAX).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::Authentication(
            "the client closed the connection during the handshake".into(),
        )),
        Err(e) => Err(closed("client")(e)),
    }
}

/// The client's side over a blocking stream: answer the server's
/// challenge, then challenge it.
pub fn client_blocking<S: std::io::Read + std::io::Write>(
    stream: &mut S,
    key: &[u8],
) -> Result<(), Error> {
    use super::frame::{read, write, HANDSHAKE_MAX};
    let mut buf = Vec::new();
    read(stream, &mut buf, HANDSHAKE_MAX).map_err(closed("server"))?;
    write(stream, &answer(key, &buf)?)?;
    read(stream, &mut buf, HANDSHAKE_MAX).map_err(closed("server"))?;
    check_verdict(&buf)?;
    let (challenge, body) = Challenge::new();
    write(stream, &body)?;
    read(stream, &mut buf, HANDSHAKE_MAX).map_err(closed("server"))?;
    let (verdict, accepted) = challenge.verdict(key, &buf);
    write(stream, verdict)?;
    if !accepted {
        return Err(Error::Authentication(
            "the server does not know the authkey (digest received was wrong)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modern_answer_is_prefixed_and_verified() {
        let (challenge, body) = Challenge::new();
        assert!(body.starts_with(b"#CHALLENGE#{sha256}"));
        assert_eq!(body.len(), CHALLENGE.len() + 8 + MESSAGE_LENGTH);
        let response = answer(b"key", &body).unwrap();
        assert!(response.starts_with(b"{sha256}"));
        assert_eq!(response.len(), 8 + 32);
        assert!(challenge.verify(b"key", &response));
        assert!(!challenge.verify(b"key", &answer(b"other", &body).unwrap()));
    }

    #[test]
    fn legacy_md5_both_ways() {
        // A 3.11 server's 20-byte challenge is answered with bare MD5.
        let mut body = CHALLENGE.to_vec();
        body.extend_from_slice(&[7; 20]);
        let response = answer(b"key", &body).unwrap();
        assert_eq!(response, Digest::Md5.mac(b"key", &[7; 20]));
        // A 3.11 client answers our prefixed challenge with bare MD5 over
        // the whole message, prefix included.
        let (challenge, body) = Challenge::new();
        let legacy = Digest::Md5.mac(b"key", &body[CHALLENGE.len()..]);
        assert_eq!(legacy.len(), 16);
        assert!(challenge.verify(b"key", &legacy));
        assert!(!challenge.verify(b"nope", &legacy));
    }

    #[test]
    fn garbage_refused() {
        let (challenge, _) = Challenge::new();
        for answer in [&b""[..], b"{sha256}", b"{md4}0123456789abcdef0", b"x"] {
            assert!(!challenge.verify(b"key", answer));
        }
        assert!(answer(b"key", b"GET / HTTP/1.1").is_err());
        assert!(answer(b"key", b"#CHALLENGE#short").is_err());
        let mut unprefixed = CHALLENGE.to_vec();
        unprefixed.extend_from_slice(&[1; 30]);
        assert!(answer(b"key", &unprefixed).is_err());
        assert!(check_verdict(FAILURE).is_err());
        assert!(check_verdict(WELCOME).is_ok());
    }
}
