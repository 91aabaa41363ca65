//! The ends of the paths the `egress` benchmark times: the proxy process
//! (`bench_proxy`, an example of `bulkhead-egress`), the local TCP servers
//! it connects to, and the clients, which run in the bench process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Every read and write of the bench's own ends: large enough that the
/// clients and servers are never what limits a transfer.
///
/// Their TCP sockets keep Nagle's algorithm on (the default). With
/// `TCP_NODELAY`, each 64 KiB write on loopback (MSS 65,483) left as a full
/// segment and a 53-byte one: the direct baseline then ran at 1.7–2 GB/s,
/// once in a while 8, against a steady 2.5–2.9 GB/s without it.
pub const IO_BYTES: usize = 64 << 10;

/// The proxy process: one `EgressProxy` on `socket` until its stdin closes.
pub struct Proxy {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pub socket: PathBuf,
}

impl Proxy {
    /// Starts `bench_proxy` in `dir` with the allow list `allow`, on a
    /// current-thread runtime (`threads` 0, as `bulkhead run` serves a
    /// call's proxy) or a multi-thread one of `threads` workers; returns
    /// once the socket is bound.
    pub fn start(dir: &Path, threads: usize, allow: &[&str]) -> Proxy {
        let socket = dir.join(format!("proxy-{threads}.sock"));
        let _ = std::fs::remove_file(&socket);
        // Another build of the proxy (other buffer sizes, say) to compare.
        let program = std::env::var_os("BULKHEAD_BENCH_PROXY")
            .map_or_else(|| example("bench_proxy"), PathBuf::from);
        let mut cmd = Command::new(program);
        if threads > 0 {
            cmd.args(["--threads", &threads.to_string()]);
        }
        let mut child = cmd
            .arg(&socket)
            .args(allow)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start bench_proxy");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read bench_proxy");
        assert_eq!(line.trim(), "ready", "bench_proxy did not start");
        Proxy {
            child,
            stdin,
            stdout,
            socket,
        }
    }

    /// A field of `/proc/PID/status` given in kB (`VmHWM`, `VmRSS`), in bytes.
    pub fn status_bytes(&self, field: &str) -> u64 {
        let path = format!("/proc/{}/status", self.child.id());
        let text = std::fs::read_to_string(&path).expect("read the proxy's status");
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .unwrap_or_else(|| panic!("no {field} in {path}"))
    }

    /// The proxy process's context switches so far, voluntary (it waited)
    /// and involuntary (it was preempted), summed over its threads.
    pub fn switches(&self) -> u64 {
        let dir = format!("/proc/{}/task", self.child.id());
        let mut total = 0;
        for task in std::fs::read_dir(&dir)
            .expect("read the proxy's tasks")
            .flatten()
        {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            total += status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split(':').nth(1)?.trim().parse::<u64>().ok())
                .sum::<u64>();
        }
        total
    }

    /// The proxy process's CPU time so far (user + system, from
    /// `/proc/PID/stat`; clock-tick resolution, 10 ms here).
    pub fn cpu(&self) -> Duration {
        let path = format!("/proc/{}/stat", self.child.id());
        let text = std::fs::read_to_string(&path).expect("read the proxy's stat");
        // The fields after the command's closing parenthesis start at the
        // third (state); utime and stime are the 14th and 15th.
        let rest = &text[text.rfind(')').expect("a stat line") + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        // SAFETY: sysconf has no memory effects.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_nanos(ticks * 1_000_000_000 / hz)
    }

    /// Stops the proxy (its stdin closed); its log's counts line.
    pub fn stop(mut self) -> String {
        drop(self.stdin.take());
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        let status = self.child.wait().expect("wait for bench_proxy");
        assert!(status.success(), "bench_proxy failed: {status}");
        line.trim().to_owned()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Only when `stop` was not reached (a panic): this child of ours.
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An example binary of this build (`target/<profile>/examples/NAME`).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("cannot locate the running bulkhead-bench");
    let path = exe
        .parent()
        .expect("bulkhead-bench lives in a directory")
        .join("examples")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: `cargo build --release -p bulkhead-egress --example {name}` \
         (scripts/bench does)",
        path.display()
    );
    path
}

/// What a server does with each connection.
#[derive(Clone, Copy)]
pub enum Serve {
    /// Reads to the end, then answers the count as 8 little-endian bytes.
    Sink,
    /// Sends this many bytes, then closes.
    Source(u64),
    /// Reads an HTTP request head, answers `200` with a body of this many
    /// bytes and `Connection: close`, then closes.
    Http(u64),
}

