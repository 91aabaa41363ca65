//! The gateway's side of the control socket: one request line in, one
//! JSON line out, then the connection is closed.
//!
//! Bounds, so that nothing a local client does can grow the gateway or
//! hold its tasks: the request is read into a fixed buffer of
//! [`MAX_REQUEST`] bytes, within [`READ_TIMEOUT`]; the answer is at most
//! [`MAX_ANSWER`] bytes and must be taken within [`WRITE_TIMEOUT`]; at
//! most [`MAX_CONNECTIONS`] are served at once, and more are closed at
//! once with a "busy" line.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::ControlError;
use super::answer::{GatewayStatus, LiveServer};
use super::dir::{Probe, SOCKET_SUFFIX, private_dir, probe};

/// The longest request line. The one request is `status`; 64 bytes leave
/// room for a word or two more and are a fixed buffer on the stack.
pub const MAX_REQUEST: usize = 64;

/// The longest answer. A server's entry is well under 16 KiB (its last
/// stderr line is at most the 8 KiB tail, its refused hosts at most the
/// egress log's 32 messages), so 1 MiB covers some 60 servers at their
/// worst; a gateway over it answers with an error instead.
pub const MAX_ANSWER: usize = 1 << 20;

/// How long a client may take to send its request: a local program
/// writes one line at once; 5 s is far beyond that, and short enough that
/// a client that never writes does not hold a connection slot for long.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a client may take to read the answer, for the same reason.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Control connections served at once. Status is read by a person or a
/// script now and then; 8 at once is plenty, and bounds what the gateway
/// holds for them to 8 answers.
pub const MAX_CONNECTIONS: usize = 8;

/// The live figures of the gateway's servers, as of the call.
pub type StatusSource = Arc<dyn Fn() -> Vec<LiveServer> + Send + Sync>;

/// What a control socket says about its gateway besides the servers.
#[derive(Debug, Clone)]
pub struct GatewayInfo {
    /// The gateway's name (its pid unless given one); the socket is
    /// `NAME.sock`.
    pub name: String,
    /// `stdio` or the URL it serves.
    pub transport: String,
}

struct Shared {
    info: GatewayInfo,
    started: Instant,
    refused: AtomicU64,
    source: StatusSource,
    uid: u32,
}

/// An open control socket; closing it (drop) stops it and removes its
/// file, if the file is still this socket's.
pub struct ControlSocket {
    path: PathBuf,
    inode: (u64, u64),
    accept: JoinHandle<()>,
}

