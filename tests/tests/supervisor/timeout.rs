//! `sleep 100` under a 1 s timeout is killed for timeout, promptly.

use bulkhead_tests::run_json;

#[test]
fn sleep_is_killed_at_the_timeout() {
    let started = std::time::Instant::now();
    let (v, out) = run_json("shell", r#"{"command":"sleep 100"}"#, &["--timeout", "1s"]);
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(4), "{v}");
    assert_eq!(v["status"], "killed");
    assert_eq!(v["reason"], "timeout");
    assert!(
        elapsed.as_secs_f64() < 1.5,
        "took {elapsed:?}, including bulkhead's start"
    );
    assert!(v["usage"]["wall_ms"].as_u64().unwrap() >= 1000);
}
