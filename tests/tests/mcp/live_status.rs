//! `bulkhead mcp status` reading running gateways through their control
//! sockets: live counts from a stdio and an HTTP gateway, a restart after
//! the server's worker is killed, bad control clients, another user, the
//! socket removed on exit and a stale one replaced.
//!
//! Each test gives its gateways and its `status` runs a runtime directory
//! of its own (`XDG_RUNTIME_DIR`), so they see no other test's gateway.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bulkhead_tests::{KillOnDrop, alive, bin, free_port, peer, wait_listening};
use serde_json::{Value, json};

/// How long a gateway may take to start its servers or restart one: node
/// loads server-everything in a second or two, on a loaded 2-core machine
/// far longer.
const BOUND: Duration = Duration::from_secs(120);

/// The control directory under a test's runtime directory.
fn control_dir(runtime: &Path) -> PathBuf {
    runtime.join("bulkhead/gateways")
}

fn servers_file(dir: &Path, with_everything: bool) -> PathBuf {
    let path = dir.join("servers.json");
    let servers = if with_everything {
        json!({"everything": {"command": peer("MCP_NODE"), "args": [peer("MCP_EVERYTHING"), "stdio"]}})
    } else {
        json!({})
    };
    std::fs::write(&path, json!({ "mcpServers": servers }).to_string()).unwrap();
    path
}

/// `bulkhead mcp serve` on stdio, its control socket in `runtime`.
fn stdio_gateway(
    runtime: &Path,
    servers: &Path,
    extra: &[&str],
) -> (KillOnDrop, ChildStdin, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(bin("bulkhead"))
        .args(["mcp", "serve", "--servers"])
        .arg(servers)
        .args(extra)
        .env("XDG_RUNTIME_DIR", runtime)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (KillOnDrop(child), stdin, stdout)
}

/// Sends a request on stdio and waits for its answer.
fn ask(
    stdin: &mut ChildStdin,
    out: &mut BufReader<std::process::ChildStdout>,
    id: u64,
    method: &str,
    params: Value,
) -> Value {
    writeln!(
        stdin,
        "{}",
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
    )
    .unwrap();
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the gateway closed stdout"
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["id"] == id {
            return v;
        }
    }
}

/// `bulkhead mcp status ARGS…` with `runtime` as its runtime directory.
fn status(runtime: &Path, args: &[&str]) -> Output {
    Command::new(bin("bulkhead"))
        .args(["mcp", "status"])
        .args(args)
        .env("XDG_RUNTIME_DIR", runtime)
        .output()
        .unwrap()
}

/// The gateways `status --json` reports.
fn gateways(runtime: &Path) -> Vec<Value> {
    let out = status(runtime, &["--json"]);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    v.as_array().unwrap().clone()
}

/// The one gateway `status --json` reports.
fn one_gateway(runtime: &Path) -> Value {
    let list = gateways(runtime);
    assert_eq!(list.len(), 1, "{list:?}");
    list[0].clone()
}

