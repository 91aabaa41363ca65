//! The harness: a proxy on a temporary socket, an echo server, a tiny HTTP
//! server, and bounded reads.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bulkhead_egress::{
    AllowList, EgressLog, EgressProxy, EgressReport, ProxyConfig, StaticResolver,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};

/// The bound on any single wait in these tests: generous, so a slow machine
/// never fails a test, and only a hang does.
pub const BOUND: Duration = Duration::from_secs(30);

/// Awaits `future`, failing the test if it takes longer than [`BOUND`].
pub async fn within<T>(future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(BOUND, future).await {
        Ok(value) => value,
        Err(_) => panic!("no result within {BOUND:?}"),
    }
}

pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

pub struct Harness {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub log: EgressLog,
    pub proxy: Option<EgressProxy>,
}

impl Harness {
    /// A proxy allowing `entries`, resolving through `resolver`, with
    /// `tweak` applied to the configuration.
    pub fn start(
        entries: &[String],
        resolver: StaticResolver,
        tweak: impl FnOnce(&mut ProxyConfig),
    ) -> Harness {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("egress.sock");
        let mut config = ProxyConfig::new(AllowList::parse(entries).expect("a valid allow list"));
        config.resolver = Arc::new(resolver);
        tweak(&mut config);
        let log = EgressLog::new();
        let proxy = EgressProxy::bind(&path, config, log.clone()).expect("the proxy binds");
        Harness {
            _dir: dir,
            path,
            log,
            proxy: Some(proxy),
        }
    }

    /// A proxy allowing `entries`, with no names to resolve.
    pub fn allowing(entries: &[String]) -> Harness {
        Harness::start(entries, StaticResolver::new(), |_| {})
    }

    pub async fn connect(&self) -> UnixStream {
        within(UnixStream::connect(&self.path))
            .await
            .expect("the proxy accepts")
    }

    /// Sends `bytes` on a new connection and returns everything answered.
    pub async fn exchange(&self, bytes: &[u8]) -> String {
        let mut client = self.connect().await;
        within(client.write_all(bytes))
            .await
            .expect("the request is sent");
        String::from_utf8_lossy(&read_to_end(&mut client, 1 << 20).await).into_owned()
    }

    /// Stops the proxy (so every connection's counts are in) and reports.
    pub async fn finish(mut self) -> EgressReport {
        if let Some(proxy) = self.proxy.take() {
            within(proxy.shutdown()).await;
        }
        self.log.report()
    }
}

/// Reads until end of stream (an error after data counts as the end: a
/// Unix socket closed with unread input reports a reset after its data),
/// at most `max` bytes.
pub async fn read_to_end(stream: &mut (impl AsyncRead + Unpin), max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0; 16 * 1024];
    while out.len() < max {
        match within(stream.read(&mut chunk)).await {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
    out
}

/// Reads a response head (through the blank line), at most 16 KiB.
pub async fn read_head(stream: &mut (impl AsyncRead + Unpin)) -> String {
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match within(stream.read(&mut byte)).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Opens a tunnel to `target` and checks it was established.
pub async fn tunnel(harness: &Harness, target: &str) -> UnixStream {
    let mut client = harness.connect().await;
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    within(client.write_all(request.as_bytes()))
        .await
        .expect("CONNECT is sent");
    let head = read_head(&mut client).await;
    assert_eq!(head, "HTTP/1.1 200 Connection established\r\n\r\n");
    client
}

/// An echo server on 127.0.0.1: each connection gets back what it sends,
/// until it closes. Returns the port.
pub async fn echo_server() -> u16 {
    let listener = TcpListener::bind((LOOPBACK, 0))
        .await
        .expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("an address").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    port
}

/// A port on 127.0.0.1 with nothing listening (bound, then released).
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind((LOOPBACK, 0))
        .await
        .expect("bind 127.0.0.1");
    listener.local_addr().expect("an address").port()
}

/// A tiny HTTP server on 127.0.0.1: answers every request with 200 and the
/// request head it received as the body, then closes. Returns the port and
/// the count of connections it accepted.
pub async fn http_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind((LOOPBACK, 0))
        .await
        .expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("an address").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let head = read_head(&mut stream).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
                    head.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (port, accepted)
}

/// `n` bytes of a pattern that differs by `seed`, so misrouted or reordered
/// bytes show.
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8 ^ seed).collect()
}
