//! Shared helpers for bulkhead's workspace-level tests.
//!
//! The tests drive the real `bulkhead` and `bulkhead-worker` binaries, built
//! by `cargo build --workspace` before `cargo test` (the README's test
//! command does both). They are found beside the test executable's profile
//! directory, so `CARGO_TARGET_DIR` and `--release` both work.

pub mod chaos_soak;
pub mod fuzz_checks;
pub mod launchers;
pub mod readme;
pub mod tmux;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

/// `target/<profile>`, from the running test binary (`target/<profile>/deps/…`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// Path of a workspace binary, checked to exist.
pub fn bin(name: &str) -> PathBuf {
    let p = profile_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --workspace --bins` before the tests (scripts/test does)",
        p.display()
    );
    p
}

/// `bulkhead run TOOL ARGS --json EXTRA…`, parsed.
pub fn run_json(tool: &str, args: &str, extra: &[&str]) -> (serde_json::Value, Output) {
    let out = Command::new(bin("bulkhead"))
        .args(["run", tool, args, "--json"])
        .args(extra)
        .output()
        .expect("spawn bulkhead");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "bulkhead --json printed no JSON object ({e}); stdout: {text:.2000}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, out)
}

/// True if `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_ascii_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Live children of `parent`, from the ppid field of `/proc/PID/stat`.
pub fn children_of(parent: u32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The command may hold spaces and ')': fields start after the last ')'.
            let ppid = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().nth(1));
            ppid == Some(parent.to_string().as_str())
        })
        .filter(|&pid| alive(pid))
        .collect()
}

/// Pids whose command line contains `needle` (a unique marker a test puts
/// in the command it runs), excluding this process.
pub fn pids_with_marker(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .filter(|&pid| alive(pid))
        .collect()
}

/// A marker unique to this test process and call site.
pub fn marker(tag: &str) -> String {
    format!("bulkhead-test-{tag}-{}", std::process::id())
}

/// Set in a test binary re-run by [`alone`]: the name of the one test the
/// re-run is for.
const ALONE_VAR: &str = "BULKHEAD_TEST_ALONE";

/// Runs `body` as the only test of a process of its own.
///
/// The tests of one area share a binary, so they run side by side as
/// threads of one process. A test that measures that process (its peak
/// RSS) or acts on all of its children (killing its workers) would see or
/// hit the other tests' memory and workers; run through this, it has the
/// process to itself, as when it was a binary of its own. `test` is the
/// test's full path, `concat!(module_path!(), "::NAME")`.
///
/// In the test run, this re-runs the test binary with that one test
/// (`--exact`) and fails unless the re-run ran it and it passed; the
/// re-run's output is printed here, so the harness shows it as the test's
/// own. In the re-run, it runs `body`.
pub fn alone(test: &str, body: impl FnOnce()) {
    // The harness names tests by their path without the crate, which is the
    // binary's name.
    let name = test.split_once("::").map_or(test, |(_, path)| path);
    if std::env::var(ALONE_VAR).is_ok_and(|v| v == name) {
        body();
        return;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(&exe)
        .args([name, "--exact", "--nocapture"])
        .env(ALONE_VAR, name)
        .output()
        .unwrap_or_else(|e| panic!("re-run {} for {name}: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    // A name that matched no test would pass with "0 passed": one passed
    // test is what shows that this one ran.
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed;"),
        "{name}, run in a process of its own, did not pass ({})",
        out.status
    );
}

/// An MCP peer from `MCP_*` (`scripts/test` installs them and exports it).
pub fn peer(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run the tests through scripts/test, which installs the MCP peers, \
             or eval \"$(../shared/peers/install-mcp-peers.sh target/mcp-peers)\" first"
        )
    })
}

/// The command line that runs `server` through `bulkhead mcp wrap` under
/// `untrusted`, with the `bulkhead` binary at `bulkhead`.
pub fn wrap_command(bulkhead: &Path, server: &[String]) -> Vec<String> {
    let mut cmd = vec![bulkhead.display().to_string()];
    cmd.extend(["mcp", "wrap", "--policy", "untrusted", "--"].map(String::from));
    cmd.extend(server.iter().cloned());
    cmd
}

