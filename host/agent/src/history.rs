//! From the store's history window to the messages of one model request,
//! within the context budget.
//!
//! The window is chosen in SQL (`Store::history_window`): the pinned system
//! prompt, then the newest items within a count and a byte budget. Here it
//! becomes provider-neutral messages, repaired so that every provider
//! accepts it: it starts at a user message, every tool result follows the
//! assistant message that called it, and every call has a result.

use std::collections::HashSet;

use bulkhead_model::{ChatRequest, Message, ToolCall, ToolSpec};
use bulkhead_store::{
    HistoryWindow, ItemId, ItemKind, ResultView, SessionId, Store, StoreError, WindowItem,
    WindowSpec,
};

use super::view;
use bulkhead_config::agents::{AgentSpec, ModelSpec};

/// Bytes per token assumed before a provider reports usage. English prose
/// runs about 4 bytes per token, code and JSON nearer 3; the lower figure
/// over-counts tokens, so a request never passes the budget by estimate.
pub const BYTES_PER_TOKEN_ESTIMATE: f64 = 3.0;

/// Of the budget left for history, the share the window's raw text may
/// fill: JSON escaping (`\n`, `\"`) and each message's envelope add to the
/// body what the window's byte count does not see.
const WINDOW_SHARE_PERCENT: u64 = 80;

/// The context budget in bytes, tracked against what the provider reports.
#[derive(Debug, Clone)]
pub struct Budget {
    pub context_tokens: u64,
    /// Tokens kept free for the answer.
    pub answer_tokens: u64,
    bytes_per_token: f64,
}

impl Budget {
    pub fn new(model: &ModelSpec) -> Self {
        Self {
            context_tokens: model.context_tokens,
            answer_tokens: u64::from(model.max_tokens).min(model.context_tokens / 2),
            bytes_per_token: BYTES_PER_TOKEN_ESTIMATE,
        }
    }

    /// Most bytes a request body may have.
    pub fn max_body_bytes(&self) -> u64 {
        let tokens = self.context_tokens.saturating_sub(self.answer_tokens);
        (tokens as f64 * self.bytes_per_token) as u64
    }

    /// The estimated tokens of a body.
    pub fn tokens_of(&self, body_bytes: usize) -> u64 {
        (body_bytes as f64 / self.bytes_per_token).ceil() as u64
    }

    /// Bytes the window's items may take, after the fixed parts of the
    /// request (the tool schemas, the envelope).
    pub fn window_bytes(&self, fixed_bytes: u64) -> u64 {
        self.max_body_bytes().saturating_sub(fixed_bytes) * WINDOW_SHARE_PERCENT / 100
    }

    /// The provider counted `input_tokens` for a body of `body_bytes`: if
    /// its tokens are smaller than assumed, later budgets use its figure.
    pub fn observe(&mut self, body_bytes: usize, input_tokens: u64) {
        if input_tokens == 0 {
            return;
        }
        let seen = body_bytes as f64 / input_tokens as f64;
        if seen < self.bytes_per_token {
            self.bytes_per_token = seen.max(1.0);
        }
    }
}

/// The window to ask the store for.
pub fn window_spec(agent: &AgentSpec, max_items: u32, budget_bytes: u64) -> WindowSpec {
    let (view_head, view_tail) = view::head_tail(agent.result_budget);
    WindowSpec {
        max_items,
        budget_bytes,
        view_head,
        view_tail,
    }
}

/// What one request sends.
#[derive(Debug, Default)]
pub struct Prepared {
    pub system: Option<String>,
    pub messages: Vec<Message>,
    /// Session items older than the window.
    pub omitted: u64,
    /// Items of the window that became messages.
    pub used_items: usize,
}

/// The assistant's tool calls, as the loop stores them in an item's meta.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct AssistantMeta {
    pub tool_calls: Vec<ToolCall>,
}

