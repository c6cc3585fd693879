//! The handshake: protocol name and version, then mutual HMAC-SHA256
//! challenge-response on the authkey.
//!
//! ```text
//! client -> server   MAGIC, version                      (HELLO)
//! server -> client   MAGIC, version, server challenge     (CHALLENGE)
//! client -> server   HMAC(key, "client" | server chal.), client challenge
//! server -> client   OK, HMAC(key, "server" | client chal.)   or FAIL
//! ```
//!
//! Every message is a short raw frame of fixed layout; nothing is decoded
//! with serde until both sides have proved they know the key. MACs are
//! compared in constant time (`Mac::verify_slice`), and each side's MAC is
//! bound to its role so a peer cannot reflect a challenge back.
#![forbid(unsafe_code)]

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::authkey::random_bytes;
use crate::error::Error;

/// Protocol name sent first by both sides.
pub const MAGIC: &[u8; 8] = b"MANAGERS";
/// Version of the wire protocol: raised with every change to the messages,
/// so peers built from other versions refuse each other at the handshake
/// with a clear error instead of misreading frames (3: `Request::Call`
/// carries the method's index).
pub const VERSION: u16 = 3;
/// Largest frame accepted during the handshake.
pub const MAX_HANDSHAKE_FRAME: u32 = 128;

const CHALLENGE: usize = 32;
const MAC: usize = 32;
/// Sent after the greeting instead of a challenge when the server is at
/// its connection limit.
const BUSY: &[u8] = b"BUSY";
const OK: u8 = 1;
const FAIL: u8 = 0;

fn mac(key: &[u8], role: &[u8], challenge: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(role);
    mac.update(challenge);
    mac
}

fn hello_body() -> Vec<u8> {
    let mut body = MAGIC.to_vec();
    body.extend_from_slice(&VERSION.to_le_bytes());
    body
}

fn check_hello(frame: &[u8], peer: &str) -> Result<(), Error> {
    if frame.len() < MAGIC.len() + 2 || &frame[..MAGIC.len()] != MAGIC {
        return Err(Error::Authentication(format!(
            "the {peer} is not a manager (bad greeting)"
        )));
    }
    let version = u16::from_le_bytes([frame[8], frame[9]]);
    if version != VERSION {
        return Err(Error::protocol(
            format!("the {peer} speaks protocol version {version}, this side speaks {VERSION}"),
            None,
        ));
    }
    Ok(())
}

/// The client's side, one step per message received.
pub struct ClientHandshake {
    key: Vec<u8>,
    challenge: [u8; CHALLENGE],
}

impl ClientHandshake {
    /// Begin: returns the state and the HELLO body to send.
    pub fn start(key: &[u8]) -> (Self, Vec<u8>) {
        let state = ClientHandshake {
            key: key.to_vec(),
            challenge: random_bytes(),
        };
        (state, hello_body())
    }

    /// Given the server's CHALLENGE, return the response body to send.
    pub fn respond(&self, frame: &[u8]) -> Result<Vec<u8>, Error> {
        check_hello(frame, "server")?;
        let challenge = &frame[MAGIC.len() + 2..];
        if challenge == BUSY {
            return Err(Error::LimitReached(
                "the server is at its connection limit; try again later".into(),
            ));
        }
        if challenge.len() != CHALLENGE {
            return Err(Error::Authentication(
                "the server sent a malformed challenge".into(),
            ));
        }
        let mut body = mac(&self.key, b"client", challenge)
            .finalize()
            .into_bytes()
            .to_vec();
        body.extend_from_slice(&self.challenge);
        Ok(body)
    }

    /// Given the server's verdict, finish.
    pub fn finish(&self, frame: &[u8]) -> Result<(), Error> {
        match frame.split_first() {
            Some((&FAIL, [])) => Err(Error::Authentication(
                "the server refused the authkey (digest mismatch)".into(),
            )),
            Some((&OK, digest)) if digest.len() == MAC => {
                mac(&self.key, b"server", &self.challenge)
                    .verify_slice(digest)
                    .map_err(|_| {
                        Error::Authentication(
                            "the server does not know the authkey (digest mismatch)".into(),
                        )
                    })
            }
            _ => Err(Error::Authentication(
                "the server sent a malformed verdict".into(),
            )),
        }
    }
}

/// The server's side.
pub struct ServerHandshake {
    key: Vec<u8>,
    challenge: [u8; CHALLENGE],
}

/// What the server sends after checking the client's response.
pub struct Verdict {
    /// The body to send back.
    pub body: Vec<u8>,
    /// Whether the client proved it knows the key.
    pub accepted: bool,
}

impl ServerHandshake {
    /// Given the client's HELLO, return the state and the CHALLENGE to send.
    pub fn start(key: &[u8], hello: &[u8]) -> Result<(Self, Vec<u8>), Error> {
        check_hello(hello, "client")?;
        let state = ServerHandshake {
            key: key.to_vec(),
            challenge: random_bytes(),
        };
        let mut body = hello_body();
        body.extend_from_slice(&state.challenge);
        Ok((state, body))
    }

    /// Check the client's response and build the verdict.
    pub fn verdict(&self, frame: &[u8]) -> Verdict {
        if frame.len() != MAC + CHALLENGE {
            return Verdict {
                body: vec![FAIL],
                accepted: false,
            };
        }
        let (digest, client_challenge) = frame.split_at(MAC);
        if mac(&self.key, b"client", &self.challenge)
            .verify_slice(digest)
            .is_err()
        {
            return Verdict {
                body: vec![FAIL],
                accepted: false,
            };
        }
        let mut body = vec![OK];
        body.extend_from_slice(
            &mac(&self.key, b"server", client_challenge)
                .finalize()
                .into_bytes(),
        );
        Verdict {
            body,
            accepted: true,
        }
    }
}

