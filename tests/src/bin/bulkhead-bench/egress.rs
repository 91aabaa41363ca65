//! `egress`: what the egress proxy (`bulkhead-egress`) costs a tool's
//! network traffic, against the same traffic straight over loopback, in the
//! same run.
//!
//! The proxy runs in a process of its own, `bench_proxy` (an example of
//! `bulkhead-egress`; `BULKHEAD_BENCH_PROXY=PATH` runs another build of
//! it): one `EgressProxy` on a Unix socket, served on a current-thread
//! tokio runtime as `bulkhead run` and `mcp wrap` serve a
//! call's proxy, allowing `127.0.0.1`. The clients and the targets (local
//! TCP servers on 127.0.0.1) are threads of the bench. A client of the
//! proxy connects to its Unix socket, as the worker's relay does for a
//! tool; the relay itself (inside the tool's network namespace) is only
//! in the end-to-end row.
//!
//! 1. Throughput: `TOTAL` bytes through a `CONNECT` tunnel, up (client →
//!    proxy → a sink, which answers the count) and down (a source →
//!    proxy → client), against the same transfer over a direct loopback
//!    TCP connection; `ROUNDS` rounds of `REPS` runs of each path back to
//!    back; MiB/s from the median run, and the proxy's share of a core and
//!    context switches per MiB (from `/proc/PID/stat` and
//!    `…/task/*/status`). Every byte is counted at the far end.
//!    Informational: the same through a proxy on a two-thread runtime (the
//!    TUI's calls runtime).
//! 2. Latency: time to the first byte of a small HTTP answer (a 2-byte
//!    body) on a new connection each time, `REQUESTS` of each path
//!    interleaved after `WARMUP` of each: direct (TCP connect, `GET`, first
//!    byte), through a tunnel (Unix connect, `CONNECT`, its `200`, `GET`,
//!    first byte) and as a plain-HTTP proxy request (Unix connect, `GET
//!    http://…`, first byte: the proxy connects, rewrites the head and
//!    sends it on). Median and p99.
//! 3. Memory: a fresh proxy process; its `VmHWM` idle (just bound), then
//!    after `TUNNELS` tunnels at once (all established before any data
//!    moves), half uploading and half downloading `PER_TUNNEL` bytes each;
//!    one process per size, so each peak is that size's own. The relay
//!    holds two `RELAY_BUFFER`s (16 KiB) per tunnel; the figure to compare
//!    is the peak over idle, per tunnel. Kernel socket buffers are not in
//!    RSS.
//! 4. End to end: `curl` downloading `E2E_BYTES` from a local HTTP server,
//!    run by `bulkhead run shell` under `untrusted` with `--allow-net
//!    localhost:PORT` (curl → the worker's relay in the tool's network
//!    namespace → the host's proxy → the server), against `--policy
//!    trusted` (the host's network, no proxy); `E2E_RUNS` of each,
//!    interleaved; curl's own rate (`size_download / time_total`), the
//!    whole call's wall time, and its CPU split between the host (all of
//!    `getrusage(RUSAGE_CHILDREN)` around the call less the call's own
//!    `usage.cpu_ms`: `bulkhead`, whose only work here is the proxy) and
//!    the call's process tree (the worker with its relay, and curl).

mod e2e;
mod peers;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use peers::{Proxy, Serve, Server, direct, download, drain, tunnel, upload};

use crate::{Row, Scratch, Stats, ms, size};

const BENCH: &str = "egress";

/// Bytes per throughput run: a tenth of a second or more at the rates
/// seen here (1–3 GB/s), so the connect and the first page faults are
/// noise.
const TOTAL: u64 = 256 << 20;

/// Rounds of the throughput paths, and runs of each path back to back in a
/// round. Loopback rates on this 2-core VM depend on where the scheduler
/// puts the two or three busy threads and processes: runs alternating path
/// by path spread 940–8,300 MiB/s for the same direct transfer within one
/// run of the bench; runs of one path back to back were steadier (the
/// middle six of 20 in a row: 2,445–2,669 MiB/s). So each round runs each
/// path `REPS` times in a row, the rounds alternate the paths, and the
/// median of all `ROUNDS × REPS` runs is reported with their range.
const ROUNDS: usize = 3;
const REPS: usize = 5;

