//! Helpers for the agent-loop tests: a config pointing `bulkhead chat` at
//! the local model server, a run of the real binary, and what it reported.

use std::path::{Path, PathBuf};
use std::process::Output;

/// A scratch directory with a config and a store for `bulkhead chat`.
pub struct ChatSetup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub store: PathBuf,
}

impl ChatSetup {
    /// `agent_toml` is the body of `[agents.a]` (and any sub-tables).
    pub fn new(base_url: &str, provider: &str, context_tokens: u64, agent_toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("bulkhead.toml");
        let store = dir.path().join("store").join("sessions.db");
        let text = format!(
            "[defaults]\nmodel = \"mock\"\nagent = \"a\"\n\n\
             [models.mock]\nprovider = \"{provider}\"\nmodel = \"test-model\"\n\
             base_url = \"{base_url}\"\napi_key_env = \"BULKHEAD_TEST_KEY\"\n\
             max_tokens = 1024\ncontext_tokens = {context_tokens}\n\n\
             [agents.a]\n{agent_toml}\n"
        );
        std::fs::write(&config, text).expect("write config");
        Self { dir, config, store }
    }

    /// Runs `bulkhead chat` with `args` (the prompt last) off the test's
    /// runtime thread, so the in-process model server keeps answering.
    pub async fn chat(&self, args: &[&str]) -> Output {
        let mut cmd = std::process::Command::new(crate::bin("bulkhead"));
        cmd.arg("--config")
            .arg(&self.config)
            .arg("chat")
            .arg("--store")
            .arg(&self.store)
            .args(args)
            .current_dir(self.dir.path())
            .env("BULKHEAD_TEST_KEY", "sk-test-secret-do-not-log")
            .env("BULKHEAD_WORKER", crate::bin("bulkhead-worker"));
        tokio::task::spawn_blocking(move || cmd.output().expect("run bulkhead chat"))
            .await
            .expect("join")
    }
}

/// The host's own peak RSS, from chat's last stderr line
/// (`… host peak 9.1 MiB (9543680 bytes)`).
pub fn reported_peak(stderr: &str) -> u64 {
    stderr
        .rsplit_once("host peak ")
        .and_then(|(_, rest)| rest.split_once('(')?.1.split_once(" bytes)"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no host peak in stderr:\n{stderr}"))
}

/// The session id chat printed (`bulkhead: session 3 · …`).
pub fn session_id(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("bulkhead: session "))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no session in stderr:\n{stderr}"))
}

/// A tree of `files` files, each with `per_file` lines holding `needle`.
pub fn needle_tree(root: &Path, files: usize, per_file: usize) {
    for i in 0..files {
        let dir = root.join(format!("d{:02}", i % 50));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let body: String = (0..per_file)
            .map(|j| format!("line {j} of file {i}: the needle is here\nfiller\n"))
            .collect();
        std::fs::write(dir.join(format!("f{i:04}.txt")), body).expect("write");
    }
}
