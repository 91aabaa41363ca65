//! `bulkhead run … --session ID|new`: the call and its output recorded
//! into a session as they happen, through the store's [`CallRecorder`],
//! inline (the command runs one call and owns its store).
//!
//! The store is opened before the call runs, so a store that cannot be
//! used stops the command before any tool starts. A write that fails during
//! the call (a full disk) is reported once; the call goes on, and what was
//! committed before stays.

use std::path::Path;

use bulkhead_host::{CallLimits, CallReport};
use bulkhead_ipc::StreamId;
use bulkhead_store::{CallRecorder, NewSession, RecordedCall, ResultEnd, Store, StoreError};

use crate::cli::SessionChoice;

pub struct Recorder {
    store: Store,
    /// `None` once finished; a recorder dropped before that marks its
    /// result interrupted.
    call: Option<CallRecorder>,
}

impl Recorder {
    /// Opens the store, creates the session if asked, and records the call
    /// (a tool-call item, then its result, which will carry `limits`).
    pub fn begin(
        store_flag: Option<&Path>,
        config: Option<&Path>,
        choice: SessionChoice,
        tool: &str,
        args_json: &str,
        limits: &CallLimits,
    ) -> anyhow::Result<Recorder> {
        let (store, _) = super::open_store(store_flag, config)?;
        let session = match choice {
            SessionChoice::Existing(id) => {
                store.session(id)?;
                id
            }
            SessionChoice::New => store.create_session(&NewSession {
                title: format!("bulkhead run {tool}"),
                model: None,
                config_json: Some(serde_json::json!({ "command": "run" }).to_string()),
            })?,
        };
        let call = RecordedCall::new(tool, args_json)
            .with_tool_call_item()
            .with_limits(limits);
        let call = CallRecorder::begin(&store, &session.into(), &call)?;
        eprintln!(
            "bulkhead: recording into session {session} (store {})",
            store.path().display()
        );
        Ok(Recorder {
            store,
            call: Some(call),
        })
    }

    /// Records a piece of output as it arrives.
    pub fn output(&mut self, stream: StreamId, data: &[u8]) {
        if let Some(call) = self.call.as_mut()
            && let Err(e) = call.output(&self.store, stream, data)
        {
            report_error(&e);
        }
    }

    /// Records the rest of the output and the outcome. `head_in_report`:
    /// the report holds the head (it was not streamed through `output`).
    pub fn finish(mut self, report: &CallReport, head_in_report: bool) {
        let Some(mut call) = self.call.take() else {
            return;
        };
        if let Err(e) = call.report(&self.store, report, head_in_report) {
            report_error(&e);
        }
        match call.finish(&self.store, ResultEnd::from_report(report)) {
            Ok(done) if done.complete => eprintln!(
                "bulkhead: recorded in session {} (item {})",
                done.session, done.item
            ),
            Ok(done) => eprintln!(
                "bulkhead: session {}: the outcome was recorded, part of the output was not",
                done.session
            ),
            Err(e) => report_error(&e),
        }
    }
}

/// A call that ended without a report (the host could not start): its
/// result is marked interrupted rather than left running.
impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(call) = self.call.take()
            && let Err(e) = call.abandon(&self.store)
        {
            report_error(&e);
        }
    }
}

fn report_error(e: &StoreError) {
    eprintln!("bulkhead: session store: {e}; the rest of this call's output is not recorded");
}