/// Timed requests per latency path, and untimed ones first.
const REQUESTS: usize = 1000;
const WARMUP: usize = 50;

/// Concurrent tunnels in the memory run: the worker's relay takes at most
/// 64 connections at once (`BOUNDS` in the worker's egress relay).
const TUNNELS: usize = 64;

/// Bytes each tunnel moves, one proxy process per size: 64× more data must
/// not mean more memory.
const PER_TUNNEL: [u64; 3] = [1 << 20, 16 << 20, 64 << 20];

/// The memory row's target: peak over idle, at the largest size, within
/// two relay buffers per tunnel plus this much for everything else a
/// connection holds (its task, the two sockets' registrations, the head
/// buffer while it lasts) and the allocator's slack.
const MEMORY_SLACK: u64 = 2 << 20;

/// `bulkhead-egress`'s `RELAY_BUFFER` (not a dependency of this crate).
const RELAY_BUFFER: u64 = 16 << 10;

/// The end-to-end download, and runs of each policy.
const E2E_BYTES: u64 = 256 << 20;
const E2E_RUNS: usize = 5;

pub fn run() {
    let scratch = Scratch::new(BENCH);
    throughput(&scratch);
    latency(&scratch);
    memory(&scratch);
    e2e::end_to_end();
}

/// MiB/s over a set of runs of `bytes` each.
#[derive(Clone, Copy)]
struct Rate {
    median: f64,
    min: f64,
    max: f64,
}

impl Rate {
    fn of(runs: &[Duration], bytes: u64) -> Rate {
        let s = Stats::of(runs);
        let mibps = |d: Duration| bytes as f64 / d.as_secs_f64() / f64::from(1 << 20);
        let fastest = runs.iter().min().copied().unwrap_or(s.max);
        Rate {
            median: mibps(s.median),
            min: mibps(s.max),
            max: mibps(fastest),
        }
    }

    fn text(&self) -> String {
        format!(
            "{:.0} MiB/s (runs {:.0}–{:.0})",
            self.median, self.min, self.max
        )
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({ "median_mibps": self.median, "min_mibps": self.min, "max_mibps": self.max })
    }
}

/// Nearest-rank percentile of `samples` (not empty).
fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut s = samples.to_vec();
    s.sort_unstable();
    s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1]
}

fn timed(f: impl FnOnce()) -> Duration {
    let started = Instant::now();
    f();
    started.elapsed()
}

/// One transfer through `proxy`.
#[derive(Clone, Copy)]
struct Through {
    wall: Duration,
    /// The CPU time the proxy process spent in it.
    cpu: Duration,
    /// The proxy's context switches in it.
    switches: u64,
}

fn through(proxy: &Proxy, f: impl FnOnce()) -> Through {
    let (cpu, switches) = (proxy.cpu(), proxy.switches());
    let wall = timed(f);
    Through {
        wall,
        cpu: proxy.cpu().saturating_sub(cpu),
        switches: proxy.switches().saturating_sub(switches),
    }
}

/// The proxy's CPU over the wall time of its runs: the share of one core
/// it kept busy.
fn busy(runs: &[Through]) -> f64 {
    let wall: Duration = runs.iter().map(|r| r.wall).sum();
    let cpu: Duration = runs.iter().map(|r| r.cpu).sum();
    cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9)
}

/// The proxy's CPU time per GiB relayed: unlike a rate, barely moved by
/// what else the machine runs.
fn cpu_per_gib(runs: &[Through]) -> Duration {
    let cpu: Duration = runs.iter().map(|r| r.cpu).sum();
    cpu.div_f64(runs.len() as f64 * TOTAL as f64 / f64::from(1 << 30))
}

/// The proxy's context switches per MiB relayed.
fn switches_per_mib(runs: &[Through]) -> f64 {
    let n: u64 = runs.iter().map(|r| r.switches).sum();
    n as f64 / (runs.len() as f64 * (TOTAL >> 20) as f64)
}

