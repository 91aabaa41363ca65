//! The escape suite: a hostile program (`escape-probe`) runs as a tool
//! under the `untrusted` policy and tries each way out the sandbox must
//! close. Every test asserts that the attempt failed *and why*: the errno
//! of the barrier that should have stopped it, and that the barrier was
//! reported as enforced.
//!
//! Where this machine lacks the mechanism, the test still runs the attempt
//! and asserts that the call's report names the mechanism as *not
//! enforced*. It never skips silently.
//!
//! `cargo test -p bulkhead-tests --test escape -- --nocapture` prints one
//! row of the escape matrix per attempt (RELIABILITY.md keeps the table,
//! "Escapes").

mod builtin;
mod files;
mod kernel;
mod mcp;
mod network;
mod processes;

use std::path::PathBuf;
use std::process::Command;

use bulkhead_tests::bin;

/// A secret set in the host's environment; it must never reach a tool.
pub const SECRET_VAR: &str = "BULKHEAD_ESCAPE_TEST_TOKEN";

/// One sandboxed run of the probe.
pub struct Attempt {
    /// The probe's own JSON line.
    pub probe: serde_json::Value,
    /// The whole `bulkhead run --json` report.
    pub report: serde_json::Value,
    /// pid of the `bulkhead` host process that ran it.
    pub host_pid: u32,
}

impl Attempt {
    pub fn escaped(&self) -> bool {
        self.probe["escaped"] == true
    }

    pub fn errno_name(&self) -> &str {
        self.probe["errno_name"].as_str().unwrap_or("none")
    }

    /// The state the worker reported for `mechanism`, if it reported one.
    pub fn mechanism(&self, mechanism: &str) -> Option<&serde_json::Value> {
        self.report["enforcement"]["sandbox"]
            .as_array()?
            .iter()
            .find(|m| m["mechanism"] == mechanism)
    }

    pub fn enforced(&self, mechanism: &str) -> bool {
        self.mechanism(mechanism)
            .is_some_and(|m| m["enforced"] == true)
    }

    /// Asserts the attempt failed. If one of `mechanisms` is enforced, the
    /// errno must be one of `errnos` (the barrier's signature); if none is,
    /// the report must say each is not enforced. Returns the enforced
    /// mechanism, for the matrix.
    pub fn assert_stopped_by(&self, mechanisms: &[&str], errnos: &[&str]) -> String {
        let enforced: Vec<&str> = mechanisms
            .iter()
            .copied()
            .filter(|m| self.enforced(m))
            .collect();
        if enforced.is_empty() {
            for m in mechanisms {
                let state = self.mechanism(m);
                assert!(
                    state.is_some_and(|s| s["enforced"] == false),
                    "{m} is neither enforced nor reported as not enforced: {:#}",
                    self.report["enforcement"]
                );
            }
            let not_enforced = self.report["enforcement"]["not_enforced"].to_string();
            println!(
                "| {} | none here: {} reported not enforced ({not_enforced}) | {} |",
                self.probe["attempt"].as_str().unwrap_or("?"),
                mechanisms.join(", "),
                if self.escaped() {
                    "escaped (reported)"
                } else {
                    "failed anyway"
                }
            );
            return "not enforced".into();
        }
        assert!(
            !self.escaped(),
            "the attempt escaped: {:#}\n{:#}",
            self.probe,
            self.report["enforcement"]
        );
        assert!(
            errnos.contains(&self.errno_name()),
            "stopped, but with {} at stage {} (wanted {errnos:?} from {enforced:?}): {:#}",
            self.errno_name(),
            self.probe["stage"],
            self.probe
        );
        let by = enforced.join(" + ");
        println!(
            "| {} | {by} | blocked: {} {} |",
            self.probe["attempt"].as_str().unwrap_or("?"),
            self.probe["stage"].as_str().unwrap_or("?"),
            self.errno_name()
        );
        by
    }
}

/// A fake `$HOME` with an SSH key in it, and a scratch directory outside
/// every root.
pub struct Fixture {
    pub home: tempfile::TempDir,
    pub outside: tempfile::TempDir,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    pub fn new() -> Self {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".ssh")).unwrap();
        std::fs::write(
            home.path().join(".ssh/id_ed25519"),
            "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n",
        )
        .unwrap();
        Self {
            home,
            outside: tempfile::tempdir().unwrap(),
        }
    }

    pub fn secret_key(&self) -> PathBuf {
        self.home.path().join(".ssh/id_ed25519")
    }
}

/// Runs `escape-probe ARGS…` through the shell tool under `untrusted`,
/// with `$HOME` pointing at the fixture and a secret in the host's
/// environment. `extra` is added to the `bulkhead run` flags. `HOSTPID` in
/// an argument becomes the pid of the `bulkhead` process itself.
pub fn attempt(fx: &Fixture, probe_args: &[&str], extra: &[&str]) -> Attempt {
    attempt_with(fx, probe_args, extra, |_| {})
}

/// [`attempt`], with a hook to adjust the host's `Command` (extra fds).
pub fn attempt_with(
    fx: &Fixture,
    probe_args: &[&str],
    extra: &[&str],
    adjust: impl FnOnce(&mut Command),
) -> Attempt {
    let probe = bin("escape-probe");
    let probe_dir = probe.parent().unwrap().display().to_string();
    let command = std::iter::once(probe.display().to_string())
        .chain(probe_args.iter().map(|a| (*a).to_owned()))
        // `$TMPDIR` (the call's private temp dir) is expanded by the tool's
        // shell; everything else is quoted verbatim.
        .map(|a| match a.strip_prefix("$TMPDIR") {
            Some(rest) => format!("\"$TMPDIR{rest}\""),
            None => format!("'{}'", a.replace('\'', r"'\''")),
        })
        .collect::<Vec<_>>()
        .join(" ");
    let args_json = serde_json::json!({ "command": command }).to_string();
    // The host's pid goes into the tool's arguments before the host runs:
    // bash replaces HOSTPID with its own pid (`$$`), then execs bulkhead,
    // which keeps that pid.
    let mut cmd = Command::new("/bin/bash");
    cmd.args(["-c", r#"exec "$0" "${@//HOSTPID/$$}""#])
        .arg(bin("bulkhead"))
        .args([
            "run",
            "shell",
            &args_json,
            "--json",
            "--policy",
            "untrusted",
        ])
        .args(["--allow-read", &probe_dir])
        .args(extra)
        .env("HOME", fx.home.path())
        .env(SECRET_VAR, "hunter2-must-not-leak")
        .env_remove("BULKHEAD_CONFIG")
        .env("XDG_CONFIG_HOME", fx.home.path().join(".config"));
    adjust(&mut cmd);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn bulkhead");
    let host_pid = child.id();
    let out = child.wait_with_output().expect("wait for bulkhead");
    let text = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): stdout {text:.2000}; stderr {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let output = report["output"].as_str().unwrap_or_default();
    let line = output
        .lines()
        .find(|l| l.starts_with("{\"attempt\""))
        .unwrap_or_else(|| panic!("the probe printed no report: {report:#}"));
    let probe: serde_json::Value = serde_json::from_str(line).unwrap();
    Attempt {
        probe,
        report,
        host_pid,
    }
}

/// The value the worker reported for a non-sandbox confinement step
/// (rlimits, fds, session), e.g. `RLIMIT_FSIZE`.
pub fn applied<'a>(a: &'a Attempt, name: &str) -> &'a str {
    a.report["enforcement"]["worker"][name]
        .as_str()
        .unwrap_or("not reported")
}
