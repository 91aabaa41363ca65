use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::answer::refused_hosts;
use super::server::check_peer_uid;
use super::*;
use crate::session::ServerState;

fn server(name: &str, calls: u64) -> LiveServer {
    LiveServer {
        name: name.into(),
        state: ServerState::Ready,
        last_error: None,
        restarts: 0,
        worker_pid: Some(42),
        rss_bytes: 1 << 20,
        peak_rss_bytes: 2 << 20,
        calls,
        errors: 0,
        egress_allowed: 0,
        egress_refused: 0,
        refused_hosts: Vec::new(),
        injected: 0,
        uptime_ms: Some(10),
        policy: "untrusted".into(),
        not_enforced: Vec::new(),
        tools: 3,
        package: None,
        stderr_last: None,
    }
}

fn open(dir: &Path, name: &str) -> ControlSocket {
    let source: StatusSource = Arc::new(|| vec![server("everything", 7)]);
    let info = GatewayInfo {
        name: name.into(),
        transport: "stdio".into(),
    };
    ControlSocket::bind(dir, info, source).unwrap()
}

/// What the socket at `path` answers to `request` (raw bytes sent).
async fn raw(path: &Path, request: &[u8]) -> String {
    let mut s = UnixStream::connect(path).await.unwrap();
    // The gateway stops reading at its cap, so a long write fails half
    // way; the answer is there to read all the same, and a read may end
    // with a reset (unread bytes were dropped) after it.
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn status_is_read_back_and_the_socket_is_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bulkhead/gateways");
    let socket = open(&dir, "g1");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(socket.path()), 0o600);
    let status = query(socket.path()).await.unwrap();
    assert_eq!(status.pid, std::process::id());
    assert_eq!(status.name, "g1");
    assert_eq!(status.servers.len(), 1);
    assert_eq!(status.servers[0].calls, 7);
    assert_eq!(status.servers[0].state, ServerState::Ready);
    let found = discover(&dir).await.unwrap();
    assert!(
        matches!(&found[..], [Found::Gateway(p, Ok(s))] if p == socket.path() && s.name == "g1"),
        "{found:?}"
    );
    let path = socket.path().to_owned();
    drop(socket);
    assert!(!path.exists(), "the socket is removed when it closes");
}

#[tokio::test]
async fn a_loose_directory_is_made_private_and_another_users_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("g");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    private_dir(&dir).unwrap();
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
        let e = private_dir(&dir).unwrap_err().to_string();
        assert!(e.contains("owned by uid 65534"), "{e}");
    }
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_a_live_one_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("gw");
    private_dir(&dir).unwrap();
    let path = dir.join("g2.sock");
    // A killed gateway leaves its socket file with nobody listening.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert_eq!(probe(&path).unwrap(), Probe::Stale);
    let socket = open(&dir, "g2");
    assert_eq!(probe(&path).unwrap(), Probe::Live);
    assert_eq!(query(&path).await.unwrap().servers[0].calls, 7);
    let source: StatusSource = Arc::new(Vec::new);
    let info = GatewayInfo {
        name: "g2".into(),
        transport: "stdio".into(),
    };
    let Err(e) = ControlSocket::bind(&dir, info, source) else {
        panic!("a live socket was taken over");
    };
    assert!(matches!(e, ControlError::InUse(_)), "{e}");
    drop(socket);
    // Discovery removes what a killed gateway left.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let found = discover(&dir).await.unwrap();
    assert!(
        matches!(&found[..], [Found::Stale(p)] if p == &path),
        "{found:?}"
    );
    assert!(!path.exists());
}

#[tokio::test]
async fn closing_does_not_remove_a_later_gateways_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = open(tmp.path(), "g3");
    let path = socket.path().to_owned();
    std::fs::remove_file(&path).unwrap();
    let _other = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(socket);
    assert!(
        path.exists(),
        "another socket at the same path is left alone"
    );
}

#[tokio::test]
async fn bad_requests_get_a_bounded_error() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = open(tmp.path(), "g4");
    let long = vec![b'x'; 1 << 20];
    let out = raw(socket.path(), &long).await;
    assert!(out.contains("over 64 bytes"), "{out}");
    let out = raw(socket.path(), b"reboot\n").await;
    assert!(
        out.contains("unknown request") && out.contains("status"),
        "{out}"
    );
    let out = raw(socket.path(), b"\xff\xfe\n").await;
    assert!(out.contains("not UTF-8"), "{out}");
    // Without a newline, a request ended by closing is still one.
    let mut s = UnixStream::connect(socket.path()).await.unwrap();
    s.write_all(b"status").await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.contains("\"servers\""), "{out}");
    // It still serves.
    assert_eq!(query(socket.path()).await.unwrap().name, "g4");
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_closed_and_connections_are_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = open(tmp.path(), "g5");
    let mut silent = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        silent.push(UnixStream::connect(socket.path()).await.unwrap());
    }
    // Let the gateway take them all.
    tokio::task::yield_now().await;
    let out = raw(socket.path(), b"").await;
    assert!(out.contains("busy"), "{out}");
    // Each silent one is answered and closed after the read timeout.
    for s in &mut silent {
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.contains("no request within 5 s"), "{out}");
    }
    assert_eq!(query(socket.path()).await.unwrap().name, "g5");
}

#[test]
fn only_the_same_uid_may_connect() {
    assert!(check_peer_uid(1000, 1000).is_ok());
    let e = check_peer_uid(65534, 1000).unwrap_err();
    assert!(e.contains("65534") && e.contains("1000"), "{e}");
}

#[test]
fn refused_hosts_are_named_once() {
    let messages = [
        "egress to evil.example:443 refused: not in the allow list".to_owned(),
        "egress to evil.example:443 refused: not in the allow list (again)".to_owned(),
        "egress refused: not valid HTTP".to_owned(),
        "egress to 10.0.0.1:80 refused: a private address".to_owned(),
    ];
    assert_eq!(
        refused_hosts(&messages),
        ["evil.example:443", "10.0.0.1:80"]
    );
}

#[test]
fn names_become_safe_file_names() {
    assert!(dir_check("g-1.a_b").is_ok());
    for bad in ["", ".hidden", "a/b", "../x", &"n".repeat(33)] {
        assert!(dir_check(bad).is_err(), "{bad:?}");
    }
}

fn dir_check(name: &str) -> Result<(), ControlError> {
    super::dir::check_name(name)
}

#[test]
fn a_socket_named_by_a_live_pid_is_told_apart() {
    let dir = Path::new("/run/x");
    let own = dir.join(format!("{}.sock", std::process::id()));
    assert!(super::dir::named_by_live_pid(&own));
    // Above the largest pid Linux hands out (2^22).
    assert!(!super::dir::named_by_live_pid(&dir.join("4194305.sock")));
    assert!(!super::dir::named_by_live_pid(&dir.join("gateway.sock")));
    assert!(!super::dir::named_by_live_pid(&dir.join("0.sock")));
}