fn throughput(scratch: &Scratch) {
    let sink = Server::start(Serve::Sink, false);
    let source = Server::start(Serve::Source(TOTAL), false);
    let proxy = Proxy::start(scratch.path(), 0, &["127.0.0.1"]);
    let multi = Proxy::start(scratch.path(), 2, &["127.0.0.1"]);
    let (mut d_up, mut d_down) = (Vec::new(), Vec::new());
    // [tunnel up, tunnel down, 2-thread up, 2-thread down]
    let mut runs: [Vec<Through>; 4] = Default::default();
    let up = |p: &Proxy| upload(tunnel(&p.socket, sink.port).0, TOTAL);
    let down = |p: &Proxy| {
        let (s, early) = tunnel(&p.socket, source.port);
        download(s, TOTAL, early);
    };
    for round in 1..=ROUNDS {
        eprintln!(
            "   round {round}/{ROUNDS}: {REPS} × {} MiB up and down, direct and through the proxy…",
            TOTAL >> 20
        );
        d_up.extend((0..REPS).map(|_| timed(|| upload(direct(sink.port), TOTAL))));
        runs[0].extend((0..REPS).map(|_| through(&proxy, || up(&proxy))));
        d_down.extend((0..REPS).map(|_| timed(|| download(direct(source.port), TOTAL, 0))));
        runs[1].extend((0..REPS).map(|_| through(&proxy, || down(&proxy))));
        runs[2].extend((0..REPS).map(|_| through(&multi, || up(&multi))));
        runs[3].extend((0..REPS).map(|_| through(&multi, || down(&multi))));
    }
    let counts = proxy.stop();
    let _ = multi.stop();
    let expected = format!("bytes_up={}", TOTAL * (ROUNDS * REPS) as u64);
    assert!(
        counts.contains(&expected),
        "the proxy's log disagrees: {counts}"
    );
    let rate = |r: &[Through]| Rate::of(&r.iter().map(|x| x.wall).collect::<Vec<_>>(), TOTAL);
    let (d_up_r, d_down_r) = (Rate::of(&d_up, TOTAL), Rate::of(&d_down, TOTAL));
    for (way, direct, runs) in [
        ("up (client → sink)", d_up_r, &runs[0]),
        ("down (source → client)", d_down_r, &runs[1]),
    ] {
        let through = rate(runs);
        let ratio = through.median / direct.median;
        let busy = busy(runs);
        Row {
            bench: BENCH,
            name: format!(
                "egress: throughput through a `CONNECT` tunnel, {} MiB {way}",
                TOTAL >> 20
            ),
            measured: through.text(),
            baseline: format!("direct loopback TCP: {}", direct.text()),
            figure: format!(
                "{:.0}% of direct (medians); the proxy: {} CPU per GiB, {:.0}% of a core, {:.0} context switches per MiB",
                ratio * 100.0,
                ms(cpu_per_gib(runs)),
                busy * 100.0,
                switches_per_mib(runs)
            ),
            target: "—".into(),
            met: None,
            data: serde_json::json!({
                "tunnel": through.json(), "direct": direct.json(), "ratio": ratio,
                "proxy_cpu_share": busy, "proxy_switches_per_mib": switches_per_mib(runs),
                "proxy_cpu_ms_per_gib": cpu_per_gib(runs).as_secs_f64() * 1e3,
                "bytes_per_run": TOTAL, "rounds": ROUNDS, "runs_per_round": REPS,
                "runtime": "current_thread",
            }),
        }
        .emit();
    }
    let (m_up, m_down) = (rate(&runs[2]), rate(&runs[3]));
    Row {
        bench: BENCH,
        name: "egress (info): the same tunnels, proxy on a two-thread runtime (the TUI's calls runtime)".into(),
        measured: format!("up {}; down {}", m_up.text(), m_down.text()),
        baseline: format!("direct: up {:.0}, down {:.0} MiB/s", d_up_r.median, d_down_r.median),
        figure: format!(
            "{:.0}% / {:.0}% of direct (current-thread: {:.0}% / {:.0}%); the proxy: {} / {} CPU per GiB",
            m_up.median / d_up_r.median * 100.0,
            m_down.median / d_down_r.median * 100.0,
            rate(&runs[0]).median / d_up_r.median * 100.0,
            rate(&runs[1]).median / d_down_r.median * 100.0,
            ms(cpu_per_gib(&runs[2])),
            ms(cpu_per_gib(&runs[3])),
        ),
        target: "—".into(),
        met: None,
        data: serde_json::json!({
            "up": m_up.json(), "down": m_down.json(),
            "proxy_cpu_share_up": busy(&runs[2]), "proxy_cpu_share_down": busy(&runs[3]),
            "proxy_cpu_ms_per_gib_up": cpu_per_gib(&runs[2]).as_secs_f64() * 1e3,
            "proxy_cpu_ms_per_gib_down": cpu_per_gib(&runs[3]).as_secs_f64() * 1e3,
            "direct_up": d_up_r.json(), "direct_down": d_down_r.json(), "worker_threads": 2,
        }),
    }
    .emit();
}

