//! MCP faults on JSON-RPC requests: which request a fault takes, and what
//! becomes of it and of its answer. One implementation for both places
//! bulkhead stands between a client and a server: `mcp wrap` (the client's
//! lines, relayed byte for byte) and `mcp serve` (the requests the gateway
//! sends each server, `serve_faults.rs`).
//!
//! A request matches a fault by its trigger: its method or tool name
//! (`@on:tools/call`, `@on:echo`), its number among the requests (`@msg:3`,
//! `@every:2`, counted from 1), a seeded draw (`@p:`), or, with no trigger,
//! every request. Then:
//!
//! - `error[:CODE]`: bulkhead answers it with that JSON-RPC error; the
//!   server never sees it;
//! - `timeout`: the server never sees it, and nobody answers it;
//! - `drop`: the server gets it, and its answer is swallowed;
//! - `malformed`: the server gets it, and its answer's result is replaced
//!   by one that breaks the MCP schema;
//! - `disconnect`: the server never sees it, and the session ends (how is
//!   the caller's: `mcp wrap` closes the server's input).
//!
//! The caller does the I/O; this module decides and remembers only the
//! ids of requests whose answers it must change, which the answers clear:
//! bounded by the requests in flight.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bulkhead_faults::{Fault, FaultKind, FaultSpec, Injected, SeededRng, Trigger};
use serde::Deserialize;
use serde_json::{Value, json};

/// What becomes of a request a fault took.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Answer it in the server's stead with this JSON-RPC error object
    /// (`{"code", "message", "data"}`); the server never sees it.
    Error(Value),
    /// Keep it from the server; nobody answers it.
    Timeout,
    /// Keep it from the server and end the session.
    Disconnect,
    /// Pass it on; swallow its answer.
    Drop,
    /// Pass it on; break its answer's result.
    Malformed,
    /// Pass it on unchanged (a process fault, which the caller applies).
    Pass,
}

/// A fault that fired on a request.
#[derive(Debug, Clone)]
pub struct Fired {
    pub spec: FaultSpec,
    pub injected: Injected,
    pub decision: Decision,
}

/// What becomes of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerFate {
    Pass,
    Swallow,
    Malform,
}

/// The MCP faults of one session (one wrapped server, or one server behind
/// the gateway). Not shared by itself: each caller keeps it behind its own
/// lock.
pub struct McpFaults {
    specs: Vec<FaultSpec>,
    /// Whether the answers of requests taken are changed here
    /// ([`McpFaults::answer`]): `mcp wrap`'s relay; the gateway awaits its
    /// own answers and applies the decision itself.
    track: bool,
    rng: SeededRng,
    started: Instant,
    requests: u64,
    /// Requests whose answers are to be swallowed, or malformed, by id
    /// (as JSON text). Bounded by the requests in flight.
    drop_ids: HashSet<String>,
    malformed_ids: HashSet<String>,
    fired: Option<Injected>,
    count: u64,
}

/// The fields of a JSON-RPC message a fault looks at.
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

/// A request's id, method and tool name (`params.name`), if `line` is one.
pub fn peek_request(line: &[u8]) -> Option<(Value, String, Option<String>)> {
    let Ok(Peek {
        id: Some(id),
        method: Some(method),
        params,
    }) = serde_json::from_slice::<Peek>(line)
    else {
        return None;
    };
    let tool = params
        .and_then(|p| p.name)
        .and_then(|v| v.as_str().map(str::to_owned));
    Some((id, method, tool))
}

