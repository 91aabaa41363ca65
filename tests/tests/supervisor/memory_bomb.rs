//! A tool that allocates and touches 2 GiB under a 256 MiB cap is killed
//! for memory, by the strongest mechanism and by the watchdog fallback, and
//! the host lives on.

use bulkhead_tests::{bin, run_json};

fn bomb(extra: &[&str]) -> serde_json::Value {
    let cmd = format!("{} 2048", bin("memhog").display());
    let args = serde_json::json!({ "command": cmd }).to_string();
    let mut flags = vec!["--memory", "256M", "--timeout", "60s"];
    flags.extend_from_slice(extra);
    let (v, out) = run_json("shell", &args, &flags);
    // The host answered with a report and the documented code: it lived on.
    assert_eq!(out.status.code(), Some(4), "{v}");
    v
}

#[test]
fn memory_bomb_is_killed_by_the_default_mechanism() {
    let v = bomb(&[]);
    assert_eq!(v["status"], "killed", "{v}");
    assert_eq!(v["reason"], "memory", "{v}");
    assert!(v["host_peak_rss_bytes"].as_u64().unwrap() < 40 << 20);
}

#[test]
fn memory_bomb_is_killed_by_the_watchdog() {
    let v = bomb(&["--memory-mechanism", "watchdog"]);
    assert_eq!(v["enforcement"]["memory"], "watchdog", "{v}");
    assert_eq!(v["status"], "killed", "{v}");
    assert_eq!(v["reason"], "memory", "{v}");
    // The watchdog acts within a sample or two of crossing the cap.
    let peak = v["usage"]["peak_rss_bytes"].as_u64().unwrap();
    assert!(peak < 512 << 20, "peak {peak} far past the 256 MiB cap");
}
