//! Helpers for the agent-loop tests: a config pointing `bulkhead chat` at
//! the local model server, a run of the real binary, and what it reported.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bulkhead_store::{Item, ItemPage, SessionId, Store};

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
        let mut cmd = self.command(args);
        tokio::task::spawn_blocking(move || cmd.output().expect("run bulkhead chat"))
            .await
            .expect("join")
    }

    /// Starts `bulkhead chat`, for a test that acts while it runs.
    pub fn spawn(&self, args: &[&str]) -> Running {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start bulkhead chat");
        let (stdout, out_reader) = collect(child.stdout.take().expect("stdout"));
        let (stderr, err_reader) = collect(child.stderr.take().expect("stderr"));
        Running {
            child,
            stdout,
            stderr,
            readers: [out_reader, err_reader],
        }
    }

    /// The items of session `id`, oldest first, read from the store page
    /// by page (texts cut to 4 KiB).
    pub fn items(&self, id: &str) -> Vec<Item> {
        let store = Store::open(&self.store).expect("open the store");
        let id: SessionId = id.parse().expect("session id");
        let mut all: Vec<Item> = Vec::new();
        loop {
            let page = ItemPage {
                after_seq: all.last().map_or(0, |i| i.seq),
                limit: 500,
                preview_bytes: 4096,
            };
            let items = store.items(id, page).expect("read items");
            if items.is_empty() {
                return all;
            }
            all.extend(items);
        }
    }

    /// `bulkhead sessions show ID` on this store: what a user sees of the
    /// session.
    pub fn sessions_show(&self, id: &str) -> String {
        let out = Command::new(crate::bin("bulkhead"))
            .arg("--config")
            .arg(&self.config)
            .arg("--store")
            .arg(&self.store)
            .args(["sessions", "show", id])
            .output()
            .expect("run bulkhead sessions show");
        assert!(
            out.status.success(),
            "sessions show: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn command(&self, args: &[&str]) -> Command {
        // `bin` checks that both were built.
        let (_, _) = (crate::bin("bulkhead"), crate::bin("bulkhead-worker"));
        self.command_in(&crate::profile_dir(), args)
    }

    /// `bulkhead chat ARGS…` with `bulkhead` and `bulkhead-worker` from
    /// `bin_dir` (the bench runs the release build).
    pub fn command_in(&self, bin_dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin_dir.join("bulkhead"));
        cmd.arg("--config")
            .arg(&self.config)
            .arg("chat")
            .arg("--store")
            .arg(&self.store)
            .args(args)
            .current_dir(self.dir.path())
            .env("BULKHEAD_TEST_KEY", "sk-test-secret-do-not-log")
            .env("BULKHEAD_WORKER", bin_dir.join("bulkhead-worker"));
        cmd
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

/// A `bulkhead chat` running, its output gathered as it comes.
pub struct Running {
    pub child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: [JoinHandle<()>; 2],
}

/// What a finished run printed.
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// How long a test waits for a running chat to reach a point: far longer
/// than any step takes on a loaded machine; only a broken run waits it out.
const REACH_DEADLINE: Duration = Duration::from_secs(60);

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits until `reached` holds, checked every 20 ms (panics with the
    /// output so far after a minute).
    pub async fn wait_until(&self, what: &str, mut reached: impl FnMut(&str, &str) -> bool) {
        let start = Instant::now();
        loop {
            let (out, err) = (text(&self.stdout), text(&self.stderr));
            if reached(&out, &err) {
                return;
            }
            assert!(
                start.elapsed() < REACH_DEADLINE,
                "chat never reached: {what}\nstdout:\n{out}\nstderr:\n{err}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGINT, as Ctrl-C in a terminal does.
    pub fn interrupt(&self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGINT,
        )
        .expect("send SIGINT");
    }

    /// Waits for the exit (off the runtime thread) and the rest of the
    /// output.
    pub async fn finish(mut self) -> Finished {
        tokio::task::spawn_blocking(move || {
            let status = self.child.wait().expect("wait for chat");
            for reader in self.readers {
                reader.join().expect("output reader");
            }
            Finished {
                code: status.code(),
                stdout: text(&self.stdout),
                stderr: text(&self.stderr),
            }
        })
        .await
        .expect("join")
    }
}

fn text(buf: &Mutex<String>) -> String {
    buf.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Reads `pipe` to its end on a thread, into a shared string.
fn collect(mut pipe: impl Read + Send + 'static) -> (Arc<Mutex<String>>, JoinHandle<()>) {
    let buf = Arc::new(Mutex::new(String::new()));
    let shared = buf.clone();
    let reader = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            shared
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    (buf, reader)
}
