//! Feeds arbitrary bytes to the frame reader and the body decoder. Neither
//! may panic, overflow the stack, or allocate past the frame cap; libFuzzer
//! reports the first two as crashes and the last via `-rss_limit_mb`.

#![no_main]

use bulkhead_ipc::frame::decode_body;
use bulkhead_ipc::{FrameError, FrameReader, HostMessage, WorkerMessage};
use libfuzzer_sys::fuzz_target;

/// Small enough that random headers often pass the cap and reach the
/// decoder, large enough for real chunk frames.
const MAX: usize = 256 << 10;

fuzz_target!(|data: &[u8]| {
    // The host's side: a stream of worker frames, read until the end or
    // the first error.
    let mut reader = FrameReader::new(data, MAX);
    loop {
        match reader.read::<WorkerMessage>() {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(FrameError::Io(e)) => panic!("a slice cannot fail with i/o: {e}"),
            Err(_) => break,
        }
    }

    // The worker's side: the whole input as one host frame body.
    match decode_body::<HostMessage>(data) {
        Ok(_) | Err(FrameError::Malformed(_)) | Err(FrameError::TrailingBytes(_)) => {}
        Err(e) => panic!("decode_body returned a framing error: {e:?}"),
    }
});
