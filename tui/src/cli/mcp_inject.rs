//! `mcp wrap --inject`: MCP faults on the JSON-RPC requests passing
//! through, applied by bulkhead (the host side of the relay), never by the
//! server or the client. Which request a fault takes and what becomes of
//! it is `bulkhead_mcp::inject`, shared with `mcp serve`; this is the
//! relay's part: the client's and the server's bytes cut into lines, and
//! the lines changed.
//!
//! Only a session with MCP faults has an injector: without `--inject` the
//! bytes pass through as before, unsplit and unparsed.

use std::sync::{Arc, Mutex, MutexGuard};

use bulkhead_faults::FaultSpec;
use bulkhead_mcp::inject::{
    AnswerFate, Decision, McpFaults, malformed_result, peek_answer, peek_request,
};
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
    faults: McpFaults,
    /// Lines about faults that fired, for stderr.
    notes: Vec<String>,
    client_line: Vec<u8>,
    client_line_too_long: bool,
    server: LineGate,
}

impl McpInjector {
    /// The injector of `specs`' MCP faults; `None` when there are none.
    pub fn new(specs: &[FaultSpec], seed: Option<u64>, max_message: u64) -> Option<Self> {
        let faults = McpFaults::new(specs, seed.unwrap_or_else(bulkhead_faults::seed_from_clock))?;
        Some(Self(Arc::new(Mutex::new(State {
            faults,
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
        let i = self.lock().faults.first()?.clone();
        Some(serde_json::json!({"fault": i.fault, "trigger": i.trigger, "at_ms": i.at_ms}))
    }
}

impl State {
    /// A complete client line: `Some` when a fault takes it.
    fn request(&mut self, line: &[u8]) -> Option<ClientAction> {
        let (id, method, tool) = peek_request(line)?;
        let fired = self.faults.request(&id, &method, tool.as_deref())?;
        self.notes.push(format!(
            "bulkhead: mcp wrap: {}: request {id} ({method})\n",
            fired.injected
        ));
        Some(match fired.decision {
            Decision::Error(error) => {
                let answer = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": error});
                let mut line = answer.to_string().into_bytes();
                line.push(b'\n');
                ClientAction::Answer(line)
            }
            Decision::Timeout => ClientAction::Swallow,
            Decision::Disconnect => ClientAction::Disconnect,
            Decision::Drop | Decision::Malformed | Decision::Pass => {
                ClientAction::Forward(line.to_vec())
            }
        })
    }

    /// A complete server line: passed on, swallowed or malformed.
    fn answer(&mut self, line: Vec<u8>, out: &mut Vec<u8>) {
        let Some(id) = peek_answer(&line) else {
            out.extend_from_slice(&line);
            return;
        };
        match self.faults.answer(&id) {
            AnswerFate::Swallow => {}
            AnswerFate::Malform => {
                let broken =
                    serde_json::json!({"jsonrpc": "2.0", "id": id, "result": malformed_result()});
                out.extend_from_slice(broken.to_string().as_bytes());
                out.push(b'\n');
            }
            AnswerFate::Pass => out.extend_from_slice(&line),
        }
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
