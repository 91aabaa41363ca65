//! The built-in tools under the default `workspace` policy. The sandbox
//! adds a Landlock rule at the path a tool names (so the kernel's check of
//! each file opened below stops there: `fs_rules::nearest_rules`). These
//! tests hold it to granting nothing: a tool pointed at a denied path, into
//! one, or above one, reads no more than it would without that rule.

use std::path::Path;
use std::process::Command;

use bulkhead_tests::bin;

use crate::Fixture;

/// What the fixture's `$HOME` holds besides `.ssh`: a directory the config
/// denies, and one that is plain.
const DENIED_TEXT: &str = "denied-marker-7f3a";
const PLAIN_TEXT: &str = "plain-marker-51c2";

fn home_with_a_denied_dir(fx: &Fixture) {
    let home = fx.home.path();
    for dir in ["private/deep", "project/src", ".config/bulkhead"] {
        std::fs::create_dir_all(home.join(dir)).unwrap();
    }
    std::fs::write(home.join("private/deep/notes.txt"), DENIED_TEXT).unwrap();
    std::fs::write(home.join("project/src/main.txt"), PLAIN_TEXT).unwrap();
    std::fs::write(
        home.join(".config/bulkhead/bulkhead.toml"),
        "[policies.workspace]\ndeny = [\"~/private\"]\n",
    )
    .unwrap();
}

/// `bulkhead run TOOL {"path": …, extra…} --json` with the fixture's
/// `$HOME`, from a workspace outside it.
fn run(fx: &Fixture, tool: &str, path: &Path, extra: serde_json::Value) -> serde_json::Value {
    let mut args = serde_json::json!({ "path": path });
    if let (Some(a), Some(e)) = (args.as_object_mut(), extra.as_object()) {
        a.extend(e.clone());
    }
    let out = Command::new(bin("bulkhead"))
        .args(["run", tool, &args.to_string(), "--json"])
        .current_dir(fx.outside.path())
        .env("HOME", fx.home.path())
        .env("XDG_CONFIG_HOME", fx.home.path().join(".config"))
        .env_remove("BULKHEAD_CONFIG")
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn landlock_detail(report: &serde_json::Value) -> String {
    report["enforcement"]["sandbox"]
        .as_array()
        .and_then(|s| s.iter().find(|m| m["mechanism"] == "landlock_fs"))
        .map(|m| m["detail"].to_string())
        .unwrap_or_default()
}

fn enforced(report: &serde_json::Value) -> bool {
    report["enforcement"]["not_enforced"]
        .as_array()
        .is_some_and(|n| n.is_empty())
}

#[test]
fn a_tool_pointed_at_a_plain_dir_gets_its_rule_and_reads() {
    let fx = Fixture::new();
    home_with_a_denied_dir(&fx);
    let project = fx.home.path().join("project/src");
    let v = run(
        &fx,
        "search_files_content",
        &project,
        serde_json::json!({ "pattern": PLAIN_TEXT }),
    );
    assert_eq!(v["status"], "completed", "{v}");
    assert!(v["output"].as_str().unwrap().contains(PLAIN_TEXT), "{v}");
    if enforced(&v) {
        let detail = landlock_detail(&v);
        assert!(detail.contains("at the tool's own path"), "{detail}");
    }
    println!("| search a plain dir | rule at the tool's path | found |");
}

#[test]
fn a_tool_pointed_at_or_into_a_denied_dir_reads_nothing() {
    let fx = Fixture::new();
    home_with_a_denied_dir(&fx);
    let private = fx.home.path().join("private");
    for path in [private.clone(), private.join("deep")] {
        let v = run(
            &fx,
            "search_files_content",
            &path,
            serde_json::json!({ "pattern": DENIED_TEXT }),
        );
        if !enforced(&v) {
            println!("| search a denied dir | landlock_fs not enforced here | — |");
            return;
        }
        let detail = landlock_detail(&v);
        assert!(!detail.contains("at the tool's own path"), "{detail}");
        assert!(!v["output"].as_str().unwrap().contains(DENIED_TEXT), "{v}");
    }
    let v = run(
        &fx,
        "read_file",
        &private.join("deep/notes.txt"),
        serde_json::json!({}),
    );
    assert_ne!(v["status"], "completed", "{v}");
    assert!(!v["output"].as_str().unwrap().contains(DENIED_TEXT), "{v}");
    let v = run(&fx, "list_directory", &private, serde_json::json!({}));
    assert!(!v["output"].as_str().unwrap().contains("deep"), "{v}");
    let v = run(&fx, "read_file", &fx.secret_key(), serde_json::json!({}));
    assert!(!v["output"].as_str().unwrap().contains("OPENSSH"), "{v}");
    println!("| search, read, list a denied dir | no rule; Landlock | nothing read |");
}

/// `$HOME` holds denied paths, so a search of all of it gets no rule of
/// its own, and the carved rules stand. Carving allows `$HOME`'s entries,
/// not `$HOME` itself (a rule there would let the tool list what is inside
/// the denied directories), so the search cannot list its root: it says so
/// and reads nothing.
#[test]
fn a_tool_pointed_above_a_denied_dir_gets_no_rule() {
    let fx = Fixture::new();
    home_with_a_denied_dir(&fx);
    let v = run(
        &fx,
        "search_files_content",
        fx.home.path(),
        serde_json::json!({ "pattern": "marker" }),
    );
    if !enforced(&v) {
        println!("| search above a denied dir | landlock_fs not enforced here | — |");
        return;
    }
    let out = v["output"].as_str().unwrap();
    assert!(!out.contains(DENIED_TEXT), "{v}");
    assert!(out.contains("Permission denied"), "{v}");
    let detail = landlock_detail(&v);
    assert!(!detail.contains("at the tool's own path"), "{detail}");
    println!("| search above a denied dir | carved rules only | root not listable; nothing read |");
}
