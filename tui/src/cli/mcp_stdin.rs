//! The client's side of `mcp wrap`: its stdin, read on a plain thread and
//! fed to the server's call, with the client's `initialize` spotted on the
//! way and, under `--inject`, the MCP faults applied to its requests.

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::cli::mcp_inject::{ClientAction, McpInjector};
use crate::cli::mcp_watch::{InitSpotter, Spotted};
use crate::cli::mcp_wrap::{ClientLines, Switch};

/// One read of the client's stdin: one input chunk.
const STDIN_READ_BYTES: usize = bulkhead_ipc::MAX_CHUNK_BYTES;

/// Injected answers (and wakes for notes) the client's reader may queue
/// for the relay before it waits: a few, since each stands for a request
/// the client sent and the relay writes them out at once.
const FIRED_QUEUE: usize = 16;

/// Reads the client's stdin on a plain thread and feeds the call. Not a
/// tokio blocking task: a read blocked on a client that keeps stdin open
/// must not hold the runtime's shutdown when the server has ended.
///
/// The client's first request is reported on `spot` before its bytes are
/// passed on, so the answer cannot come back before the watch knows what
/// it answers.
///
/// With MCP faults (`inject`), the client's requests go through them, and
/// what they answer (or a wake to tell which fired) comes out of the
/// returned channel, for the relay to write; without, there is none.
///
/// With a `switch` (a session that outlives its server), what passes on
/// goes through it, to whichever run of the server is live; without, to
/// `input`.
pub(crate) fn feed_stdin(
    input: bulkhead_host::InputSender,
    spot: oneshot::Sender<(Spotted, Instant)>,
    inject: Option<McpInjector>,
    switch: Option<Arc<Switch>>,
) -> Option<mpsc::Receiver<Vec<u8>>> {
    let (inject, fired) = match inject {
        Some(i) => {
            let (tx, rx) = mpsc::channel(FIRED_QUEUE);
            (Some((i, tx)), Some(rx))
        }
        None => (None, None),
    };
    let handle = tokio::runtime::Handle::current();
    let spawned = std::thread::Builder::new()
        .name("mcp-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = vec![0u8; STDIN_READ_BYTES];
            let mut spotter = InitSpotter::default();
            // Dropped unsent when the input ends first: nothing to watch.
            let mut spot = Some(spot);
            let mut lines = ClientLines::default();
            // Only what reaches the server is watched: a request a fault
            // keeps from it gets no watch for an answer.
            let mut forward = |data: &[u8]| {
                if spot.is_some()
                    && let Some(spotted) = spotter.feed(data)
                    && let Some(tx) = spot.take()
                {
                    let _ = tx.send((spotted, Instant::now()));
                }
                match &switch {
                    Some(switch) => lines.forward(switch, data, &handle),
                    None => handle
                        .block_on(input.send(Bytes::copy_from_slice(data)))
                        .is_ok(),
                }
            };
            let close = || match &switch {
                Some(switch) => switch.close(&handle),
                None => {
                    let _ = handle.block_on(input.close());
                }
            };
            let mut actions = Vec::new();
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => 0,
                    Ok(n) => n,
                };
                if n == 0 {
                    close();
                    return;
                }
                let Some((inject, fired)) = &inject else {
                    if !forward(&buf[..n]) {
                        return;
                    }
                    continue;
                };
                inject.client(&buf[..n], &mut actions);
                for action in actions.drain(..) {
                    let open = match action {
                        ClientAction::Forward(data) => forward(&data),
                        ClientAction::Answer(line) => fired.blocking_send(line).is_ok(),
                        ClientAction::Swallow => fired.blocking_send(Vec::new()).is_ok(),
                        ClientAction::Disconnect => {
                            let _ = fired.blocking_send(Vec::new());
                            close();
                            return;
                        }
                    };
                    if !open {
                        return;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        eprintln!("bulkhead: cannot start the stdin reader: {e}");
    }
    fired
}

/// The next line from `rx`; never without one (its arm is disabled then).
pub(crate) async fn recv_fired(rx: &mut Option<mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
