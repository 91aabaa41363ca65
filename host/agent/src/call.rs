//! One tool call of a model's answer as the loop records it: which call it
//! is, how its result is begun in the store, and how it ended. Shared by
//! the dispatcher (worker calls, refusals) and the MCP tools, which both
//! store a call's result the same way.

use bulkhead_host::CallLimits;
use bulkhead_model::ToolCall;
use bulkhead_store::{CallRecorder, ItemId, RecordSession, RecordedCall, SessionId, StoreThread};

use crate::store_call::{StoreCallError, StoreRun};

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
    /// The injected fault that fired (`injected kill @200ms at 201 ms`),
    /// for the user's view; the model sees only the outcome, as it would
    /// see the real failure.
    pub injected: Option<String>,
}

/// Which call of which answer.
pub(crate) struct One<'a> {
    pub session: SessionId,
    pub index: usize,
    pub call: &'a ToolCall,
}

impl One<'_> {
    /// Starts the call's result in the store (listed as `running`), under
    /// the model's id for the call. `limits`: those of a call that runs in
    /// a worker, kept in the result's meta.
    pub async fn begin(
        &self,
        store: &StoreThread,
        limits: Option<&CallLimits>,
    ) -> Result<CallRecorder, StoreCallError> {
        let session = RecordSession::Existing(self.session);
        let mut call =
            RecordedCall::new(&self.call.name, &self.call.arguments).with_call_ref(&self.call.id);
        if let Some(limits) = limits {
            call = call.with_limits(limits);
        }
        store
            .run(move |s| CallRecorder::begin(s, &session, &call))
            .await
    }
}
