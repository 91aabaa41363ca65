//! Worker discovery and the version handshake, through the real `bulkhead`
//! binary placed in scratch directories: the worker beside the executable
//! wins, then `BULKHEAD_WORKER`, then the config file's `worker` key; with
//! none, the error says where it looked and what to set; a worker of another
//! version is refused with both versions named.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bulkhead_tests::bin;

/// A directory holding a copy of `bulkhead` (hard-linked when possible),
/// deep enough that the `../bulkhead-worker` candidate is inside it too.
struct Layout {
    _dir: tempfile::TempDir,
    bin_dir: PathBuf,
    scratch: PathBuf,
}

impl Layout {
    fn new() -> Layout {
        let dir = tempfile::Builder::new()
            .prefix("discovery-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let bin_dir = dir.path().join("bin");
        let scratch = dir.path().join("scratch");
        std::fs::create_dir_all(&bin_dir).unwrap();
        std::fs::create_dir_all(&scratch).unwrap();
        place(&bin("bulkhead"), &bin_dir.join("bulkhead"));
        Layout {
            _dir: dir,
            bin_dir,
            scratch,
        }
    }

    fn bulkhead(&self, env: &[(&str, &Path)], args: &[&str]) -> Output {
        let mut cmd = Command::new(self.bin_dir.join("bulkhead"));
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &self.scratch)
            .current_dir(&self.scratch)
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

fn place(from: &Path, to: &Path) {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).unwrap();
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn no_worker_anywhere_is_an_error_that_says_where_it_looked() {
    let l = Layout::new();
    let out = l.bulkhead(&[], &["run", "shell", r#"{"command":"true"}"#]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("bulkhead-worker not found"), "{t}");
    assert!(
        t.contains(&l.bin_dir.join("bulkhead-worker").display().to_string()),
        "{t}"
    );
    assert!(t.contains("BULKHEAD_WORKER"), "{t}");
}

#[test]
fn bulkhead_worker_env_is_used_when_none_is_beside_bulkhead() {
    let l = Layout::new();
    let worker = bin("bulkhead-worker");
    let out = l.bulkhead(&[("BULKHEAD_WORKER", &worker)], &["--version"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("found through BULKHEAD_WORKER"), "{t}");
    let out = l.bulkhead(
        &[("BULKHEAD_WORKER", &worker)],
        &["run", "shell", r#"{"command":"echo via env"}"#],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "via env\n",
        "{}",
        text(&out)
    );
}

#[test]
fn the_config_files_worker_key_is_the_last_resort() {
    let l = Layout::new();
    let config = l.scratch.join("config.toml");
    let worker = bin("bulkhead-worker");
    std::fs::write(
        &config,
        format!("worker = {:?}\n", worker.display().to_string()),
    )
    .unwrap();
    let cfg = config.display().to_string();
    let out = l.bulkhead(&[], &["--config", &cfg, "doctor", "--no-trial", "--json"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["worker"]["found_by"], "through the config file's worker key",
        "{v}"
    );

    std::fs::write(&config, "worker = \"relative/bulkhead-worker\"\n").unwrap();
    let out = l.bulkhead(&[], &["--config", &cfg, "doctor", "--no-trial"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("must be an absolute path"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_worker_beside_bulkhead_wins_over_the_environment() {
    let l = Layout::new();
    place(&bin("bulkhead-worker"), &l.bin_dir.join("bulkhead-worker"));
    let elsewhere = l.scratch.join("no-such-worker");
    let out = l.bulkhead(&[("BULKHEAD_WORKER", &elsewhere)], &["--version"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("found next to the bulkhead executable"), "{t}");
    assert!(!t.contains("MISMATCH"), "{t}");
}

#[test]
fn a_worker_of_another_version_is_refused_with_both_versions_named() {
    let l = Layout::new();
    // fake-worker answers the handshake as version 0.0.0-other; the
    // host passes workers no variables but its allowlist, so a wrapper
    // script sets the fault mode.
    let script = l.bin_dir.join("bulkhead-worker");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nBULKHEAD_FAKE_MODE=wrong-version exec {} \"$@\"\n",
            bin("fake-worker").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = l.bulkhead(&[], &["run", "shell", r#"{"command":"true"}"#, "--json"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "failed", "{v}");
    let error = v["error"].as_str().unwrap_or_default().to_owned() + &v.to_string();
    let ours = format!("bulkhead {}", env!("CARGO_PKG_VERSION"));
    assert!(error.contains(&ours), "{v}");
    assert!(error.contains("bulkhead-worker 0.0.0-other"), "{v}");
}
