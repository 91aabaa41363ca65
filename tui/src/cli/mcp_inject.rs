//! `mcp wrap --inject`: MCP faults on the JSON-RPC requests passing
//! through, applied by bulkhead (the host side of the relay), never by the
//! server or the client.
//!
//! A client request matches a fault by its trigger: its method or tool
//! name (`@on:tools/call`, `@on:echo`), its number among the client's
//! requests (`@msg:3`, `@every:2`, counted from 1), a seeded draw (`@p:`),
//! or, with no trigger, every request. Then:
//!
//! - `error[:CODE]`: bulkhead answers it with that JSON-RPC error; the
//!   server never sees it;
//! - `timeout`: the server never sees it, and nobody answers it;
//! - `drop`: the server gets it, and its answer is swallowed;
//! - `malformed`: the server gets it, and its answer's result is replaced
//!   by one that breaks the MCP schema;
//! - `disconnect`: the server never sees it; its input is closed, as when
//!   a client goes away, and the session ends as the server ends it.
//!
//! Only a session with MCP faults has an injector: without `--inject` the
//! bytes pass through as before, unsplit and unparsed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bulkhead_faults::{Fault, FaultKind, FaultSpec, Injected, SeededRng, Trigger};
use serde::Deserialize;
use serde_json::Value;

use crate::cli::mcp_watch::{LineGate, Piece};

/// The longest client line looked at. An MCP request is rarely over a few
/// KiB; a longer line (a large tool argument) passes on unmatched rather
/// than being held whole.
const CLIENT_LINE_CAP: usize = 1 << 20;

/// What the client's reader does with one of its lines.
pub enum ClientAction {
    /// Pass the bytes on to the server.
    Forward(Vec<u8>),
    /// Keep it from the server; answer the client with this line.
    Answer(Vec<u8>),
    /// Keep it from the server and say nothing.
    Swallow,
    /// Keep it from the server and close the server's input.
    Disconnect,
}

/// The MCP faults of one session, shared by the client's reader thread
/// and the relay of the server's output.
#[derive(Clone)]
pub struct McpInjector(Arc<Mutex<State>>);

struct State {
    specs: Vec<FaultSpec>,
    rng: SeededRng,
    started: Instant,
    requests: u64,
    /// Requests whose answers are to be swallowed, or malformed, by id
    /// (as JSON text). Bounded by the requests in flight.
    drop_ids: HashSet<String>,
    malformed_ids: HashSet<String>,
    fired: Option<Injected>,
    /// Lines about faults that fired, for stderr.
    notes: Vec<String>,
    client_line: Vec<u8>,
    client_line_too_long: bool,
    server: LineGate,
}

#[derive(Deserialize)]
struct Peek {
    id: Option<Value>,
    method: Option<String>,
    params: Option<ParamsPeek>,
}

#[derive(Deserialize)]
struct ParamsPeek {
    name: Option<Value>,
}

