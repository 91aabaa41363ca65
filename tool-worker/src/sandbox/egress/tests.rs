//! Network `proxied` as a tool gets it: the whole sandbox built in a
//! forked child (namespaces, relay, capabilities, Landlock, seccomp), a
//! Unix listener in the test standing in for the host's proxy.
//!
//! The one connection attempt to an outside address goes to 192.0.2.1
//! (TEST-NET-1, never routed), and only once the child's network namespace
//! is confirmed in force: inside it, nothing but `lo` exists.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bulkhead_ipc::{EgressRelay, FsRules, MechanismState, NetworkMode, OnMissing, SandboxSpec};

use super::{BYPASS_VARS, NODE_OPT_IN, PROXY_VARS};
use crate::sandbox::probe::in_child;
use crate::sandbox::{self, ToolFacts};

/// The relay's port in these tests; the namespace is the child's own, so
/// nothing else on the machine can hold it.
const PORT: u16 = 3128;

/// Long enough for a loaded CI machine, short enough that a broken relay
/// fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(10);

fn spec(egress: Option<EgressRelay>, on_missing: OnMissing) -> SandboxSpec {
    SandboxSpec {
        policy: "allow-list".into(),
        // What `sh` needs, and not the temporary directory that holds the
        // proxy's socket: the relay needs no rule for it.
        filesystem: Some(FsRules {
            read: ["/usr", "/bin", "/lib", "/lib64", "/etc", "/proc", "/dev"]
                .map(String::from)
                .to_vec(),
            // Its stderr goes there.
            write: vec!["/dev/null".into()],
            deny: vec![],
        }),
        network: NetworkMode::Proxied,
        isolate_processes: true,
        seccomp: true,
        on_missing,
        egress,
    }
}

/// Stands in for the host's proxy: answers each connection's first line
/// with a status line that quotes it, and reports the line on `seen`.
fn fake_proxy(listener: UnixListener) -> mpsc::Receiver<String> {
    let (seen, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let mut line = String::new();
            if BufReader::new(&conn).read_line(&mut line).is_err() {
                continue;
            }
            let answer = format!("HTTP/1.1 200 fake proxy saw {}\r\n", line.trim_end());
            let _ = (&conn).write_all(answer.as_bytes());
            let _ = seen.send(line);
        }
    });
    rx
}

/// The shell script that prints what a spawned tool sees: each proxy
/// variable, each bypass variable (or `unset`), and how many sockets it
/// holds (none may leak into it).
fn env_script() -> String {
    let mut script = String::new();
    for name in PROXY_VARS.iter().chain([&NODE_OPT_IN.0]) {
        script.push_str(&format!("echo \"{name}=${name}\"; "));
    }
    for name in BYPASS_VARS {
        script.push_str(&format!("echo \"{name}=${{{name}-unset}}\"; "));
    }
    script.push_str(
        "n=0; for f in /proc/self/fd/*; do case $(readlink \"$f\") in socket:*) n=$((n+1));; \
         esac; done; echo \"sockets=$n\"",
    );
    script
}

fn in_force(states: &[MechanismState], mechanism: &str) -> Result<String, String> {
    match states.iter().find(|s| s.mechanism == mechanism) {
        Some(s) if s.enforced => Ok(s.detail.clone()),
        other => Err(format!("{mechanism} not in force: {other:?}")),
    }
}

fn errno_of(r: std::io::Result<TcpStream>) -> String {
    match r {
        Ok(_) => "connected".into(),
        // Debug is the bare name, e.g. ECONNREFUSED.
        Err(e) => format!(
            "{:?}",
            nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0))
        ),
    }
}

