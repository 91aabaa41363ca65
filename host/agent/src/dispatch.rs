//! Runs the tool calls of one model answer, in parallel, each streaming
//! its output into the session store as it arrives.
//!
//! Every call runs in stream mode: the host keeps none of the output, each
//! chunk goes straight into the call's `CallRecorder` on the store's thread
//! (one chunk row per IPC chunk), and the worker gets credit only as chunks
//! are stored. So the host holds at most one chunk per running call,
//! whatever the tools print, and the store holds the capped result exactly
//! once.

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use bulkhead_faults::Fault;
use bulkhead_host::report::CallEvent;
use bulkhead_host::{CallLimits, CallRequest, LiveStatus, ToolHost};
use bulkhead_model::ToolCall;
use bulkhead_store::{ResultEnd, SessionId, StoreThread};

pub use crate::call::Dispatched;
use crate::call::One;
use crate::mcp_tools;
use crate::store_call::{StoreCallError, StoreRun};
use crate::tools::Prepared;
use crate::view;

/// A call whose worker was started: its live figures (the host's watch
/// channel, latest wins), the limits it runs under, and its own cancel.
#[derive(Debug)]
pub struct LiveCall {
    /// The call's position in the model's answer.
    pub index: usize,
    pub live: watch::Receiver<LiveStatus>,
    pub limits: CallLimits,
    /// Kills this call alone: it ends `killed: cancelled` and the turn goes
    /// on. A child of the turn's token, so Ctrl-C still reaches it.
    pub cancel: CancellationToken,
    /// Faults for the running call (`CallHandle::inject_now`): the TUI's
    /// kill and memory keys. Never waits: a full queue refuses.
    pub faults: mpsc::Sender<Fault>,
    /// The faults the call was started with (armed by `/inject`).
    pub armed: Vec<String>,
}

/// Faults on their way to one running call: a person pressing keys sends
/// one or two; the supervisor's own queue holds
/// [`bulkhead_host::MAX_PENDING_FAULTS`] more.
const FAULT_QUEUE: usize = 2;

/// What the dispatcher reports while its calls run.
#[derive(Debug)]
pub enum DispatchEvent {
    /// A worker call started (MCP calls and refusals have none).
    Live(LiveCall),
    Ended(Result<Dispatched, StoreCallError>),
}

/// Runs `calls` at once (the host's worker limit queues the excess) and
/// returns as each ends, in the order they end.
pub struct Dispatch {
    set: JoinSet<Result<Dispatched, StoreCallError>>,
    /// One message per worker call at most, so its capacity (the number of
    /// calls) means a send never waits.
    live: mpsc::Receiver<LiveCall>,
    live_open: bool,
}

impl Dispatch {
    pub fn start(
        host: &ToolHost,
        store: &StoreThread,
        session: SessionId,
        calls: Vec<(usize, ToolCall, Prepared)>,
        cancel: &CancellationToken,
    ) -> Self {
        let mut set = JoinSet::new();
        let (live_tx, live) = mpsc::channel(calls.len().max(1));
        for (index, call, prepared) in calls {
            let store = store.clone();
            let host = host.clone();
            let cancel = cancel.clone();
            let live_tx = live_tx.clone();
            set.spawn(async move {
                let one = One {
                    session,
                    index,
                    call: &call,
                };
                match prepared {
                    Prepared::Run(req) => {
                        run_one(&host, &store, one, *req, &cancel, &live_tx).await
                    }
                    Prepared::Mcp(mcp) => mcp_tools::run(&store, one, *mcp, &cancel).await,
                    Prepared::Refused(text) => refuse(&store, one, text).await,
                }
            });
        }
        Self {
            set,
            live,
            live_open: true,
        }
    }

    /// The next call to start its worker or to end; `None` when all have
    /// ended.
    pub async fn next(&mut self) -> Option<DispatchEvent> {
        loop {
            tokio::select! {
                biased;
                started = self.live.recv(), if self.live_open => match started {
                    Some(call) => return Some(DispatchEvent::Live(call)),
                    // Every task has ended or dropped its sender.
                    None => self.live_open = false,
                },
                joined = self.set.join_next() => match joined? {
                    Ok(r) => return Some(DispatchEvent::Ended(r)),
                    // A task that panicked is a bug; its call's worker died
                    // with its handle. Keep collecting the others.
                    Err(e) => tracing::error!(error = %e, "a tool-call task failed"),
                },
            }
        }
    }
}

