//! A real terminal for the TUI tests: tmux on its own socket, a pane of a
//! fixed size, keys in, `capture-pane` out, and polling with a deadline
//! (never a fixed sleep).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One tmux server with one pane running a command.
pub struct Tmux {
    socket: PathBuf,
    /// The wrapper shell writes the command's exit status here: tmux
    /// itself sometimes leaves a dead pane's status unset (its child
    /// stays a zombie), so the test does not rely on it.
    status_file: PathBuf,
}

impl Tmux {
    /// Starts `argv` (run directly, not through a shell) in an 80×24 pane
    /// whose processes see only `env` (plus PATH and TERM). The pane stays
    /// after the command exits, so its status can be read.
    pub fn start(dir: &Path, argv: &[String], env: &[(&str, String)]) -> Tmux {
        let socket = dir.join("tmux.sock");
        let status_file = dir.join("exit-status");
        let conf = dir.join("tmux.conf");
        std::fs::write(&conf, "set -g remain-on-exit on\nset -g status off\n")
            .expect("write tmux.conf");
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&socket).arg("-f").arg(&conf);
        cmd.args(["new-session", "-d", "-x", "80", "-y", "24", "-s", "t", "--"]);
        cmd.arg("sh").arg("-c");
        cmd.arg(format!("\"$@\"; echo $? > '{}'", status_file.display()));
        cmd.arg("sh").arg("env").arg("-i");
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
        Tmux {
            socket,
            status_file,
        }
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

    /// The pid of the command (the wrapper shell's child, as `env` execs it).
    pub fn pid(&self) -> i32 {
        let out = self
            .tmux()
            .args(["display-message", "-p", "-t", "t", "#{pane_pid}"])
            .output()
            .expect("tmux display-message");
        let shell: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("pane pid");
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(&pid) = crate::children_of(shell).first() {
                return pid;
            }
            assert!(Instant::now() < until, "the pane's command never started");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ctrl-D, then waits for the app to exit; returns its status.
    pub fn quit(&self, deadline: Duration) -> i32 {
        let pid = self.pid();
        self.keys(&["C-d"]);
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.exit_status() {
                return status;
            }
            if Instant::now() >= until {
                self.explain_stuck(pid);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Panics with what tmux and `/proc` say about a pane that did not end.
    fn explain_stuck(&self, pid: i32) -> ! {
        let raw = self
            .tmux()
            .args([
                "display-message",
                "-p",
                "-t",
                "t",
                "#{pane_dead} [#{pane_dead_status}] [#{pane_dead_signal}]",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let state = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("State:"))
                    .map(str::to_owned)
            });
        let threads: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
                    .collect()
            })
            .unwrap_or_default();
        panic!(
            "Ctrl-D did not quit: tmux says {raw:?}; pid {pid}: {state:?}, threads {threads:?}; the screen:\n{}",
            self.screen()
        );
    }

    /// `Some(status)` once the command has exited.
    pub fn exit_status(&self) -> Option<i32> {
        let text = std::fs::read_to_string(&self.status_file).ok()?;
        text.trim().parse().ok()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").status();
    }
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
