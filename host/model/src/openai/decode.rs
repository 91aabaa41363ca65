//! Decodes a Chat Completions stream: `chat.completion.chunk` objects, the
//! usage chunk (`stream_options.include_usage`), `[DONE]`, and an error
//! object sent in place of a chunk.

use std::collections::VecDeque;

use serde::Deserialize;

use crate::calls::ToolCalls;
use crate::{ModelError, ModelEvent, StopReason, TokenUsage, provider_error};

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<Choice<'a>>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default)]
    index: u32,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(borrow)]
    finish_reason: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    content: Option<String>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<CallDelta<'a>>>,
}

#[derive(Deserialize)]
struct CallDelta<'a> {
    index: Option<usize>,
    #[serde(borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow)]
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Decoder {
    calls: ToolCalls,
    usage: Option<TokenUsage>,
    stopped: bool,
}

impl Decoder {
    pub(crate) fn event(
        &mut self,
        data: &[u8],
        out: &mut VecDeque<ModelEvent>,
    ) -> Result<bool, ModelError> {
        let data = data.trim_ascii();
        if data == b"[DONE]" {
            self.finish(out)?;
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let chunk: Chunk<'_> = match serde_json::from_slice(data) {
            Ok(c) => c,
            Err(e) => {
                if let Some((kind, message)) = provider_error::parse(data) {
                    return Err(ModelError::Stream { kind, message });
                }
                return Err(ModelError::Protocol(format!(
                    "a streamed chunk is not a chat.completion.chunk: {e}"
                )));
            }
        };
        if chunk.choices.is_empty()
            && chunk.usage.is_none()
            && let Some((kind, message)) = provider_error::parse(data)
        {
            return Err(ModelError::Stream { kind, message });
        }
        // One answer is asked for (no `n`): choice 0 is the answer.
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    out.push_back(ModelEvent::TextDelta(text));
                }
                for (position, call) in delta.tool_calls.unwrap_or_default().iter().enumerate() {
                    let index = self.call_index(call, position);
                    let function = call.function.as_ref();
                    self.calls.update(
                        index,
                        call.id.as_deref(),
                        function.and_then(|f| f.name.as_deref()),
                        function.and_then(|f| f.arguments.as_deref()),
                        out,
                    )?;
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.calls.complete_all(out)?;
                self.stopped = true;
                out.push_back(ModelEvent::Stop(stop_reason(&reason)));
            }
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(TokenUsage {
                input_tokens: u.prompt_tokens,
                output_tokens: u.completion_tokens,
            });
        }
        Ok(false)
    }

    /// Servers that omit `index` (some local ones) send each call whole:
    /// one with an id is a new call, one without continues the last.
    fn call_index(&self, call: &CallDelta<'_>, position: usize) -> usize {
        match call.index {
            Some(i) => i,
            None if call.id.is_some() => self.calls.len().max(position),
            None => self.calls.len().saturating_sub(1),
        }
    }

    /// `[DONE]`: whatever is still open is complete, usage, then `Done`.
    fn finish(&mut self, out: &mut VecDeque<ModelEvent>) -> Result<(), ModelError> {
        self.calls.complete_all(out)?;
        if !self.stopped {
            // A lax server's answer without `finish_reason`: say what it
            // evidently was rather than fail it.
            let reason = if self.calls.len() > 0 {
                StopReason::ToolUse
            } else {
                StopReason::EndTurn
            };
            out.push_back(ModelEvent::Stop(reason));
        }
        if let Some(usage) = self.usage.take() {
            out.push_back(ModelEvent::Usage(usage));
        }
        out.push_back(ModelEvent::Done);
        Ok(())
    }
}

fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "stop" => StopReason::EndTurn,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "length" => StopReason::MaxTokens,
        other => StopReason::Other(other.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ToolCall;

    fn decode(events: &[&str]) -> Result<Vec<ModelEvent>, ModelError> {
        let mut d = Decoder::default();
        crate::decode_all(events, |data, out| d.event(data, out))
    }

    fn complete(events: &[ModelEvent]) -> Vec<ToolCall> {
        events
            .iter()
            .filter_map(|e| match e {
                ModelEvent::ToolCallComplete { call, .. } => Some(call.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn whole_calls_without_index_or_id_as_some_local_servers_send() {
        let events = decode(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"name":"a","arguments":"{\"x\":1}"}},{"id":"c2","function":{"name":"b","arguments":{}}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ]);
        // Arguments as an object, not a string, is a protocol error.
        assert!(matches!(events, Err(ModelError::Protocol(_))), "{events:?}");
        let events = decode(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"name":"a","arguments":"{\"x\":1}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"c2","function":{"name":"b","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"content":null},"finish_reason":"tool_calls"}],"usage":null}"#,
            "[DONE]",
        ])
        .unwrap();
        let calls = complete(&events);
        assert_eq!(calls.len(), 2, "{events:?}");
        assert_eq!(
            (calls[0].id.as_str(), calls[0].arguments.as_str()),
            ("call_0", r#"{"x":1}"#)
        );
        assert_eq!(
            (calls[1].id.as_str(), calls[1].arguments.as_str()),
            ("c2", "{}")
        );
    }

    #[test]
    fn a_name_repeated_on_every_piece_is_kept_once() {
        let events = decode(&[
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"read","arguments":"{\"p\""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"read","arguments":":1}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ])
        .unwrap();
        let calls = complete(&events);
        assert_eq!(calls[0].name, "read");
        assert_eq!(calls[0].arguments, r#"{"p":1}"#);
    }

    #[test]
    fn done_without_finish_reason_infers_the_stop() {
        let events = decode(&[r#"{"choices":[{"delta":{"content":"hi"}}]}"#, "[DONE]"]).unwrap();
        assert_eq!(
            events,
            vec![
                ModelEvent::TextDelta("hi".into()),
                ModelEvent::Stop(StopReason::EndTurn),
                ModelEvent::Done
            ]
        );
    }

    #[test]
    fn a_wild_index_is_refused_without_allocating_for_it() {
        let events = decode(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":4000000000,"id":"c","function":{"name":"a"}}]}}]}"#,
        ]);
        assert!(matches!(events, Err(ModelError::Protocol(m)) if m.contains("4000000000")));
    }

    #[test]
    fn garbage_is_a_protocol_error_naming_the_format() {
        let err = decode(&["not json"]).unwrap_err();
        assert!(err.to_string().contains("chat.completion.chunk"), "{err}");
    }
}
