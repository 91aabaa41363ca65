//! Whatever a hostile peer writes, reading it returns `Ok` or `Err` and never
//! panics, overflows the stack or allocates what the bytes merely claim.
//! Specific malformed inputs map to specific `FrameError`s.

use std::io::{self, Read};

use bulkhead_ipc::frame::{HEADER_BYTES, decode_body, encode_frame};
use bulkhead_ipc::{
    Chunk, Confinement, DEFAULT_MAX_FRAME_BYTES, Done, FrameError, FrameReader, HostMessage,
    Invoke, Progress, StreamId, ToolError, ToolErrorKind, ToolExit, WorkerLimits, WorkerMessage,
    WorkerUsage,
};
use proptest::collection::vec;
use proptest::prelude::*;
use serde::de::DeserializeOwned;

const MAX: usize = DEFAULT_MAX_FRAME_BYTES;

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len()).unwrap().to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn read_one<T: DeserializeOwned>(bytes: &[u8]) -> Result<Option<T>, FrameError> {
    FrameReader::new(bytes, MAX).read::<T>()
}

/// Reads frames until the end or the first error, the way the host does.
/// Reading from a slice never fails with `Io`, so every error must be one
/// of the protocol errors.
fn drain<T: DeserializeOwned>(bytes: &[u8], max: usize) {
    let mut reader = FrameReader::new(bytes, max);
    loop {
        match reader.read::<T>() {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(FrameError::Io(e)) => panic!("slice reader produced an i/o error: {e}"),
            Err(_) => return,
        }
    }
}

/// `decode_body` only ever reports a bad body, never a framing error.
fn check_decode<T: DeserializeOwned>(body: &[u8]) {
    match decode_body::<T>(body) {
        Ok(_) | Err(FrameError::Malformed(_)) | Err(FrameError::TrailingBytes(_)) => {}
        Err(e) => panic!("decode_body returned a framing error: {e:?}"),
    }
}

/// One valid body of every message kind, as seeds for mutation.
fn seeds() -> Vec<Vec<u8>> {
    let usage = WorkerUsage {
        cpu_ms: 5,
        bytes_seen: 300,
        max_rss_bytes: 4096,
    };
    let worker = [
        WorkerMessage::Hello {
            protocol: 1,
            worker_version: "0.1".into(),
            pid: 7,
        },
        WorkerMessage::Confined(Confinement {
            applied: vec![("a".into(), "b".into()), ("c".into(), String::new())],
            sandbox: Vec::new(),
        }),
        WorkerMessage::Chunk(Chunk {
            stream: StreamId::Stderr,
            seq: 300,
            data: (0..=255).collect::<Vec<u8>>().into(),
        }),
        WorkerMessage::Progress(Progress {
            message: "files".into(),
            done: 1 << 40,
            total: Some(3),
        }),
        WorkerMessage::Usage(usage),
        WorkerMessage::Done(Done {
            exit: ToolExit::Code(-1),
            bytes_seen: 1,
            lines_seen: 0,
            stopped_at_output_cap: false,
            summary_json: Some("{\"matches\":2}".into()),
            usage,
        }),
        WorkerMessage::Error(ToolError {
            kind: ToolErrorKind::Io,
            message: "denied".into(),
        }),
    ];
    let host = [
        HostMessage::Hello {
            protocol: 1,
            host_version: "h".into(),
        },
        HostMessage::Invoke(Box::new(Invoke {
            call_id: 9,
            tool: "grep".into(),
            args_json: "{}".into(),
            limits: WorkerLimits {
                cpu_seconds: Some(1),
                data_bytes: None,
                address_space_bytes: None,
                open_files: 32,
                file_size_bytes: Some(0),
                processes: None,
                max_output_bytes: 10,
                stop_at_output_cap: true,
            },
            sandbox: None,
            start_faults: Vec::new(),
        })),
        HostMessage::Credit { chunks: 70000 },
        HostMessage::Cancel,
    ];
    let mut out: Vec<Vec<u8>> = worker
        .iter()
        .map(|m| rmp_serde::to_vec(m).unwrap())
        .collect();
    out.extend(host.iter().map(|m| rmp_serde::to_vec(m).unwrap()));
    out
}

fn mutated_body() -> impl Strategy<Value = Vec<u8>> {
    let n = seeds().len();
    (
        0..n,
        vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(seed, edits, cut, truncate)| {
            let mut body = seeds().swap_remove(seed);
            for (at, byte) in edits {
                let i = at.index(body.len());
                body[i] = byte;
            }
            if truncate {
                body.truncate(cut.index(body.len() + 1));
            }
            body
        })
}

