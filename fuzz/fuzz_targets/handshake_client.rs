//! The client's side of the handshake on arbitrary server bytes: the step
//! functions (`ClientHandshake::respond` + `finish`) and the whole exchange
//! over a stream (`auth::client_blocking` and `auth::client_async`). A
//! server that does not know the key is never believed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use managers::auth::{self, ClientHandshake};
use managers_fuzz::{block_on, split, Scripted};

const KEY: &[u8] = b"the fuzzer does not know this key";

fuzz_target!(|data: &[u8]| {
    let (challenge, verdict) = split(data);
    let (state, hello) = ClientHandshake::start(KEY);
    assert!(hello.len() <= auth::MAX_HANDSHAKE_FRAME as usize);
    if let Ok(response) = state.respond(challenge) {
        assert_eq!(response.len(), 64);
        assert!(
            state.finish(verdict).is_err(),
            "an impostor server was believed"
        );
    }
    let mut stream = Scripted::new(data);
    assert!(auth::client_blocking(&mut stream, KEY).is_err());
    let mut stream = Scripted::new(data);
    assert!(block_on(auth::client_async(&mut stream, KEY)).is_err());
});
