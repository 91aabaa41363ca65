//! The client's side of a session that outlives its server: the client's
//! lines go to whichever run of the server is live, and what a restart
//! needs of them is noted on the way.
//!
//! The client's reader thread ([`crate::cli::mcp_stdin`]) hands each piece
//! it passes on to [`ClientLines::forward`], which cuts it into lines (holding
//! at most [`CLIENT_LINE_CAP`] of one) and notes, under one lock shared
//! with the relay: the client's `initialize` (to replay), whether it sent
//! `notifications/initialized`, its requests not yet answered (for the
//! relay to answer when the server dies), and what [`Replay`] keeps.
//!
//! While the server restarts, the reader waits with the line in hand: it
//! reads nothing more, so the client's further writes wait in the pipe
//! (back-pressure, not a queue that grows). The wait ends when the new
//! server has answered the replayed `initialize`, or the session ends.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use bulkhead_host::InputSender;
use bulkhead_ipc::validate::{MAX_OPEN_REQUESTS, MAX_REQUEST_ID_BYTES};
use bulkhead_mcp::restart::Replay;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// The longest client line looked at. An MCP request is rarely over a few
/// KiB; a longer line (a large tool argument) passes on whole but
/// untracked: if the server dies with it in flight, the worker's own
/// answer for it (from its relay, or the host's) still reaches the client.
pub const CLIENT_LINE_CAP: usize = 1 << 20;

/// The longest `initialize` kept to replay. A real one is a few hundred
/// bytes of capabilities and client info; a longer one is not kept, and
/// the server is then not restarted (said on stderr).
pub const MAX_INIT_BYTES: usize = 64 << 10;

/// Where the client's lines go.
enum Target {
    /// The server's current run takes them.
    Live(InputSender),
    /// The server is being restarted: lines wait.
    Restarting,
    /// The session is over: lines are dropped.
    Ended,
}

/// What the client's reader and the relay share.
pub struct Switch {
    state: Mutex<State>,
    changed: Condvar,
}

pub struct State {
    target: Target,
    /// The client's requests sent (or waiting to be) and not answered yet,
    /// by id as JSON text. Bounded: [`MAX_OPEN_REQUESTS`] ids of at most
    /// [`MAX_REQUEST_ID_BYTES`]; one past either goes untracked.
    pub pending: HashMap<String, Value>,
    /// The client's `initialize`, to replay to a new run.
    pub init: Option<Value>,
    /// Its id, as JSON text, while its answer is awaited.
    pub init_id: Option<String>,
    /// The server answered the client's `initialize` with a result: it
    /// came up once, so it is worth restarting.
    pub init_answered: bool,
    /// The client sent `notifications/initialized`.
    pub initialized: bool,
    /// The client's input has ended (or `disconnect` fired): the server
    /// ends because the client left, and is not restarted.
    pub client_closed: bool,
    pub replay: Replay,
    /// What a restart cannot restore, for stderr, once each.
    pub notes: Vec<String>,
}