proptest! {
    #[test]
    fn arbitrary_stream_never_panics(bytes in vec(any::<u8>(), 0..2048)) {
        drain::<WorkerMessage>(&bytes, MAX);
        drain::<HostMessage>(&bytes, MAX);
        // A small cap lets random headers through to the body more often.
        drain::<WorkerMessage>(&bytes, 512);
        drain::<HostMessage>(&bytes, 512);
    }

    #[test]
    fn arbitrary_body_never_panics(body in vec(any::<u8>(), 0..2048)) {
        check_decode::<WorkerMessage>(&body);
        check_decode::<HostMessage>(&body);
        if !body.is_empty() {
            drain::<WorkerMessage>(&framed(&body), MAX);
            drain::<HostMessage>(&framed(&body), MAX);
        }
    }

    #[test]
    fn mutated_valid_body_never_panics(body in mutated_body()) {
        check_decode::<WorkerMessage>(&body);
        check_decode::<HostMessage>(&body);
        let mut stream = framed(&body);
        stream.extend(framed(&seeds()[2]));
        drain::<WorkerMessage>(&stream, MAX);
        drain::<HostMessage>(&stream, MAX);
    }
}

#[test]
fn max_header_is_oversized_before_reading_the_body() {
    // `repeat` would supply 4 GiB of body if asked; the reader must not ask.
    let mut reader = FrameReader::new(io::repeat(0xff), MAX);
    let err = reader.read::<WorkerMessage>().unwrap_err();
    assert!(
        matches!(err, FrameError::Oversized { len, max } if len == u64::from(u32::MAX) && max == MAX),
        "{err:?}"
    );
    let err = read_one::<HostMessage>(&framed_header((MAX + 1) as u32)).unwrap_err();
    assert!(
        matches!(err, FrameError::Oversized { len, .. } if len == (MAX + 1) as u64),
        "{err:?}"
    );
}

fn framed_header(len: u32) -> Vec<u8> {
    len.to_le_bytes().to_vec()
}

#[test]
fn zero_length_is_empty() {
    let err = read_one::<WorkerMessage>(&[0, 0, 0, 0, 0xc0]).unwrap_err();
    assert!(matches!(err, FrameError::Empty), "{err:?}");
}

#[test]
fn eof_mid_body_is_truncated() {
    let mut bytes = framed_header(100);
    bytes.extend_from_slice(&[0x90; 10]);
    let err = read_one::<WorkerMessage>(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::Truncated {
                expected: 100,
                got: 10
            }
        ),
        "{err:?}"
    );
    let err = read_one::<WorkerMessage>(&framed_header(1)).unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::Truncated {
                expected: 1,
                got: 0
            }
        ),
        "{err:?}"
    );
}

#[test]
fn eof_mid_header_is_truncated_and_eof_on_boundary_is_clean() {
    for got in 1..HEADER_BYTES {
        let err = read_one::<WorkerMessage>(&[1, 0, 0, 0][..got]).unwrap_err();
        assert!(
            matches!(err, FrameError::Truncated { expected: HEADER_BYTES, got: g } if g == got),
            "{err:?}"
        );
    }
    assert!(read_one::<WorkerMessage>(&[]).unwrap().is_none());

    // A stray byte after a complete frame is a truncated header, not EOF.
    let mut bytes = Vec::new();
    encode_frame(&HostMessage::Cancel, &mut bytes, MAX).unwrap();
    bytes.push(0);
    let mut reader = FrameReader::new(&bytes[..], MAX);
    assert_eq!(
        reader.read::<HostMessage>().unwrap(),
        Some(HostMessage::Cancel)
    );
    let err = reader.read::<HostMessage>().unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::Truncated {
                expected: 4,
                got: 1
            }
        ),
        "{err:?}"
    );
}

#[test]
fn trailing_bytes_inside_a_frame() {
    for extra in [1usize, 2, 1000] {
        let mut body = rmp_serde::to_vec(&HostMessage::Credit { chunks: 3 }).unwrap();
        body.extend(std::iter::repeat_n(0xc0, extra));
        let err = read_one::<HostMessage>(&framed(&body)).unwrap_err();
        assert!(
            matches!(err, FrameError::TrailingBytes(n) if n == extra),
            "{err:?}"
        );
        let err = decode_body::<HostMessage>(&body).unwrap_err();
        assert!(
            matches!(err, FrameError::TrailingBytes(n) if n == extra),
            "{err:?}"
        );
    }
}

fn assert_malformed<T: DeserializeOwned + std::fmt::Debug>(body: &[u8], needle: &str) {
    let err = read_one::<T>(&framed(body)).unwrap_err();
    match &err {
        FrameError::Malformed(text) => assert!(text.contains(needle), "{text:?} lacks {needle:?}"),
        _ => panic!("expected Malformed, got {err:?}"),
    }
    assert!(matches!(
        decode_body::<T>(body),
        Err(FrameError::Malformed(_))
    ));
}

#[test]
fn unknown_variant_is_malformed() {
    // {"Bogus": nil}, "Bogus", and a known variant name of the other side.
    assert_malformed::<WorkerMessage>(b"\x81\xa5Bogus\xc0", "Bogus");
    assert_malformed::<WorkerMessage>(b"\xa5Bogus", "Bogus");
    assert_malformed::<HostMessage>(b"\xa5Bogus", "Bogus");
    assert_malformed::<HostMessage>(b"\x81\xa5Chunk\x93\xa6Stdout\x00\xc4\x00", "Chunk");
    // An unknown StreamId inside an otherwise good Chunk.
    assert_malformed::<WorkerMessage>(b"\x81\xa5Chunk\x93\xa6Stdin_\x00\xc4\x00", "Stdin_");
}

