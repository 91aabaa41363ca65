//! The Chat Completions request body, serialised straight from the borrowed
//! history: each type here is a view of a [`Message`] or [`ToolSpec`] in
//! the wire shape, so serde writes the caller's strings into the body
//! without another copy of the context.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::{ChatRequest, Message, ToolCall, ToolSpec};

pub(crate) fn body(req: &ChatRequest<'_>) -> serde_json::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(req.estimated_bytes());
    serde_json::to_writer(
        &mut buf,
        &Body {
            model: req.model,
            messages: Messages {
                system: req.system,
                items: req.messages,
            },
            tools: Tools(req.tools),
            max_tokens: req.max_tokens,
            temperature: req.temperature,
            stream: true,
            stream_options: StreamOptions {
                include_usage: true,
            },
        },
    )?;
    Ok(buf)
}

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: Messages<'a>,
    #[serde(skip_serializing_if = "Tools::is_empty")]
    tools: Tools<'a>,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    stream: bool,
    stream_options: StreamOptions,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

struct Messages<'a> {
    system: Option<&'a str>,
    items: &'a [Message],
}

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        if let Some(system) = self.system {
            seq.serialize_element(&Role {
                role: "system",
                content: system,
            })?;
        }
        for m in self.items {
            seq.serialize_element(&WireMessage(m))?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct Role<'a> {
    role: &'static str,
    content: &'a str,
}

struct WireMessage<'a>(&'a Message);

impl Serialize for WireMessage<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        match self.0 {
            Message::User { text } => {
                map.serialize_entry("role", "user")?;
                map.serialize_entry("content", text)?;
            }
            Message::Assistant { text, tool_calls } => {
                map.serialize_entry("role", "assistant")?;
                // `null` content with tool calls: some servers reject "".
                let content = (!text.is_empty() || tool_calls.is_empty()).then_some(text);
                map.serialize_entry("content", &content)?;
                if !tool_calls.is_empty() {
                    map.serialize_entry("tool_calls", &WireCalls(tool_calls))?;
                }
            }
            Message::ToolResult {
                call_id, content, ..
            } => {
                // No error flag in this format: the content's outcome line
                // (written by the caller) tells the model.
                map.serialize_entry("role", "tool")?;
                map.serialize_entry("tool_call_id", call_id)?;
                map.serialize_entry("content", content)?;
            }
        }
        map.end()
    }
}

struct WireCalls<'a>(&'a [ToolCall]);

impl Serialize for WireCalls<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Function<'a> {
            name: &'a str,
            arguments: &'a str,
        }
        #[derive(Serialize)]
        struct Call<'a> {
            id: &'a str,
            #[serde(rename = "type")]
            kind: &'static str,
            function: Function<'a>,
        }
        s.collect_seq(self.0.iter().map(|c| Call {
            id: &c.id,
            kind: "function",
            function: Function {
                name: &c.name,
                arguments: &c.arguments,
            },
        }))
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
        struct Function<'a> {
            name: &'a str,
            description: &'a str,
            parameters: &'a serde_json::Value,
        }
        #[derive(Serialize)]
        struct Tool<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            function: Function<'a>,
        }
        s.collect_seq(self.0.iter().map(|t| Tool {
            kind: "function",
            function: Function {
                name: &t.name,
                description: &t.description,
                parameters: &t.input_schema,
            },
        }))
    }
}
