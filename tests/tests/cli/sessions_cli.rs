//! `bulkhead run --session` records a call; `bulkhead sessions` lists,
//! shows, exports, prunes (with the config's `[store]` limits) and removes
//! it. Real binaries, a real store in a temp dir.

use std::path::Path;
use std::process::{Command, Output};

use bulkhead_tests::bin;

fn bulkhead(store: &Path, config: &Path, args: &[&str]) -> Output {
    let out = Command::new(bin("bulkhead"))
        .arg("--store")
        .arg(store)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("spawn bulkhead");
    assert!(
        out.status.success(),
        "bulkhead {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_recorded_call_is_listed_shown_exported_pruned_and_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("sessions.db");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[store]\nmax_session_bytes = \"off\"\n").expect("config");

    // Recorded into a new session, whose id is said on stderr.
    let first = bulkhead(
        &store,
        &config,
        &[
            "run",
            "shell",
            r#"{"command":"seq 1 20000"}"#,
            "--session",
            "new",
        ],
    );
    let said = text(&first.stderr);
    let id = said
        .split("recording into session ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the session id on stderr")
        .to_owned();
    let expected: String = (1..=20000).map(|n| format!("{n}\n")).collect();
    assert_eq!(text(&first.stdout), expected);
    // A second call into the same session, with --json.
    bulkhead(
        &store,
        &config,
        &[
            "run",
            "shell",
            r#"{"command":"echo two"}"#,
            "--session",
            &id,
            "--json",
        ],
    );

    let list = text(&bulkhead(&store, &config, &["sessions", "list", "--json"]).stdout);
    let list: serde_json::Value = serde_json::from_str(&list).expect("list --json");
    assert_eq!(list.as_array().expect("array").len(), 1);
    assert_eq!(list[0]["item_count"], 4, "two calls and two results");
    assert_eq!(list[0]["payload_bytes"], expected.len() + 4);

    let show = text(&bulkhead(&store, &config, &["sessions", "show", &id]).stdout);
    assert!(show.contains("tool_result shell · completed"), "{show}");
    assert!(show.contains("20000 lines"), "{show}");

    // The export holds each output whole.
    let export = text(&bulkhead(&store, &config, &["sessions", "export", &id]).stdout);
    let outputs: Vec<String> = export
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            v.get("output").and_then(|o| o.as_str()).map(str::to_owned)
        })
        .collect();
    assert_eq!(outputs, [expected.clone(), "two\n".to_owned()]);
    let md = text(
        &bulkhead(
            &store,
            &config,
            &["sessions", "export", &id, "--format", "markdown"],
        )
        .stdout,
    );
    assert!(
        md.contains("\n19999\n20000\n") && md.contains("\ntwo\n"),
        "{md:.500}"
    );

    // A session limit in the config prunes the oldest output on gc.
    std::fs::write(&config, "[store]\nmax_session_bytes = \"1K\"\n").expect("config");
    let gc = text(&bulkhead(&store, &config, &["sessions", "gc", "--json"]).stdout);
    let gc: serde_json::Value = serde_json::from_str(&gc).expect("gc --json");
    assert_eq!(gc["results_pruned"], 1);
    assert_eq!(gc["bytes_pruned"], expected.len());
    let export = text(&bulkhead(&store, &config, &["sessions", "export", &id]).stdout);
    assert!(
        export.contains("[output pruned by retention"),
        "{export:.2000}"
    );
    assert!(
        export.contains("\"output\":\"two\\n\""),
        "the newest output stays"
    );

    let stats = text(&bulkhead(&store, &config, &["sessions", "stats", "--json"]).stdout);
    let stats: serde_json::Value = serde_json::from_str(&stats).expect("stats --json");
    assert_eq!(stats["sessions"], 1);
    assert_eq!(stats["pruned_results"], 1);
    assert_eq!(stats["retention"]["max_session_bytes"], 1024);
    bulkhead(&store, &config, &["sessions", "vacuum"]);

    bulkhead(&store, &config, &["sessions", "rm", &id]);
    let list = text(&bulkhead(&store, &config, &["sessions", "list", "--json"]).stdout);
    assert_eq!(list.trim(), "[]");
}