/// Polls the status until the gateway's control socket is open and `done`
/// holds for its first server.
fn wait_server(runtime: &Path, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let list = gateways(runtime);
        assert!(list.len() <= 1, "{list:?}");
        if let Some(g) = list.first()
            && done(&g["servers"][0])
        {
            return g.clone();
        }
        assert!(start.elapsed() < BOUND, "{what}: {list:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < BOUND, "{} did not exit", child.id());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_stdio_gateway_reports_live_counts_and_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = tmp.path();
    let servers = servers_file(runtime, true);
    let (mut gw, mut stdin, mut out) = stdio_gateway(runtime, &servers, &[]);
    ask(
        &mut stdin,
        &mut out,
        0,
        "initialize",
        json!({"protocolVersion": "2025-06-18"}),
    );
    for id in 1..=3 {
        let a = ask(
            &mut stdin,
            &mut out,
            id,
            "tools/call",
            json!({"name": "everything__get-sum", "arguments": {"a": id, "b": 1}}),
        );
        assert!(
            a["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("is"),
            "{a}"
        );
    }
    // A call the server answers with an error counts as one.
    let bad = ask(
        &mut stdin,
        &mut out,
        4,
        "tools/call",
        json!({"name": "everything__no-such-tool", "arguments": {}}),
    );
    assert!(
        bad.get("error").is_some() || bad["result"]["isError"] == true,
        "{bad}"
    );

    let g = wait_server(runtime, "memory sampled", |s| {
        s["rss_bytes"].as_u64() > Some(0)
    });
    assert_eq!(g["pid"], gw.0.id(), "{g}");
    assert_eq!(g["transport"], "stdio");
    let socket = PathBuf::from(g["socket"].as_str().unwrap());
    assert_eq!(
        socket,
        control_dir(runtime).join(format!("{}.sock", gw.0.id()))
    );
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(control_dir(runtime))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    let s = &g["servers"][0];
    assert_eq!(s["name"], "everything");
    assert_eq!(s["state"], "ready", "{s}");
    assert_eq!(s["calls"], 4, "{s}");
    assert_eq!(s["errors"], 1, "{s}");
    assert_eq!(s["restarts"], 0, "{s}");
    assert!(
        s["peak_rss_bytes"].as_u64().unwrap() >= s["rss_bytes"].as_u64().unwrap(),
        "{s}"
    );
    assert!(s["uptime_ms"].as_u64().is_some(), "{s}");
    assert!(s["tools"].as_u64().unwrap() >= 10, "{s}");
    let worker = s["worker_pid"].as_u64().expect("the worker's pid") as i32;
    assert!(alive(worker));

    // The text form: a header for the gateway, a row for the server.
    let text = status(runtime, &[]);
    assert!(text.status.success(), "{text:?}");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("gateway {}", gw.0.id())) && text.contains("stdio"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("everything") && l.contains("ready")),
        "{text}"
    );
    // By pid, the same gateway.
    let by_pid = status(runtime, &["--json", "--gateway", &gw.0.id().to_string()]);
    let by_pid: Value = serde_json::from_slice(&by_pid.stdout).unwrap();
    assert_eq!(by_pid[0]["pid"], gw.0.id());

    // Killed from outside, the server is restarted within its budget.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let g = wait_server(runtime, "restarted", |s| {
        s["restarts"] == 1
            && s["state"] == "ready"
            && s["worker_pid"].as_u64().is_some_and(|p| p as i32 != worker)
    });
    let s = &g["servers"][0];
    assert!(s["last_error"].as_str().unwrap().contains("killed"), "{s}");
    assert_eq!(s["calls"], 4, "counts outlive a restart: {s}");

    // The client goes away: the gateway exits and takes its socket along.
    drop(stdin);
    let exit = wait_exit(&mut gw.0);
    assert!(exit.success(), "{exit:?}");
    assert!(!socket.exists(), "the socket outlived its gateway");
    let none = status(runtime, &[]);
    assert_eq!(none.status.code(), Some(3), "{none:?}");
    let e = String::from_utf8_lossy(&none.stderr);
    assert!(
        e.contains("no running gateway") && e.contains("--probe"),
        "{e}"
    );
}

/// One JSON-RPC POST to the HTTP gateway; its answer and session id.
fn http_post(port: u16, session: Option<&str>, msg: &Value) -> (Value, Option<String>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(BOUND)).unwrap();
    let body = msg.to_string();
    let sid = session
        .map(|s| format!("Mcp-Session-Id: {s}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{sid}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    let session = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("mcp-session-id:")
            .map(|v| v.trim().to_owned())
    });
    let start = body.find('{').unwrap_or(0);
    let end = body.rfind('}').map_or(body.len(), |i| i + 1);
    (
        serde_json::from_str(&body[start..end]).unwrap_or(Value::Null),
        session,
    )
}

