//! One client message POSTed to the server, and its answer read back under
//! the message cap: a JSON body, or an SSE stream (resumed with
//! `Last-Event-ID` if it breaks before the answer).
//!
//! Every body is read chunk by chunk and counted before it is kept; no
//! `.text()` or `.bytes()`, which would buffer whatever the server sends.
//! A body or event over the cap fails the request it answers, and only
//! that request: the connection is dropped, the session goes on.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::Value;

use super::bridge::{Event, Outbox};
use super::session::Session;
use crate::tools::mcp_stdio::MAX_GARBAGE_LINES;
use bulkhead_ipc::sse::{SseEvent, SseParser};

/// Of an HTTP error's body, this much is read into the error message:
/// enough for a server's one-line reason, nothing a client needs more of.
const ERROR_BODY_BYTES: usize = 4096;

/// Reconnects of one stream before its request fails: a server that drops
/// the stream this often will not deliver the answer.
const MAX_RESUMES: u32 = 3;

/// Wait before a reconnect when the server set no `retry:`, and the most
/// it may ask for: longer would only hold the request past any patience.
const DEFAULT_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(10);

/// What every exchange of the session shares.
pub(super) struct Shared {
    pub(super) session: Session,
    pub(super) outbox: Outbox,
    pub(super) max_message: usize,
}

/// Why an exchange gave up, as the client will read it.
struct Failure {
    message: String,
    oversize: bool,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self {
            message,
            oversize: false,
        }
    }
}

/// POSTs `body` and relays what comes back. `id` is the request's JSON-RPC
/// id (as JSON text), `None` for a notification or a response.
pub(super) async fn run(shared: Arc<Shared>, seq: u64, body: Vec<u8>, id: Option<String>) {
    if let Err(f) = exchange(&shared, body, id.as_deref()).await {
        let event = match id {
            Some(id) => Event::Failed {
                id,
                message: f.message,
                oversize: f.oversize,
            },
            None => Event::Log(format!("{}\n", f.message)),
        };
        shared.outbox.send(event).await;
    }
    shared.outbox.send(Event::Done { seq }).await;
}

async fn exchange(s: &Shared, body: Vec<u8>, id: Option<&str>) -> Result<(), Failure> {
    let resp = s.session.post(body).send().await.map_err(|e| {
        format!(
            "bulkhead: cannot reach the MCP server at {}: {}",
            s.session.url,
            chain(&e)
        )
    })?;
    s.session.note_session(resp.headers());
    let status = resp.status();
    if status == StatusCode::ACCEPTED {
        return match id {
            None => Ok(()),
            Some(_) => Err("bulkhead: the MCP server accepted the request (HTTP 202) \
                            without answering it"
                .to_owned()
                .into()),
        };
    }
    if !status.is_success() {
        return http_error(s, resp, id).await;
    }
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("text/event-stream") {
        stream(s, resp, id).await
    } else if content_type.starts_with("application/json") {
        if resp
            .content_length()
            .is_some_and(|n| n > s.max_message as u64)
        {
            return Err(oversize(s.max_message));
        }
        let body = read_capped(resp, s.max_message).await?;
        s.outbox.send(Event::Message(one_line(body))).await;
        Ok(())
    } else {
        Err(format!(
            "bulkhead: the MCP server answered with content type {content_type:?}, \
             not application/json or text/event-stream"
        )
        .into())
    }
}

/// An HTTP error: the server's own JSON-RPC error if the body is one for
/// this request, else an error naming the status.
async fn http_error(s: &Shared, resp: reqwest::Response, id: Option<&str>) -> Result<(), Failure> {
    let status = resp.status();
    let (body, _) = read_prefix(resp, ERROR_BODY_BYTES)
        .await
        .unwrap_or_default();
    if let Some(id) = id
        && answers(&body, id)
    {
        s.outbox.send(Event::Message(one_line(body))).await;
        return Ok(());
    }
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    let mut message = format!("bulkhead: the MCP server answered HTTP {status}");
    if status == StatusCode::NOT_FOUND && s.session.delete().is_some() {
        message.push_str(" (its session ended; the client must initialize again)");
    }
    if !text.is_empty() {
        message.push_str(&format!(": {text}"));
    }
    Err(message.into())
}

