//! Replies of a hostile or broken Redis, as the distributed pool reads them
//! (`redis::resp::read_reply`): arbitrary bytes, read reply after reply
//! until an error or the end.

#![no_main]

use libfuzzer_sys::fuzz_target;
use managers::redis::resp::{read_reply, Reply, MAX_BULK};

/// A reply in RESP2, as a server would send it.
fn encode(reply: &Reply, out: &mut Vec<u8>) {
    match reply {
        Reply::Status(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
        Reply::Error(s) => out.extend_from_slice(format!("-{s}\r\n").as_bytes()),
        Reply::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
        Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
        Reply::Bulk(b) => {
            out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Array(items) => {
            out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            for item in items {
                encode(item, out);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    while !input.is_empty() {
        let before = input.len();
        let Ok(reply) = read_reply(&mut input) else {
            return;
        };
        assert!(input.len() < before, "a reply consumed nothing");
        if let Reply::Bulk(b) = &reply {
            assert!(b.len() <= MAX_BULK);
        }
        // What was read reads back the same once written out.
        let mut bytes = Vec::new();
        encode(&reply, &mut bytes);
        assert_eq!(read_reply(&mut &bytes[..]).unwrap(), reply);
    }
});