/// An answer's id, if `line` is an answer (an id and no method).
pub fn peek_answer(line: &[u8]) -> Option<Value> {
    #[derive(Deserialize)]
    struct AnswerPeek {
        id: Option<Value>,
        method: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_slice::<AnswerPeek>(line) {
        Ok(AnswerPeek {
            id: Some(id),
            method: None,
        }) => Some(id),
        _ => None,
    }
}

/// The JSON-RPC error object an injected `error` answers with.
pub fn error_object(spec: &FaultSpec, code: i64) -> Value {
    json!({
        "code": code,
        "message": format!("bulkhead: injected error (--inject {spec})"),
        "data": {"bulkhead": {"injected": spec.to_string()}},
    })
}

/// A result that breaks the MCP schema: `content` must be an array of
/// content blocks, and `tools`, `resources`, `prompts` arrays: a string
/// breaks each.
pub fn malformed_result() -> Value {
    json!({
        "content": "bulkhead --inject malformed: not an array",
        "tools": "not an array",
        "isError": "not a boolean",
    })
}

impl McpFaults {
    /// The MCP faults among `specs`; `None` when there are none.
    pub fn new(specs: &[FaultSpec], seed: u64) -> Option<Self> {
        let armed = Self::armed(specs, seed);
        (!armed.specs.is_empty()).then_some(armed)
    }

    /// The MCP faults among `specs`, even none.
    pub fn armed(specs: &[FaultSpec], seed: u64) -> Self {
        Self::keeping(specs, seed, true, |s| s.fault.kind() == FaultKind::Mcp)
    }

    /// For the gateway: the MCP faults and the process faults fired at a
    /// request (`kill@on:tools/call`), even none (chaos mode fires its own
    /// through [`McpFaults::fire`]).
    pub fn for_gateway(specs: &[FaultSpec], seed: u64) -> Self {
        Self::keeping(specs, seed, false, |s| {
            s.fault.kind() == FaultKind::Mcp
                || (s.fault.kind() == FaultKind::Process
                    && matches!(
                        s.trigger,
                        Trigger::On(_) | Trigger::Every(_) | Trigger::Probability(_)
                    ))
        })
    }

    fn keeping(
        specs: &[FaultSpec],
        seed: u64,
        track: bool,
        keep: impl Fn(&FaultSpec) -> bool,
    ) -> Self {
        let specs: Vec<FaultSpec> = specs.iter().filter(|s| keep(s)).cloned().collect();
        Self {
            track,
            specs,
            rng: SeededRng::new(seed),
            started: Instant::now(),
            requests: 0,
            drop_ids: HashSet::new(),
            malformed_ids: HashSet::new(),
            fired: None,
            count: 0,
        }
    }

    /// A request (by id, method and tool name): `Some` when a fault takes
    /// it. Each request counts for `@msg:` and `@every:`, and each `@p:`
    /// fault draws once per request, in order, so the same seed picks the
    /// same requests.
    pub fn request(&mut self, id: &Value, method: &str, tool: Option<&str>) -> Option<Fired> {
        self.requests += 1;
        let n = self.requests;
        let mut hit = None;
        for spec in &self.specs {
            let due = match &spec.trigger {
                Trigger::Start => true,
                Trigger::On(name) => name == method || tool == Some(name.as_str()),
                Trigger::Msg(m) => n == *m,
                Trigger::Every(e) => n.checked_rem(*e) == Some(0),
                Trigger::Probability(p) => self.rng.chance(*p),
                // Refused for a session before it starts.
                _ => false,
            };
            if due && hit.is_none() {
                hit = Some(spec.clone());
            }
        }
        let spec = hit?;
        let fired = self.fire(spec);
        match fired.decision {
            _ if !self.track => {}
            Decision::Drop => {
                self.drop_ids.insert(id.to_string());
            }
            Decision::Malformed => {
                self.malformed_ids.insert(id.to_string());
            }
            _ => {}
        }
        Some(fired)
    }

    /// Records `spec` as fired (also a fault chosen elsewhere, e.g. by
    /// chaos mode), and says what becomes of its request. The answers of
    /// requests [`McpFaults::request`] took are remembered for
    /// [`McpFaults::answer`]; a caller that waits for its own answer (the
    /// gateway) applies the decision itself.
    pub fn fire(&mut self, spec: FaultSpec) -> Fired {
        let injected = Injected::new(&spec, self.started.elapsed());
        self.count += 1;
        if self.fired.is_none() {
            self.fired = Some(injected.clone());
        }
        let decision = match spec.fault {
            Fault::Error(code) => Decision::Error(error_object(&spec, code)),
            Fault::Timeout => Decision::Timeout,
            Fault::Disconnect => Decision::Disconnect,
            Fault::Drop => Decision::Drop,
            Fault::Malformed => Decision::Malformed,
            // A process fault (chosen by chaos mode) is the caller's to
            // apply; the request itself passes.
            _ => Decision::Pass,
        };
        Fired {
            spec,
            injected,
            decision,
        }
    }

    /// The answer to request `id`: passed on, swallowed or malformed.
    pub fn answer(&mut self, id: &Value) -> AnswerFate {
        let key = id.to_string();
        if self.drop_ids.remove(&key) {
            AnswerFate::Swallow
        } else if self.malformed_ids.remove(&key) {
            AnswerFate::Malform
        } else {
            AnswerFate::Pass
        }
    }

    /// The first fault that fired.
    pub fn first(&self) -> Option<&Injected> {
        self.fired.as_ref()
    }

    /// How many faults fired.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Time since the faults were armed.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}
