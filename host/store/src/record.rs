//! Recording one tool call into a session as it runs: the steps `bulkhead
//! run --session`, the TUI and the agent loop share.
//!
//! A [`CallRecorder`] starts the call's result (after a tool-call item,
//! when asked), takes each output chunk as the call streams it, and ends
//! the result with the call's outcome and the limits it ran under. It is a
//! plain value over a [`ResultWriter`] that borrows the store only during
//! each step, so each caller runs the steps where its writes belong: inline
//! on a [`Store`] it owns (`bulkhead run`), or as jobs on a
//! [`StoreThread`](crate::StoreThread) (the TUI, the agent loop), whose
//! async tasks must not wait on the disk.
//!
//! The output's bytes go only into the result's chunk rows, and the
//! recorder holds at most the writer's one chunk.
//!
//! A write that fails (a full disk) is returned once, by the step that hit
//! it, for the caller to report in its own way. The output after it is not
//! recorded, but the end still is, so the result says how the call ended
//! and [`Recorded::complete`] says that part of its output is missing.

use std::sync::{Arc, Mutex, PoisonError};

use bulkhead_host::{CallLimits, CallReport};
use bulkhead_ipc::StreamId;

use super::error::Result;
use super::items::{ItemKind, NewItem};
use super::payload::{ResultEnd, ResultWriter};
use super::sessions::NewSession;
use super::{ItemId, SessionId, Store};

/// Characters kept of a lazily created session's title: about what one
/// line of a session list shows.
const LAZY_TITLE_CHARS: usize = 80;

/// What is recorded about a call before it runs.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    pub tool: String,
    pub args_json: String,
    /// The model's id for the call, when a model asked for it.
    pub call_ref: Option<String>,
    /// Also appends a tool-call item (the tool's name, with name and
    /// arguments in its meta) before the result: a session with no
    /// assistant message would otherwise not say which call was made. The
    /// agent's assistant item names its calls itself.
    pub tool_call_item: bool,
    /// The limits the call runs under, kept in the result item's meta so a
    /// reopened session shows the call against them. `None` for a call
    /// without a worker (an MCP answer, a refusal).
    pub limits: Option<CallLimits>,
}

impl RecordedCall {
    pub fn new(tool: impl Into<String>, args_json: impl Into<String>) -> RecordedCall {
        RecordedCall {
            tool: tool.into(),
            args_json: args_json.into(),
            call_ref: None,
            tool_call_item: false,
            limits: None,
        }
    }

    pub fn with_call_ref(mut self, call_ref: impl Into<String>) -> RecordedCall {
        self.call_ref = Some(call_ref.into());
        self
    }

    pub fn with_tool_call_item(mut self) -> RecordedCall {
        self.tool_call_item = true;
        self
    }

    pub fn with_limits(mut self, limits: &CallLimits) -> RecordedCall {
        self.limits = Some(limits.clone());
        self
    }
}

/// The session a call is recorded into.
#[derive(Debug, Clone)]
pub enum RecordSession {
    /// A session that exists already.
    Existing(SessionId),
    /// A session created by the first thing recorded into it.
    Lazy(Arc<LazySession>),
}

impl From<SessionId> for RecordSession {
    fn from(id: SessionId) -> Self {
        RecordSession::Existing(id)
    }
}

impl From<Arc<LazySession>> for RecordSession {
    fn from(lazy: Arc<LazySession>) -> Self {
        RecordSession::Lazy(lazy)
    }
}

/// A session created in the store by the first thing recorded into it,
/// titled with that thing, so an app opened and closed without doing
/// anything leaves no empty session behind. Shared between the app, which
/// shows its id, and the jobs that record into it.
#[derive(Debug, Default)]
pub struct LazySession {
    id: Mutex<Option<SessionId>>,
}

impl LazySession {
    /// A session that already exists (reopened or resumed).
    pub fn existing(id: SessionId) -> Arc<LazySession> {
        Arc::new(LazySession {
            id: Mutex::new(Some(id)),
        })
    }

