//! The Messages request body, serialised straight from the borrowed
//! history. The format wants strict user/assistant turns, with tool
//! results as `tool_result` blocks of a user turn, so each run of user
//! texts and tool results becomes one user message (grouped while writing,
//! nothing copied).

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::{ChatRequest, Message, ToolCall, ToolSpec};

pub(crate) fn body(req: &ChatRequest<'_>) -> serde_json::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(req.estimated_bytes());
    serde_json::to_writer(
        &mut buf,
        &Body {
            model: req.model,
            max_tokens: req.max_tokens,
            system: req.system,
            messages: Messages(req.messages),
            tools: Tools(req.tools),
            temperature: req.temperature,
            stream: true,
        },
    )?;
    Ok(buf)
}

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    messages: Messages<'a>,
    #[serde(skip_serializing_if = "Tools::is_empty")]
    tools: Tools<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    stream: bool,
}

struct Messages<'a>(&'a [Message]);

fn is_user_side(m: &Message) -> bool {
    !matches!(m, Message::Assistant { .. })
}

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        let mut rest = self.0;
        while let Some(first) = rest.first() {
            if let Message::Assistant { text, tool_calls } = first {
                // The API refuses an empty turn; an empty answer adds nothing.
                if !text.is_empty() || !tool_calls.is_empty() {
                    seq.serialize_element(&Turn {
                        role: "assistant",
                        content: AssistantBlocks { text, tool_calls },
                    })?;
                }
                rest = &rest[1..];
                continue;
            }
            let run = rest.iter().take_while(|m| is_user_side(m)).count();
            seq.serialize_element(&Turn {
                role: "user",
                content: UserBlocks(&rest[..run]),
            })?;
            rest = &rest[run..];
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct Turn<C> {
    role: &'static str,
    content: C,
}

struct UserBlocks<'a>(&'a [Message]);

impl Serialize for UserBlocks<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for m in self.0 {
            match m {
                Message::User { text } => seq.serialize_element(&TextBlock::new(text))?,
                Message::ToolResult {
                    call_id,
                    content,
                    is_error,
                } => seq.serialize_element(&ResultBlock {
                    kind: "tool_result",
                    tool_use_id: call_id,
                    content,
                    is_error: *is_error,
                })?,
                Message::Assistant { .. } => {}
            }
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct TextBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

impl<'a> TextBlock<'a> {
    fn new(text: &'a str) -> Self {
        Self { kind: "text", text }
    }
}

#[derive(Serialize)]
struct ResultBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    tool_use_id: &'a str,
    content: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    is_error: bool,
}

struct AssistantBlocks<'a> {
    text: &'a str,
    tool_calls: &'a [ToolCall],
}

impl Serialize for AssistantBlocks<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        if !self.text.is_empty() {
            seq.serialize_element(&TextBlock::new(self.text))?;
        }
        for call in self.tool_calls {
            seq.serialize_element(&ToolUse(call))?;
        }
        seq.end()
    }
}

struct ToolUse<'a>(&'a ToolCall);

impl Serialize for ToolUse<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(4))?;
        map.serialize_entry("type", "tool_use")?;
        map.serialize_entry("id", &self.0.id)?;
        map.serialize_entry("name", &self.0.name)?;
        // `input` must be an object: the model's JSON text goes in as it
        // is (checked, borrowed, not re-parsed into a tree). Arguments the
        // model broke go in as `{}`; the tool result told it what was wrong.
        let raw = serde_json::from_str::<&RawValue>(&self.0.arguments)
            .ok()
            .filter(|r| r.get().starts_with('{'));
        match raw {
            Some(raw) => map.serialize_entry("input", raw)?,
            None => map.serialize_entry("input", &serde_json::Map::new())?,
        }
        map.end()
    }
}

struct Tools<'a>(&'a [ToolSpec]);

impl Tools<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Tools<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Tool<'a> {
            name: &'a str,
            description: &'a str,
            input_schema: &'a serde_json::Value,
        }
        s.collect_seq(self.0.iter().map(|t| Tool {
            name: &t.name,
            description: &t.description,
            input_schema: &t.input_schema,
        }))
    }
}
