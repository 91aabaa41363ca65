//! `store`: the session store (host/src/store).
//!
//! - Append: items/s of `Store::append` (1 KiB user messages), and MB/s of
//!   a tool result written through `ResultWriter` (64 KiB pieces), each
//!   against raw rusqlite inserts of the same rows into the same kind of
//!   database (WAL, same `synchronous`, one transaction per row) in the
//!   same run. Both durabilities: FULL (the default) and NORMAL.
//! - `sessions list` on a store like the report's (1,200 sessions, 52,000
//!   items, 700 MB of output, built by `store-writer fixture`): latency and
//!   peak RSS, and `export` of its largest session.
//! - History window (200 items, 200 KB budget, 2+2 KiB result views) on one
//!   session of 100, 10k and 50k items: build time and peak RSS, which must
//!   not grow with the session.
//!
//! Peak RSS of `bulkhead` comes from `wait4` (an upper bound: Linux starts
//! a spawned child's figure at this bench's own peak, printed with it); the
//! window's from `store-writer`'s own `VmHWM`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bulkhead_ipc::StreamId;
use bulkhead_store::{
    Durability, ItemKind, NewItem, NewSession, ResultEnd, Retention, Store, StoreOptions,
};
use bulkhead_tests::exit_and_peak_rss;

use crate::{Row, Scratch, Stats, ms, sibling, size};

const BENCH: &str = "store";

/// Items appended per run: a few seconds at FULL's one fsync per commit.
const APPEND_ITEMS: usize = 500;

/// Output written per run: 256 commits of 64 KiB.
const RESULT_BYTES: usize = 16 << 20;

/// Piece size of the result writes: the IPC protocol's chunk.
const PIECE: usize = 64 << 10;

/// `sessions list` and `export` runs on the big store.
const REPS: usize = 5;

const MIB: u64 = 1 << 20;

pub fn run() {
    let scratch = Scratch::new("store");
    for durability in [Durability::Full, Durability::Normal] {
        append_rows(scratch.path(), durability);
    }
    big_store(scratch.path());
    window_rows(scratch.path());
}

fn options(durability: Durability) -> StoreOptions {
    StoreOptions {
        durability,
        retention: Retention {
            max_store_bytes: None,
            max_session_bytes: None,
        },
        ..StoreOptions::default()
    }
}

fn label(d: Durability) -> &'static str {
    match d {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    }
}

/// A raw SQLite database set up as the store sets up its own.
fn raw(path: &Path, durability: Durability) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).expect("raw sqlite");
    c.pragma_update(None, "journal_mode", "WAL").expect("wal");
    c.pragma_update(None, "synchronous", label(durability))
        .expect("synchronous");
    c.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, session_id INTEGER, seq INTEGER, text TEXT);
         CREATE TABLE chunks (id INTEGER PRIMARY KEY, item_id INTEGER, offset INTEGER, data BLOB);",
    )
    .expect("schema");
    c
}

fn append_rows(dir: &Path, durability: Durability) {
    let tag = label(durability);
    let text = "x".repeat(1024);
    let piece = vec![b'o'; PIECE];

    let store = Store::open_with(dir.join(format!("append-{tag}.db")), options(durability))
        .expect("open store");
    let session = store
        .create_session(&NewSession::default())
        .expect("session");
    let started = Instant::now();
    for _ in 0..APPEND_ITEMS {
        store
            .append(session, &NewItem::new(ItemKind::User, text.as_str()))
            .expect("append");
    }
    let store_items = started.elapsed();
    let started = Instant::now();
    let mut w = store
        .begin_result(session, "bench", None, "{}")
        .expect("begin");
    for _ in 0..RESULT_BYTES / PIECE {
        w.write(&store, StreamId::Stdout, &piece).expect("write");
    }
    w.finish(&store, &ResultEnd::default()).expect("finish");
    let store_result = started.elapsed();

    let c = raw(&dir.join(format!("raw-{tag}.db")), durability);
    let started = Instant::now();
    for seq in 0..APPEND_ITEMS {
        c.execute_batch("BEGIN IMMEDIATE").expect("begin");
        c.execute(
            "INSERT INTO items (session_id, seq, text) VALUES (1, ?1, ?2)",
            rusqlite::params![seq as i64, text],
        )
        .expect("insert");
        c.execute_batch("COMMIT").expect("commit");
    }
    let raw_items = started.elapsed();
    let started = Instant::now();
    for n in 0..RESULT_BYTES / PIECE {
        c.execute_batch("BEGIN IMMEDIATE").expect("begin");
        c.execute(
            "INSERT INTO chunks (item_id, offset, data) VALUES (1, ?1, ?2)",
            rusqlite::params![(n * PIECE) as i64, piece],
        )
        .expect("insert");
        c.execute_batch("COMMIT").expect("commit");
    }
    let raw_result = started.elapsed();

    let per_s = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    let mb_s = |d: Duration| RESULT_BYTES as f64 / 1e6 / d.as_secs_f64();
    Row {
        bench: BENCH,
        name: format!("store: append 1 KiB messages, synchronous={tag}"),
        measured: format!("{:.0} items/s", per_s(APPEND_ITEMS, store_items)),
        baseline: format!("raw INSERT: {:.0} rows/s", per_s(APPEND_ITEMS, raw_items)),
        figure: format!(
            "{:.2}× raw ({APPEND_ITEMS} items, one commit each)",
            raw_items.as_secs_f64() / store_items.as_secs_f64()
        ),
        target: "— (none set)".into(),
        met: None,
        data: serde_json::json!({
            "durability": tag, "items": APPEND_ITEMS,
            "store_ms": store_items.as_millis() as u64, "raw_ms": raw_items.as_millis() as u64,
        }),
    }
    .emit();
    Row {
        bench: BENCH,
        name: format!("store: tool-result write (64 KiB pieces), synchronous={tag}"),
        measured: format!("{:.1} MB/s", mb_s(store_result)),
        baseline: format!("raw INSERT of 64 KiB blobs: {:.1} MB/s", mb_s(raw_result)),
        figure: format!(
            "{:.2}× raw ({} MiB)",
            raw_result.as_secs_f64() / store_result.as_secs_f64(),
            RESULT_BYTES >> 20
        ),
        target: "— (none set)".into(),
        met: None,
        data: serde_json::json!({
            "durability": tag, "bytes": RESULT_BYTES,
            "store_ms": store_result.as_millis() as u64, "raw_ms": raw_result.as_millis() as u64,
        }),
    }
    .emit();
}

