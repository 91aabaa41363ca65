//! `bulkhead run … --session ID|new`: the call and its output recorded
//! into a session as they happen.
//!
//! The store is opened before the call runs, so a store that cannot be
//! used stops the command before any tool starts. A write that fails during
//! the call (a full disk) is reported once; the call goes on, and what was
//! committed before stays.

use std::path::Path;

use bulkhead_host::store::{
    ItemKind, NewItem, NewSession, ResultEnd, ResultWriter, SessionId, Store, StoreError,
};
use bulkhead_host::{CallLimits, CallReport};
use bulkhead_ipc::StreamId;

use crate::cli::SessionChoice;

pub struct Recorder {
    store: Store,
    session: SessionId,
    writer: Option<ResultWriter>,
    /// The first write error, reported once; later output is not recorded.
    failed: bool,
}

impl Recorder {
    /// Opens the store, creates the session if asked, and records the call.
    pub fn begin(
        store_flag: Option<&Path>,
        config: Option<&Path>,
        choice: SessionChoice,
        tool: &str,
        args_json: &str,
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
        let meta = serde_json::json!({ "tool": tool, "args": args_json }).to_string();
        store.append(
            session,
            &NewItem::new(ItemKind::ToolCall, tool).with_meta(meta),
        )?;
        let writer = store.begin_result(session, tool, None, args_json)?;
        eprintln!(
            "bulkhead: recording into session {session} (store {})",
            store.path().display()
        );
        Ok(Recorder {
            store,
            session,
            writer: Some(writer),
            failed: false,
        })
    }

    /// Records a piece of output as it arrives.
    pub fn output(&mut self, stream: StreamId, data: &[u8]) {
        if let Some(w) = self.writer.as_mut().filter(|_| !self.failed) {
            let r = w.write(&self.store, stream, data);
            self.check(r);
        }
    }

    /// Records the rest of the output and the outcome. `head_in_report`:
    /// the report holds the head (it was not streamed through `output`).
    /// Ends the result; `limits` (what the call ran under) go in its meta.
    pub fn finish(mut self, report: &CallReport, head_in_report: bool, limits: &CallLimits) {
        let Some(w) = self.writer.take() else { return };
        let session = self.session;
        let item = w.item();
        let finished = if self.failed {
            // The output is already incomplete; record at least the end.
            w.finish(
                &self.store,
                &ResultEnd::from_report(report).with_limits(limits),
            )
        } else {
            w.finish_report(&self.store, report, head_in_report, Some(limits))
        };
        match finished {
            Ok(_) if !self.failed => {
                eprintln!("bulkhead: recorded in session {session} (item {item})")
            }
            Ok(_) => eprintln!(
                "bulkhead: session {session}: the outcome was recorded, part of the output was not"
            ),
            Err(e) => report_error(&e),
        }
    }

    fn check(&mut self, r: Result<(), StoreError>) {
        if let Err(e) = r {
            report_error(&e);
            self.failed = true;
        }
    }
}

/// A call that ended without a report (the host could not start): its
/// result is marked interrupted rather than left running.
impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(w) = self.writer.take()
            && let Err(e) = w.abandon(&self.store)
        {
            report_error(&e);
        }
    }
}

fn report_error(e: &StoreError) {
    eprintln!("bulkhead: session store: {e}; the rest of this call's output is not recorded");
}