/// The child: builds the sandbox as a shell call would get it, then tries
/// what the tool could. One `key=value` per line.
fn tool_side(spec: &SandboxSpec) -> Result<String, String> {
    nix::sys::prctl::set_no_new_privs().map_err(|e| e.to_string())?;
    // SAFETY: the forked child has one thread until `begin` starts the
    // relay's.
    unsafe {
        std::env::set_var("NO_PROXY", "localhost,127.0.0.1");
        std::env::set_var("no_proxy", "*");
        std::env::set_var("HTTPS_PROXY", "http://somewhere-else:8080");
    }
    let facts = ToolFacts {
        spawns_processes: true,
        paths: vec![],
    };
    let states = sandbox::begin(spec, facts)
        .finish()
        .map_err(|r| r.message)?;
    for m in ["net_ns", "pid_ns", "landlock_fs", "seccomp"] {
        in_force(&states, m)?;
    }
    let mut out = format!("relay={}\n", in_force(&states, "egress_relay")?);

    // Through the relay, to the proxy.
    let conn = TcpStream::connect(("127.0.0.1", PORT)).map_err(|e| format!("relay: {e}"))?;
    conn.set_read_timeout(Some(WAIT))
        .map_err(|e| e.to_string())?;
    (&conn)
        .write_all(b"CONNECT example.test:443 HTTP/1.1\r\n")
        .map_err(|e| format!("write to the relay: {e}"))?;
    let mut answer = String::new();
    BufReader::new(&conn)
        .read_line(&mut answer)
        .map_err(|e| format!("read from the relay: {e}"))?;
    out.push_str(&format!("answer={}\n", answer.trim_end()));

    // Any other port of the namespace's loopback: nobody listens.
    let other = TcpStream::connect(("127.0.0.1", PORT + 1));
    out.push_str(&format!("other_port={}\n", errno_of(other)));
    // Outside: no route from the namespace (checked in force above).
    let outside: SocketAddr = ([192, 0, 2, 1], 80).into();
    let outside = TcpStream::connect_timeout(&outside, WAIT);
    out.push_str(&format!("outside={}\n", errno_of(outside)));

    // A spawned tool's view, while the relay and `conn` hold sockets.
    let shown = Command::new("/bin/sh")
        .arg("-c")
        .arg(env_script())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("sh: {e}"))?;
    out.push_str(&String::from_utf8_lossy(&shown.stdout));
    drop(conn);
    Ok(out)
}

#[test]
fn the_tool_reaches_the_host_proxy_through_the_relay_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("proxy.sock");
    let seen = fake_proxy(UnixListener::bind(&socket).unwrap());
    let spec = spec(
        Some(EgressRelay {
            socket_path: socket.to_str().unwrap().into(),
            port: PORT,
        }),
        OnMissing::BestEffort,
    );
    let report = in_child(|| tool_side(&spec)).unwrap_or_else(|e| panic!("child: {e}"));
    let lines: Vec<(&str, &str)> = report.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |key: &str| {
        lines
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {key} in:\n{report}"))
    };
    assert!(
        get("relay").starts_with("network proxied: 127.0.0.1:3128 "),
        "{report}"
    );
    assert_eq!(
        get("answer"),
        "HTTP/1.1 200 fake proxy saw CONNECT example.test:443 HTTP/1.1",
        "{report}"
    );
    assert_eq!(
        seen.recv_timeout(WAIT).unwrap(),
        "CONNECT example.test:443 HTTP/1.1\r\n"
    );
    assert_eq!(get("other_port"), "ECONNREFUSED", "{report}");
    assert_eq!(get("outside"), "ENETUNREACH", "{report}");
    let url = format!("http://127.0.0.1:{PORT}");
    for name in PROXY_VARS {
        assert_eq!(get(name), url, "{name} in:\n{report}");
    }
    assert_eq!(get(NODE_OPT_IN.0), NODE_OPT_IN.1, "{report}");
    for name in BYPASS_VARS {
        assert_eq!(get(name), "unset", "{name} in:\n{report}");
    }
    assert_eq!(
        get("sockets"),
        "0",
        "sockets leaked into the tool:\n{report}"
    );
}

#[test]
fn without_a_usable_proxy_require_refuses_naming_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, "").unwrap();
    let cases = [
        (None, "named no proxy"),
        (
            Some(EgressRelay {
                socket_path: file.to_str().unwrap().into(),
                port: PORT,
            }),
            "is not a socket",
        ),
        (
            Some(EgressRelay {
                socket_path: "relative.sock".into(),
                port: PORT,
            }),
            "not absolute",
        ),
    ];
    for (egress, why) in cases {
        let spec = spec(egress, OnMissing::Require);
        let refused = in_child(|| {
            // SAFETY: the forked child has one thread. The test's own
            // environment may name a proxy.
            unsafe { std::env::remove_var("HTTPS_PROXY") };
            let facts = ToolFacts {
                spawns_processes: false,
                paths: vec![],
            };
            match sandbox::begin(&spec, facts).finish() {
                Ok(_) => Err("the sandbox was built".into()),
                // The environment was left as it was.
                Err(_) if std::env::var_os("HTTPS_PROXY").is_some() => {
                    Err("HTTPS_PROXY set without a relay".into())
                }
                Err(r) => Ok(r.message),
            }
        })
        .unwrap_or_else(|e| panic!("{why}: {e}"));
        assert!(refused.contains("egress_relay ("), "{refused}");
        assert!(refused.contains(why), "{refused}");
    }
}