#[test]
fn an_http_gateway_reports_live_counts_and_removes_its_socket_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = tmp.path();
    let port = free_port();
    let mut gw = KillOnDrop(
        Command::new(bin("bulkhead"))
            .args(["mcp", "serve", "--servers"])
            .arg(servers_file(runtime, true))
            .args(["--http", &format!("127.0.0.1:{port}")])
            .env("XDG_RUNTIME_DIR", runtime)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(port, BOUND);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    let (_, sid) = http_post(port, None, &init);
    let sid = sid.expect("a session id");
    for id in 1..=2 {
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "everything__get-sum", "arguments": {"a": 2, "b": id}}});
        let (a, _) = http_post(port, Some(&sid), &call);
        assert!(
            a["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or("")
                .contains("The sum"),
            "{a}"
        );
    }
    let g = wait_server(runtime, "memory sampled", |s| {
        s["rss_bytes"].as_u64() > Some(0)
    });
    assert_eq!(g["pid"], gw.0.id());
    assert_eq!(g["transport"], format!("http://127.0.0.1:{port}/mcp"));
    let s = &g["servers"][0];
    assert_eq!(
        (
            s["state"].as_str(),
            s["calls"].as_u64(),
            s["errors"].as_u64()
        ),
        (Some("ready"), Some(2), Some(0)),
        "{s}"
    );
    let worker = s["worker_pid"].as_u64().unwrap() as i32;

    // SIGTERM: the socket is removed, and the gateway still dies of it
    // as before (a shell's 128 + 15), its server's worker with it.
    let socket = PathBuf::from(g["socket"].as_str().unwrap());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(gw.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let exit = wait_exit(&mut gw.0);
    assert_eq!(exit.code(), Some(143), "{exit:?}");
    assert!(!socket.exists(), "the socket outlived its gateway");
    let start = Instant::now();
    while alive(worker) {
        assert!(
            start.elapsed() < BOUND,
            "the server's worker {worker} outlived the gateway"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A gateway with no servers (built-in tools only): quick to start.
/// `name`: its `--name`, else it is named by its pid.
fn bare_gateway(runtime: &Path, name: Option<&str>) -> (KillOnDrop, ChildStdin, PathBuf) {
    let servers = servers_file(runtime, false);
    let extra = name.map(|n| vec!["--name", n]).unwrap_or_default();
    let (gw, stdin, _out) = stdio_gateway(runtime, &servers, &extra);
    let name = name.map_or_else(|| gw.0.id().to_string(), str::to_owned);
    let socket = control_dir(runtime).join(format!("{name}.sock"));
    let start = Instant::now();
    while UnixStream::connect(&socket).is_err() {
        assert!(
            start.elapsed() < BOUND,
            "no control socket at {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (gw, stdin, socket)
}

/// Sends `request` raw and reads what comes back until the gateway closes.
fn raw(socket: &Path, request: &[u8]) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(BOUND)).unwrap();
    // The gateway stops reading at its cap: a long write fails part way.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn bad_control_clients_get_a_bounded_answer_and_the_gateway_stays_up() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = tmp.path();
    let (mut gw, _stdin, socket) = bare_gateway(runtime, None);
    let out = raw(&socket, &vec![b'x'; 4 << 20]);
    assert!(out.contains("over 64 bytes"), "{out}");
    let out = raw(&socket, b"shutdown\n");
    assert!(out.contains("unknown request"), "{out}");
    // A client that never writes is answered and closed after the read
    // timeout (5 s), not held.
    let started = Instant::now();
    let out = raw(&socket, b"");
    assert!(out.contains("no request within 5 s"), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert!(gw.0.try_wait().unwrap().is_none(), "the gateway died");
    let g = one_gateway(runtime);
    assert_eq!(g["pid"], gw.0.id());
    assert_eq!(g["servers"], json!([]));
}

#[test]
fn a_stale_socket_is_replaced_and_status_removes_one() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = tmp.path();
    let dir = control_dir(runtime);
    std::fs::create_dir_all(&dir).unwrap();
    // What a SIGKILLed gateway leaves: a socket file nobody listens on,
    // one of a gateway named by its pid, one of a named one.
    let stale = dir.join("4000000.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let named = dir.join("work.sock");
    drop(UnixListener::bind(&named).unwrap());
    let (gw, _stdin, socket) = bare_gateway(runtime, Some("work"));
    assert_eq!(socket, named);
    // bare_gateway waited for it to answer: the dead file was replaced.
    assert!(!stale.exists(), "the new gateway removes the stale socket");
    let g = one_gateway(runtime);
    assert_eq!(
        (&g["pid"], &g["name"]),
        (&json!(gw.0.id()), &json!("work")),
        "{g}"
    );
    let by_name = status(runtime, &["--json", "--gateway", "work"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&by_name.stdout).unwrap()[0]["pid"],
        gw.0.id()
    );
    // The name is taken while it runs: a second gateway of that name is a
    // usage error before anything starts; so is a name that is no file name.
    for bad in ["work", "../x"] {
        let second = Command::new(bin("bulkhead"))
            .args(["mcp", "serve", "--name", bad])
            .env("XDG_RUNTIME_DIR", runtime)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(second.status.code(), Some(2), "{second:?}");
        assert!(
            String::from_utf8_lossy(&second.stderr).contains("--name"),
            "{second:?}"
        );
    }
    let stale = dir.join("4000001.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let out = status(runtime, &["--json"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("removed") && e.contains("4000001.sock"), "{e}");
    assert!(!stale.exists());
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(socket.exists());
    // A gateway named that is not running: said so, exit 3.
    let out = status(runtime, &["--json", "--gateway", "4000002"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
}

#[test]
fn another_user_cannot_read_the_gateway() {
    let uid = nix::unistd::geteuid();
    if !uid.is_root() || Command::new("setpriv").arg("--version").output().is_err() {
        // Without root and setpriv the check is proven by the control
        // module's unit test of the credential rule.
        eprintln!("skipped: needs root and setpriv to act as another user");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let runtime = tmp.path();
    let (_gw, _stdin, socket) = bare_gateway(runtime, None);
    let as_nobody = || {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin("bulkhead"))
            .args(["mcp", "status", "--json", "--gateway"])
            .arg(&socket)
            .env("XDG_RUNTIME_DIR", runtime)
            .output()
            .unwrap()
    };
    // The directory keeps another user out of reach.
    std::fs::set_permissions(runtime, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        runtime.join("bulkhead"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let out = as_nobody();
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v[0]["error"].as_str().unwrap().contains("ermission denied"),
        "{v}"
    );
    // Opened up by mistake, the socket still serves only its own user:
    // the peer's credentials are checked.
    std::fs::set_permissions(control_dir(runtime), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = as_nobody();
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v[0]["error"]
            .as_str()
            .unwrap()
            .contains("without answering"),
        "{v}"
    );
    assert_eq!(one_gateway(runtime)["control_refused"], 1);
}

#[test]
fn refused_egress_is_counted_and_its_host_named() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = tmp.path();
    let mark = bulkhead_tests::marker("live-status-egress");
    // A server that tries a host it may not reach, then answers like an
    // MCP server (initialize, then tools/list, echoing their ids).
    let script = r#"curl -s -o /dev/null http://evil.example/
id() { echo "$1" | sed 's/.*"id":\([0-9]*\).*/\1/'; }
read l; echo "{\"jsonrpc\":\"2.0\",\"id\":$(id "$l"),\"result\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{\"tools\":{}},\"serverInfo\":{\"name\":\"egressy\",\"version\":\"1\"}}}"
read l; read l; echo "{\"jsonrpc\":\"2.0\",\"id\":$(id "$l"),\"result\":{\"tools\":[]}}"
cat >/dev/null"#;
    let servers = runtime.join("servers.json");
    let doc = json!({"mcpServers": {"egressy": {"command": "sh", "args": ["-c", script, &mark]}}});
    std::fs::write(&servers, doc.to_string()).unwrap();
    let config = runtime.join("bulkhead.toml");
    std::fs::write(
        &config,
        "[servers.egressy]\nallow_net = [\"localhost:1\"]\n",
    )
    .unwrap();
    let mut child = Command::new(bin("bulkhead"))
        .arg("--config")
        .arg(&config)
        .args(["mcp", "serve", "--servers"])
        .arg(&servers)
        .env("XDG_RUNTIME_DIR", runtime)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _stdin = child.stdin.take();
    let _gw = KillOnDrop(child);
    let g = wait_server(runtime, "the refusal counted", |s| {
        s["state"] == "ready" && s["egress_refused"] == 1
    });
    let s = &g["servers"][0];
    assert_eq!(s["refused_hosts"], json!(["evil.example:80"]), "{s}");
    assert_eq!(s["egress_allowed"], 0, "{s}");
    let text = status(runtime, &[]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("egress refused to: evil.example:80"),
        "{text}"
    );
}
