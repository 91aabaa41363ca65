//! The thread that speaks HTTP: a current-thread tokio runtime with one
//! task per exchange, so a long SSE answer does not hold up the requests
//! after it, and a timed-out one can be dropped mid-read (`abort`).
//!
//! A thread is allowed here: this tool starts no process, so the worker
//! gets no PID namespace and may still create threads (see `sandbox`).
//! reqwest resolves names on tokio's blocking pool, threads too.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::bridge::{Command, Commands};
use super::exchange::{self, Shared};

/// The session's DELETE at the end gets this long: it is a courtesy to the
/// server, and the client is already gone.
const DELETE_TIMEOUT: Duration = Duration::from_secs(2);

/// After the DELETE, a name lookup still running on the blocking pool gets
/// this long before the runtime is dropped without it.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// Starts the thread. It ends when the relay drops the command sender.
pub(super) fn start(shared: Shared) -> std::io::Result<(Commands, JoinHandle<()>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let join = std::thread::Builder::new()
        .name("mcp-http".into())
        .spawn(move || {
            rt.block_on(serve(Arc::new(shared), rx));
            rt.shutdown_timeout(SHUTDOWN_GRACE);
        })?;
    Ok((tx, join))
}

async fn serve(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Command>) {
    let mut tasks: HashMap<u64, AbortHandle> = HashMap::new();
    while let Some(cmd) = rx.recv().await {
        tasks.retain(|_, t| !t.is_finished());
        match cmd {
            Command::Post { seq, body, id } => {
                let task = tokio::spawn(exchange::run(shared.clone(), seq, body, id));
                tasks.insert(seq, task.abort_handle());
            }
            Command::Abort { seq } => {
                if let Some(t) = tasks.remove(&seq) {
                    t.abort();
                }
            }
            Command::ProtocolVersion(v) => shared.session.set_protocol(&v),
        }
    }
    for t in tasks.values() {
        t.abort();
    }
    if let Some(delete) = shared.session.delete() {
        let _ = tokio::time::timeout(DELETE_TIMEOUT, delete.send()).await;
    }
}
