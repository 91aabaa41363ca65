//! `bulkhead run --session` records the limits its call ran under
//! (memory cap, `--max-output`, `--timeout`) in the result item's meta, so
//! a reopened session shows them. Real binary, real store in a temp dir.

use std::process::Command;

use bulkhead_store::{ItemKind, ItemPage, RecordedLimits, Store};
use bulkhead_tests::bin;

#[test]
fn a_recorded_call_keeps_its_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("sessions.db");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "").expect("config");
    let out = Command::new(bin("bulkhead"))
        .arg("--store")
        .arg(&store)
        .arg("--config")
        .arg(&config)
        .args([
            "run",
            "shell",
            r#"{"command":"echo hi"}"#,
            "--memory",
            "300MiB",
            "--max-output",
            "3MiB",
            "--timeout",
            "7m",
            "--session",
            "new",
        ])
        .output()
        .expect("spawn bulkhead");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "bulkhead run: {said}");
    let id = said
        .split("recording into session ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the session id on stderr")
        .parse()
        .expect("a session id");
    let store = Store::open(&store).expect("open the store");
    let page = ItemPage {
        after_seq: 0,
        limit: 100,
        preview_bytes: 4096,
    };
    let items = store.items(id, page).expect("items");
    let result = items
        .iter()
        .find(|i| i.kind == ItemKind::ToolResult)
        .expect("a result item");
    let recorded = result
        .meta_json
        .as_deref()
        .and_then(RecordedLimits::from_meta)
        .expect("limits in the result's meta");
    assert_eq!(
        recorded,
        RecordedLimits {
            memory_bytes: 300 << 20,
            max_output_bytes: 3 << 20,
            timeout_ms: 420_000,
        }
    );
}
