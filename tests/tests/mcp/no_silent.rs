//! No silent failures in `bulkhead mcp wrap`: a server that does not
//! answer `initialize` in time, or ends before it does, gets the client a
//! JSON-RPC error that says why (the policy, the egress refused, the
//! server's last stderr lines, the flag that would likely fix it), the
//! same diagnosis goes to stderr, and egress refusals show on stderr as
//! they happen. `mcp status` counts each server's egress.
//!
//! Every wait is bounded, and nothing races the clock: where a diagnosis
//! must hold a fact (a stderr line, a refusal), the test waits until
//! bulkhead has shown that fact on its stderr before it sends the
//! `initialize` whose timer starts the diagnosis.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use bulkhead_tests::{bin, marker, pids_with_marker};
use serde_json::{Value, json};

/// Far longer than any of these steps takes, even on a loaded 2-core CI
/// machine; a bound, so a regression fails the test instead of hanging it.
const GENEROUS: Duration = Duration::from_secs(60);

/// The refusal the proxy records for `curl http://evil.example/`.
const REFUSAL: &str = "egress to evil.example:80 refused: not in the allow list";

/// A running `bulkhead mcp wrap`, its output read by threads into
/// channels, so every wait on it can be bounded.
struct Wrap {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Receiver<String>,
    err: Receiver<String>,
    /// Every stderr line read so far.
    stderr: Vec<String>,
}

impl Wrap {
    fn start(flags: &[&str], server: &[&str]) -> Wrap {
        let mut child = Command::new(bin("bulkhead"))
            .args(["mcp", "wrap"])
            .args(flags)
            .arg("--")
            .args(server)
            .env_remove("BULKHEAD_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bulkhead mcp wrap");
        let stdin = child.stdin.take();
        let out = lines_of(child.stdout.take().expect("stdout piped"));
        let err = lines_of(child.stderr.take().expect("stderr piped"));
        Wrap {
            child,
            stdin,
            out,
            err,
            stderr: Vec::new(),
        }
    }

    fn send(&mut self, message: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{message}").expect("write to wrap");
        stdin.flush().expect("flush to wrap");
    }

    /// Waits until a stderr line contains `needle`.
    fn wait_stderr(&mut self, needle: &str) {
        let deadline = Instant::now() + GENEROUS;
        while !self.stderr.iter().any(|l| l.contains(needle)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err.recv_timeout(left) {
                Ok(line) => self.stderr.push(line),
                Err(e) => self.fail(&format!("no stderr line with {needle:?} ({e:?})")),
            }
        }
    }

    /// Waits for the answer to request `id`.
    fn answer(&mut self, id: u64) -> Value {
        let deadline = Instant::now() + GENEROUS;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(line) => {
                    let v: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("not JSON ({e}): {line:.300}"));
                    if v["id"] == json!(id) {
                        return v;
                    }
                }
                Err(e) => self.fail(&format!("no answer to {id} ({e:?})")),
            }
        }
    }

    /// Closes stdin and waits for the end; returns the exit code, the rest
    /// of stdout's lines and all of stderr.
    fn finish(mut self) -> (Option<i32>, Vec<String>, String) {
        drop(self.stdin.take());
        let deadline = Instant::now() + GENEROUS;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => self.fail("bulkhead mcp wrap did not end after its stdin closed"),
            }
        };
        let out: Vec<String> = drain(&self.out);
        self.stderr.extend(drain(&self.err));
        (status.code(), out, self.stderr.join("\n"))
    }

    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr.extend(self.err.try_iter());
        panic!("{why}; stderr:\n{}", self.stderr.join("\n"));
    }
}

/// The lines of `pipe`, read on a thread of their own.
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// What is left in `rx` once its writer has ended (bounded: the pipe's
/// writer, the process, is gone).
fn drain(rx: &Receiver<String>) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(GENEROUS) {
            Ok(line) => lines.push(line),
            Err(RecvTimeoutError::Disconnected) => return lines,
            Err(RecvTimeoutError::Timeout) => panic!("a pipe stayed open after its process ended"),
        }
    }
}

fn initialize(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "no-silent-test", "version": "1"}}})
}

fn message_of(answer: &Value) -> String {
    answer["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {answer}"))
        .to_owned()
}

