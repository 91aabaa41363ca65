//! Runs the tool calls of one model answer, in parallel, each streaming
//! its output into the session store as it arrives.
//!
//! Every call runs in stream mode: the host keeps none of the output, each
//! chunk goes straight into the call's `ResultWriter` (one chunk row per
//! IPC chunk), and the worker gets credit only as chunks are stored. So
//! the host holds at most one chunk per running call, whatever the tools
//! print, and the store holds the capped result exactly once.

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::model::ToolCall;
use crate::report::CallEvent;
use crate::store::{ItemId, ResultEnd, ResultWriter, SessionId};
use crate::{CallLimits, CallRequest, LiveStatus, ToolHost};

use super::mcp_tools;
use super::store_call::{StoreCallError, StoreRun};
use super::tools::Prepared;
use super::view;
use crate::store::StoreThread;

/// How one call ended, for the loop and the user.
#[derive(Debug)]
pub struct Dispatched {
    /// The call's position in the model's answer.
    pub index: usize,
    pub item: ItemId,
    /// `[completed · exit code 0]`, `[killed: timeout]`, or why it was
    /// refused.
    pub outcome_line: String,
    /// Bytes the tool produced.
    pub bytes_seen: u64,
}

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
}

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

/// Which call of which answer.
pub(super) struct One<'a> {
    pub session: SessionId,
    pub index: usize,
    pub call: &'a ToolCall,
}

impl One<'_> {
    /// Starts the call's result in the store (listed as `running`).
    pub async fn begin(&self, store: &StoreThread) -> Result<ResultWriter, StoreCallError> {
        let session = self.session;
        let (name, id, args) = (
            self.call.name.clone(),
            self.call.id.clone(),
            self.call.arguments.clone(),
        );
        store
            .run(move |s| s.begin_result(session, &name, Some(&id), &args))
            .await
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
    let mut writer = one.begin(store).await?;
    let index = one.index;
    let limits = req.limits.clone();
    let mut handle = host.call(req);
    let cancel = cancel.child_token();
    // Room for one per call: never full. Nobody listening is fine too.
    let _ = live_tx.try_send(LiveCall {
        index,
        live: handle.live(),
        limits: limits.clone(),
        cancel: cancel.clone(),
    });
    let mut cancelled = false;
    loop {
        let event = tokio::select! {
            biased;
            () = cancel.cancelled(), if !cancelled => {
                handle.cancel();
                cancelled = true;
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
                        let stored = writer.write(s, stream, &data);
                        (writer, stored)
                    })
                    .await?;
                writer = back;
                if let Err(e) = stored {
                    // The store refused (disk full): stop the tool, and
                    // record the end of what was stored.
                    handle.cancel();
                    tracing::warn!(error = %e, "tool output could not be stored");
                }
            }
            CallEvent::Finished(report) => {
                let end = view::result_end(&report).with_limits(&limits);
                let line = view::outcome_line(&report);
                let item = store.run(move |s| writer.finish(s, &end)).await?;
                return Ok(Dispatched {
                    index,
                    item,
                    outcome_line: line,
                    bytes_seen: report.usage.bytes_produced,
                });
            }
        }
    }
    // `next_event` yields `Finished` before it ends.
    let end = ResultEnd {
        status: "failed".into(),
        ..ResultEnd::default()
    };
    let item = store.run(move |s| writer.finish(s, &end)).await?;
    Ok(Dispatched {
        index,
        item,
        outcome_line: "[failed: the call ended without a report]".into(),
        bytes_seen: 0,
    })
}

/// A call that was not run: its reason is stored as its result, so the
/// model sees it where it expects the output.
async fn refuse(
    store: &StoreThread,
    one: One<'_>,
    text: String,
) -> Result<Dispatched, StoreCallError> {
    let mut writer = one.begin(store).await?;
    let reason = text.clone();
    let item = store
        .run(move |store| {
            writer.write(store, bulkhead_ipc::StreamId::Stderr, reason.as_bytes())?;
            let outcome = serde_json::json!({"status": "failed", "line": "[failed: not run]"});
            writer.finish(
                store,
                &ResultEnd {
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
        item,
        outcome_line: text,
        bytes_seen: 0,
    })
}
