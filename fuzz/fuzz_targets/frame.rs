//! The frame decoder: `wire::read_frame` (blocking) and
//! `wire::read_frame_async` on arbitrary bytes with a small maximum, which
//! must agree, never return a frame over the maximum, and never allocate
//! on a length they refuse; then `decode_header::<Request>` on each frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use managers::wire::{self, Request};
use managers::Error;
use managers_fuzz::{block_on, Scripted};

fuzz_target!(|data: &[u8]| {
    let Some((&max, stream)) = data.split_first() else {
        return;
    };
    // Maxima from 0 to 1020 bytes: small enough that every branch is hit.
    let max = u32::from(max) * 4;
    let mut sync_reader = stream;
    let mut async_reader = Scripted::new(stream);
    let mut sync_buf = Vec::new();
    let mut async_buf = Vec::new();
    for _ in 0..64 {
        let capacity = sync_buf.capacity();
        let sync = wire::read_frame(&mut sync_reader, &mut sync_buf, max);
        let at_boundary = async_reader.input.is_empty();
        let asynchronous = block_on(wire::read_frame_async(
            &mut async_reader,
            &mut async_buf,
            max,
        ));
        match (&sync, &asynchronous) {
            (Ok(()), Ok(true)) => {
                assert!(sync_buf.len() <= max as usize);
                assert_eq!(sync_buf, async_buf);
            }
            // A clean end between frames: the async reader says so, the
            // blocking one reports the peer gone.
            (Err(Error::ServerGone { .. }), Ok(false)) => {
                assert!(at_boundary);
                return;
            }
            (Err(Error::ServerGone { .. }), Err(Error::ServerGone { .. })) => return,
            (Err(Error::FrameTooLarge { size, max: m }), Err(Error::FrameTooLarge { .. })) => {
                assert!(*size > u64::from(max) && *m == max);
                // Refused before allocating anything for it.
                assert_eq!(sync_buf.capacity(), capacity);
                return;
            }
            (s, a) => panic!("blocking and async readers disagree: {s:?} vs {a:?}"),
        }
        if let Ok((request, rest)) = wire::decode_header::<Request>(&sync_buf) {
            assert!(rest.len() < sync_buf.len() || sync_buf.is_empty());
            // What decodes re-encodes to something that decodes the same.
            let mut frame = Vec::new();
            wire::begin_frame(&mut frame, &request).unwrap();
            wire::finish_frame(&mut frame, u32::MAX).unwrap();
            let (again, empty) = wire::decode_header::<Request>(&frame[wire::PREFIX..]).unwrap();
            assert!(empty.is_empty());
            assert_eq!(again, request);
        }
    }
});
