//! `bulkhead run … --session ID|new`: the call and its output recorded
//! into a session as they happen.
//!
//! The store is opened before the call runs, so a store that cannot be
//! used stops the command before any tool starts. A write that fails during
//! the call (a full disk) is reported once; the call goes on, and what was
//! committed before stays.

use std::path::Path;

use bulkhead_host::CallReport;
use bulkhead_host::store::{
    ItemKind, NewItem, NewSession, ResultEnd, ResultWriter, SessionId, Store, StoreError,
};
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
    pub fn finish(mut self, report: &CallReport, head_in_report: bool) {
        if head_in_report {
            for seg in report.output.head() {
                self.output(seg.stream, &seg.data);
            }
        }
        let Some(mut w) = self.writer.take() else {
            return;
        };
        if !self.failed && report.cut_bytes() > 0 {
            let r = w.mark_cut(&self.store, report.cut_bytes());
            self.check(r);
        }
        for seg in report.output.tail() {
            if !self.failed {
                let r = w.write(&self.store, seg.stream, &seg.data);
                self.check(r);
            }
        }
        let item = w.item();
        match w.finish(&self.store, &ResultEnd::from_report(report)) {
            Ok(_) if !self.failed => eprintln!(
                "bulkhead: recorded in session {} (item {item})",
                self.session
            ),
            Ok(_) => eprintln!(
                "bulkhead: session {}: the outcome was recorded, part of the output was not",
                self.session
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