/// The official inspector's answer for one method, against `server` (a
/// command line, or a URL and its `--transport`).
pub fn inspect(server: &[String], method: &[&str]) -> serde_json::Value {
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

/// What a driven `bulkhead mcp wrap` session gave.
pub struct WrapSession {
    /// Answers by id.
    pub answers: HashMap<u64, serde_json::Value>,
    /// The JSON of the `bulkhead: mcp wrap: ended` line on stderr.
    pub ended: serde_json::Value,
    pub stderr: String,
}

/// Drives a running `bulkhead mcp wrap` (stdio piped): sends `messages`,
/// reads answers until `expect` have come, closes stdin, reads the rest,
/// and collects the end.
pub fn drive_wrap(mut child: Child, messages: &[serde_json::Value], expect: usize) -> WrapSession {
    let mut stdin = child.stdin.take().expect("stdin piped");
    for m in messages {
        writeln!(stdin, "{m}").expect("write to wrap");
    }
    let mut answers = HashMap::new();
    let take = |answers: &mut HashMap<_, _>, line: String| {
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:.300}"));
        if let Some(id) = v["id"].as_u64() {
            answers.insert(id, v);
        }
    };
    let mut lines = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
    while answers.len() < expect {
        let Some(Ok(line)) = lines.next() else { break };
        take(&mut answers, line);
    }
    drop(stdin);
    // The rest of stdout (answers after the session's end) is read too.
    for line in lines.map_while(Result::ok) {
        take(&mut answers, line);
    }
    let out = child.wait_with_output().expect("wait for wrap");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let ended = stderr
        .lines()
        .find_map(|l| l.strip_prefix("bulkhead: mcp wrap: ended "))
        .map(|j| serde_json::from_str(j).expect("the ended line is JSON"))
        .unwrap_or_else(|| panic!("no end line: {stderr}"));
    WrapSession {
        answers,
        ended,
        stderr,
    }
}

/// Methods the inspector must answer alike from `server-everything` bare
/// and through `bulkhead mcp wrap`.
pub const INSPECTOR_METHODS: &[&[&str]] = &[
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

/// Each of [`INSPECTOR_METHODS`] answers the same from `direct` and from
/// `wrapped` (inspector targets), and without an error.
pub fn assert_same_answers(direct: &[String], wrapped: &[String]) {
    for method in INSPECTOR_METHODS {
        let bare = inspect(direct, method);
        let through = inspect(wrapped, method);
        assert_eq!(bare, through, "{method:?} differs through bulkhead");
        assert!(
            bare.get("error").is_none(),
            "{method:?} failed directly: {bare}"
        );
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

/// This process's own peak RSS (`VmHWM`), in bytes; 0 if it cannot be read.
pub fn own_peak_rss_bytes() -> u64 {
    proc_status_bytes(std::process::id() as i32, "VmHWM:").unwrap_or(0)
}

pub mod agent_chat;
pub mod model_server;
/// Runs `cmd` to its end and returns its exit code and its peak RSS in
/// bytes, from `wait4`'s rusage (measured by the kernel, not sampled).
///
/// Linux starts a child's `ru_maxrss` at the high-water mark of the address
/// space it was spawned from (the spawn shares this process's memory until
/// `exec`), so the figure is an upper bound: at least this test process's
/// own peak, which stays small because the tests build their fixtures in a
/// child (`store-writer`).
pub fn exit_and_peak_rss(cmd: &mut Command) -> (i32, u64) {
    let child = cmd.spawn().expect("spawn the measured command");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain old data; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet waited for (`child` is forgotten
    // below so its Drop does not touch the pid again).
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    std::mem::forget(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    // Linux reports ru_maxrss in KiB.
    (code, usage.ru_maxrss as u64 * 1024)
}

/// A loopback port nobody listens on now, for a server the test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed and reaped when dropped, so a failing assertion
/// leaves no server behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something listens on loopback `port`, failing the test
/// after `bound`.
pub fn wait_listening(port: u16, bound: std::time::Duration) {
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < bound, "nothing listens on {port}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