impl State {
    /// A session's start: nothing sent, nothing learnt of the client.
    fn new(target: Target) -> Self {
        Self {
            target,
            pending: HashMap::new(),
            init: None,
            init_id: None,
            init_answered: false,
            initialized: false,
            client_closed: false,
            replay: Replay::default(),
            notes: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
struct Peek<'a> {
    id: Option<Value>,
    method: Option<String>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
}

impl Switch {
    /// A switch whose first run takes lines through `input`.
    pub fn new(input: InputSender) -> Self {
        Self {
            state: Mutex::new(State::new(Target::Live(input))),
            changed: Condvar::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // Plain maps and flags: still meaningful after a panic elsewhere.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The run has died: lines now wait for the next run (`restart`), or
    /// are dropped. Returns the ids of the client's requests it left
    /// unanswered, for the relay to answer; a request noted after this
    /// waits for the next run.
    pub fn run_died(&self, restart: bool) -> Vec<Value> {
        let mut s = self.lock();
        s.target = if restart {
            Target::Restarting
        } else {
            Target::Ended
        };
        let pending = s.pending.drain().map(|(_, id)| id).collect();
        drop(s);
        self.changed.notify_all();
        pending
    }

    /// The next run takes lines through `input`. `false`: the client left
    /// meanwhile, and `input` is to be closed instead.
    pub fn go_live(&self, input: InputSender) -> bool {
        let mut s = self.lock();
        if s.client_closed || matches!(s.target, Target::Ended) {
            return false;
        }
        s.target = Target::Live(input);
        drop(s);
        self.changed.notify_all();
        true
    }

    /// The client's input has ended: the current run's input is closed
    /// (a run being started closes its own, see [`Switch::go_live`]).
    pub fn close(&self, handle: &tokio::runtime::Handle) {
        let mut s = self.lock();
        s.client_closed = true;
        let input = match &s.target {
            Target::Live(input) => Some(input.clone()),
            _ => None,
        };
        drop(s);
        if let Some(input) = input {
            let _ = handle.block_on(input.close());
        }
    }

    /// Passes one line (or a raw piece of an over-cap line) on to the live
    /// run, waiting while the server restarts. `false`: the session is
    /// over, and the reader stops.
    fn send(&self, data: &[u8], request: Option<&str>, handle: &tokio::runtime::Handle) -> bool {
        let mut s = self.lock();
        loop {
            // A request that waited through a failed restart was answered
            // with that failure: it is not sent after all.
            if let Some(key) = request
                && !s.pending.contains_key(key)
            {
                return !matches!(s.target, Target::Ended);
            }
            match &s.target {
                Target::Live(input) => {
                    let input = input.clone();
                    drop(s);
                    // A run that has just died takes no more; a request
                    // sent into it is pending, and answered for it.
                    let _ = handle.block_on(input.send(Bytes::copy_from_slice(data)));
                    return true;
                }
                Target::Restarting => {
                    s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
                }
                Target::Ended => return false,
            }
        }
    }
}

/// Cuts the client's bytes into lines for [`Switch`]; owned by the
/// client's reader thread.
#[derive(Default)]
pub struct ClientLines {
    line: Vec<u8>,
    /// Inside a line over [`CLIENT_LINE_CAP`]: pieces pass on raw.
    raw: bool,
}

impl ClientLines {
    /// Passes `data` on through `switch`, line by line. `false`: the
    /// session is over.
    pub fn forward(
        &mut self,
        switch: &Switch,
        mut data: &[u8],
        handle: &tokio::runtime::Handle,
    ) -> bool {
        while !data.is_empty() {
            let end = data.iter().position(|&b| b == b'\n');
            let (piece, rest) = data.split_at(end.map_or(data.len(), |i| i + 1));
            data = rest;
            if self.raw || self.line.len() + piece.len() > CLIENT_LINE_CAP {
                let mut raw = std::mem::take(&mut self.line);
                raw.extend_from_slice(piece);
                self.raw = end.is_none();
                if !switch.send(&raw, None, handle) {
                    return false;
                }
                continue;
            }
            self.line.extend_from_slice(piece);
            if end.is_none() {
                break;
            }
            let line = std::mem::take(&mut self.line);
            let request = note(&mut switch.lock(), &line);
            if !switch.send(&line, request.as_deref(), handle) {
                return false;
            }
        }
        true
    }
}

/// Notes what a restart needs of one client line; the request's id key
/// when it is a request awaiting an answer.
fn note(s: &mut State, line: &[u8]) -> Option<String> {
    let Ok(peek) = serde_json::from_slice::<Peek>(line) else {
        return None;
    };
    let method = peek.method?;
    let params = || {
        peek.params
            .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
            .unwrap_or(Value::Null)
    };
    match (&peek.id, method.as_str()) {
        (Some(id), "initialize") => {
            let key = id.to_string();
            if line.len() <= MAX_INIT_BYTES
                && let Ok(v) = serde_json::from_slice::<Value>(line)
            {
                s.init = Some(v);
            } else {
                s.notes.push(format!(
                    "the client's initialize is over {MAX_INIT_BYTES} bytes: it is not kept, \
                     and the server will not be restarted"
                ));
            }
            s.init_id = Some(key);
            // Its answer is watched by the relay (`init_id`), not
            // answered from `pending`.
            return None;
        }
        (None, "notifications/initialized") => s.initialized = true,
        (None, "notifications/cancelled") => {
            // A cancelled request gets no answer (the MCP spec).
            if let Some(id) = params().get("requestId") {
                s.pending.remove(&id.to_string());
            }
        }
        _ => {}
    }
    if Replay::is_observed(&method)
        && let Err(e) = s.replay.observe(&method, &params())
    {
        s.notes.push(e.0);
    }
    let id = peek.id?;
    let key = id.to_string();
    if key.len() > MAX_REQUEST_ID_BYTES || s.pending.len() >= MAX_OPEN_REQUESTS {
        return None;
    }
    s.pending.insert(key.clone(), id);
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state() -> State {
        State::new(Target::Ended)
    }

    #[test]
    fn a_sessions_lines_are_noted_for_a_restart() {
        let mut s = state();
        let lines = [
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            json!({"jsonrpc": "2.0", "id": 2, "method": "logging/setLevel", "params": {"level": "error"}}),
            json!({"jsonrpc": "2.0", "id": "s", "method": "resources/subscribe", "params": {"uri": "file:///a"}}),
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "slow"}}),
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}}),
            json!({"jsonrpc": "2.0", "id": 9, "result": {}}),
        ];
        let keys: Vec<Option<String>> = lines
            .iter()
            .map(|l| note(&mut s, l.to_string().as_bytes()))
            .collect();
        assert_eq!(
            keys,
            [
                None,
                None,
                Some("2".into()),
                Some("\"s\"".into()),
                Some("3".into()),
                None,
                None
            ]
        );
        assert_eq!(
            s.init.as_ref().unwrap()["params"]["protocolVersion"],
            "2025-06-18"
        );
        assert_eq!(s.init_id.as_deref(), Some("1"));
        assert!(s.initialized);
        // The cancelled request is no longer awaited; the others are.
        let mut pending: Vec<&String> = s.pending.keys().collect();
        pending.sort();
        assert_eq!(pending, ["\"s\"", "2"]);
        assert_eq!(s.replay.level(), Some("error"));
        assert_eq!(s.replay.requests().len(), 2);
        assert!(s.notes.is_empty());
    }
}