/// Builds a store with `store-writer fixture`; returns (largest session, build time).
fn fixture(path: &Path, sessions: u64, items: u64, payload: u64) -> (String, Duration) {
    let started = Instant::now();
    let out = Command::new(sibling("store-writer"))
        .arg("fixture")
        .arg(path)
        .args([sessions, items, payload].map(|n| n.to_string()))
        .output()
        .expect("spawn store-writer");
    assert!(out.status.success(), "fixture failed: {out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("fixture JSON");
    (v["largest"].to_string(), started.elapsed())
}

fn big_store(dir: &Path) {
    let path = dir.join("report-size.db");
    eprintln!("   building 1,200 sessions / 52,000 items / 700 MB (a few minutes)");
    let (largest, built) = fixture(&path, 1200, 52_000, 700_000_000);
    let file = std::fs::metadata(&path).map_or(0, |m| m.len());
    let measure = |args: &[&str]| -> (Stats, u64) {
        let mut times = Vec::new();
        let mut peak = 0;
        for _ in 0..REPS {
            let started = Instant::now();
            let (code, rss) = exit_and_peak_rss(
                Command::new(sibling("bulkhead"))
                    .arg("--store")
                    .arg(&path)
                    .args(args)
                    .stdout(std::process::Stdio::null()),
            );
            times.push(started.elapsed());
            assert_eq!(code, 0, "bulkhead {args:?} failed");
            peak = peak.max(rss);
        }
        (Stats::of(&times), peak)
    };
    let (list, list_peak) = measure(&["sessions", "list"]);
    let (export, export_peak) = measure(&["sessions", "export", &largest]);
    // This process's own peak: the floor of every wait4 figure.
    let floor = bulkhead_tests::own_peak_rss_bytes();
    for (what, stats, peak, limit) in [
        ("sessions list", list, list_peak, 40 * MIB),
        (
            "sessions export (largest session, 13,000 items, 175 MB)",
            export,
            export_peak,
            64 * MIB,
        ),
    ] {
        Row {
            bench: BENCH,
            name: format!("store: `{what}` on 1,200 sessions / 52,000 items / 700 MB"),
            measured: format!("median {}, peak RSS ≤ {}", ms(stats.median), size(peak)),
            baseline: format!(
                "bench's own peak {} (floor of the wait4 figure)",
                size(floor)
            ),
            figure: format!(
                "store file {}, built in {:.0} s; {REPS} runs, max {}",
                size(file),
                built.as_secs_f64(),
                ms(stats.max)
            ),
            target: format!("peak RSS < {}", size(limit)),
            met: Some(peak < limit),
            data: serde_json::json!({
                "what": what, "stats": stats.json(), "peak_rss_bytes": peak,
                "bench_peak_bytes": floor, "file_bytes": file, "build_ms": built.as_millis() as u64,
            }),
        }
        .emit();
    }
    let _ = std::fs::remove_file(&path);
}

fn window_rows(dir: &Path) {
    let mut peaks = Vec::new();
    for items in [100u64, 10_000, 50_000] {
        let path = dir.join(format!("window-{items}.db"));
        // A quarter of the items are results of 16 KiB each.
        let (session, _) = fixture(&path, 1, items, items / 4 * (16 << 10));
        let mut times = Vec::new();
        let mut peak = 0;
        for _ in 0..REPS {
            let out = Command::new(sibling("store-writer"))
                .arg("window")
                .arg(&path)
                .args([session.as_str(), "200", "200000"])
                .output()
                .expect("spawn store-writer");
            assert!(out.status.success(), "window failed: {out:?}");
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("window JSON");
            times.push(Duration::from_micros(
                v["build_us"].as_u64().expect("build_us"),
            ));
            peak = peak.max(v["peak_rss_bytes"].as_u64().expect("peak"));
        }
        let stats = Stats::of(&times);
        peaks.push(peak);
        let flat = peak <= peaks[0] + 4 * MIB;
        Row {
            bench: BENCH,
            name: format!("store: history window (200 items, 200 KB) of a {items}-item session"),
            measured: format!("median {}, peak RSS {}", ms(stats.median), size(peak)),
            baseline: format!("100-item session: peak RSS {}", size(peaks[0])),
            figure: format!("open + build, {REPS} runs, max {}", ms(stats.max)),
            target: "flat RSS (within 4 MiB of the 100-item figure), < 64 MiB".into(),
            met: Some(flat && peak < 64 * MIB),
            data: serde_json::json!({ "items": items, "stats": stats.json(), "peak_rss_bytes": peak }),
        }
        .emit();
        let _ = std::fs::remove_file(&path);
    }
}