/// Run the client side over a blocking stream.
pub fn client_blocking<S: std::io::Read + std::io::Write>(
    stream: &mut S,
    key: &[u8],
) -> Result<(), Error> {
    use crate::wire::{raw_frame, read_frame, write_frame};
    let auth_gone = |e: Error| match e {
        Error::ServerGone { reason, .. } => {
            Error::Authentication(format!("the server closed the connection: {reason}"))
        }
        Error::FrameTooLarge { .. } => {
            Error::Authentication("the server is not a manager (oversized greeting)".into())
        }
        other => other,
    };
    let (state, hello) = ClientHandshake::start(key);
    write_frame(stream, &raw_frame(&hello))?;
    let mut buf = Vec::new();
    read_frame(stream, &mut buf, MAX_HANDSHAKE_FRAME).map_err(auth_gone)?;
    let response = state.respond(&buf)?;
    write_frame(stream, &raw_frame(&response))?;
    read_frame(stream, &mut buf, MAX_HANDSHAKE_FRAME).map_err(auth_gone)?;
    state.finish(&buf)
}

/// Run the client side over an async stream.
pub async fn client_async<S>(stream: &mut S, key: &[u8]) -> Result<(), Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (state, hello) = ClientHandshake::start(key);
    send_async(stream, &hello).await?;
    let buf = recv_async(stream, "server").await?;
    let response = state.respond(&buf)?;
    send_async(stream, &response).await?;
    let buf = recv_async(stream, "server").await?;
    state.finish(&buf)
}

/// Run the server side over an async stream. `Ok(false)` means the client
/// failed to authenticate and was told so.
pub async fn server_async<S>(stream: &mut S, key: &[u8]) -> Result<bool, Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let hello = recv_async(stream, "client").await?;
    let (state, challenge) = ServerHandshake::start(key, &hello)?;
    send_async(stream, &challenge).await?;
    let response = recv_async(stream, "client").await?;
    let verdict = state.verdict(&response);
    send_async(stream, &verdict.body).await?;
    Ok(verdict.accepted)
}

/// Answer a client's greeting with "busy" (the server is at its connection
/// limit), so the client reports that instead of a broken connection.
pub async fn refuse_busy_async<S>(stream: &mut S) -> Result<(), Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    recv_async(stream, "client").await?;
    let mut body = hello_body();
    body.extend_from_slice(BUSY);
    send_async(stream, &body).await
}

async fn send_async<S: tokio::io::AsyncWrite + Unpin>(s: &mut S, body: &[u8]) -> Result<(), Error> {
    use tokio::io::AsyncWriteExt;
    s.write_all(&crate::wire::raw_frame(body)).await?;
    s.flush().await?;
    Ok(())
}

async fn recv_async<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    peer: &str,
) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    match crate::wire::read_frame_async(s, &mut buf, MAX_HANDSHAKE_FRAME).await {
        Ok(true) => Ok(buf),
        Ok(false) | Err(Error::ServerGone { .. }) => Err(Error::Authentication(format!(
            "the {peer} closed the connection during the handshake"
        ))),
        Err(Error::FrameTooLarge { .. }) => Err(Error::Authentication(format!(
            "the {peer} is not a manager (oversized handshake frame)"
        ))),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(client_key: &[u8], server_key: &[u8]) -> (Result<(), Error>, bool) {
        let (client, hello) = ClientHandshake::start(client_key);
        let (server, challenge) = ServerHandshake::start(server_key, &hello).unwrap();
        let response = client.respond(&challenge).unwrap();
        let verdict = server.verdict(&response);
        (client.finish(&verdict.body), verdict.accepted)
    }

    #[test]
    fn same_key_accepted_both_ways() {
        let (client, accepted) = run(b"key", b"key");
        assert!(client.is_ok());
        assert!(accepted);
    }

    #[test]
    fn empty_key_works() {
        let (client, accepted) = run(b"", b"");
        assert!(client.is_ok() && accepted);
    }

    #[test]
    fn wrong_key_refused() {
        let (client, accepted) = run(b"key", b"other");
        assert!(!accepted);
        assert!(matches!(client, Err(Error::Authentication(_))));
    }

    #[test]
    fn impostor_server_detected() {
        // A server that accepts anything but does not know the key.
        let (client, hello) = ClientHandshake::start(b"key");
        let (_, challenge) = ServerHandshake::start(b"other", &hello).unwrap();
        client.respond(&challenge).unwrap();
        let mut forged = vec![OK];
        forged.extend_from_slice(&[0; MAC]);
        assert!(matches!(
            client.finish(&forged),
            Err(Error::Authentication(_))
        ));
    }

    #[test]
    fn garbage_refused_on_both_sides() {
        assert!(matches!(
            ServerHandshake::start(b"k", b"GET / HTTP/1.1"),
            Err(Error::Authentication(_))
        ));
        let (client, hello) = ClientHandshake::start(b"k");
        let (server, _) = ServerHandshake::start(b"k", &hello).unwrap();
        assert!(!server.verdict(b"garbage").accepted);
        assert!(client.respond(b"garbage").is_err());
        assert!(client.finish(b"garbage").is_err());
    }
}
