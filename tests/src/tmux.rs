//! A real terminal for the TUI tests: tmux on its own socket, a pane of a
//! fixed size, keys in, `capture-pane` out, and polling with a deadline
//! (never a fixed sleep).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One tmux server with one pane running a command.
pub struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// Starts `argv` (run directly, not through a shell) in an 80×24 pane
    /// whose processes see only `env` (plus PATH and TERM). The pane stays
    /// after the command exits, so its status can be read.
    pub fn start(dir: &Path, argv: &[String], env: &[(&str, String)]) -> Tmux {
        let socket = dir.join("tmux.sock");
        let conf = dir.join("tmux.conf");
        std::fs::write(&conf, "set -g remain-on-exit on\nset -g status off\n")
            .expect("write tmux.conf");
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&socket).arg("-f").arg(&conf);
        cmd.args(["new-session", "-d", "-x", "80", "-y", "24", "-s", "t", "--"]);
        cmd.arg("env").arg("-i");
        cmd.arg(format!(
            "PATH={}",
            std::env::var("PATH").unwrap_or_default()
        ));
        cmd.arg("TERM=xterm-256color");
        for (k, v) in env {
            cmd.arg(format!("{k}={v}"));
        }
        cmd.args(argv);
        let status = cmd
            .status()
            .expect("tmux must be installed (apt-get install tmux)");
        assert!(status.success(), "tmux new-session failed: {status}");
        Tmux { socket }
    }

    fn tmux(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket);
        c
    }

    /// Sends keys in tmux's names (`Enter`, `C-d`, `C-k`).
    pub fn keys(&self, keys: &[&str]) {
        let ok = self
            .tmux()
            .args(["send-keys", "-t", "t"])
            .args(keys)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "tmux send-keys {keys:?} failed");
    }

    /// Types text literally, then Enter.
    pub fn line(&self, text: &str) {
        let ok = self
            .tmux()
            .args(["send-keys", "-t", "t", "-l", text])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "tmux send-keys -l failed");
        self.keys(&["Enter"]);
    }

    /// The screen as text.
    pub fn screen(&self) -> String {
        let out = self
            .tmux()
            .args(["capture-pane", "-p", "-t", "t"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the screen until `ready` holds; panics with the last screen
    /// when `deadline` passes.
    pub fn wait_for(&self, what: &str, deadline: Duration, ready: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + deadline;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < until,
                "waited {deadline:?} for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The pid of the pane's process (the command, as `env` execs it).
    pub fn pid(&self) -> i32 {
        let out = self
            .tmux()
            .args(["display-message", "-p", "-t", "t", "#{pane_pid}"])
            .output()
            .expect("tmux display-message");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("pane pid")
    }

    /// Ctrl-D, then waits for the app to exit; returns its status.
    pub fn quit(&self, deadline: Duration) -> i32 {
        self.keys(&["C-d"]);
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.exit_status() {
                return status;
            }
            assert!(
                Instant::now() < until,
                "Ctrl-D did not quit:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `Some(status)` once the pane's command has exited: its exit code,
    /// or 128 + the signal that killed it.
    pub fn exit_status(&self) -> Option<i32> {
        let out = self
            .tmux()
            .args([
                "display-message",
                "-p",
                "-t",
                "t",
                "#{pane_dead} #{pane_dead_status} #{pane_dead_signal}",
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut parts = text.split_whitespace();
        if parts.next() != Some("1") {
            return None;
        }
        let status: Option<i32> = parts.next().and_then(|s| s.parse().ok());
        let signal: Option<i32> = parts.next().and_then(|s| s.parse().ok());
        match (status, signal) {
            (_, Some(sig)) if sig > 0 => Some(128 + sig),
            (Some(code), _) => Some(code),
            // Dead, but tmux has not filled in how yet.
            _ => None,
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").status();
    }
}

/// A `kB` field of `/proc/PID/status` (e.g. `VmHWM:`), in bytes.
pub fn proc_status_bytes(pid: i32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|k| k * 1024)
}

/// The environment of a `bulkhead` TUI on a scratch HOME and store.
pub fn tui_env(dir: &Path) -> Vec<(&'static str, String)> {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("scratch home");
    vec![
        ("HOME", home.display().to_string()),
        ("XDG_STATE_HOME", dir.join("state").display().to_string()),
        (
            "BULKHEAD_STORE",
            dir.join("sessions.db").display().to_string(),
        ),
        ("NO_COLOR", "1".to_owned()),
    ]
}

/// `bulkhead --config CONFIG` in model mode, on a scratch HOME, with the
/// store at `store` and the test's API key; waits for the model's name in
/// the status bar.
pub fn start_model_mode(dir: &Path, config: &Path, store: &Path, deadline: Duration) -> Tmux {
    let mut env = tui_env(dir);
    env.retain(|(k, _)| *k != "BULKHEAD_STORE");
    env.push(("BULKHEAD_STORE", store.display().to_string()));
    env.push(("BULKHEAD_TEST_KEY", "sk-test-secret-do-not-log".into()));
    let argv = [
        crate::bin("bulkhead").display().to_string(),
        "--config".into(),
        config.display().to_string(),
    ];
    let t = Tmux::start(dir, &argv, &env);
    t.wait_for("model mode in the status bar", deadline, |s| {
        s.contains("anthropic:test-model")
    });
    t
}
