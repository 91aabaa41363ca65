//! Provider-neutral conversation types: what the agent loop hands a
//! [`ModelClient`](super::ModelClient) and what it gets back.
//!
//! Both providers serialise a [`ChatRequest`] straight from these borrowed
//! values into the HTTP body (no intermediate JSON tree), and both decode
//! their streams into the same [`ModelEvent`]s.

use serde::{Deserialize, Serialize};

/// One item of the conversation history. The system prompt is not an item:
/// it is pinned in [`ChatRequest::system`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    /// What the user typed.
    User { text: String },
    /// The model's turn: its text (may be empty) and the tools it called,
    /// in the order it called them.
    Assistant {
        text: String,
        tool_calls: Vec<ToolCall>,
    },
    /// The answer to one tool call. `content` is already bounded by the
    /// caller (the model's view of the result, with its outcome line).
    ToolResult {
        call_id: String,
        content: String,
        is_error: bool,
    },
}

/// A tool call the model made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for the call; the result must quote it.
    pub id: String,
    pub name: String,
    /// The arguments as the model wrote them: JSON text, normally an
    /// object. Not validated here: a model can write broken JSON, and the
    /// caller tells it so in the tool result rather than failing the turn.
    /// Empty arguments are reported as `{}`.
    pub arguments: String,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments (an object schema).
    pub input_schema: serde_json::Value,
}

/// One request to a model: everything is borrowed, so building it costs
/// nothing and the body is written straight from the caller's history.
#[derive(Debug, Clone, Copy)]
pub struct ChatRequest<'a> {
    pub model: &'a str,
    pub system: Option<&'a str>,
    pub messages: &'a [Message],
    pub tools: &'a [ToolSpec],
    /// Most tokens the model may write in its answer (Anthropic requires
    /// it; OpenAI-compatible servers get it as `max_tokens`).
    pub max_tokens: u32,
    pub temperature: Option<f32>,
}

impl ChatRequest<'_> {
    /// The body's size, estimated from the text it carries plus a fixed
    /// allowance per item for the JSON around it, without serialising:
    /// a fast byte count for a context budget, and the buffer size the
    /// body is written into (so the buffer neither regrows nor keeps up
    /// to twice the body's size in spare capacity).
    pub fn estimated_bytes(&self) -> usize {
        /// Keys, quotes and braces of one message or tool call in either
        /// format: ~60-100 bytes; JSON escapes in the text add more.
        const PER_ITEM: usize = 96;
        let messages: usize = self
            .messages
            .iter()
            .map(|m| {
                PER_ITEM
                    + match m {
                        Message::User { text } => text.len(),
                        Message::Assistant { text, tool_calls } => {
                            text.len()
                                + tool_calls
                                    .iter()
                                    .map(|c| {
                                        PER_ITEM + c.id.len() + c.name.len() + c.arguments.len()
                                    })
                                    .sum::<usize>()
                        }
                        Message::ToolResult {
                            call_id, content, ..
                        } => call_id.len() + content.len(),
                    }
            })
            .sum();
        let tools: usize = self
            .tools
            .iter()
            .map(|t| PER_ITEM + t.name.len() + t.description.len() + PER_ITEM * 4)
            .sum();
        PER_ITEM * 2 + self.model.len() + self.system.map_or(0, str::len) + messages + tools
    }
}

/// Token counts the provider reported for one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// It finished its answer (OpenAI `stop`, Anthropic `end_turn`).
    EndTurn,
    /// It wants tool results (`tool_calls` / `tool_use`).
    ToolUse,
    /// It hit `max_tokens` (`length` / `max_tokens`).
    MaxTokens,
    /// A stop sequence (`stop_sequence`).
    StopSequence,
    /// Anything else the provider said (`content_filter`, `refusal`, …).
    Other(String),
}

/// What a [`ModelStream`](super::ModelStream) yields, in stream order.
///
/// A tool call is reported as `ToolCallStarted`, any number of
/// `ToolCallArgumentsDelta`, then `ToolCallComplete` with the assembled
/// arguments (`index` is the call's position in this answer). `Usage` and
/// `Stop` come once each near the end, in either order; `Done` is last.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelEvent {
    TextDelta(String),
    ToolCallStarted {
        index: usize,
        id: String,
        name: String,
    },
    ToolCallArgumentsDelta {
        index: usize,
        delta: String,
    },
    ToolCallComplete {
        index: usize,
        call: ToolCall,
    },
    Usage(TokenUsage),
    Stop(StopReason),
    /// The provider ended the answer properly (`[DONE]`, `message_stop`).
    Done,
}