#[test]
fn a_server_that_never_answers_gets_a_diagnosis_with_policy_and_stderr() {
    // The file is outside everything `untrusted` reads: the server's
    // `cat` of it is refused, and says so on stderr; then it reads its
    // stdin and never answers.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.txt");
    std::fs::write(&file, "secret").unwrap();
    let file = file.to_str().unwrap();
    let mark = marker("no-silent-quiet");
    let mut wrap = Wrap::start(
        &["--policy", "untrusted", "--init-timeout", "1s"],
        &["sh", "-c", "cat \"$1\"; cat >/dev/null", &mark, file],
    );
    wrap.wait_stderr("Permission denied");
    wrap.send(&initialize(7));
    let answer = wrap.answer(7);
    assert_eq!(answer["error"]["code"], -32001, "{answer}");
    let message = message_of(&answer);
    for wanted in [
        "did not answer initialize within 1 s",
        "policy untrusted",
        &format!("cat: {file}: Permission denied"),
        &format!("likely fix: --allow-read {file}"),
    ] {
        assert!(
            message.contains(wanted),
            "{wanted:?} missing from:\n{message}"
        );
    }
    let data = &answer["error"]["data"]["bulkhead"];
    assert!(
        data["hints"][0]
            .as_str()
            .unwrap()
            .starts_with("--allow-read"),
        "{data}"
    );
    let (code, rest, stderr) = wrap.finish();
    assert_eq!(code, Some(0), "{stderr}");
    // One block on stderr, and the server's own stand-in answer, when it
    // ends at EOF, is dropped: the client has one answer for id 7.
    assert!(
        stderr.contains("bulkhead: mcp wrap: the MCP server did not answer initialize within 1 s"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the client already has bulkhead's error for its initialize"),
        "{stderr}"
    );
    assert!(
        !rest.iter().any(|l| l.contains("\"id\":7")),
        "a second answer: {rest:?}"
    );
    assert!(
        pids_with_marker(&mark).is_empty(),
        "a server process survived"
    );
}

#[test]
fn egress_refusals_show_live_and_in_the_diagnosis() {
    let mark = marker("no-silent-egress");
    let mut wrap = Wrap::start(
        &["--allow-net", "localhost:1", "--init-timeout", "1s"],
        &[
            "sh",
            "-c",
            "curl -s -o /dev/null http://evil.example/; cat >/dev/null",
            &mark,
        ],
    );
    // The refusal is printed as it happens, before any client request.
    wrap.wait_stderr(&format!("bulkhead: mcp wrap: {REFUSAL}"));
    wrap.send(&initialize(1));
    let message = message_of(&wrap.answer(1));
    assert!(message.contains(REFUSAL), "{message}");
    assert!(
        message.contains("likely fix: --allow-net evil.example"),
        "{message}"
    );
    let (_, _, stderr) = wrap.finish();
    let live = stderr
        .lines()
        .filter(|l| *l == format!("bulkhead: mcp wrap: {REFUSAL}"))
        .count();
    assert_eq!(live, 1, "each distinct refusal once:\n{stderr}");
    assert!(
        pids_with_marker(&mark).is_empty(),
        "a server process survived"
    );
}

/// The start is one short readable line, so the server's own messages stand
/// out in a client's MCP log; the whole report only with `--report-json`.
#[test]
fn the_start_is_one_short_line_before_the_servers_own_output() {
    const SERVER: [&str; 3] = ["sh", "-c", "echo hello-from-the-server >&2; cat >/dev/null"];
    let mut wrap = Wrap::start(&[], &SERVER);
    wrap.wait_stderr("hello-from-the-server");
    let before: Vec<&String> = wrap
        .stderr
        .iter()
        .take_while(|l| !l.contains("hello-from-the-server"))
        .collect();
    let ours: Vec<&&String> = before
        .iter()
        .filter(|l| l.starts_with("bulkhead: mcp wrap:"))
        .collect();
    assert_eq!(ours.len(), 1, "{before:#?}");
    let line = ours[0];
    assert!(line.len() < 300, "{} bytes: {line}", line.len());
    assert!(
        line.starts_with("bulkhead: mcp wrap: policy untrusted (network none")
            && line.contains(" mechanisms enforced"),
        "{line}"
    );
    // Anything else before the server's output names a mechanism not in force.
    for l in &before {
        assert!(
            l.starts_with("bulkhead: mcp wrap:") || l.contains(": NOT ENFORCED: "),
            "{l}"
        );
    }
    let (_, _, stderr) = wrap.finish();
    assert!(!stderr.contains("mcp wrap: sandbox {"), "{stderr}");

    let mut wrap = Wrap::start(&["--report-json"], &SERVER);
    wrap.wait_stderr("hello-from-the-server");
    let (_, _, stderr) = wrap.finish();
    let report: Value = stderr
        .lines()
        .find_map(|l| l.strip_prefix("bulkhead: mcp wrap: sandbox "))
        .map(|j| serde_json::from_str(j).expect("the report is JSON"))
        .unwrap_or_else(|| panic!("no report with --report-json: {stderr}"));
    assert!(report["sandbox"].is_array(), "{report}");
}

#[test]
fn a_server_that_exits_before_answering_says_how_it_ended() {
    let mark = marker("no-silent-exit");
    let mut wrap = Wrap::start(
        &["--allow-net", "localhost:1"],
        &[
            "sh",
            "-c",
            "curl -s -o /dev/null http://evil.example/; echo 'fatal: no config' >&2; exit 3",
            &mark,
        ],
    );
    wrap.send(&initialize(1));
    let answer = wrap.answer(1);
    let message = message_of(&answer);
    for wanted in [
        "ended before answering initialize: the MCP server exited (code 3)",
        REFUSAL,
        "fatal: no config",
    ] {
        assert!(
            message.contains(wanted),
            "{wanted:?} missing from:\n{message}"
        );
    }
    let (code, _, stderr) = wrap.finish();
    assert_eq!(code, Some(3), "{stderr}");
}

#[test]
fn status_counts_each_servers_egress() {
    let dir = tempfile::tempdir().unwrap();
    let mark = marker("no-silent-status");
    // A server that tries a host it may not reach, then answers like an
    // MCP server (initialize, then tools/list, echoing their ids). The
    // second's pause is ten times the host's 100 ms sampling of the
    // egress figures, so they are current when the server is ready.
    let script = r#"curl -s -o /dev/null http://evil.example/; sleep 1
id() { echo "$1" | sed 's/.*"id":\([0-9]*\).*/\1/'; }
read l; echo "{\"jsonrpc\":\"2.0\",\"id\":$(id "$l"),\"result\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{\"tools\":{}},\"serverInfo\":{\"name\":\"egressy\",\"version\":\"1\"}}}"
read l; read l; echo "{\"jsonrpc\":\"2.0\",\"id\":$(id "$l"),\"result\":{\"tools\":[]}}"
cat >/dev/null"#;
    let servers = dir.path().join("servers.json");
    let doc = json!({"mcpServers": {"egressy": {"command": "sh", "args": ["-c", script, &mark]}}});
    std::fs::write(&servers, doc.to_string()).unwrap();
    let config = dir.path().join("bulkhead.toml");
    std::fs::write(
        &config,
        "[servers.egressy]\nallow_net = [\"localhost:1\"]\n",
    )
    .unwrap();
    let status = |json: bool| {
        let mut cmd = Command::new(bin("bulkhead"));
        cmd.arg("--config")
            .arg(&config)
            .args(["mcp", "status", "--servers"]);
        cmd.arg(&servers);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("run bulkhead mcp status");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let v: Value = serde_json::from_str(&status(true)).unwrap();
    let s = &v[0];
    assert_eq!(s["state"], "ready", "{s}");
    assert_eq!(s["egress_allowed"], 0, "{s}");
    assert_eq!(s["egress_refused"], 1, "{s}");
    assert_eq!(s["last_egress_refusal"], REFUSAL, "{s}");
    let table = status(false);
    assert!(table.contains("egress a/r"), "{table}");
    assert!(table.contains(" 0/1 "), "{table}");
    assert!(table.contains(&format!("last {REFUSAL}")), "{table}");
    // The servers end with the command.
    let deadline = Instant::now() + GENEROUS;
    while !pids_with_marker(&mark).is_empty() {
        assert!(Instant::now() < deadline, "a server process survived");
        std::thread::sleep(Duration::from_millis(100));
    }
}
