//! Reading a frame allocates at most a small multiple of the frame cap, and
//! nothing at all for a body whose header is over the cap, whatever lengths
//! the bytes claim.
//!
//! The global allocator counts bytes for the whole binary, so this file holds
//! a single `#[test]` that runs its cases one after another.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use bulkhead_ipc::frame::RETAINED_BUFFER_BYTES;
use bulkhead_ipc::{
    AsyncFrameReader, Chunk, DEFAULT_MAX_FRAME_BYTES, FrameError, FrameReader, HostMessage,
    StreamId, WorkerMessage,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = CURRENT.fetch_add(n, SeqCst) + n;
    PEAK.fetch_max(now, SeqCst);
}

fn shrank(n: usize) {
    CURRENT.fetch_sub(n, SeqCst);
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are
// only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Count the new block before freeing the old one: a moving
            // realloc holds both for a moment.
            grew(new_size);
            shrank(layout.size());
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result with the peak number of bytes allocated
/// on top of what was live when it started (the result's own heap included).
fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = CURRENT.load(SeqCst);
    PEAK.store(base, SeqCst);
    let r = f();
    (r, PEAK.load(SeqCst) - base)
}

const CAP: usize = DEFAULT_MAX_FRAME_BYTES;
const KIB: usize = 1 << 10;

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len()).unwrap().to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// Peak allocation of reading the first frame of `bytes` as `T`.
fn read_peak<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> (Result<Option<T>, FrameError>, usize) {
    peak_during(|| FrameReader::new(bytes, CAP).read::<T>())
}

/// Peak allocation of the host's reader, `read_worker_message`, on the
/// first frame of `bytes`. The runtime is built outside the measurement.
fn host_read_peak(bytes: &[u8]) -> (Result<Option<WorkerMessage>, FrameError>, usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    peak_during(|| rt.block_on(AsyncFrameReader::new(bytes, CAP).read_worker_message()))
}

fn with_pad(prefix: &[u8], pad: &[u8]) -> Vec<u8> {
    let mut body = prefix.to_vec();
    body.extend_from_slice(pad);
    body
}

/// Bodies built to reach the decoder's length-driven paths: a valid prefix
/// up to a length field, a length drawn anywhere in u32, then some bytes.
fn hostile_body() -> impl Strategy<Value = Vec<u8>> {
    let prefixes: [&'static [u8]; 5] = [
        b"\x81\xa5Chunk\x93\xa6Stdout\x00\xc6", // bin32 data
        b"\x81\xa8Progress\x93\xdb",            // str32 message
        b"\x81\xa8Confined\x91\xdd",            // array32 of pairs
        b"\x81\xa6Invoke\x94\x01\xdb",          // str32 tool
        b"\x81\xa8Progress\xdf",                // map32 struct
    ];
    prop_oneof![
        vec(any::<u8>(), 1..(64 * KIB)),
        (
            prop::sample::select(prefixes.to_vec()),
            any::<u32>(),
            vec(any::<u8>(), 0..(64 * KIB)),
        )
            .prop_map(|(prefix, len, pad)| {
                let mut body = prefix.to_vec();
                body.extend_from_slice(&len.to_be_bytes());
                body.extend_from_slice(&pad);
                body
            }),
        // Large bodies, up to the cap, mostly zeros.
        (0..=CAP - 32).prop_map(|n| with_pad(b"\x81\xa5Chunk\x93\xa6Stdout\x00\xc6", &{
            let mut v = u32::try_from(n).unwrap().to_be_bytes().to_vec();
            v.resize(n + 4, 0);
            v
        })),
    ]
}

