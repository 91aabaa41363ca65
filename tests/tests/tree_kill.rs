//! Every descendant dies with the call, including a `setsid` grandchild,
//! whether the call is killed or its shell just exits.

use bulkhead_tests::{alive, run_json};

/// Background children, and a daemon (new session) with its own children.
/// Each prints its pid so the test can check it afterwards.
const TREE: &str = r#"sleep 300 & echo "pid $!"; sleep 300 & echo "pid $!"; setsid sh -c 'sleep 300 & echo "pid $!"; echo "pid $$"; wait' & echo "pid $!"; sleep 0.3"#;

fn pids(output: &str) -> Vec<i32> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("pid ")?.trim().parse().ok())
        .collect()
}

fn check(v: &serde_json::Value) {
    let pids = pids(v["output"].as_str().unwrap());
    assert!(pids.len() >= 5, "expected 5 pids in {:?}", v["output"]);
    let survivors: Vec<_> = pids.iter().copied().filter(|&p| alive(p)).collect();
    assert!(survivors.is_empty(), "survived the call: {survivors:?}");
}

#[test]
fn killed_call_leaves_no_descendant() {
    let cmd = format!("{TREE}; sleep 100");
    let args = serde_json::json!({ "command": cmd }).to_string();
    let (v, _) = run_json("shell", &args, &["--timeout", "1s"]);
    assert_eq!(v["reason"], "timeout", "{v}");
    check(&v);
}

#[test]
fn finished_call_leaves_no_daemon() {
    let args = serde_json::json!({ "command": TREE }).to_string();
    let (v, _) = run_json("shell", &args, &[]);
    assert_eq!(v["status"], "completed", "{v}");
    check(&v);
}

#[test]
fn watchdog_mode_kills_the_whole_tree_too() {
    let cmd = format!("{TREE}; sleep 100");
    let args = serde_json::json!({ "command": cmd }).to_string();
    let (v, _) = run_json(
        "shell",
        &args,
        &["--timeout", "1s", "--memory-mechanism", "watchdog"],
    );
    assert_eq!(v["reason"], "timeout", "{v}");
    check(&v);
}
