//! The server's side of the handshake on arbitrary client bytes: the step
//! functions (`ServerHandshake::start` + `verdict`) and the whole exchange
//! over a stream (`auth::server_async`, as a connection task runs it).
//! Nothing a client without the key can send is ever accepted.

#![no_main]

use libfuzzer_sys::fuzz_target;
use managers::auth::{self, ServerHandshake, MAGIC};
use managers_fuzz::{block_on, split, Scripted};

const KEY: &[u8] = b"the fuzzer does not know this key";

fuzz_target!(|data: &[u8]| {
    let (hello, response) = split(data);
    if let Ok((state, challenge)) = ServerHandshake::start(KEY, hello) {
        assert_eq!(&challenge[..MAGIC.len()], MAGIC);
        assert_eq!(challenge.len(), MAGIC.len() + 2 + 32);
        let verdict = state.verdict(response);
        assert!(!verdict.accepted, "a client without the key was accepted");
        assert_eq!(verdict.body, [0]);
    }
    let mut stream = Scripted::new(data);
    let accepted = block_on(auth::server_async(&mut stream, KEY));
    assert!(
        !matches!(accepted, Ok(true)),
        "a client without the key was accepted over a stream"
    );
    // Whatever the server said fits in two handshake frames and a verdict.
    assert!(stream.output.len() <= 3 * (4 + auth::MAX_HANDSHAKE_FRAME as usize));
});
