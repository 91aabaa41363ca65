//! `yes` produces output without end; the call is cut at the cap and the
//! tool stopped, quickly.

use bulkhead_tests::run_json;

#[test]
fn yes_is_truncated_within_two_seconds() {
    let started = std::time::Instant::now();
    let (v, out) = run_json("shell", r#"{"command":"yes"}"#, &["--max-output", "1M"]);
    let elapsed = started.elapsed();
    assert_eq!(v["status"], "truncated", "{v:.400}");
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(v["output_bytes_kept"].as_u64().unwrap(), 1 << 20);
    assert!(v["output"].as_str().unwrap().starts_with("y\ny\ny\n"));
    assert!(elapsed.as_secs_f64() < 2.0, "took {elapsed:?}");
}

#[test]
fn tail_mode_keeps_head_and_tail_of_a_finite_flood() {
    // 5 MB of numbered lines; keep 64 KiB of head and 16 KiB of tail.
    let (v, _) = run_json(
        "shell",
        r#"{"command":"seq 1 700000"}"#,
        &["--max-output", "80K", "--tail", "16K"],
    );
    assert_eq!(v["status"], "truncated", "{v:.400}");
    let output = v["output"].as_str().unwrap();
    assert!(output.starts_with("1\n2\n3\n"));
    assert!(
        output.trim_end().ends_with("699999\n700000"),
        "tail missing: …{}",
        &output[output.len() - 100..]
    );
    assert!(output.contains("bulkhead cut"));
    assert_eq!(v["lines_seen"].as_u64().unwrap(), 700_000);
}
