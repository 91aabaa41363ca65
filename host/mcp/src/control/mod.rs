//! The gateway's control socket: a running `bulkhead mcp serve` tells
//! `bulkhead mcp status` how its servers are doing (state, restarts,
//! memory, calls, errors, egress refused, uptime) without starting
//! anything.
//!
//! One Unix socket per gateway, `DIR/NAME.sock` (NAME: `--name`, or the
//! gateway's pid), in a directory that is the user's alone (`dir.rs`);
//! only a peer of the same uid is served. The protocol is one request
//! line (`status`) and one JSON line back (`server.rs`), both capped
//! before they are read.
//! The socket is removed when the gateway ends: on return, and on SIGTERM,
//! SIGINT or SIGHUP; a killed gateway's socket is found stale (nobody
//! listens) and removed by the next gateway or `status`.

mod answer;
mod client;
mod dir;
mod server;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::OnceLock;

pub use answer::{GatewayStatus, LiveServer};
pub use client::{ANSWER_TIMEOUT, Found, discover, query};
pub use dir::{Probe, private_dir, probe, remove_if_stale, socket_dir, sockets};
pub use server::{
    ControlSocket, GatewayInfo, MAX_ANSWER, MAX_CONNECTIONS, MAX_REQUEST, READ_TIMEOUT,
    StatusSource, WRITE_TIMEOUT,
};

/// Why the control socket could not be opened or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    #[error("no directory for control sockets: set XDG_RUNTIME_DIR or HOME")]
    NoDir,
    #[error("control directory {path}: {why}", path = .0.display(), why = .1)]
    Dir(PathBuf, String),
    #[error("control socket {path}: {why}", path = .0.display(), why = .1)]
    Socket(PathBuf, String),
    #[error("control socket {path}: a running gateway already has it", path = .0.display())]
    InUse(PathBuf),
    #[error("control socket {path}: no such socket (no gateway there)", path = .0.display())]
    Gone(PathBuf),
    #[error("control socket {path}: {why}", path = .0.display(), why = .1)]
    Answer(PathBuf, String),
    #[error(
        "gateway name {0:?}: use up to {1} letters, digits, '-', '_' or '.', not starting with '.'"
    )]
    Name(String, usize),
}

/// The name `mcp serve --name` gave this process's gateway.
static GATEWAY_NAME: OnceLock<String> = OnceLock::new();

/// Names this process's gateway (`mcp serve --name NAME`): its control
/// socket is `NAME.sock` rather than `PID.sock`. Call it before serving;
/// a bad name, or one a running gateway already has, is an error here,
/// before anything starts. A process runs one gateway, so the name is the
/// process's; a second call keeps the first name.
pub fn set_gateway_name(name: &str) -> Result<(), ControlError> {
    dir::check_name(name)?;
    let path = socket_dir()?.join(format!("{name}{}", dir::SOCKET_SUFFIX));
    if probe(&path)? == Probe::Live {
        return Err(ControlError::InUse(path));
    }
    let _ = GATEWAY_NAME.set(name.to_owned());
    Ok(())
}

/// Opens the control socket of a gateway serving on `transport`, named by
/// [`set_gateway_name`] or else the process id, and removes it when the
/// process is told to end. A gateway that cannot open one still serves,
/// and says so on stderr.
pub(crate) fn start(source: StatusSource, transport: String) -> Option<ControlSocket> {
    let info = GatewayInfo {
        name: GATEWAY_NAME
            .get()
            .cloned()
            .unwrap_or_else(|| std::process::id().to_string()),
        transport,
    };
    let opened = socket_dir().and_then(|dir| {
        // Killed gateways' sockets, so `status` does not keep meeting them.
        // A socket named by a live pid is left unprobed: its gateway most
        // likely runs, and need not take a connection for nothing.
        for path in sockets(&dir).unwrap_or_default() {
            if !dir::named_by_live_pid(&path) {
                let _ = remove_if_stale(&path);
            }
        }
        ControlSocket::bind(&dir, info, source)
    });
    match opened {
        Ok(socket) => {
            remove_on_termination(&socket);
            Some(socket)
        }
        Err(e) => {
            eprintln!(
                "bulkhead: mcp serve: no control socket, so `bulkhead mcp status` cannot read this gateway: {e}"
            );
            None
        }
    }
}

/// On SIGTERM, SIGINT or SIGHUP: remove the socket, then end the process
/// as the signal would have (exit status 128 + its number, as a shell
/// reports a death by signal). The servers' workers end with the gateway
/// as they always do (their channel closes; parent-death signal).
fn remove_on_termination(socket: &ControlSocket) {
    use nix::sys::signal::Signal;
    use tokio::signal::unix::{SignalKind, signal};
    let (path, inode) = (socket.path().to_owned(), socket.inode());
    // Without a handler a signal keeps its default action, and the stale
    // socket is removed by whoever finds it next.
    let handler = |kind: SignalKind| match signal(kind) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("control socket: no handler for {kind:?}: {e}");
            None
        }
    };
    let mut term = handler(SignalKind::terminate());
    let mut int = handler(SignalKind::interrupt());
    let mut hup = handler(SignalKind::hangup());
    async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    tokio::spawn(async move {
        let signal = tokio::select! {
            _ = next(&mut term) => Signal::SIGTERM,
            _ = next(&mut int) => Signal::SIGINT,
            _ = next(&mut hup) => Signal::SIGHUP,
        };
        ControlSocket::remove_file(&path, inode);
        std::process::exit(128 + signal as i32);
    });
}
