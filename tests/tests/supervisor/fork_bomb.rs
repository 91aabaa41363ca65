//! A fork bomb is contained by the pids cap, ends with the call, and
//! leaves nothing behind.

use bulkhead_tests::{marker, pids_with_marker, run_json};

#[test]
fn fork_bomb_is_contained() {
    let tag = marker("forkbomb");
    // Every subshell is a fork of `sh -c` with this command line, so the
    // marker in a comment finds them all in /proc.
    let cmd = format!("bomb() {{ bomb | bomb & }}; bomb; sleep 3 # {tag}");
    let args = serde_json::json!({ "command": cmd }).to_string();
    let (v, out) = run_json("shell", &args, &["--pids", "64", "--timeout", "3s"]);
    assert!(matches!(out.status.code(), Some(0 | 3 | 4)), "{v:.400}");
    assert!(
        matches!(
            v["status"].as_str(),
            Some("killed" | "completed" | "truncated")
        ),
        "{v:.400}"
    );
    // After the call, not one process of it is left.
    let left = pids_with_marker(&tag);
    assert!(left.is_empty(), "fork bomb processes survived: {left:?}");
    // And bulkhead still works.
    let (v, _) = run_json("shell", r#"{"command":"echo alive"}"#, &[]);
    assert_eq!(v["output"], "alive\n");
}