    /// The session's id, once it exists.
    pub fn get(&self) -> Option<SessionId> {
        *self.id.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session's id, creating the session (titled with the start of
    /// `title`) if this is the first thing recorded into it. The slot stays
    /// locked while the session is created, so two recorders never create
    /// two sessions. A panic elsewhere while it was locked leaves a valid
    /// id or none, so a poisoned lock is used as it is.
    pub fn ensure(&self, store: &Store, title: &str) -> Result<SessionId> {
        let mut id = self.id.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(id) = *id {
            return Ok(id);
        }
        let created = store.create_session(&NewSession {
            title: clip(title, LAZY_TITLE_CHARS),
            model: None,
            config_json: None,
        })?;
        *id = Some(created);
        Ok(created)
    }
}

/// Cuts `s` to at most `max` characters, with `…` where it was cut.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// One call's result, recorded as the call runs.
#[derive(Debug)]
pub struct CallRecorder {
    writer: ResultWriter,
    limits: Option<CallLimits>,
    /// A write failed: the output after it is not recorded.
    failed: bool,
}

/// A call's result, once recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub item: ItemId,
    pub session: SessionId,
    /// Bytes of output the result was given before its end (those a failed
    /// write lost included).
    pub stored_bytes: u64,
    /// No write failed: every byte of output the recorder was given is
    /// stored.
    pub complete: bool,
}

impl CallRecorder {
    /// Starts the call's result in `session` (listed as `running` from
    /// now on), after its tool-call item if `call` asks for one.
    pub fn begin(store: &Store, session: &RecordSession, call: &RecordedCall) -> Result<Self> {
        let session = match session {
            RecordSession::Existing(id) => *id,
            RecordSession::Lazy(lazy) => {
                lazy.ensure(store, &format!("{} {}", call.tool, call.args_json))?
            }
        };
        if call.tool_call_item {
            let meta = serde_json::json!({ "tool": call.tool, "args": call.args_json });
            let item = NewItem::new(ItemKind::ToolCall, &call.tool).with_meta(meta.to_string());
            store.append(session, &item)?;
        }
        let writer = store.begin_result(
            session,
            &call.tool,
            call.call_ref.as_deref(),
            &call.args_json,
        )?;
        Ok(CallRecorder {
            writer,
            limits: call.limits.clone(),
            failed: false,
        })
    }

    pub fn item(&self) -> ItemId {
        self.writer.item()
    }

    pub fn session(&self) -> SessionId {
        self.writer.session()
    }

    /// Records a chunk of output as it arrives. Returns the first failed
    /// write; the output after it is dropped without another error, since
    /// the stored offsets would no longer be the call's.
    pub fn output(&mut self, store: &Store, stream: StreamId, data: &[u8]) -> Result<()> {
        if self.failed {
            return Ok(());
        }
        let written = self.writer.write(store, stream, data);
        self.failed = written.is_err();
        written
    }

    /// Records what the host's report adds to the streamed output: the
    /// head when it was kept in the report rather than streamed
    /// (`head_in_report`), where the output was cut and by how much, and
    /// the kept tail. For a caller whose call keeps some output in its
    /// report (`bulkhead run` with `--json` or `--tail`); callers in pure
    /// stream mode do not call it, and their results carry no cut mark.
    /// Fails as [`output`](CallRecorder::output) does.
    pub fn report(
        &mut self,
        store: &Store,
        report: &CallReport,
        head_in_report: bool,
    ) -> Result<()> {
        if self.failed {
            return Ok(());
        }
        let written = self
            .writer
            .write_report_output(store, report, head_in_report);
        self.failed = written.is_err();
        written
    }

    /// Ends the result: commits what is buffered and records `end`, with
    /// the call's limits in the item's meta. After a failed write the end
    /// is still recorded.
    pub fn finish(self, store: &Store, end: ResultEnd) -> Result<Recorded> {
        let end = match &self.limits {
            Some(limits) => end.with_limits(limits),
            None => end,
        };
        let session = self.writer.session();
        let stored_bytes = self.writer.written();
        let item = self.writer.finish(store, &end)?;
        Ok(Recorded {
            item,
            session,
            stored_bytes,
            complete: !self.failed,
        })
    }

    /// Ends the result as `interrupted`: its call never reported an end
    /// (it could not start, or its caller stopped waiting). What was
    /// committed stays.
    pub fn abandon(self, store: &Store) -> Result<()> {
        self.writer.abandon(store)
    }
}