impl McpInjector {
    /// The injector of `specs`' MCP faults; `None` when there are none.
    pub fn new(specs: &[FaultSpec], seed: Option<u64>, max_message: u64) -> Option<Self> {
        let specs: Vec<FaultSpec> = specs
            .iter()
            .filter(|s| s.fault.kind() == FaultKind::Mcp)
            .cloned()
            .collect();
        if specs.is_empty() {
            return None;
        }
        Some(Self(Arc::new(Mutex::new(State {
            specs,
            rng: SeededRng::new(seed.unwrap_or_else(bulkhead_faults::seed_from_clock)),
            started: Instant::now(),
            requests: 0,
            drop_ids: HashSet::new(),
            malformed_ids: HashSet::new(),
            fired: None,
            notes: Vec::new(),
            client_line: Vec::new(),
            client_line_too_long: false,
            server: LineGate::new(max_message),
        }))))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain sets and counters: still meaningful after a panic elsewhere.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The client's next bytes, cut into lines; each complete request is
    /// matched against the faults.
    pub fn client(&self, mut data: &[u8], out: &mut Vec<ClientAction>) {
        let mut s = self.lock();
        let mut forward = Vec::new();
        while !data.is_empty() {
            let end = memchr_newline(data);
            let piece = &data[..end.map_or(data.len(), |i| i + 1)];
            data = &data[piece.len()..];
            if s.client_line_too_long || s.client_line.len() + piece.len() > CLIENT_LINE_CAP {
                // Too long to look at: passed on as it comes.
                let held = std::mem::take(&mut s.client_line);
                forward.extend_from_slice(&held);
                forward.extend_from_slice(piece);
                s.client_line_too_long = end.is_none();
                continue;
            }
            s.client_line.extend_from_slice(piece);
            if end.is_none() {
                break;
            }
            let line = std::mem::take(&mut s.client_line);
            match s.request(&line) {
                None => forward.extend_from_slice(&line),
                Some(action) => {
                    if !forward.is_empty() {
                        out.push(ClientAction::Forward(std::mem::take(&mut forward)));
                    }
                    match action {
                        ClientAction::Forward(line) => forward = line,
                        other => out.push(other),
                    }
                }
            }
        }
        if !forward.is_empty() {
            out.push(ClientAction::Forward(forward));
        }
    }

    /// The server's output on its way to the client: answers to dropped
    /// requests taken out, to malformed ones replaced.
    pub fn server(&self, data: &[u8]) -> Vec<u8> {
        let mut s = self.lock();
        let mut pieces = Vec::new();
        s.server.feed(data, &mut pieces);
        let mut out = Vec::with_capacity(data.len());
        for piece in pieces {
            match piece {
                Piece::Raw(bytes) => out.extend_from_slice(&bytes),
                Piece::Line(line) => s.answer(line, &mut out),
            }
        }
        out
    }

    /// Notes about faults that fired since the last call, for stderr.
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().notes)
    }

    /// The first fault that fired, for the session's end line:
    /// `{"fault", "trigger", "at_ms"}`.
    pub fn injected_json(&self) -> Option<Value> {
        let i = self.lock().fired.clone()?;
        Some(serde_json::json!({"fault": i.fault, "trigger": i.trigger, "at_ms": i.at_ms}))
    }
}

impl State {
    /// A complete client line: `Some` when a fault takes it.
    fn request(&mut self, line: &[u8]) -> Option<ClientAction> {
        let Ok(Peek {
            id: Some(id),
            method: Some(method),
            params,
        }) = serde_json::from_slice::<Peek>(line)
        else {
            return None;
        };
        self.requests += 1;
        let n = self.requests;
        let tool = params
            .and_then(|p| p.name)
            .and_then(|v| v.as_str().map(str::to_owned));
        let mut hit = None;
        for spec in &self.specs {
            let due = match &spec.trigger {
                Trigger::Start => true,
                Trigger::On(name) => *name == method || tool.as_deref() == Some(name),
                Trigger::Msg(m) => n == *m,
                Trigger::Every(e) => n.checked_rem(*e) == Some(0),
                Trigger::Probability(p) => self.rng.chance(*p),
                // Refused for an MCP session before it starts.
                _ => false,
            };
            if due && hit.is_none() {
                hit = Some(spec.clone());
            }
        }
        let spec = hit?;
        let at = self.started.elapsed();
        self.note(&spec, at, &id, &method);
        let key = id.to_string();
        Some(match spec.fault {
            Fault::Error(code) => {
                let answer = serde_json::json!({
                    "jsonrpc": "2.0",
                    "id": id,
                    "error": {
                        "code": code,
                        "message": format!("bulkhead: injected error (--inject {spec})"),
                        "data": {"bulkhead": {"injected": spec.to_string()}},
                    },
                });
                let mut line = answer.to_string().into_bytes();
                line.push(b'\n');
                ClientAction::Answer(line)
            }
            Fault::Timeout => ClientAction::Swallow,
            Fault::Disconnect => ClientAction::Disconnect,
            Fault::Drop => {
                self.drop_ids.insert(key);
                ClientAction::Forward(line.to_vec())
            }
            Fault::Malformed => {
                self.malformed_ids.insert(key);
                ClientAction::Forward(line.to_vec())
            }
            _ => ClientAction::Forward(line.to_vec()),
        })
    }

