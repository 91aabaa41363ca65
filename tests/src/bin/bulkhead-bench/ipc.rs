//! `ipc`: throughput of the real frame path against a raw socketpair.
//!
//! Frames: one thread writes `WorkerMessage::Chunk` frames of 64 KiB with
//! `FrameWriter` into the worker's end of a `bulkhead_ipc::transport`
//! channel (an `AF_UNIX` socket pair in interprocess' local-socket types,
//! as the worker has it); the reader is `AsyncFrameReader` on the host's
//! end, in a current-thread tokio runtime, with the host's frame cap and
//! body timeout, decoding every frame. The writer encodes each chunk from a
//! borrowed slice (`ChunkRef`), as the worker's sink does. No credit is
//! exchanged: this is the frame layer's ceiling.
//!
//! Baseline: `socketpair(AF_UNIX, SOCK_STREAM)` (`UnixStream::pair`), one
//! thread writing 64 KiB buffers with plain `write`, another reading them
//! into one 64 KiB buffer. Informational rows: a bare `cloexec_pipe` with
//! plain write/read, with its default 64 KiB buffer and raised to 1 MiB
//! (the channel was two such pipes until a pipe's own ceiling, below 80%
//! of the socketpair here, proved to be the limit), and encode + decode in
//! memory (what framing costs in CPU).

mod paths;

use std::time::Duration;

use bulkhead_ipc::MAX_CHUNK_BYTES;

use crate::{Row, Stats, runtime};

/// Bytes moved per run: 4 GiB takes seconds per run at the speeds seen
/// here, long enough that thread start-up and first page faults are noise.
pub const TOTAL: u64 = 4 << 30;

/// Payload per write: the largest chunk the protocol allows.
pub const CHUNK: usize = MAX_CHUNK_BYTES;

/// Runs of each path, interleaved round by round. Pipe throughput on this
/// 2-core VM swings by 2× from run to run (where the scheduler puts the two
/// threads), so the median of 5 is reported with the range.
const ROUNDS: usize = 5;

/// The target: frames reach at least 80% of the raw socketpair's rate.
const TARGET: f64 = 0.8;

/// Pipe buffer for the "raised buffer" rows: 1 MiB is the default
/// `/proc/sys/fs/pipe-max-size`, the most an unprivileged process may set
/// with `F_SETPIPE_SZ`. The default buffer, 64 KiB, holds one chunk.
const BIG_PIPE_BYTES: i32 = 1 << 20;

const BENCH: &str = "ipc";

/// Decimal GB/s over the runs of one path.
#[derive(Clone, Copy)]
struct Rate {
    median: f64,
    min: f64,
    max: f64,
}

impl Rate {
    fn of(runs: &[Duration], bytes: u64) -> Rate {
        let s = Stats::of(runs);
        let gbps = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e9;
        let fastest = runs.iter().min().copied().unwrap_or(s.max);
        Rate {
            median: gbps(s.median),
            min: gbps(s.max),
            max: gbps(fastest),
        }
    }

    fn text(&self) -> String {
        format!(
            "{:.2} GB/s (runs {:.2}–{:.2})",
            self.median, self.min, self.max
        )
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({ "median_gbps": self.median, "min_gbps": self.min, "max_gbps": self.max })
    }
}

pub fn run() {
    let rt = runtime();
    let mut runs: [Vec<Duration>; 4] = Default::default();
    let mut codec = Vec::new();
    for round in 1..=ROUNDS {
        eprintln!(
            "   round {round}/{ROUNDS}: {} GiB through each of 4 paths…",
            TOTAL >> 30
        );
        runs[0].push(paths::frames(&rt));
        runs[1].push(paths::socketpair());
        runs[2].push(paths::pipe(None));
        runs[3].push(paths::pipe(Some(BIG_PIPE_BYTES)));
        codec.push(paths::codec());
    }
    let [frames, socket, pipe, big_pipe] = runs.map(|r| Rate::of(&r, TOTAL));
    let codec = Rate::of(&codec, paths::CODEC_BYTES);
    let pct = |a: Rate, b: Rate| format!("{:.0}%", a.median / b.median * 100.0);
    let baseline = format!("socketpair write/read: {}", socket.text());
    let ratio = frames.median / socket.median;
    let row = |name: String, rate: Rate, figure: String, data: serde_json::Value| Row {
        bench: BENCH,
        name,
        measured: rate.text(),
        baseline: baseline.clone(),
        figure,
        target: "—".into(),
        met: None,
        data,
    };
    Row {
        target: format!("≥ {:.0}%", TARGET * 100.0),
        met: Some(ratio >= TARGET),
        ..row(
            "ipc: 64 KiB `Chunk` frames over the channel's socket pair, `FrameWriter` → `AsyncFrameReader`".into(),
            frames,
            format!("{} of socketpair (medians)", pct(frames, socket)),
            serde_json::json!({
                "frames": frames.json(), "socketpair": socket.json(), "ratio": ratio,
                "bytes_per_run": TOTAL, "rounds": ROUNDS, "chunk_bytes": CHUNK,
            }),
        )
    }
    .emit();
    row(
        "ipc (info): bare pipe write/read, no framing (64 KiB pipe buffer)".into(),
        pipe,
        format!("{} of socketpair", pct(pipe, socket)),
        serde_json::json!({ "pipe": pipe.json(), "socketpair": socket.json() }),
    )
    .emit();
    row(
        "ipc (info): bare pipe as above, buffer raised to 1 MiB (`F_SETPIPE_SZ`)".into(),
        big_pipe,
        format!(
            "{} of socketpair: a pipe's ceiling, so frames over pipes could not reach 80%",
            pct(big_pipe, socket)
        ),
        serde_json::json!({
            "pipe": big_pipe.json(), "socketpair": socket.json(),
            "pipe_buffer_bytes": BIG_PIPE_BYTES,
        }),
    )
    .emit();
    Row {
        name: "ipc (info): frame encode + decode only, in memory, one thread".into(),
        measured: codec.text(),
        figure: "framing's CPU cost alone: `encode_frame` of a borrowed `ChunkRef` + `decode_body`"
            .into(),
        data: serde_json::json!({ "codec": codec.json(), "bytes_per_run": paths::CODEC_BYTES }),
        ..row(
            String::new(),
            socket,
            String::new(),
            serde_json::Value::Null,
        )
    }
    .emit();
}
