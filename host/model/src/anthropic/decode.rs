//! Decodes a Messages stream: `message_start`, `content_block_start` /
//! `_delta` / `_stop` (text and `tool_use` with `input_json_delta`),
//! `message_delta` (stop reason, usage), `message_stop`, `ping`, `error`.
//! Unknown event and block types are skipped, as the API asks of clients.

use std::collections::{HashMap, VecDeque};

use serde::Deserialize;

use crate::calls::ToolCalls;
use crate::{ModelError, ModelEvent, StopReason, TokenUsage};

/// Most content blocks one answer may open: the map from block index to
/// tool call must not grow without end on a hostile stream.
const MAX_BLOCKS: usize = 1024;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: MessageStart,
    },
    ContentBlockStart {
        index: usize,
        content_block: Block,
    },
    ContentBlockDelta {
        index: usize,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDelta,
        usage: Option<Usage>,
    },
    MessageStop,
    Ping,
    Error {
        error: ErrorBody,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
struct MessageStart {
    usage: Option<Usage>,
}

#[derive(Deserialize, Default)]
struct Usage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize, Default)]
struct MessageDelta {
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: String,
}

#[derive(Debug, Default)]
pub(crate) struct Decoder {
    calls: ToolCalls,
    /// Content block index → tool call index, for `tool_use` blocks.
    tool_blocks: HashMap<usize, usize>,
    usage: TokenUsage,
    saw_usage: bool,
}

impl Decoder {
    pub(crate) fn event(
        &mut self,
        data: &[u8],
        out: &mut VecDeque<ModelEvent>,
    ) -> Result<bool, ModelError> {
        let event: Event = serde_json::from_slice(data).map_err(|e| {
            ModelError::Protocol(format!("a streamed event is not a Messages event: {e}"))
        })?;
        match event {
            Event::MessageStart { message } => self.add_usage(message.usage),
            Event::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                Block::Text { text } if !text.is_empty() => {
                    out.push_back(ModelEvent::TextDelta(text));
                }
                Block::ToolUse { id, name } => {
                    if index >= MAX_BLOCKS {
                        return Err(ModelError::Protocol(format!(
                            "content block index {index} (at most {MAX_BLOCKS})"
                        )));
                    }
                    let call = self.calls.len();
                    self.tool_blocks.insert(index, call);
                    self.calls.update(call, Some(&id), Some(&name), None, out)?;
                }
                Block::Text { .. } | Block::Other => {}
            },
            Event::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } if !text.is_empty() => {
                    out.push_back(ModelEvent::TextDelta(text));
                }
                BlockDelta::InputJsonDelta { partial_json } => {
                    let call = self.tool_blocks.get(&index).copied().ok_or_else(|| {
                        ModelError::Protocol(format!(
                            "input_json_delta for block {index}, which is not a tool_use block"
                        ))
                    })?;
                    self.calls
                        .update(call, None, None, Some(&partial_json), out)?;
                }
                BlockDelta::TextDelta { .. } | BlockDelta::Other => {}
            },
            Event::ContentBlockStop { index } => {
                if let Some(&call) = self.tool_blocks.get(&index) {
                    self.calls.complete(call, out)?;
                }
            }
            Event::MessageDelta { delta, usage } => {
                self.add_usage(usage);
                if let Some(reason) = delta.stop_reason {
                    out.push_back(ModelEvent::Stop(stop_reason(&reason)));
                }
            }
            Event::MessageStop => {
                self.calls.complete_all(out)?;
                if self.saw_usage {
                    out.push_back(ModelEvent::Usage(self.usage));
                }
                out.push_back(ModelEvent::Done);
                return Ok(true);
            }
            Event::Ping | Event::Unknown => {}
            Event::Error { error } => {
                return Err(ModelError::Stream {
                    kind: error.kind,
                    message: error.message,
                });
            }
        }
        Ok(false)
    }

    /// `message_start` carries the input count, `message_delta` the
    /// output count so far (cumulative); a later figure replaces an
    /// earlier one. Cached input counts as input: it fills the context.
    fn add_usage(&mut self, usage: Option<Usage>) {
        let Some(u) = usage else { return };
        self.saw_usage = true;
        if u.input_tokens.is_some()
            || u.cache_creation_input_tokens.is_some()
            || u.cache_read_input_tokens.is_some()
        {
            let input = u.input_tokens.unwrap_or(0)
                + u.cache_creation_input_tokens.unwrap_or(0)
                + u.cache_read_input_tokens.unwrap_or(0);
            self.usage.input_tokens = self.usage.input_tokens.max(input);
        }
        if let Some(output) = u.output_tokens {
            self.usage.output_tokens = output;
        }
    }
}

fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "end_turn" => StopReason::EndTurn,
        "tool_use" => StopReason::ToolUse,
        "max_tokens" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        other => StopReason::Other(other.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(events: &[&str]) -> Result<Vec<ModelEvent>, ModelError> {
        let mut d = Decoder::default();
        crate::decode_all(events, |data, out| d.event(data, out))
    }

    #[test]
    fn thinking_blocks_and_unknown_events_are_skipped() {
        let events = decode(&[
            r#"{"type":"message_start","message":{"usage":{"input_tokens":5,"cache_read_input_tokens":100,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"x"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"some_future_event","x":1}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"ok"}}"#,
            r#"{"type":"content_block_stop","index":1}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"refusal"},"usage":{"output_tokens":9}}"#,
            r#"{"type":"message_stop"}"#,
        ])
        .unwrap();
        assert_eq!(
            events,
            vec![
                ModelEvent::TextDelta("ok".into()),
                ModelEvent::Stop(StopReason::Other("refusal".into())),
                ModelEvent::Usage(TokenUsage {
                    input_tokens: 105,
                    output_tokens: 9
                }),
                ModelEvent::Done,
            ]
        );
    }

    #[test]
    fn json_deltas_for_a_block_that_is_not_a_tool_call_are_refused() {
        let err = decode(&[
            r#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{"}}"#,
        ])
        .unwrap_err();
        assert!(err.to_string().contains("block 3"), "{err}");
    }
}