/// Relays an SSE answer until the event that answers `id` (the server then
/// closes the stream), resuming after the last event id if it breaks.
async fn stream(s: &Shared, mut resp: reqwest::Response, id: Option<&str>) -> Result<(), Failure> {
    let mut parser = SseParser::new(s.max_message);
    let mut events = Vec::new();
    let mut garbage = 0u32;
    let mut resumes = 0u32;
    loop {
        let ended = loop {
            let bytes = match resp.chunk().await {
                Ok(Some(b)) => b,
                Ok(None) => break "the MCP server closed the stream".to_owned(),
                Err(e) => break format!("the stream from the MCP server broke ({})", chain(&e)),
            };
            parser.feed(&bytes, &mut events);
            for event in events.drain(..) {
                let data = match event {
                    SseEvent::Oversize => return Err(oversize(s.max_message)),
                    // An event with empty data primes the stream with an
                    // id to resume from; it carries no message.
                    SseEvent::Message { data } if data.trim_ascii().is_empty() => continue,
                    SseEvent::Message { data } => data,
                };
                let done = id.is_some_and(|id| answers(&data, id));
                if !done && serde_json::from_slice::<serde::de::IgnoredAny>(&data).is_err() {
                    garbage += 1;
                    if garbage >= MAX_GARBAGE_LINES {
                        return Err(format!(
                            "bulkhead: the MCP server sent {garbage} events that are not JSON \
                             on this request's stream"
                        )
                        .into());
                    }
                }
                if !s.outbox.send(Event::Message(one_line(data))).await || done {
                    return Ok(());
                }
            }
        };
        let Some(id) = id else { return Ok(()) };
        let Some(last) = parser.last_event_id().map(str::to_owned) else {
            return Err(format!(
                "bulkhead: {ended} before answering request {id}, and gave no event id to \
                 resume from"
            )
            .into());
        };
        resumes += 1;
        if resumes > MAX_RESUMES {
            return Err(format!(
                "bulkhead: {ended} before answering request {id}, {MAX_RESUMES} times"
            )
            .into());
        }
        let wait = parser
            .retry_ms()
            .map_or(DEFAULT_RETRY, Duration::from_millis)
            .min(MAX_RETRY);
        tokio::time::sleep(wait).await;
        resp = s
            .session
            .resume(&last)
            .send()
            .await
            .map_err(|e| format!("bulkhead: {ended}; resuming failed: {}", chain(&e)))?;
        let sse = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/event-stream"));
        if !resp.status().is_success() || !sse {
            return Err(format!(
                "bulkhead: {ended} before answering; resuming after event {last:?} got HTTP {}",
                resp.status()
            )
            .into());
        }
        parser.reconnected();
    }
}

/// The body, read chunk by chunk, or a failure as soon as it passes `cap`.
async fn read_capped(resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, Failure> {
    match read_prefix(resp, cap).await? {
        (body, true) => Ok(body),
        (_, false) => Err(oversize(cap)),
    }
}

/// At most `cap` bytes of the body, and whether that was all of it. Stops
/// reading (and drops the connection) at the cap.
async fn read_prefix(mut resp: reqwest::Response, cap: usize) -> Result<(Vec<u8>, bool), Failure> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("bulkhead: reading the MCP server's answer: {}", chain(&e)))?
    {
        if body.len() + chunk.len() > cap {
            body.extend_from_slice(&chunk[..cap - body.len()]);
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}

fn oversize(cap: usize) -> Failure {
    Failure {
        message: format!(
            "bulkhead: the server's answer passed the {cap}-byte message limit and was dropped"
        ),
        oversize: true,
    }
}

/// Whether `data` is the answer to request `id` (JSON text). Looks only at
/// `id` and `method`; serde skips the rest without building it.
fn answers(data: &[u8], id: &str) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        id: Option<Value>,
        #[serde(default)]
        method: Option<serde::de::IgnoredAny>,
    }
    let Ok(p) = serde_json::from_slice::<Probe>(data) else {
        return false;
    };
    p.method.is_none()
        && matches!(&p.id, Some(v @ (Value::Number(_) | Value::String(_)))
            if serde_json::to_string(v).is_ok_and(|t| t == id))
}

/// A message as one line for the stdio client. In valid JSON a raw line
/// break can only be whitespace (inside strings it must be escaped), so
/// making it a space changes nothing a parser sees.
fn one_line(mut data: Vec<u8>) -> Vec<u8> {
    for b in &mut data {
        if matches!(*b, b'\n' | b'\r') {
            *b = b' ';
        }
    }
    data
}

/// An error with its causes ("error sending request: connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_matches_responses_by_id_only() {
        assert!(answers(br#"{"jsonrpc":"2.0","id":3,"result":{}}"#, "3"));
        assert!(answers(br#"{"id":"a","error":{}}"#, "\"a\""));
        assert!(!answers(br#"{"id":3,"method":"x"}"#, "3"));
        assert!(!answers(br#"{"id":4,"result":{}}"#, "3"));
        assert!(!answers(b"not json", "3"));
    }

    #[test]
    fn one_line_keeps_json_equal() {
        let pretty = b"{\n  \"a\": \"x\\ny\",\r\n  \"b\": [1,\n2]\n}".to_vec();
        let line = one_line(pretty.clone());
        assert!(!line.contains(&b'\n'));
        let a: Value = serde_json::from_slice(&pretty).unwrap();
        let b: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(a, b);
    }
}
