//! Policies as a user meets them: `--policy`, `--config`, `--allow-*`, the
//! default (`workspace`), and what every report says about the sandbox.

use std::process::Command;

use bulkhead_tests::{bin, run_json};

fn bulkhead(args: &[&str]) -> std::process::Output {
    Command::new(bin("bulkhead"))
        .args(args)
        .env_remove("BULKHEAD_CONFIG")
        .output()
        .unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_unknown_policy_is_a_usage_error_listing_the_policies() {
    let out = bulkhead(&[
        "run",
        "shell",
        r#"{"command":"true"}"#,
        "--policy",
        "strict",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("--policy: unknown policy \"strict\"") && e.contains("workspace"),
        "{e}"
    );
}

#[test]
fn a_bad_config_file_is_a_usage_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bulkhead.toml");
    std::fs::write(&path, "[policies.mine]\nnetwork = \"everywhere\"\n").unwrap();
    let config = path.display().to_string();
    let out = bulkhead(&["--config", &config, "run", "shell", "{}"]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains(&config) && e.contains("line 2") && e.contains("everywhere"),
        "{e}"
    );
}

#[test]
fn a_missing_declared_root_is_named() {
    let out = bulkhead(&["run", "shell", "{}", "--allow-read", "/no/such/root"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("read root /no/such/root"),
        "{}",
        stderr(&out)
    );
}

/// Every report names its policy, explains it in one line, and lists each
/// mechanism; `trusted` has none.
#[test]
fn reports_say_which_policy_and_mechanisms_guarded_the_call() {
    let (v, _) = run_json("shell", r#"{"command":"true"}"#, &["--policy", "trusted"]);
    let e = &v["enforcement"];
    assert_eq!(e["policy"], "trusted");
    assert!(
        e["policy_explained"]
            .as_str()
            .unwrap()
            .contains("no sandbox, limits only")
    );
    assert_eq!(e["sandbox"], serde_json::json!([]));

    let (v, _) = run_json("shell", r#"{"command":"true"}"#, &[]);
    let e = &v["enforcement"];
    assert_eq!(
        e["policy"], "workspace",
        "workspace is the default for tools"
    );
    let names: Vec<&str> = e["sandbox"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mechanism"].as_str().unwrap())
        .collect();
    for wanted in ["pid_ns", "capabilities", "landlock_fs", "seccomp"] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    // Network `none`: the socket allowlist where Landlock can scope
    // abstract sockets, a namespace elsewhere; either way it is on record.
    assert!(
        names.contains(&"seccomp_net") || names.contains(&"net_ns"),
        "no network mechanism in {names:?}"
    );
    // Whatever this machine lacks is listed, never dropped.
    let missing: Vec<&str> = e["sandbox"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["requested"] == true && m["enforced"] == false)
        .map(|m| m["mechanism"].as_str().unwrap())
        .collect();
    let listed: Vec<&str> = e["not_enforced"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(missing, listed);
}

/// `workspace` writes the workspace (the working directory) and its temp
/// dir, and nothing else.
#[test]
fn workspace_writes_only_the_workspace() {
    let ws = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let cmd = format!(
        "touch inside && touch \"$TMPDIR/scratch\" && echo wrote; touch {}/outside 2>&1; true",
        outside.path().display()
    );
    let args = serde_json::json!({ "command": cmd }).to_string();
    let cwd = ws.path().display().to_string();
    let (v, _) = run_json("shell", &args, &["--cwd", &cwd]);
    let out = v["output"].as_str().unwrap();
    assert!(out.contains("wrote"), "{v}");
    assert!(ws.path().join("inside").exists());
    if v["enforcement"]["not_enforced"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(out.contains("Permission denied"), "{out}");
        assert!(!outside.path().join("outside").exists());
    }
}

/// A policy from the config file reaches the worker: network `loopback`
/// gives the tool its own `lo`, and `require` runs where everything is
/// available (or refuses, naming what is not).
#[test]
fn a_config_policy_reaches_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bulkhead.toml");
    std::fs::write(
        &path,
        "[policies.local]\nextends = \"untrusted\"\nnetwork = \"loopback\"\non_missing = \"require\"\n",
    )
    .unwrap();
    let config = path.display().to_string();
    let out = Command::new(bin("bulkhead"))
        .args(["--config", &config, "run", "shell", r#"{"command":"true"}"#])
        .args(["--policy", "local", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &v["enforcement"];
    assert_eq!(e["policy"], "local");
    assert!(
        e["policy_explained"]
            .as_str()
            .unwrap()
            .contains("network loopback")
    );
    if e["not_enforced"].as_array().unwrap().is_empty() {
        assert_eq!(v["status"], "completed", "{v}");
        let net = e["sandbox"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mechanism"] == "net_ns")
            .unwrap();
        assert!(net["detail"].as_str().unwrap().contains("lo, up"), "{net}");
    } else {
        assert_eq!(v["status"], "failed", "{v}");
        assert!(
            v["reason"]
                .as_str()
                .unwrap()
                .contains("requires mechanisms"),
            "{v}"
        );
    }
}

/// The host's secrets stay in the host: `untrusted` passes only its short
/// allowlist.
#[test]
fn untrusted_passes_only_its_environment_allowlist() {
    let out = Command::new(bin("bulkhead"))
        .args([
            "run",
            "shell",
            r#"{"command":"env"}"#,
            "--policy",
            "untrusted",
            "--json",
        ])
        .env("OPENAI_API_KEY", "sk-must-not-leak")
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let env = v["output"].as_str().unwrap();
    assert!(!env.contains("sk-must-not-leak"), "{env}");
    assert!(env.contains("LANG=C.UTF-8"), "{env}");
    for line in env.lines() {
        let name = line.split('=').next().unwrap();
        assert!(
            [
                "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "TMPDIR", "PWD", "SHLVL", "_"
            ]
            .contains(&name),
            "unexpected variable {name} in {env}"
        );
    }
}