    fn note(&mut self, spec: &FaultSpec, at: Duration, id: &Value, method: &str) {
        let injected = Injected::new(spec, at);
        self.notes.push(format!(
            "bulkhead: mcp wrap: {injected}: request {id} ({method})\n"
        ));
        if self.fired.is_none() {
            self.fired = Some(injected);
        }
    }

    /// A complete server line: passed on, swallowed or malformed.
    fn answer(&mut self, line: Vec<u8>, out: &mut Vec<u8>) {
        #[derive(Deserialize)]
        struct AnswerPeek {
            id: Option<Value>,
            method: Option<serde::de::IgnoredAny>,
        }
        let id = match serde_json::from_slice::<AnswerPeek>(&line) {
            Ok(AnswerPeek {
                id: Some(id),
                method: None,
            }) => id,
            _ => {
                out.extend_from_slice(&line);
                return;
            }
        };
        let key = id.to_string();
        if self.drop_ids.remove(&key) {
            return;
        }
        if self.malformed_ids.remove(&key) {
            // `content` must be an array of content blocks, and `tools`,
            // `resources`, `prompts` arrays: a string breaks each schema.
            let broken = serde_json::json!({
                "jsonrpc": "2.0",
                "id": id,
                "result": {
                    "content": "bulkhead --inject malformed: not an array",
                    "tools": "not an array",
                    "isError": "not a boolean",
                },
            });
            out.extend_from_slice(broken.to_string().as_bytes());
            out.push(b'\n');
            return;
        }
        out.extend_from_slice(&line);
    }
}

fn memchr_newline(data: &[u8]) -> Option<usize> {
    data.iter().position(|b| *b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn injector(spec: &str) -> McpInjector {
        let spec: FaultSpec = spec.parse().expect("spec");
        McpInjector::new(&[spec], Some(1), 1 << 20).expect("an MCP fault")
    }

    fn client(inj: &McpInjector, text: &str) -> Vec<ClientAction> {
        let mut out = Vec::new();
        inj.client(text.as_bytes(), &mut out);
        out
    }

    const CALL: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{}}}
"#;
    const LIST: &str = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}\n";

    #[test]
    fn error_on_a_method_answers_in_the_servers_stead() {
        let inj = injector("error:-32000@on:tools/call");
        assert!(
            matches!(&client(&inj, LIST)[..], [ClientAction::Forward(l)] if l == LIST.as_bytes())
        );
        let out = client(&inj, CALL);
        let [ClientAction::Answer(line)] = &out[..] else {
            panic!("not answered");
        };
        let v: Value = serde_json::from_slice(line).unwrap();
        assert_eq!(
            (v["id"].as_i64(), v["error"]["code"].as_i64()),
            (Some(2), Some(-32000))
        );
        assert_eq!(inj.injected_json().unwrap()["trigger"], "on:tools/call");
    }

    #[test]
    fn on_matches_a_tool_name_and_lines_split_across_reads() {
        let inj = injector("timeout@on:echo");
        let (a, b) = CALL.split_at(30);
        assert!(client(&inj, a).is_empty());
        assert!(matches!(&client(&inj, b)[..], [ClientAction::Swallow]));
    }

    #[test]
    fn drop_and_malformed_act_on_the_answer() {
        let inj = injector("drop@msg:2");
        client(&inj, LIST);
        client(&inj, CALL);
        let answer = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n";
        assert_eq!(
            inj.server(answer.as_bytes()),
            answer
                .lines()
                .next()
                .map(|l| format!("{l}\n"))
                .unwrap()
                .into_bytes()
        );
        let inj = injector("malformed@every:1");
        client(&inj, CALL);
        let out = inj.server(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"content\":[]}}\n");
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert!(v["result"]["content"].is_string(), "{v}");
    }

    #[test]
    fn the_same_seed_picks_the_same_requests() {
        let picks = |seed| {
            let spec: FaultSpec = "timeout@p:0.3".parse().unwrap();
            let inj = McpInjector::new(&[spec], Some(seed), 1 << 20).unwrap();
            (0..200)
                .map(|i| {
                    let line = format!("{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":\"ping\"}}\n");
                    matches!(client(&inj, &line)[..], [ClientAction::Swallow])
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(picks(9), picks(9));
        assert_ne!(picks(9), picks(10));
    }
}