/// A TCP listener on 127.0.0.1 serving every connection with `serve`:
/// one after the other on its accept thread, or each on its own thread
/// (`concurrent`). Stops when dropped.
pub struct Server {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(serve: Serve, concurrent: bool) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                if concurrent {
                    std::thread::spawn(move || handle(conn, serve));
                } else {
                    handle(conn, serve);
                }
            }
        });
        Server {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn handle(mut conn: TcpStream, serve: Serve) {
    let mut buf = vec![0u8; IO_BYTES];
    match serve {
        Serve::Sink => {
            let mut total = 0u64;
            loop {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n as u64,
                }
            }
            let _ = conn.write_all(&total.to_le_bytes());
        }
        Serve::Source(bytes) => {
            fill(&mut buf);
            let _ = send(&mut conn, &buf, bytes);
        }
        Serve::Http(bytes) => {
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") && head.len() < 16 << 10 {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {bytes}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
            );
            fill(&mut buf);
            // A small answer goes out in one write: with Nagle on (the
            // default, as for most servers), a second small write would
            // wait for the first one's ACK.
            let mut first = answer.into_bytes();
            let inline = bytes.min((IO_BYTES - first.len().min(IO_BYTES)) as u64);
            first.extend_from_slice(&buf[..inline as usize]);
            if conn.write_all(&first).is_ok() {
                let _ = send(&mut conn, &buf, bytes - inline);
            }
        }
    }
}

/// A test pattern, so nothing is all zeros.
fn fill(buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
}

fn send(to: &mut impl Write, buf: &[u8], mut bytes: u64) -> std::io::Result<()> {
    while bytes > 0 {
        let n = bytes.min(buf.len() as u64) as usize;
        to.write_all(&buf[..n])?;
        bytes -= n as u64;
    }
    Ok(())
}

/// A client's stream: loopback TCP, or the proxy's Unix socket.
pub trait Stream: Read + Write {
    fn shut_write(&self);
}

impl Stream for TcpStream {
    fn shut_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

impl Stream for UnixStream {
    fn shut_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

/// A direct connection to a loopback port.
pub fn direct(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).expect("connect to the loopback server")
}

/// A tunnel to `127.0.0.1:port` through the proxy: `CONNECT`, then its
/// `200` read (the client sends nothing before it, as curl does). Also
/// returns how many bytes of the target's came with the `200` (a `Source`
/// sends at once).
pub fn tunnel(socket: &Path, port: u16) -> (UnixStream, u64) {
    let mut s = UnixStream::connect(socket).expect("connect to the proxy's socket");
    write!(
        s,
        "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .expect("send CONNECT");
    let mut head = Vec::with_capacity(IO_BYTES);
    let mut buf = vec![0u8; IO_BYTES];
    let end = loop {
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = s.read(&mut buf).expect("read the proxy's answer");
        assert!(
            n > 0,
            "the proxy closed: {}",
            String::from_utf8_lossy(&head)
        );
        head.extend_from_slice(&buf[..n]);
    };
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "CONNECT refused: {}",
        String::from_utf8_lossy(&head[..end])
    );
    (s, (head.len() - end) as u64)
}

/// Sends `bytes` to a `Sink`, ends the sending side, and checks the count
/// it answers.
pub fn upload(mut s: impl Stream, bytes: u64) {
    let mut buf = vec![0u8; IO_BYTES];
    fill(&mut buf);
    send(&mut s, &buf, bytes).expect("upload");
    s.shut_write();
    let mut count = [0u8; 8];
    s.read_exact(&mut count).expect("the sink's count");
    assert_eq!(u64::from_le_bytes(count), bytes, "bytes lost on the way up");
}

/// Reads a `Source` to its end and checks the count (`already`: bytes
/// of it read before, with a tunnel's `200`).
pub fn download(mut s: impl Stream, bytes: u64, already: u64) {
    let mut buf = vec![0u8; IO_BYTES];
    let mut total = already;
    loop {
        match s.read(&mut buf).expect("download") {
            0 => break,
            n => total += n as u64,
        }
    }
    assert_eq!(total, bytes, "bytes lost on the way down");
}

/// Reads the rest of an HTTP answer to its end; the bytes read.
pub fn drain(mut s: impl Read) -> u64 {
    let mut buf = [0u8; 4096];
    let mut total = 0u64;
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    total
}
