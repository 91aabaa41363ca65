//! The frame decoder (`bulkhead_ipc::frame`): the host's two readers of a
//! worker's stream agree, a read stays within its allocation bound, and
//! what decodes re-encodes to a frame that decodes the same.

use bulkhead_ipc::frame::{decode_body, encode_frame};
use bulkhead_ipc::{
    AsyncFrameReader, FrameError, FrameReader, HostMessage, WorkerMessage, WorkerStreamValidator,
};
use serde::{Serialize, de::DeserializeOwned};

use super::alloc::{assert_within, peak_during};
use super::{Params, Pieces, Splits, block_on};

/// serde preallocates at most this much for a sequence whose declared
/// length is a lie (`size_hint::cautious`), whatever the frame's size.
const SERDE_CAUTIOUS_BYTES: usize = 1 << 20;

/// Allocation slack on top of the body-proportional part: the reader's
/// header buffer, the error's message, the runtime's task bookkeeping.
const SLACK: usize = 64 << 10;

/// A read allocates the body buffer, the decoder's copy of a `bin` or a
/// string (never more than the body), the message's own heap (at most the
/// body again), and serde's cautious preallocation: see the caveats of
/// `bulkhead_ipc::frame`.
fn read_bound(cap: usize) -> usize {
    3 * cap + SERDE_CAUTIOUS_BYTES + SLACK
}

/// The frame cap the reader gets: small, so inputs of a few KiB cross it,
/// and 1 to 64 KiB as the input's first two bytes choose.
fn cap_from(p: &mut Params<'_>) -> usize {
    usize::from(p.u16()) + 1
}

/// A stream of worker frames, read by the blocking reader, by the host's
/// async reader (`read_worker_message`, with its in-place chunk path) and by
/// the async reader's plain `read`, each fed in different pieces: all three
/// give the same messages and the same error, within the bound, and every
/// message re-encodes and decodes to itself.
pub fn frame(data: &[u8]) {
    let mut p = Params::new(data);
    let cap = cap_from(&mut p);
    let seed = p.u64();
    let stream = p.rest();
    // The runtime is built before anything is measured.
    block_on(async {});

    let mut sync = FrameReader::new(stream, cap);
    let mut fast = AsyncFrameReader::new(Pieces::new(Splits::new(seed).split(stream, 96)), cap);
    let mut plain = AsyncFrameReader::new(Pieces::new(Splits::new(!seed).split(stream, 4096)), cap);
    let mut validator = WorkerStreamValidator::new();
    validator.grant(u32::MAX);
    // Every frame is at least a 4-byte header and one byte of body.
    for _ in 0..=stream.len() / 5 {
        let (a, peak_a) = peak_during(|| sync.read::<WorkerMessage>());
        let (b, peak_b) = peak_during(|| block_on(fast.read_worker_message()));
        let (c, peak_c) = peak_during(|| block_on(plain.read::<WorkerMessage>()));
        for (peak, who) in [
            (peak_a, "FrameReader"),
            (peak_b, "read_worker_message"),
            (peak_c, "AsyncFrameReader::read"),
        ] {
            assert_within(
                peak,
                read_bound(cap),
                &format!("{who} with a {cap}-byte cap"),
            );
        }
        let msg = match &a {
            Ok(Some(msg)) => Some(msg.clone()),
            _ => None,
        };
        let (a, b, c) = (format!("{a:?}"), format!("{b:?}"), format!("{c:?}"));
        assert_eq!(a, b, "the blocking reader and read_worker_message disagree");
        assert_eq!(a, c, "the blocking reader and the async read disagree");
        let Some(msg) = msg else { return };
        round_trip(&msg);
        // The validator judges any message without panicking.
        let _ = validator.accept(&msg);
    }
}

/// A decoded message encodes, and its encoding decodes to a message that
/// encodes to the same bytes. (Bytes, not `==`: a float may be NaN.)
fn round_trip<T: Serialize + DeserializeOwned>(msg: &T) {
    let mut once = Vec::new();
    match encode_frame(msg, &mut once, usize::MAX) {
        Ok(()) => {}
        Err(e) => panic!("a decoded message does not encode: {e}"),
    }
    let again: T = match decode_body(&once[4..]) {
        Ok(m) => m,
        Err(e) => panic!("an encoded message does not decode: {e}"),
    };
    let mut twice = Vec::new();
    if let Err(e) = encode_frame(&again, &mut twice, usize::MAX) {
        panic!("a re-decoded message does not encode: {e}");
    }
    assert_eq!(
        once, twice,
        "encode(decode(encode(m))) differs from encode(m)"
    );
}

/// One frame body, decoded as the worker decodes the host's frames and as
/// the host decodes the worker's: `Ok` or a body error (never a framing
/// one), within the bound, and what decodes round-trips.
pub fn message(data: &[u8]) {
    let body = data;
    let (host, peak) = peak_during(|| decode_body::<HostMessage>(body));
    assert_within(peak, read_bound(body.len()), "decode_body::<HostMessage>");
    check_body_verdict(&host);
    if let Ok(msg) = &host {
        round_trip(msg);
    }
    let (worker, peak) = peak_during(|| decode_body::<WorkerMessage>(body));
    assert_within(peak, read_bound(body.len()), "decode_body::<WorkerMessage>");
    check_body_verdict(&worker);
    if let Ok(msg) = &worker {
        round_trip(msg);
        let mut v = WorkerStreamValidator::new();
        v.grant(1);
        let _ = v.accept(msg);
    }
}

fn check_body_verdict<T>(r: &Result<T, FrameError>) {
    match r {
        Ok(_) | Err(FrameError::Malformed(_)) | Err(FrameError::TrailingBytes(_)) => {}
        Err(e) => panic!("decode_body returned a framing error: {e:?}"),
    }
}
