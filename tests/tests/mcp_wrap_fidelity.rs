//! `bulkhead mcp wrap` is transparent: the official inspector gets the same
//! answers from the reference server `server-everything` through bulkhead
//! (sandboxed under `untrusted`) as from the bare server.
//!
//! The peers come from the npm registry (`scripts/test` installs them with
//! `../shared/peers/install-mcp-peers.sh` and exports `MCP_*`).

use std::process::Command;

use bulkhead_tests::bin;

fn peer(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run the tests through scripts/test, which installs the MCP peers, \
             or eval \"$(../shared/peers/install-mcp-peers.sh target/mcp-peers)\" first"
        )
    })
}

/// The inspector's answer for one method, against `server` (a command line).
fn inspect(server: &[String], method: &[&str]) -> serde_json::Value {
    let out = Command::new(peer("MCP_NODE"))
        .arg(peer("MCP_INSPECTOR"))
        .arg("--cli")
        .args(server)
        .arg("--method")
        .args(method)
        .output()
        .expect("run the inspector");
    assert!(
        out.status.success(),
        "inspector {method:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "inspector printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn wrapped_server_everything_answers_like_the_bare_one() {
    let bare = vec![peer("MCP_NODE"), peer("MCP_EVERYTHING"), "stdio".to_owned()];
    let mut wrapped = vec![
        bin("bulkhead").display().to_string(),
        "mcp".into(),
        "wrap".into(),
        "--policy".into(),
        "untrusted".into(),
        "--".into(),
    ];
    wrapped.extend(bare.iter().cloned());
    let methods: &[&[&str]] = &[
        &["tools/list"],
        &[
            "tools/call",
            "--tool-name",
            "echo",
            "--tool-arg",
            "message=through the bulkhead",
        ],
        &[
            "tools/call",
            "--tool-name",
            "get-sum",
            "--tool-arg",
            "a=19",
            "b=23",
        ],
        &["tools/call", "--tool-name", "get-tiny-image"],
        &[
            "tools/call",
            "--tool-name",
            "get-structured-content",
            "--tool-arg",
            "location=New York",
        ],
        &["resources/list"],
        &[
            "resources/read",
            "--uri",
            "demo://resource/static/document/architecture.md",
        ],
        &["prompts/list"],
        &["prompts/get", "--prompt-name", "simple-prompt"],
        &[
            "prompts/get",
            "--prompt-name",
            "args-prompt",
            "--prompt-args",
            "city=Paris",
        ],
    ];
    for method in methods {
        let direct = inspect(&bare, method);
        let through = inspect(&wrapped, method);
        assert_eq!(direct, through, "{method:?} differs through bulkhead");
        assert!(
            direct.get("error").is_none(),
            "{method:?} failed directly: {direct}"
        );
    }
}
