//! The session store at the size of the report behind bulkhead: 1,200
//! sessions, 52,000 items, 700 MB of tool output (`BULKHEAD_STORE_SCALE=full`;
//! by default a twentieth of it, so CI stays quick; the benchmark runs the
//! full size). The fixture is built in the test, by `store-writer`.
//!
//! - `bulkhead sessions list` peaks under 40 MiB;
//! - a history window of 200 items within 200 KB on the largest session
//!   peaks under 64 MiB;
//! - `bulkhead sessions export` of the largest session peaks under 64 MiB.
//!
//! Peaks come from `wait4` (an upper bound, see `exit_and_peak_rss`).

use std::process::Command;

use bulkhead_tests::{bin, exit_and_peak_rss};

const MIB: u64 = 1 << 20;

struct Scale {
    sessions: u64,
    items: u64,
    payload_bytes: u64,
}

fn scale() -> Scale {
    let full = Scale {
        sessions: 1200,
        items: 52_000,
        payload_bytes: 700_000_000,
    };
    match std::env::var("BULKHEAD_STORE_SCALE").as_deref() {
        Ok("full") => full,
        _ => Scale {
            sessions: full.sessions / 20,
            items: full.items / 20,
            payload_bytes: full.payload_bytes / 20,
        },
    }
}

/// The peaks `wait4` reports include this process's own peak at each
/// spawn, so it runs in a process of its own: in the shared one, the other
/// tests' stores and buffers would count towards the three ceilings.
#[test]
fn list_window_and_export_stay_small_on_a_large_store() {
    bulkhead_tests::alone(
        concat!(
            module_path!(),
            "::list_window_and_export_stay_small_on_a_large_store"
        ),
        list_window_and_export,
    );
}

fn list_window_and_export() {
    let s = scale();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sessions.db");
    let path_str = path.to_str().expect("utf-8 path");
    let fixture = Command::new(bin("store-writer"))
        .args(["fixture", path_str])
        .args([s.sessions, s.items, s.payload_bytes].map(|n| n.to_string()))
        .output()
        .expect("spawn store-writer");
    assert!(fixture.status.success(), "fixture: {fixture:?}");
    let built: serde_json::Value =
        serde_json::from_slice(&fixture.stdout).expect("fixture prints JSON");
    let largest = built["largest"].as_i64().expect("largest").to_string();
    let largest_items = built["largest_items"].as_u64().expect("largest_items");

    // list
    let listing = dir.path().join("list.txt");
    let (code, list_peak) = exit_and_peak_rss(
        Command::new(bin("bulkhead"))
            .args(["--store", path_str, "sessions", "list"])
            .stdout(std::fs::File::create(&listing).expect("create")),
    );
    assert_eq!(code, 0);
    let lines = std::fs::read_to_string(&listing)
        .expect("read")
        .lines()
        .count() as u64;
    assert_eq!(
        lines,
        s.sessions + 1,
        "one line per session, plus the header"
    );
    assert!(
        list_peak < 40 * MIB,
        "sessions list peaked at {} MiB",
        list_peak / MIB
    );

    // window
    let window_out = dir.path().join("window.json");
    let (code, window_peak) = exit_and_peak_rss(
        Command::new(bin("store-writer"))
            .args(["window", path_str, &largest, "200", "200000"])
            .stdout(std::fs::File::create(&window_out).expect("create")),
    );
    assert_eq!(code, 0);
    let window: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&window_out).expect("read")).expect("JSON");
    assert!(window["items"].as_u64().expect("items") > 0);
    assert!(window["used_bytes"].as_u64().expect("used") <= 200_000);
    assert!(
        window_peak < 64 * MIB,
        "the window peaked at {} MiB",
        window_peak / MIB
    );

    // export
    let export = dir.path().join("export.jsonl");
    let (code, peak) = exit_and_peak_rss(
        Command::new(bin("bulkhead"))
            .args(["--store", path_str, "sessions", "export", &largest])
            .stdout(std::fs::File::create(&export).expect("create")),
    );
    assert_eq!(code, 0);
    assert!(peak < 64 * MIB, "export peaked at {} MiB", peak / MIB);
    let exported = std::fs::metadata(&export).expect("export file").len();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(
        std::fs::File::open(&export).expect("open"),
    ))
    .count() as u64;
    assert_eq!(
        lines,
        largest_items + 1,
        "the session line and one per item"
    );
    // A quarter of the payload is the largest session's.
    assert!(
        exported >= s.payload_bytes / 4 / 2,
        "export is short: {exported} bytes"
    );
    eprintln!(
        "peaks (wait4): list {list_peak} B, window {window_peak} B, export {peak} B; \
         export {exported} B"
    );
}