fn latency(scratch: &Scratch) {
    let server = Server::start(Serve::Http(2), false);
    let proxy = Proxy::start(scratch.path(), 0, &["127.0.0.1"]);
    let port = server.port;
    let request = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let absolute =
        format!("GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    // Each returns the time to the answer's first byte; the rest is read
    // untimed, so every connection is over before the next.
    let first_byte = |mut s: Box<dyn peers::Stream>, head: &str, started: Instant| {
        use std::io::{Read, Write};
        s.write_all(head.as_bytes()).expect("send the request");
        let mut first = [0u8; 1];
        s.read_exact(&mut first).expect("the answer's first byte");
        let took = started.elapsed();
        assert_eq!(&first, b"H", "not an HTTP answer");
        assert!(drain(s) > 0, "the answer ended early");
        took
    };
    let via_direct = || {
        let started = Instant::now();
        first_byte(Box::new(direct(port)), &request, started)
    };
    let via_tunnel = || {
        let started = Instant::now();
        first_byte(Box::new(tunnel(&proxy.socket, port).0), &request, started)
    };
    let via_plain = || {
        let started = Instant::now();
        let s = std::os::unix::net::UnixStream::connect(&proxy.socket).expect("connect");
        first_byte(Box::new(s), &absolute, started)
    };
    eprintln!("   {REQUESTS} requests each: direct, CONNECT, plain HTTP…");
    for _ in 0..WARMUP {
        via_direct();
        via_tunnel();
        via_plain();
    }
    let (mut d, mut t, mut p) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..REQUESTS {
        d.push(via_direct());
        t.push(via_tunnel());
        p.push(via_plain());
    }
    let counts = proxy.stop();
    assert!(
        counts.contains(&format!("allowed={}", 2 * (REQUESTS + WARMUP))),
        "the proxy's log disagrees: {counts}"
    );
    let text = |s: &[Duration]| {
        format!(
            "median {}, p99 {}",
            ms(Stats::of(s).median),
            ms(percentile(s, 0.99))
        )
    };
    let json = |s: &[Duration]| {
        let mut j = Stats::of(s).json();
        j["p99_us"] = (percentile(s, 0.99).as_micros() as u64).into();
        j
    };
    for (what, samples) in [
        (
            "through a `CONNECT` tunnel (connect, `CONNECT`, its `200`, `GET`)",
            &t,
        ),
        (
            "as a plain-HTTP proxy request (connect, `GET http://…`)",
            &p,
        ),
    ] {
        let added = Stats::of(samples)
            .median
            .saturating_sub(Stats::of(&d).median);
        let added_p99 = percentile(samples, 0.99).saturating_sub(percentile(&d, 0.99));
        Row {
            bench: BENCH,
            name: format!(
                "egress: time to first byte of a small answer on a new connection, {what}"
            ),
            measured: text(samples),
            baseline: format!("direct loopback TCP: {}", text(&d)),
            figure: format!(
                "+{} per request (median), +{} at p99; {REQUESTS} requests",
                ms(added),
                ms(added_p99)
            ),
            target: "—".into(),
            met: None,
            data: serde_json::json!({
                "proxied": json(samples), "direct": json(&d), "requests": REQUESTS,
            }),
        }
        .emit();
    }
}

/// One memory run: a fresh proxy, `TUNNELS` tunnels of `per` bytes each.
struct Peak {
    per: u64,
    /// `VmHWM` just bound, and after the tunnels.
    idle: u64,
    peak: u64,
    took: Duration,
}

impl Peak {
    fn grew(&self) -> u64 {
        self.peak.saturating_sub(self.idle)
    }
}

fn memory_run(scratch: &Scratch, per: u64) -> Peak {
    let proxy = Proxy::start(scratch.path(), 0, &["127.0.0.1"]);
    // Settled: the runtime and the listener set up, nothing served yet.
    std::thread::sleep(Duration::from_millis(100));
    let idle = proxy.status_bytes("VmHWM");
    let sink = Server::start(Serve::Sink, true);
    let source = Server::start(Serve::Source(per), true);
    let barrier = Arc::new(Barrier::new(TUNNELS));
    let started = Instant::now();
    let clients: Vec<_> = (0..TUNNELS)
        .map(|i| {
            let socket = proxy.socket.clone();
            let barrier = Arc::clone(&barrier);
            let (sink, source) = (sink.port, source.port);
            std::thread::spawn(move || {
                if i % 2 == 0 {
                    let (s, _) = tunnel(&socket, sink);
                    barrier.wait();
                    upload(s, per);
                } else {
                    let (s, early) = tunnel(&socket, source);
                    barrier.wait();
                    download(s, per, early);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("a tunnel's client failed");
    }
    let took = started.elapsed();
    let peak = proxy.status_bytes("VmHWM");
    let counts = proxy.stop();
    assert!(
        counts.contains(&format!("allowed={TUNNELS} ")),
        "the proxy's log disagrees: {counts}"
    );
    Peak {
        per,
        idle,
        peak,
        took,
    }
}

fn memory(scratch: &Scratch) {
    let peaks: Vec<Peak> = PER_TUNNEL
        .iter()
        .map(|&per| {
            eprintln!("   {TUNNELS} tunnels at once, {} each…", size(per));
            memory_run(scratch, per)
        })
        .collect();
    let buffers = TUNNELS as u64 * 2 * RELAY_BUFFER;
    let list = |f: &dyn Fn(&Peak) -> String| peaks.iter().map(f).collect::<Vec<_>>().join(" / ");
    let growth_max = peaks.iter().map(Peak::grew).max().unwrap_or(0);
    let spread = peaks.iter().map(|p| p.peak).max().unwrap_or(0)
        - peaks.iter().map(|p| p.peak).min().unwrap_or(0);
    let last = &peaks[peaks.len() - 1];
    Row {
        bench: BENCH,
        name: format!(
            "egress: proxy process peak RSS (`VmHWM`), {TUNNELS} tunnels at once, {} each",
            list(&|p| size(p.per))
        ),
        measured: list(&|p| size(p.peak)),
        baseline: format!("idle (bound, nothing served): {}", list(&|p| size(p.idle))),
        figure: format!(
            "peak − idle {} ({} per tunnel at {}; its two relay buffers: {}); spread of the peaks {}; {} moved in {}",
            list(&|p| size(p.grew())),
            size(last.grew() / TUNNELS as u64),
            size(last.per),
            size(2 * RELAY_BUFFER),
            size(spread),
            size(last.per * TUNNELS as u64),
            ms(last.took)
        ),
        target: format!(
            "peak − idle ≤ {TUNNELS} × 2 × 16 KiB + {} = {}",
            size(MEMORY_SLACK),
            size(buffers + MEMORY_SLACK)
        ),
        met: Some(growth_max <= buffers + MEMORY_SLACK),
        data: serde_json::json!({
            "tunnels": TUNNELS,
            "runs": peaks.iter().map(|p| serde_json::json!({
                "bytes_per_tunnel": p.per, "idle_hwm_bytes": p.idle, "peak_hwm_bytes": p.peak,
                "wall_ms": p.took.as_millis() as u64, "bytes_moved": p.per * TUNNELS as u64,
            })).collect::<Vec<_>>(),
            "relay_buffers_bytes": buffers,
        }),
    }
    .emit();
}
