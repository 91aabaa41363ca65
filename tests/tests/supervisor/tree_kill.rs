//! Every descendant dies with the call, including a `setsid` grandchild,
//! whether the call is killed or its shell just exits; under the default
//! policy (the tool is PID 1 of its own PID namespace) and under `trusted`
//! (no namespace: the cgroup or the tree walk alone must do it).

use bulkhead_tests::{alive, marker, pids_with_marker, run_json};

/// Background children, and a daemon (new session) with its own children.
/// Each prints its pid, and every shell carries `MARK` in its command line
/// (as `$0`), so survivors can be found from outside the namespace too,
/// where the printed pids mean nothing. `; true` keeps `sh -c` from
/// exec'ing `sleep` in its place, which would drop the marker.
const TREE: &str = r#"sh -c 'sleep 300; true' MARK & echo "pid $!"; sh -c 'sleep 300; true' MARK & echo "pid $!"; setsid sh -c 'sh -c "sleep 300; true" MARK & echo "pid $!"; echo "pid $$"; wait' MARK & echo "pid $!"; sleep 0.3"#;

fn tree(tag: &str) -> (String, String) {
    let mark = marker(tag);
    (TREE.replace("MARK", &mark), mark)
}

fn pids(output: &str) -> Vec<i32> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("pid ")?.trim().parse().ok())
        .collect()
}

fn check(v: &serde_json::Value, mark: &str, pids_are_real: bool) {
    let pids = pids(v["output"].as_str().unwrap());
    assert!(pids.len() >= 5, "expected 5 pids in {:?}", v["output"]);
    if pids_are_real {
        let survivors: Vec<_> = pids.iter().copied().filter(|&p| alive(p)).collect();
        assert!(survivors.is_empty(), "survived the call: {survivors:?}");
    }
    let survivors = pids_with_marker(mark);
    assert!(survivors.is_empty(), "survived the call: {survivors:?}");
}

fn killed_call_leaves_no_descendant(policy: &str) {
    let (tree, mark) = tree(&format!("killed-{policy}"));
    let args = serde_json::json!({ "command": format!("{tree}; sleep 100") }).to_string();
    let (v, _) = run_json("shell", &args, &["--timeout", "1s", "--policy", policy]);
    assert_eq!(v["reason"], "timeout", "{v}");
    check(&v, &mark, policy == "trusted");
}

fn finished_call_leaves_no_daemon(policy: &str) {
    let (tree, mark) = tree(&format!("finished-{policy}"));
    let args = serde_json::json!({ "command": tree }).to_string();
    let (v, _) = run_json("shell", &args, &["--policy", policy]);
    assert_eq!(v["status"], "completed", "{v}");
    check(&v, &mark, policy == "trusted");
}

#[test]
fn killed_call_leaves_no_descendant_sandboxed() {
    killed_call_leaves_no_descendant("workspace");
}

#[test]
fn killed_call_leaves_no_descendant_trusted() {
    killed_call_leaves_no_descendant("trusted");
}

#[test]
fn finished_call_leaves_no_daemon_sandboxed() {
    finished_call_leaves_no_daemon("workspace");
}

#[test]
fn finished_call_leaves_no_daemon_trusted() {
    finished_call_leaves_no_daemon("trusted");
}

#[test]
fn watchdog_mode_kills_the_whole_tree_too() {
    let (tree, mark) = tree("watchdog");
    let args = serde_json::json!({ "command": format!("{tree}; sleep 100") }).to_string();
    let (v, _) = run_json(
        "shell",
        &args,
        &[
            "--timeout",
            "1s",
            "--memory-mechanism",
            "watchdog",
            "--policy",
            "trusted",
        ],
    );
    assert_eq!(v["reason"], "timeout", "{v}");
    check(&v, &mark, true);
}
