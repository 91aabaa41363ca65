//! A worker that breaks the protocol on purpose, for the host's tests.
//! `BULKHEAD_FAKE_MODE` picks the fault; see `main`.

use std::io::{Read, Write};

use bulkhead_ipc::frame::encode_frame;
use bulkhead_ipc::{Chunk, PROTOCOL_VERSION, StreamId, WorkerMessage};

fn frame(msg: &WorkerMessage) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(msg, &mut out, usize::MAX).expect("encode");
    out
}

fn hello(version: &str) -> Vec<u8> {
    frame(&WorkerMessage::Hello {
        protocol: PROTOCOL_VERSION,
        worker_version: version.into(),
        pid: std::process::id(),
    })
}

fn chunk(seq: u64, len: usize) -> Vec<u8> {
    frame(&WorkerMessage::Chunk(Chunk {
        stream: StreamId::Stdout,
        seq,
        data: vec![b'x'; len].into(),
    }))
}

fn main() {
    let mode = std::env::var("BULKHEAD_FAKE_MODE").unwrap_or_default();
    let version = env!("CARGO_PKG_VERSION");
    let mut out = std::io::stdout().lock();
    let bytes: Vec<u8> = match mode.as_str() {
        // Random bytes instead of a frame header + body.
        "malformed" => {
            let mut v = hello(version);
            v.extend_from_slice(&[5, 0, 0, 0, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1]);
            v
        }
        // A header announcing 3 GiB.
        "oversized" => {
            let mut v = hello(version);
            v.extend_from_slice(&(3u32 << 30).to_le_bytes());
            v
        }
        // A header and half a body, then the channel closes.
        "truncated" => {
            let mut v = hello(version);
            let c = chunk(0, 100);
            v.extend_from_slice(&c[..c.len() / 2]);
            let _ = out.write_all(&v);
            std::process::exit(0);
        }
        // A header and half a body, then nothing, with the channel open.
        "stalled" => {
            let mut v = hello(version);
            let c = chunk(0, 100);
            v.extend_from_slice(&c[..c.len() / 2]);
            v
        }
        "out-of-order" => [hello(version), chunk(0, 10), chunk(5, 10)].concat(),
        "big-chunk" => [hello(version), chunk(0, 200 << 10)].concat(),
        // Ignores credit and the output cap: 10 MiB of chunks, blind.
        "flood" => {
            let mut v = hello(version);
            for seq in 0..10_240 {
                v.extend_from_slice(&chunk(seq, 1024));
            }
            v
        }
        "no-hello" => chunk(0, 10),
        "wrong-version" => hello("0.0.0-other"),
        // Partial output, then the worker dies of SIGSEGV-like abort.
        _ => {
            eprintln!("fake-worker: unknown BULKHEAD_FAKE_MODE \"{mode}\"");
            std::process::exit(2);
        }
    };
    let _ = out.write_all(&bytes);
    let _ = out.flush();
    // Stay alive, reading the host, until it kills us: the test checks the
    // host kills a violator rather than waiting for it to leave.
    let mut sink = [0u8; 4096];
    let mut stdin = std::io::stdin().lock();
    while let Ok(n) = stdin.read(&mut sink) {
        if n == 0 {
            break;
        }
    }
    std::thread::sleep(std::time::Duration::from_secs(30));
}
