//! Model providers: the host's client for model APIs, speaking OpenAI Chat
//! Completions (and the many servers compatible with it) and Anthropic
//! Messages, both streamed.
//!
//! # Model
//!
//! The agent loop builds a [`ChatRequest`] that borrows its history window,
//! and calls [`ModelClient::stream`]. The body is serialised once, straight
//! from the borrowed messages (no JSON tree of the context), and sent with
//! retries on 429/5xx (exponential backoff with full jitter, `Retry-After`
//! honoured up to a cap). Once a 200 arrives, the answer is read as a
//! bounded SSE stream ([`bulkhead_ipc::sse`]) and decoded into
//! provider-neutral [`ModelEvent`]s by [`ModelStream::next`].
//!
//! **Invariants:** what a model server can make the host hold is bounded
//! by [`ModelLimits`], never by what it sends: one event is capped before
//! it is buffered, the whole body is counted, error bodies are read up to a
//! cap. Every wait is bounded (connect, response, idle timeouts; backoff
//! capped) and cancellable. The API key is in no error, no `Debug` output
//! and no log.

mod anthropic;
mod calls;
mod client;
mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod openai;
mod provider_error;
mod retry;
mod stream;
mod types;

pub use client::ModelClient;
pub use stream::ModelStream;

pub use config::{ApiKey, ModelConfig, ModelLimits, ProviderKind};
pub use error::{CapKind, ModelError, TimeoutKind};
pub use types::{ChatRequest, Message, ModelEvent, StopReason, TokenUsage, ToolCall, ToolSpec};

/// Feeds `events` (each one event's data) to a decoder until it says the
/// answer ended: what the decoders' unit tests share.
#[cfg(test)]
pub(crate) fn decode_all(
    events: &[&str],
    mut event: impl FnMut(
        &[u8],
        &mut std::collections::VecDeque<ModelEvent>,
    ) -> Result<bool, ModelError>,
) -> Result<Vec<ModelEvent>, ModelError> {
    let mut out = std::collections::VecDeque::new();
    for e in events {
        if event(e.as_bytes(), &mut out)? {
            break;
        }
    }
    Ok(out.into())
}
