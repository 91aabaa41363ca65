//! The same attempts, made by a hostile *MCP server* run through
//! `bulkhead mcp wrap --policy untrusted`: `escape-probe mcp` answers each
//! `tools/call` by making the attempt in its own process. One session, one
//! request per attempt; each answer is checked like the tool's.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use bulkhead_tests::{bin, marker, pids_with_marker};
use serde_json::{Value, json};

use crate::{Attempt, Fixture, SECRET_VAR, applied};

/// How an answer is judged.
enum Check {
    /// Stopped by one of these mechanisms, with one of these errnos (or
    /// reported not enforced).
    Barrier(&'static [&'static str], &'static [&'static str]),
    /// Failed with this errno, and the worker reported this confinement
    /// step (`None`: a cgroup cap, which the host applies).
    Errno(&'static str, Option<&'static str>),
    /// Did not escape (what is checked is done after the session).
    Spawned,
}

#[test]
fn a_hostile_mcp_server_is_stopped_like_a_hostile_tool() {
    let fx = Fixture::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let resolver = UdpSocket::bind("127.0.0.1:0").unwrap();
    resolver.set_nonblocking(true).unwrap();
    let leaked = std::fs::File::open(fx.secret_key()).unwrap();
    let fd = leaked.as_raw_fd();
    let mark = marker("escape-mcp-outlive");
    let key = fx.secret_key().display().to_string();
    let outside = fx.outside.path().join("planted").display().to_string();
    let tcp = listener.local_addr().unwrap().to_string();
    let dns = resolver.local_addr().unwrap().to_string();

    let probe = bin("escape-probe").display().to_string();
    let mut cmd = Command::new(bin("bulkhead"));
    // `--report-json`: the barriers are checked against the whole report.
    cmd.args([
        "mcp",
        "wrap",
        "--report-json",
        "--policy",
        "untrusted",
        "--pids",
        "64",
    ])
    .args(["--max-file-size", "1M", "--", &probe, "mcp"])
    .env("HOME", fx.home.path())
    .env(SECRET_VAR, "hunter2-must-not-leak")
    .env_remove("BULKHEAD_CONFIG")
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    // SAFETY: clears FD_CLOEXEC on an fd we own, in the child, on purpose.
    unsafe {
        cmd.pre_exec(move || {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn bulkhead mcp wrap");
    drop(leaked);
    let host_pid = child.id();
    let host = host_pid.to_string();
    let fd = fd.to_string();

    let cases: Vec<(Vec<&str>, Check)> = vec![
        (
            vec!["read_secret", "--path", &key],
            Check::Barrier(&["landlock_fs"], &["EACCES"]),
        ),
        (
            vec!["symlink_secret", "--path", &key, "--link-dir", "$TMPDIR"],
            Check::Barrier(&["landlock_fs"], &["EACCES"]),
        ),
        (
            vec!["write_outside", "--path", &outside],
            Check::Barrier(&["landlock_fs"], &["EACCES"]),
        ),
        (
            vec!["tcp_connect", "--addr", &tcp],
            Check::Barrier(
                &["net_ns", "landlock_tcp", "seccomp_net"],
                &["ENETUNREACH", "EACCES", "EPERM"],
            ),
        ),
        (
            vec!["dns", "--server", &dns, "--name", "example.test"],
            Check::Barrier(&["net_ns", "seccomp_net"], &["ENETUNREACH", "EPERM"]),
        ),
        (
            vec!["signal_host", "--pid", &host],
            Check::Barrier(&["pid_ns", "landlock_scope"], &["ESRCH", "EPERM"]),
        ),
        (
            vec!["ptrace_host", "--pid", &host],
            Check::Barrier(&["seccomp"], &["EPERM"]),
        ),
        (
            vec!["read_environ", "--pid", &host, "--secret", SECRET_VAR],
            Check::Barrier(&["landlock_fs"], &["EACCES"]),
        ),
        (
            vec!["inherited_fd", "--fd", &fd],
            Check::Errno("EBADF", Some("inherited_fds")),
        ),
        (vec!["outlive", "--marker", &mark], Check::Spawned),
        (
            vec!["fork_bomb", "--max", "2000"],
            Check::Errno("EAGAIN", None),
        ),
        (
            vec!["fill_disk", "--dir", "$TMPDIR", "--limit", "1048576"],
            Check::Errno("EFBIG", Some("RLIMIT_FSIZE")),
        ),
        (vec!["tiocsti"], Check::Barrier(&["seccomp"], &["EPERM"])),
        (
            vec!["mount", "--dir", "$TMPDIR"],
            Check::Barrier(&["seccomp"], &["EPERM"]),
        ),
        (
            vec!["load_module"],
            Check::Barrier(&["seccomp"], &["EPERM"]),
        ),
    ];

    let mut stdin = child.stdin.take().unwrap();
    let mut send = |v: Value| writeln!(stdin, "{v}").unwrap();
    send(
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "escape-test", "version": "1"}}}),
    );
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    for (i, (argv, _)) in cases.iter().enumerate() {
        send(
            json!({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
            "params": {"name": "attempt", "arguments": {"argv": argv}}}),
        );
    }
    // Read every answer before closing the server's stdin: its EOF ends
    // the session.
    let mut answers = std::collections::HashMap::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while answers.len() < cases.len() + 1 {
        let line = lines.next().expect("the session ended early").unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        answers.insert(v["id"].as_u64().unwrap(), v);
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let sandbox: Value = stderr
        .lines()
        .find_map(|l| l.strip_prefix("bulkhead: mcp wrap: sandbox "))
        .map(|j| serde_json::from_str(j).unwrap())
        .unwrap_or_else(|| panic!("no sandbox line on stderr: {stderr}"));
    assert_eq!(sandbox["policy"], "untrusted");

    for (i, (argv, check)) in cases.iter().enumerate() {
        let answer = &answers[&(i as u64 + 1)];
        let text = answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}"));
        let attempt = Attempt {
            probe: serde_json::from_str(text).unwrap_or_else(|e| panic!("{argv:?}: {e}: {text}")),
            report: json!({ "enforcement": sandbox }),
            host_pid,
        };
        match check {
            Check::Barrier(mechanisms, errnos) => {
                attempt.assert_stopped_by(mechanisms, errnos);
            }
            Check::Errno(errno, step) => {
                assert!(!attempt.escaped(), "{argv:?}: {}", attempt.probe);
                assert_eq!(attempt.errno_name(), *errno, "{argv:?}: {}", attempt.probe);
                if let Some(step) = step {
                    assert_ne!(applied(&attempt, step), "not reported", "{step}: {sandbox}");
                }
            }
            Check::Spawned => assert_eq!(attempt.probe["stage"], "spawned", "{}", attempt.probe),
        }
    }
    let survivors = pids_with_marker(&mark);
    assert!(
        survivors.is_empty(),
        "outlived the MCP session: {survivors:?}"
    );
    assert!(listener.accept().is_err(), "the listener got a connection");
    assert!(!fx.outside.path().join("planted").exists());
}
