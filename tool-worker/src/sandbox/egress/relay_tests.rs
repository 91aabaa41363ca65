//! The relay alone, on the test's own loopback (no namespace needed): it
//! copies both ways through buffers far smaller than the data, passes a
//! half-close on, holds to its connection cap, and says when the proxy is
//! missing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use super::{Bounds, Target, spawn};

/// Starts a relay on an ephemeral port of 127.0.0.1 toward `socket`.
fn relay_to(socket: &Path, bounds: Bounds) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let target = Target::new(socket.to_str().unwrap()).unwrap();
    spawn(listener, target, bounds).unwrap();
    addr
}

/// A proxy that answers each connection's first line with `ok LINE`, then
/// waits for the client's end and closes.
fn line_proxy(listener: UnixListener) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut conn = conn;
                conn.write_all(format!("ok {line}").as_bytes()).unwrap();
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
            });
        }
    });
}

fn read_line(stream: &TcpStream) -> std::io::Result<String> {
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    Ok(line)
}

#[test]
fn copies_a_megabyte_each_way_and_passes_the_half_close_on() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("echo.sock");
    let proxy = UnixListener::bind(&socket).unwrap();
    // An echo proxy: what comes in goes back, and its end too.
    std::thread::spawn(move || {
        let (conn, _) = proxy.accept().unwrap();
        let mut reader = conn.try_clone().unwrap();
        let mut writer = conn;
        std::io::copy(&mut reader, &mut writer).unwrap();
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    // An odd, small buffer: every byte goes through many refills and
    // compactions.
    let addr = relay_to(
        &socket,
        Bounds {
            max_connections: 4,
            buffer_bytes: 1000,
        },
    );
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let client = TcpStream::connect(addr).unwrap();
    let mut writer = client.try_clone().unwrap();
    let sent = data.clone();
    let sending = std::thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        // The proxy sees this end only through the relay's half-close,
        // and its echo ends only after it.
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    (&client).read_to_end(&mut back).unwrap();
    sending.join().unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the echo differs from what was sent");
}

#[test]
fn a_connection_over_the_cap_waits_until_one_ends() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("proxy.sock");
    line_proxy(UnixListener::bind(&socket).unwrap());
    let addr = relay_to(
        &socket,
        Bounds {
            max_connections: 2,
            buffer_bytes: 1024,
        },
    );
    let open = |n: u32| {
        let c = TcpStream::connect(addr).unwrap();
        (&c).write_all(format!("{n}\n").as_bytes()).unwrap();
        c
    };
    let first = open(1);
    assert_eq!(read_line(&first).unwrap(), "ok 1\n");
    let second = open(2);
    assert_eq!(read_line(&second).unwrap(), "ok 2\n");
    // The kernel queues the third; the relay does not take it yet.
    let third = open(3);
    third
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let err = read_line(&third).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(read_line(&third).unwrap(), "ok 3\n");
    drop(second);
}

#[test]
fn without_the_proxy_the_client_gets_a_502_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let addr = relay_to(&dir.path().join("absent.sock"), super::BOUNDS);
    let client = TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    (&client).read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("egress proxy cannot be reached"),
        "{answer}"
    );
}

#[test]
fn the_target_must_be_an_absolute_path_that_fits_sun_path() {
    assert!(Target::new("relative/proxy.sock").is_err());
    assert!(Target::new(&format!("/{}", "a".repeat(107))).is_err());
    assert!(Target::new("/a\0b").is_err());
    // 107 bytes and the NUL fill sun_path exactly.
    assert!(Target::new(&format!("/{}", "a".repeat(106))).is_ok());
    // And a Target connects where a listener is.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let _listener = UnixListener::bind(&path).unwrap();
    let stream: UnixStream = Target::new(path.to_str().unwrap())
        .unwrap()
        .connect()
        .unwrap();
    let flags = nix::fcntl::fcntl(&stream, nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert_ne!(flags & libc::FD_CLOEXEC, 0, "close-on-exec");
}
