//! A search that would return gigabytes comes back truncated, its worker is
//! stopped, and the host's memory does not move.

use std::io::Write;

use bulkhead_tests::run_json;

/// Lines per file × files = 240,000 matching lines (at least 200,000 are required).
const FILES: usize = 400;
const LINES_PER_FILE: usize = 600;

/// The host's RSS must stay under this during the call.
const HOST_RSS_CEILING: u64 = 40 << 20;

#[test]
fn runaway_search_is_truncated_and_host_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    for f in 0..FILES {
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(dir.path().join(format!("f{f:04}.txt"))).unwrap(),
        );
        for l in 0..LINES_PER_FILE {
            writeln!(
                file,
                "line {l} of file {f}: the needle is here, padded to look like real code;"
            )
            .unwrap();
        }
    }
    let args = serde_json::json!({"pattern": "needle", "path": dir.path()}).to_string();
    let (v, out) = run_json("search_files_content", &args, &["--max-output", "1M"]);
    assert_eq!(out.status.code(), Some(3), "exit code for truncated: {v}");
    assert_eq!(v["status"], "truncated", "{v}");
    let output = v["output"].as_str().unwrap();
    let kept = v["output_bytes_kept"].as_u64().unwrap();
    assert!(kept <= 1 << 20, "kept {kept} bytes, cap is 1 MiB");
    // The output is the kept bytes plus one marker line.
    assert!(
        output.len() as u64 <= (1 << 20) + 512,
        "output is {} bytes",
        output.len()
    );
    assert!(
        output.contains("bulkhead cut"),
        "no truncation marker in the output tail: {}",
        &output[output.len() - 300..]
    );
    let seen = v["bytes_seen"].as_u64().unwrap();
    assert!(
        seen > kept,
        "bytes_seen {seen} should exceed what was kept {kept}"
    );
    assert!(
        v["reason"].as_str().unwrap().contains("output limit"),
        "{}",
        v["reason"]
    );
    // The search stopped early rather than walking the whole tree.
    let summary = &v["summary"];
    assert_eq!(summary["stopped_early"], true, "{summary}");
    assert!(
        summary["matches"].as_u64().unwrap() < (FILES * LINES_PER_FILE) as u64,
        "{summary}"
    );
    let host = v["host_peak_rss_bytes"].as_u64().unwrap();
    assert!(host < HOST_RSS_CEILING, "host peak RSS {host} ≥ 40 MiB");
}
