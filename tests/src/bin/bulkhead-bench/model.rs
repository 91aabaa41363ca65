//! `model`: time to build a model request body against history size.
//!
//! For 10, 100, 1,000 and 10,000 history items, `ModelClient::build_body`
//! serialises the request (OpenAI and Anthropic formats) straight from the
//! borrowed messages. The history cycles user text (200 B), an assistant
//! turn with one tool call, and a tool result the size of the agent's
//! default per-result view (10 KiB), so the body grows ~3.5 KiB per item.
//!
//! Baseline, same run: the naive path, building a `serde_json::Value` tree
//! of the same OpenAI body and serialising that (what `json!` code does),
//! which copies the whole context once more before writing it. Also
//! timed: allocating and filling a fresh buffer of the body's size, the
//! floor any build of a new body pays (page faults and zeroing; glibc
//! maps an allocation this large fresh each time).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bulkhead_model::{
    ChatRequest, Message, ModelClient, ModelConfig, ModelLimits, ProviderKind, ToolCall, ToolSpec,
};
use serde_json::{Value, json};

use crate::{Row, Stats, ms, size};

const BENCH: &str = "model";

/// History sizes measured: 10 … 10,000 items.
const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

/// A tool result as the model sees it: the agent's default per-result
/// budget is about 10 KB.
const RESULT_BYTES: usize = 10 << 10;

/// Builds per size: enough for a stable median at 10,000 items (~35 MB a
/// body) without the run taking minutes.
fn rounds(items: usize) -> usize {
    (200_000 / items).clamp(5, 200)
}

fn history(items: usize) -> Vec<Message> {
    let result = "r".repeat(RESULT_BYTES - 40) + " \"quoted\" and\nnew lines\t…";
    (0..items)
        .map(|i| match i % 3 {
            0 => Message::User {
                text: format!("question {i}: {}", "q".repeat(180)),
            },
            1 => Message::Assistant {
                text: "Let me search.".into(),
                tool_calls: vec![ToolCall {
                    id: format!("call_{i}"),
                    name: "search".into(),
                    arguments: format!(r#"{{"pattern":"p{i}","path":"src"}}"#),
                }],
            },
            _ => Message::ToolResult {
                call_id: format!("call_{}", i - 1),
                content: result.clone(),
                is_error: false,
            },
        })
        .collect()
}

fn tools() -> Vec<ToolSpec> {
    vec![ToolSpec {
        name: "search".into(),
        description: "Search files for a pattern".into(),
        input_schema: json!({"type": "object", "properties": {
            "pattern": {"type": "string"}, "path": {"type": "string"}}}),
    }]
}

fn client(provider: ProviderKind) -> ModelClient {
    ModelClient::new(ModelConfig {
        provider,
        base_url: "http://127.0.0.1:9/v1".into(),
        api_key: None,
        limits: ModelLimits::default(),
    })
    .expect("model client")
}

/// The naive baseline: the OpenAI body as a `Value` tree, then bytes.
fn value_tree_body(req: &ChatRequest<'_>) -> Vec<u8> {
    let mut messages = vec![json!({"role": "system", "content": req.system})];
    for m in req.messages {
        messages.push(match m {
            Message::User { text } => json!({"role": "user", "content": text}),
            Message::Assistant { text, tool_calls } => json!({
                "role": "assistant", "content": text,
                "tool_calls": tool_calls.iter().map(|c| json!({"id": c.id, "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments}})).collect::<Vec<Value>>(),
            }),
            Message::ToolResult { call_id, content, .. } => {
                json!({"role": "tool", "tool_call_id": call_id, "content": content})
            }
        });
    }
    let body = json!({
        "model": req.model, "messages": messages, "max_tokens": req.max_tokens, "stream": true,
        "tools": req.tools.iter().map(|t| json!({"type": "function", "function": {
            "name": t.name, "description": t.description, "parameters": t.input_schema}}))
            .collect::<Vec<Value>>(),
    });
    serde_json::to_vec(&body).expect("serialise")
}

fn time(rounds: usize, mut build: impl FnMut() -> usize) -> (Stats, usize) {
    let mut bytes = build(); // warm-up
    let samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            bytes = black_box(build());
            t.elapsed()
        })
        .collect();
    (Stats::of(&samples), bytes)
}

pub fn run() {
    let openai = client(ProviderKind::OpenAi);
    let anthropic = client(ProviderKind::Anthropic);
    let tools = tools();
    for items in SIZES {
        let messages = history(items);
        let req = ChatRequest {
            model: "bench-model",
            system: Some("You are a careful assistant."),
            messages: &messages,
            tools: &tools,
            max_tokens: 4096,
            temperature: None,
        };
        let n = rounds(items);
        let (o, bytes) = time(n, || openai.build_body(&req).expect("openai body").len());
        let (a, a_bytes) = time(n, || {
            anthropic.build_body(&req).expect("anthropic body").len()
        });
        let (v, _) = time(n, || value_tree_body(&req).len());
        // The floor for any fresh buffer of the body's size: allocating
        // and writing it once (page faults and zeroing included).
        let (floor, _) = time(n, || {
            let mut buf = Vec::<u8>::with_capacity(bytes);
            buf.resize(bytes, b'x');
            black_box(&buf);
            buf.len()
        });
        let mbps = |s: &Stats, b: usize| b as f64 / s.median.as_secs_f64() / 1e6;
        Row {
            bench: BENCH,
            name: format!("model: build request body, {items} history items"),
            measured: format!(
                "OpenAI median {} ({}, {:.0} MB/s); Anthropic median {} ({})",
                ms(o.median),
                size(bytes as u64),
                mbps(&o, bytes),
                ms(a.median),
                size(a_bytes as u64),
            ),
            baseline: format!("`Value` tree then bytes: median {}", ms(v.median)),
            figure: format!(
                "{:.2}× the baseline's time; {:.2} µs per item; a fresh buffer of that size alone: {}",
                o.median.as_secs_f64() / v.median.as_secs_f64(),
                o.median.as_secs_f64() * 1e6 / items as f64,
                ms(floor.median)
            ),
            target: "linear in history size".into(),
            met: None,
            data: json!({
                "items": items, "rounds": n, "openai_bytes": bytes, "anthropic_bytes": a_bytes,
                "openai": o.json(), "anthropic": a.json(), "value_tree": v.json(),
                "fresh_buffer": floor.json(),
            }),
        }
        .emit();
    }
}