/// Runs one call to its report. When `cancel` fires (Ctrl-C), or the
/// call's own child token handed out in its `LiveCall`, the call is
/// cancelled, its worker killed, and its result stored as `killed:
/// cancelled` with the output it had produced.
async fn run_one(
    host: &ToolHost,
    store: &StoreThread,
    one: One<'_>,
    req: CallRequest,
    cancel: &CancellationToken,
    live_tx: &mpsc::Sender<LiveCall>,
) -> Result<Dispatched, StoreCallError> {
    let index = one.index;
    let limits = req.limits.clone();
    let armed = req.inject.iter().map(ToString::to_string).collect();
    let mut recorder = one.begin(store, Some(&limits)).await?;
    let mut handle = host.call(req);
    let cancel = cancel.child_token();
    let (faults, mut faults_rx) = mpsc::channel(FAULT_QUEUE);
    // Room for one per call: never full. Nobody listening is fine too.
    let _ = live_tx.try_send(LiveCall {
        index,
        live: handle.live(),
        limits: limits.clone(),
        cancel: cancel.clone(),
        faults,
        armed,
    });
    let mut cancelled = false;
    let mut faults_open = true;
    loop {
        let event = tokio::select! {
            biased;
            () = cancel.cancelled(), if !cancelled => {
                handle.cancel();
                cancelled = true;
                continue;
            }
            fault = faults_rx.recv(), if faults_open => {
                match fault {
                    // Refused only once the call has ended (its report
                    // follows) or when faults still wait: either way the
                    // outcome is the call's own.
                    Some(fault) => if let Err(e) = handle.inject_now(fault) {
                        tracing::info!(error = %e, "a fault for a model's call was not taken");
                    },
                    None => faults_open = false,
                }
                continue;
            }
            event = handle.next_event() => event,
        };
        let Some(event) = event else { break };
        match event {
            CallEvent::Started(_) => {}
            CallEvent::Output { stream, data } => {
                // The chunk goes to the store's thread; the next event is
                // taken (and the worker credited) only once it is stored.
                let (back, stored) = store
                    .call(move |s| {
                        let stored = recorder.output(s, stream, &data);
                        (recorder, stored)
                    })
                    .await?;
                recorder = back;
                if let Err(e) = stored {
                    // The store refused (disk full): stop the tool, and
                    // record the end of what was stored.
                    handle.cancel();
                    tracing::warn!(error = %e, "tool output could not be stored");
                }
            }
            CallEvent::Finished(report) => {
                let end = view::result_end(&report);
                let done = store.run(move |s| recorder.finish(s, end)).await?;
                return Ok(Dispatched {
                    index,
                    item: done.item,
                    outcome_line: view::outcome_line(&report),
                    bytes_seen: report.usage.bytes_produced,
                    injected: report.injected.as_ref().map(ToString::to_string),
                });
            }
        }
    }
    // `next_event` yields `Finished` before it ends.
    let end = ResultEnd {
        status: "failed".into(),
        ..ResultEnd::default()
    };
    let done = store.run(move |s| recorder.finish(s, end)).await?;
    Ok(Dispatched {
        index,
        item: done.item,
        outcome_line: "[failed: the call ended without a report]".into(),
        bytes_seen: 0,
        injected: None,
    })
}

/// A call that was not run: its reason is stored as its result, so the
/// model sees it where it expects the output.
async fn refuse(
    store: &StoreThread,
    one: One<'_>,
    text: String,
) -> Result<Dispatched, StoreCallError> {
    let mut recorder = one.begin(store, None).await?;
    let reason = text.clone();
    let done = store
        .run(move |store| {
            recorder.output(store, bulkhead_ipc::StreamId::Stderr, reason.as_bytes())?;
            let outcome = serde_json::json!({"status": "failed", "line": "[failed: not run]"});
            recorder.finish(
                store,
                ResultEnd {
                    status: "failed".into(),
                    outcome_json: Some(outcome.to_string()),
                    bytes_seen: reason.len() as u64,
                    ..ResultEnd::default()
                },
            )
        })
        .await?;
    Ok(Dispatched {
        index: one.index,
        item: done.item,
        outcome_line: text,
        bytes_seen: 0,
        injected: None,
    })
}
