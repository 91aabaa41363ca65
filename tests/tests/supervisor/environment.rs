//! The host's secrets never reach a tool: workers get an allowlisted
//! environment, and bulkhead's own variables are removed before the tool runs.

use std::process::Command;

use bulkhead_tests::bin;

#[test]
fn host_secrets_do_not_reach_the_tool() {
    let out = Command::new(bin("bulkhead"))
        .args(["run", "shell", r#"{"command":"env"}"#, "--json"])
        .env("OPENAI_API_KEY", "sk-test-secret-value")
        .env("AWS_SECRET_ACCESS_KEY", "aws-secret-value")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let env = v["output"].as_str().unwrap();
    assert!(env.contains("PATH="), "PATH is allowlisted: {env}");
    for leaked in [
        "sk-test-secret-value",
        "aws-secret-value",
        "BULKHEAD_HOST_PID",
    ] {
        assert!(!env.contains(leaked), "{leaked} reached the tool: {env}");
    }
    let report = v["enforcement"]["worker"]["environment"].as_str().unwrap();
    assert!(
        report.starts_with("allowlist only:") && report.contains("PATH"),
        "{report}"
    );
}