#[test]
fn reading_a_frame_allocates_a_bounded_amount() {
    // --- A header of u32::MAX: refused before anything is allocated, even
    // from a source that would happily supply 4 GiB.
    let (r, peak) = peak_during(|| FrameReader::new(io::repeat(0xff), CAP).read::<WorkerMessage>());
    assert!(matches!(r, Err(FrameError::Oversized { .. })), "{r:?}");
    assert!(peak < 64 * KIB, "u32::MAX header allocated {peak} bytes");
    let (r, peak) = read_peak::<HostMessage>(&[0xff; 4]);
    assert!(matches!(r, Err(FrameError::Oversized { .. })), "{r:?}");
    assert!(peak < 64 * KIB, "u32::MAX header allocated {peak} bytes");
    // One byte over the cap is refused the same way.
    let over = u32::try_from(CAP + 1).unwrap().to_le_bytes();
    let (r, peak) = read_peak::<WorkerMessage>(&over);
    assert!(matches!(r, Err(FrameError::Oversized { .. })), "{r:?}");
    assert!(peak < 64 * KIB, "cap+1 header allocated {peak} bytes");
    let (r, peak) = host_read_peak(&over);
    assert!(matches!(r, Err(FrameError::Oversized { .. })), "{r:?}");
    assert!(
        peak < 64 * KIB,
        "cap+1 header allocated {peak} bytes by the host's reader"
    );

    // --- Lengths claimed inside a small frame are not allocated.
    let pad = [0u8; 64];
    let small = [
        with_pad(b"\x81\xa5Chunk\x93\xa6Stdout\x00\xc6\xff\xff\xff\xff", &pad),
        with_pad(b"\x81\xa8Progress\x93\xdb\xff\xff\xff\xff", &pad),
        with_pad(b"\x81\xa6Invoke\x94\x01\xdb\xff\xff\xff\xff", &pad),
    ];
    for body in &small {
        let (r, peak) = read_peak::<WorkerMessage>(&framed(body));
        assert!(matches!(r, Err(FrameError::Malformed(_))), "{r:?}");
        assert!(
            peak < 64 * KIB,
            "4 GiB claim in {}-byte frame allocated {peak}",
            body.len()
        );
        let (r, peak) = read_peak::<HostMessage>(&framed(body));
        assert!(matches!(r, Err(FrameError::Malformed(_))), "{r:?}");
        assert!(
            peak < 64 * KIB,
            "4 GiB claim in {}-byte frame allocated {peak}",
            body.len()
        );
    }
    // A sequence claiming 4 billion elements: serde preallocates at most
    // 1 MiB for it (`size_hint::cautious`) whatever the claim, so this one is
    // bounded by a constant, not by the body size.
    let confined = with_pad(
        b"\x81\xa8Confined\x91\xdd\xff\xff\xff\xff",
        &b"\x92\xa0\xa0".repeat(4),
    );
    let (r, peak) = read_peak::<WorkerMessage>(&framed(&confined));
    assert!(matches!(r, Err(FrameError::Malformed(_))), "{r:?}");
    assert!(peak <= CAP + 64 * KIB, "array32 claim allocated {peak}");

    // --- A header under the cap whose body never arrives: the body buffer
    // is the claimed size, never more.
    let (r, peak) = read_peak::<WorkerMessage>(&u32::try_from(CAP).unwrap().to_le_bytes());
    assert!(matches!(r, Err(FrameError::Truncated { .. })), "{r:?}");
    assert!(
        peak <= CAP + 64 * KIB,
        "truncated cap-sized frame allocated {peak}"
    );
    let (r, peak) = host_read_peak(&u32::try_from(CAP).unwrap().to_le_bytes());
    assert!(matches!(r, Err(FrameError::Truncated { .. })), "{r:?}");
    assert!(
        peak <= CAP + 64 * KIB,
        "truncated cap-sized frame allocated {peak} in the host's reader"
    );

    // --- The largest legitimate-looking frame: a chunk filling the cap.
    // Body buffer + the decoder's copy + the message's own data.
    let big = WorkerMessage::Chunk(Chunk {
        stream: StreamId::Stdout,
        seq: 1,
        data: vec![7; CAP - 32].into(),
    });
    let mut frame = Vec::new();
    bulkhead_ipc::frame::encode_frame(&big, &mut frame, CAP).unwrap();
    let (r, peak) = read_peak::<WorkerMessage>(&frame);
    assert_eq!(r.unwrap().as_ref(), Some(&big));
    assert!(peak < 4 * CAP, "cap-sized chunk allocated {peak}");
    // The host's reader keeps the frame as the chunk: about one cap.
    let (r, peak) = host_read_peak(&frame);
    assert_eq!(r.unwrap().as_ref(), Some(&big));
    assert!(
        peak < CAP + 64 * KIB,
        "cap-sized chunk allocated {peak} in the host's reader"
    );
    drop(big);

    // --- A reader gives back a big frame's buffer once a small one follows.
    let mut two = frame.clone();
    bulkhead_ipc::frame::encode_frame(&HostMessage::Cancel, &mut two, CAP).unwrap();
    let mut reader = FrameReader::new(&two[..], CAP);
    let before = CURRENT.load(SeqCst);
    reader.read::<WorkerMessage>().unwrap().unwrap();
    assert!(
        CURRENT.load(SeqCst) - before >= CAP - 32,
        "big body buffer is held"
    );
    let msg = reader.read::<HostMessage>().unwrap();
    assert_eq!(msg, Some(HostMessage::Cancel));
    let held = CURRENT.load(SeqCst).saturating_sub(before);
    assert!(
        held <= RETAINED_BUFFER_BYTES,
        "reader still holds {held} bytes"
    );
    drop(reader);
    drop(two);
    drop(frame);

    // --- Arbitrary and hostile bodies up to the cap.
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let worst = std::cell::Cell::new(0);
    runner
        .run(&hostile_body(), |body| {
            let bytes = framed(&body);
            let (_, peak_w) = read_peak::<WorkerMessage>(&bytes);
            let (_, peak_h) = read_peak::<HostMessage>(&bytes);
            let (_, peak_host) = host_read_peak(&bytes);
            let peak = peak_w.max(peak_h).max(peak_host);
            worst.set(worst.get().max(peak));
            prop_assert!(
                peak < 4 * CAP,
                "a {}-byte frame allocated {} bytes",
                body.len(),
                peak
            );
            Ok(())
        })
        .unwrap();
    eprintln!(
        "worst peak over arbitrary bodies: {} bytes (cap {CAP})",
        worst.get()
    );
}
