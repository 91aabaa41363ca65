//! [`Turn`]: one model answer described once, written in either wire
//! format.

use bulkhead_model::ProviderKind;
use bytes::Bytes;

use super::{Reply, StreamEnd, anthropic, openai};

/// A canned tool call: its id, name, and its arguments as the pieces they
/// are streamed in.
#[derive(Debug, Clone)]
pub struct CannedCall {
    pub id: String,
    pub name: String,
    pub pieces: Vec<String>,
}

/// One answer of the model: text (in streamed pieces), tool calls, usage.
/// The stop reason follows: tool use if there are calls, else end of turn.
#[derive(Debug, Clone, Default)]
pub struct Turn {
    pub text: Vec<String>,
    pub calls: Vec<CannedCall>,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Turn {
    pub fn new() -> Self {
        Self::default()
    }

    /// Text, streamed as these pieces.
    pub fn text(mut self, pieces: &[&str]) -> Self {
        self.text.extend(pieces.iter().map(|p| (*p).to_owned()));
        self
    }

    /// A tool call whose arguments are streamed as these pieces.
    pub fn call(mut self, id: &str, name: &str, pieces: &[&str]) -> Self {
        self.calls.push(CannedCall {
            id: id.to_owned(),
            name: name.to_owned(),
            pieces: pieces.iter().map(|p| (*p).to_owned()).collect(),
        });
        self
    }

    pub fn usage(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.input_tokens = input_tokens;
        self.output_tokens = output_tokens;
        self
    }

    /// The SSE events of this answer in `provider`'s format, one per
    /// element, ending with `[DONE]` / `message_stop`.
    pub fn events(&self, provider: ProviderKind) -> Vec<Bytes> {
        match provider {
            ProviderKind::OpenAi => openai::events(self),
            ProviderKind::Anthropic => anthropic::events(self),
        }
    }

    /// The whole answer as a reply that ends properly.
    pub fn reply(&self, provider: ProviderKind) -> Reply {
        Reply::stream(self.events(provider), StreamEnd::Finish)
    }
}