/// The messages of one request from the store: the window chosen in SQL
/// by `spec`, prepared for the provider (results re-read at their tool's
/// budget where it is larger).
pub fn from_store(
    store: &Store,
    session: SessionId,
    agent: &AgentSpec,
    spec: &WindowSpec,
) -> Result<Prepared, StoreError> {
    let window = store.history_window(session, spec)?;
    Ok(prepare(window, agent, |id, h, t| {
        store.result_view(id, h, t).ok()
    }))
}

impl Prepared {
    /// The request these messages make for `model`, offering `tools`.
    pub fn request<'a>(&'a self, model: &'a ModelSpec, tools: &'a [ToolSpec]) -> ChatRequest<'a> {
        ChatRequest {
            model: &model.model,
            system: self.system.as_deref(),
            messages: &self.messages,
            tools,
            max_tokens: model.max_tokens,
            temperature: None,
        }
    }
}

/// Turns the window into messages. `reread` gives a larger view of a
/// result whose tool has a bigger budget than the window read.
pub fn prepare(
    window: HistoryWindow,
    agent: &AgentSpec,
    mut reread: impl FnMut(ItemId, u64, u64) -> Option<ResultView>,
) -> Prepared {
    let mut out = Prepared {
        omitted: window.omitted_items,
        ..Prepared::default()
    };
    out.system = window
        .pinned
        .into_iter()
        .find(|w| w.item.kind == ItemKind::System)
        .map(|w| w.item.text);
    // Calls of the latest assistant message still waiting for a result.
    let mut pending: Vec<String> = Vec::new();
    let mut answered: HashSet<String> = HashSet::new();
    for WindowItem { item, view, .. } in window.items {
        // A provider wants the history to start with the user.
        if out.messages.is_empty() && item.kind != ItemKind::User {
            continue;
        }
        match item.kind {
            ItemKind::User => {
                close_calls(&mut out.messages, &mut pending, &answered);
                out.messages.push(Message::User { text: item.text });
            }
            ItemKind::Assistant => {
                close_calls(&mut out.messages, &mut pending, &answered);
                let tool_calls = item
                    .meta_json
                    .as_deref()
                    .and_then(|m| serde_json::from_str::<AssistantMeta>(m).ok())
                    .map(|m| m.tool_calls)
                    .unwrap_or_default();
                pending = tool_calls.iter().map(|c| c.id.clone()).collect();
                answered.clear();
                out.messages.push(Message::Assistant {
                    text: item.text,
                    tool_calls,
                });
            }
            ItemKind::ToolResult => {
                let (Some(view), Some(info)) = (view, item.result.as_ref()) else {
                    continue;
                };
                let Some(call_id) = info.call_ref.clone() else {
                    continue;
                };
                // A result whose call fell out of the window is dropped:
                // providers refuse a result without its call.
                if !pending.contains(&call_id) || answered.contains(&call_id) {
                    continue;
                }
                let budget = agent.budget_for(&info.tool);
                let content = if budget > agent.result_budget {
                    let (h, t) = view::head_tail(budget);
                    match reread(item.id, h, t) {
                        Some(bigger) => view::render(&bigger, budget),
                        None => view::render(&view, agent.result_budget),
                    }
                } else {
                    view::render(&view, budget)
                };
                let is_error = matches!(info.status.as_deref(), Some("failed" | "killed"));
                answered.insert(call_id.clone());
                out.messages.push(Message::ToolResult {
                    call_id,
                    content,
                    is_error,
                });
            }
            // Tool calls live in the assistant's meta; notices and
            // unpinned system items are for the user, not the model.
            ItemKind::ToolCall | ItemKind::Notice | ItemKind::System => continue,
        }
        out.used_items += 1;
    }
    close_calls(&mut out.messages, &mut pending, &answered);
    out
}

/// Gives every call of the last assistant message that has no result one
/// that says so (the host stopped mid-call, or its result fell out of the
/// window): providers refuse a call without a result.
fn close_calls(messages: &mut Vec<Message>, pending: &mut Vec<String>, answered: &HashSet<String>) {
    for call_id in pending.drain(..) {
        if !answered.contains(&call_id) {
            messages.push(Message::ToolResult {
                call_id,
                content: "[no result recorded for this call: it was interrupted]".into(),
                is_error: true,
            });
        }
    }
}
