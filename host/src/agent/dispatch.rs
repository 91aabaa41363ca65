//! Runs the tool calls of one model answer, in parallel, each streaming
//! its output into the session store as it arrives.
//!
//! Every call runs in stream mode: the host keeps none of the output, each
//! chunk goes straight into the call's `ResultWriter` (one chunk row per
//! IPC chunk), and the worker gets credit only as chunks are stored. So
//! the host holds at most one chunk per running call, whatever the tools
//! print, and the store holds the capped result exactly once.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::task::JoinSet;

use crate::model::ToolCall;
use crate::report::CallEvent;
use crate::store::{ItemId, ResultEnd, SessionId, Store, StoreError};
use crate::{CallRequest, ToolHost};

use super::tools::Prepared;
use super::view;

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

/// Runs `calls` at once (the host's worker limit queues the excess) and
/// returns as each ends, in the order they end.
pub struct Dispatch {
    set: JoinSet<Result<Dispatched, StoreError>>,
}

impl Dispatch {
    pub fn start(
        host: &ToolHost,
        store: &Arc<Mutex<Store>>,
        session: SessionId,
        calls: Vec<(usize, ToolCall, Prepared)>,
    ) -> Self {
        let mut set = JoinSet::new();
        for (index, call, prepared) in calls {
            let store = store.clone();
            let host = host.clone();
            set.spawn(async move {
                match prepared {
                    Prepared::Run(req) => run_one(&host, &store, session, index, &call, *req).await,
                    Prepared::Refused(text) => refuse(&store, session, index, &call, text),
                }
            });
        }
        Self { set }
    }

    /// The next call to end; `None` when all have.
    pub async fn next(&mut self) -> Option<Result<Dispatched, StoreError>> {
        loop {
            match self.set.join_next().await? {
                Ok(r) => return Some(r),
                // A task that panicked is a bug; its call's worker died
                // with its handle. Keep collecting the others.
                Err(e) => tracing::error!(error = %e, "a tool-call task failed"),
            }
        }
    }
}

/// Locks the store. A poisoned lock means a write panicked mid-way; SQLite
/// rolled that transaction back, so the connection is still sound.
fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|p| p.into_inner())
}

async fn run_one(
    host: &ToolHost,
    store: &Mutex<Store>,
    session: SessionId,
    index: usize,
    call: &ToolCall,
    req: CallRequest,
) -> Result<Dispatched, StoreError> {
    let mut writer =
        lock(store).begin_result(session, &call.name, Some(&call.id), &call.arguments)?;
    let mut handle = host.call(req);
    while let Some(event) = handle.next_event().await {
        match event {
            CallEvent::Started(_) => {}
            CallEvent::Output { stream, data } => {
                let stored = write_chunk(store, &mut writer, stream, &data);
                if let Err(e) = stored {
                    // The store refused (disk full): stop the tool, and
                    // record the end of what was stored.
                    handle.cancel();
                    tracing::warn!(error = %e, "tool output could not be stored");
                }
            }
            CallEvent::Finished(report) => {
                let end = view::result_end(&report);
                let line = view::outcome_line(&report);
                let item = writer.finish(&lock(store), &end)?;
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
    let item = writer.finish(
        &lock(store),
        &ResultEnd {
            status: "failed".into(),
            ..ResultEnd::default()
        },
    )?;
    Ok(Dispatched {
        index,
        item,
        outcome_line: "[failed: the call ended without a report]".into(),
        bytes_seen: 0,
    })
}

fn write_chunk(
    store: &Mutex<Store>,
    writer: &mut crate::store::ResultWriter,
    stream: bulkhead_ipc::StreamId,
    data: &Bytes,
) -> Result<(), StoreError> {
    writer.write(&lock(store), stream, data)
}

/// A call that was not run: its reason is stored as its result, so the
/// model sees it where it expects the output.
fn refuse(
    store: &Mutex<Store>,
    session: SessionId,
    index: usize,
    call: &ToolCall,
    text: String,
) -> Result<Dispatched, StoreError> {
    let store = lock(store);
    let mut writer = store.begin_result(session, &call.name, Some(&call.id), &call.arguments)?;
    writer.write(&store, bulkhead_ipc::StreamId::Stderr, text.as_bytes())?;
    let outcome = serde_json::json!({"status": "failed", "line": "[failed: not run]"});
    let item = writer.finish(
        &store,
        &ResultEnd {
            status: "failed".into(),
            outcome_json: Some(outcome.to_string()),
            bytes_seen: text.len() as u64,
            ..ResultEnd::default()
        },
    )?;
    Ok(Dispatched {
        index,
        item,
        outcome_line: text,
        bytes_seen: 0,
    })
}