impl ControlSocket {
    /// Binds `DIR/NAME.sock` and serves it. `dir` is made private first; a
    /// stale socket of that name (a killed gateway's) is replaced, a live
    /// one is an error. Must be called inside a tokio runtime.
    pub fn bind(
        dir: &Path,
        info: GatewayInfo,
        source: StatusSource,
    ) -> Result<ControlSocket, ControlError> {
        super::dir::check_name(&info.name)?;
        private_dir(dir)?;
        let path = dir.join(format!("{}{SOCKET_SUFFIX}", info.name));
        let sock_err = |e: std::io::Error| ControlError::Socket(path.clone(), e.to_string());
        match probe(&path)? {
            Probe::Live => return Err(ControlError::InUse(path)),
            Probe::Stale => std::fs::remove_file(&path).map_err(sock_err)?,
            Probe::Absent => {}
        }
        let listener = UnixListener::bind(&path).map_err(sock_err)?;
        // The directory already keeps others out; the socket's own mode
        // says the same where the system honours it.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(sock_err)?;
        let meta = std::fs::metadata(&path).map_err(sock_err)?;
        let shared = Arc::new(Shared {
            info,
            started: Instant::now(),
            refused: AtomicU64::new(0),
            source,
            uid: nix::unistd::geteuid().as_raw(),
        });
        let accept = tokio::spawn(accept_loop(listener, shared));
        Ok(ControlSocket {
            path,
            inode: (meta.dev(), meta.ino()),
            accept,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the socket's file if it is still this socket's (not one a
    /// later gateway of the same name has bound since).
    pub(crate) fn remove_file(path: &Path, inode: (u64, u64)) {
        if let Ok(meta) = std::fs::symlink_metadata(path)
            && (meta.dev(), meta.ino()) == inode
        {
            let _ = std::fs::remove_file(path);
        }
    }

    pub(crate) fn inode(&self) -> (u64, u64) {
        self.inode
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.accept.abort();
        Self::remove_file(&self.path, self.inode);
    }
}

async fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: wait rather than spin.
                tracing::warn!("control socket: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Err(why) = same_user(&stream, shared.uid) {
            let n = shared.refused.fetch_add(1, Ordering::Relaxed);
            // Said once, so a client that keeps trying cannot flood stderr;
            // the count is in every status answer.
            if n == 0 {
                eprintln!("bulkhead: mcp serve: control connection refused: {why}");
            }
            continue;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let busy = error_line(&format!(
                "busy: {MAX_CONNECTIONS} control connections are open; try again"
            ));
            let _ = stream.try_write(&busy);
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            serve_one(stream, &shared).await;
        });
    }
}

/// The peer must be the gateway's own user: its credentials as the kernel
/// gives them (`SO_PEERCRED` on Linux, `getpeereid` on the BSDs and macOS).
fn same_user(stream: &UnixStream, uid: u32) -> Result<(), String> {
    let cred = stream
        .peer_cred()
        .map_err(|e| format!("no peer credentials: {e}"))?;
    check_peer_uid(cred.uid(), uid)
}

/// Whether a peer of uid `peer` may read a gateway run by `own`.
pub(crate) fn check_peer_uid(peer: u32, own: u32) -> Result<(), String> {
    if peer == own {
        Ok(())
    } else {
        Err(format!("peer uid {peer} is not the gateway's uid {own}"))
    }
}

async fn serve_one(mut stream: UnixStream, shared: &Shared) {
    let answer = match read_request(&mut stream).await {
        Ok(line) if line == "status" => status_answer(shared),
        Ok(line) => error_line(&format!(
            "unknown request {line:?}; the control socket answers: status"
        )),
        Err(e) => error_line(&e),
    };
    let write = async {
        stream.write_all(&answer).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, write).await;
}

/// One line (without its newline), read into a fixed buffer; a client
/// that closes after its request without a newline is taken at its word.
async fn read_request(stream: &mut UnixStream) -> Result<String, String> {
    let mut buf = [0u8; MAX_REQUEST + 1];
    let mut len = 0;
    let read = async {
        loop {
            let n = stream
                .read(&mut buf[len..])
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Ok(len);
            }
            if let Some(i) = buf[len..len + n].iter().position(|&b| b == b'\n') {
                return Ok(len + i);
            }
            len += n;
            if len > MAX_REQUEST {
                return Err(format!("request line over {MAX_REQUEST} bytes"));
            }
        }
    };
    let end = tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .map_err(|_| format!("no request within {} s", READ_TIMEOUT.as_secs()))??;
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| "request is not UTF-8".to_owned())?;
    Ok(line.trim().to_owned())
}

fn status_answer(shared: &Shared) -> Vec<u8> {
    let status = GatewayStatus {
        pid: std::process::id(),
        name: shared.info.name.clone(),
        transport: shared.info.transport.clone(),
        version: bulkhead_host::VERSION.to_owned(),
        uptime_ms: u64::try_from(shared.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        control_refused: shared.refused.load(Ordering::Relaxed),
        servers: (shared.source)(),
    };
    match serde_json::to_vec(&status) {
        Ok(mut line) if line.len() < MAX_ANSWER => {
            line.push(b'\n');
            line
        }
        Ok(line) => error_line(&format!(
            "the status is {} bytes, over the control socket's {MAX_ANSWER}",
            line.len()
        )),
        Err(e) => error_line(&format!("cannot encode the status: {e}")),
    }
}

fn error_line(message: &str) -> Vec<u8> {
    let mut line = json!({ "error": message }).to_string().into_bytes();
    line.push(b'\n');
    line
}