#[test]
fn huge_declared_lengths_in_a_small_frame_are_malformed() {
    // The claimed length overruns the body: the decoder hits its end.
    const EOF: &str = "IO error while reading";
    let pad = [0u8; 16];
    // Chunk whose data is a bin32 claiming 4 GiB.
    let mut chunk = b"\x81\xa5Chunk\x93\xa6Stdout\x00\xc6\xff\xff\xff\xff".to_vec();
    chunk.extend_from_slice(&pad);
    assert_malformed::<WorkerMessage>(&chunk, EOF);
    // Progress whose message is a str32 claiming 4 GiB.
    let mut progress = b"\x81\xa8Progress\x93\xdb\xff\xff\xff\xff".to_vec();
    progress.extend_from_slice(&pad);
    assert_malformed::<WorkerMessage>(&progress, EOF);
    // Confined whose list is an array32 claiming 4 billion pairs, followed
    // by a few real ("", "") pairs.
    let mut confined = b"\x81\xa8Confined\x91\xdd\xff\xff\xff\xff".to_vec();
    confined.extend_from_slice(&b"\x92\xa0\xa0".repeat(8));
    assert_malformed::<WorkerMessage>(&confined, EOF);
    // Invoke whose tool name is a str32 claiming 4 GiB.
    let mut invoke = b"\x81\xa6Invoke\x94\x01\xdb\xff\xff\xff\xff".to_vec();
    invoke.extend_from_slice(&pad);
    assert_malformed::<HostMessage>(&invoke, EOF);
}

/// `{variant: {"x": <nested>}}`: a struct sent as a map with an unknown
/// field makes serde skip the field's value, which recurses into it.
fn nested_in_unknown_field(variant: &str, opener: &[u8], depth: usize) -> Vec<u8> {
    let mut body = vec![0x81, 0xa0 | u8::try_from(variant.len()).unwrap()];
    body.extend_from_slice(variant.as_bytes());
    body.extend_from_slice(b"\x81\xa1x");
    for _ in 0..depth {
        body.extend_from_slice(opener);
    }
    body
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    // Run on a thread with the stack a tokio worker gets by default, which
    // is where the host decodes.
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let depth = 100_000;
            // These recurse: each level is one more container to skip.
            for opener in [&b"\x91"[..], b"\xdd\x00\x00\x00\x01", b"\x81\xa1k"] {
                let worker = nested_in_unknown_field("Progress", opener, depth);
                let host = nested_in_unknown_field("Invoke", opener, depth);
                assert!(worker.len() <= MAX && host.len() <= MAX);
                for err in [
                    read_one::<WorkerMessage>(&framed(&worker)).unwrap_err(),
                    read_one::<HostMessage>(&framed(&host)).unwrap_err(),
                ] {
                    assert!(
                        matches!(&err, FrameError::Malformed(t) if t.contains("depth")),
                        "{err:?}"
                    );
                }
            }
            // These fail at the first level but must not recurse either.
            let shallow = [
                nested_in_unknown_field("Usage", b"\xc7\x00\x01", depth),
                b"\x91".repeat(depth),
                b"\x81\xa1k".repeat(depth),
            ];
            for body in &shallow {
                let err = read_one::<WorkerMessage>(&framed(body)).unwrap_err();
                assert!(matches!(err, FrameError::Malformed(_)), "{err:?}");
                let err = read_one::<HostMessage>(&framed(body)).unwrap_err();
                assert!(matches!(err, FrameError::Malformed(_)), "{err:?}");
            }
        })
        .unwrap()
        .join()
        .expect("decoding deep nesting panicked or overflowed");
}

/// A reader that hands out one byte at a time, with `Interrupted` between.
struct Trickle<'a> {
    bytes: &'a [u8],
    interrupt: bool,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.interrupt = !self.interrupt;
        if self.interrupt {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let Some((first, rest)) = self.bytes.split_first() else {
            return Ok(0);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        buf[0] = *first;
        self.bytes = rest;
        Ok(1)
    }
}

#[test]
fn short_reads_and_interrupts_are_retried_and_io_errors_surface() {
    let mut bytes = Vec::new();
    for body in seeds().iter().take(7) {
        bytes.extend(framed(body));
    }
    let mut reader = FrameReader::new(
        Trickle {
            bytes: &bytes,
            interrupt: false,
        },
        MAX,
    );
    let mut n = 0;
    while let Some(msg) = reader.read::<WorkerMessage>().unwrap() {
        assert_eq!(rmp_serde::to_vec(&msg).unwrap(), seeds()[n]);
        n += 1;
    }
    assert_eq!(n, 7);

    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }
    let err = FrameReader::new(Broken, MAX)
        .read::<HostMessage>()
        .unwrap_err();
    assert!(
        matches!(&err, FrameError::Io(e) if e.kind() == io::ErrorKind::BrokenPipe),
        "{err:?}"
    );
}
