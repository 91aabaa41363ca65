//! The proxy of one call: its configuration, the accept loop, and the
//! handle that stops it.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::config::ProxyConfig;
use crate::conn;
use crate::log::EgressLog;

/// How long the accept loop waits after an accept error (out of file
/// descriptors, say) before it tries again: long enough not to spin, short
/// enough that a tool barely notices.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `listener` until the future is dropped: every connection is
/// checked against `config` and recorded in `log`.
///
/// Dropping the future aborts every connection's task (they end at their
/// next await, not before the drop returns); [`EgressProxy::shutdown`]
/// waits for them.
pub async fn serve(listener: UnixListener, config: ProxyConfig, log: EgressLog) {
    serve_until(listener, config, log, std::future::pending()).await;
}

/// Serves `listener` until `stop` completes, then closes every connection
/// and returns once all of them are closed.
pub async fn serve_until(
    listener: UnixListener,
    config: ProxyConfig,
    log: EgressLog,
    stop: impl Future<Output = ()>,
) {
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(
        config.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            // Finished connections are reaped as they end, so the set holds
            // at most max_connections tasks.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => {
                        let (config, log) = (Arc::clone(&config), log.clone());
                        connections.spawn(async move {
                            conn::serve(client, &config, &log).await;
                            drop(slot);
                        });
                    }
                    Err(_) => conn::refuse_busy(client, &log, config.max_connections),
                },
                Err(_) => tokio::select! {
                    () = &mut stop => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                },
            },
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// A running proxy. It stops, closing every connection, when
/// [`shutdown`](EgressProxy::shutdown) is awaited or when it is dropped.
#[derive(Debug)]
pub struct EgressProxy {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// The socket file to remove at the end, if this handle bound it.
    path: Option<PathBuf>,
}

impl EgressProxy {
    /// Binds a Unix socket at `path` (which must not exist; the caller
    /// keeps it in a private directory) and serves it on the current tokio
    /// runtime. The socket file is removed when the proxy stops.
    pub fn bind(
        path: impl AsRef<Path>,
        config: ProxyConfig,
        log: EgressLog,
    ) -> io::Result<EgressProxy> {
        let path = path.as_ref();
        let listener = UnixListener::bind(path)?;
        let mut proxy = EgressProxy::start(listener, config, log);
        proxy.path = Some(path.to_owned());
        Ok(proxy)
    }

    /// Serves an already bound listener on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as [`tokio::spawn`] does).
    pub fn start(listener: UnixListener, config: ProxyConfig, log: EgressLog) -> EgressProxy {
        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = async move {
            // A send or a dropped sender both mean stop.
            let _ = stopped.await;
        };
        let task = tokio::spawn(serve_until(listener, config, log, stopped));
        EgressProxy {
            stop: Some(stop),
            task: Some(task),
            path: None,
        }
    }

    /// Stops accepting, closes every connection, and returns once all are
    /// closed (and the socket file, if [`bind`](EgressProxy::bind) made it,
    /// is removed).
    pub async fn shutdown(mut self) {
        self.stop.take();
        if let Some(task) = self.task.take() {
            // A panic in the loop has already ended it; nothing is left to close.
            let _ = task.await;
        }
        self.remove_socket();
    }

    fn remove_socket(&mut self) {
        if let Some(path) = self.path.take() {
            // Already gone is as good as removed.
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for EgressProxy {
    /// Tells the loop to stop (it closes every connection on its own, at
    /// its next poll) and removes the socket file.
    fn drop(&mut self) {
        self.stop.take();
        self.remove_socket();
    }
}
