//! How `mcp wrap` keeps the client's session when its server dies: the
//! requests in flight are answered with why, the server is started again
//! within its restart budget and after its back-off
//! ([`bulkhead_mcp::restart`], the same policy as `mcp serve`), and the
//! new run is told the client's `initialize` (under an id of bulkhead's,
//! whose answer the client never sees), `notifications/initialized`, and
//! what [`bulkhead_mcp::restart::Replay`] kept. Then the client's lines,
//! which waited meanwhile, flow to the new run.
//!
//! Only a server that answered the client's `initialize` is restarted: one
//! that never came up ends the session as before, with its diagnosis. A
//! session the client ended, that ran out of `--session-timeout`, or that
//! runs under `--no-restart` or `--url`, ends as before too.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead_host::units::format_size;
use bulkhead_host::{CallReport, CallRequest, KillReason, Outcome, ToolHost};
use bulkhead_mcp::restart::{Backoff, Decision, Restarts};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::switch::Switch;
use super::{PREFIX, Relay};
use crate::cli::mcp_watch::{LineGate, Piece};

/// How long a restarted server may take to answer the replayed
/// `initialize` when `--init-timeout` is 0 (no watch of the client's):
/// a restart that hangs must still end, and a server that came up once
/// comes up again in seconds.
const REPLAY_INIT_TIMEOUT: Duration = Duration::from_secs(60);

/// The prefix of the ids bulkhead gives the requests it replays; their
/// answers are bulkhead's, never the client's.
const REPLAY_ID: &str = "bulkhead-replay-";

/// A session's restarts, held by its relay.
pub(super) struct Restarter {
    pub switch: Arc<Switch>,
    restarts: Restarts,
    host: ToolHost,
    /// The call each run starts: the first's, less its faults. A process
    /// or stream fault stands for one death (as under `mcp serve`, it acts
    /// on the first run): the session is then seen to survive it.
    request: CallRequest,
    /// The server's lines, whole, while the session may restart.
    gate: LineGate,
    /// Runs started, the first included.
    pub runs: u32,
    /// The current run, while it is told the session again.
    replaying: Option<Replaying>,
    /// What the client is told once the new run is up.
    notice: Option<String>,
    /// bulkhead stopped the current run (its replay failed): its end is a
    /// death to restart from, not the session's.
    pub stopped_by_us: bool,
    /// The session's wall-clock limit, over all its runs.
    session_deadline: Option<Instant>,
    init_timeout: Duration,
}

/// A new run being told the client's session: its replayed requests'
/// answers are awaited (and swallowed) before the client's lines flow.
struct Replaying {
    /// The replayed `initialize`'s id, as JSON text.
    init_key: String,
    /// Told when `initialize` is answered: then `initialized` and the
    /// other requests are sent.
    go: Option<oneshot::Sender<()>>,
    /// The other replayed requests not answered yet.
    ids: HashSet<String>,
    /// Told when all are answered: then the client's lines flow.
    settled: oneshot::Sender<()>,
    deadline: tokio::time::Instant,
}

#[derive(Deserialize)]
struct LinePeek {
    id: Option<Value>,
    method: Option<IgnoredAny>,
    result: Option<IgnoredAny>,
    error: Option<ErrorPeek>,
}

#[derive(Deserialize)]
struct ErrorPeek {
    message: Option<String>,
}

impl Restarter {
    pub fn new(
        switch: Arc<Switch>,
        host: ToolHost,
        mut request: CallRequest,
        args: &crate::cli::WrapArgs,
    ) -> Self {
        request.inject.clear();
        // The relay's stream faults ride in the tool's arguments.
        if let Ok(mut a) = serde_json::from_str::<Value>(&request.args_json)
            && let Some(o) = a.as_object_mut()
            && o.remove("inject").is_some()
        {
            request.args_json = a.to_string();
        }
        let budget = bulkhead_mcp::restart::RestartBudget {
            max: args
                .max_restarts
                .unwrap_or(bulkhead_mcp::restart::RestartBudget::DEFAULT.max),
            window: args
                .restart_window
                .unwrap_or(bulkhead_mcp::restart::RestartBudget::DEFAULT.window),
        };
        Self {
            switch,
            restarts: Restarts::new(budget, Backoff::DEFAULT),
            host,
            request,
            gate: LineGate::new(args.max_message),
            runs: 1,
            replaying: None,
            notice: None,
            stopped_by_us: false,
            session_deadline: args.session_timeout.map(|t| Instant::now() + t),
            init_timeout: if args.init_timeout.is_zero() {
                REPLAY_INIT_TIMEOUT
            } else {
                args.init_timeout
            },
        }
    }

    /// Restarts so far, in all windows.
    pub fn total(&self) -> u32 {
        self.restarts.total()
    }

    /// When the replayed `initialize` must have been answered by.
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        self.replaying.as_ref().map(|r| r.deadline)
    }

    /// The server's output on its way to the client: answers to replayed
    /// requests taken out, and the stand-in answers of a dead run for the
    /// client's requests held back (the relay answers those itself, with
    /// what happens next). Returns what goes on, and what became of the
    /// replay if it settled here: `Ok`, every replayed request is answered
    /// and the new run is up; `Err`, its `initialize` failed.
    pub fn server(&mut self, data: &[u8]) -> (Vec<u8>, Option<Result<(), String>>) {
        let mut pieces = Vec::new();
        self.gate.feed(data, &mut pieces);
        let mut out = Vec::with_capacity(data.len());
        let mut replayed = None;
        for piece in pieces {
            let line = match piece {
                Piece::Raw(bytes) => {
                    out.extend_from_slice(&bytes);
                    continue;
                }
                Piece::Line(line) => line,
            };
            let Ok(LinePeek {
                id: Some(id),
                method: None,
                result,
                error,
            }) = serde_json::from_slice::<LinePeek>(&line)
            else {
                out.extend_from_slice(&line);
                continue;
            };
            let key = id.to_string();
            if id.as_str().is_some_and(|s| s.starts_with(REPLAY_ID)) {
                let error = error.and_then(|e| e.message);
                let Some(r) = self.replaying.as_mut() else {
                    continue;
                };
                if r.init_key == key && r.go.is_some() {
                    if result.is_none() {
                        replayed = Some(Err(format!(
                            "the restarted server answered initialize with an error: {}",
                            error.unwrap_or_default()
                        )));
                        continue;
                    }
                    if let Some(go) = r.go.take() {
                        let _ = go.send(());
                    }
                } else if r.ids.remove(&key)
                    && let Some(e) = error
                {
                    self.switch.lock().notes.push(format!(
                        "the restarted server refused a replayed request: {e}"
                    ));
                }
                if r.go.is_none()
                    && r.ids.is_empty()
                    && let Some(done) = self.replaying.take()
                {
                    let _ = done.settled.send(());
                    replayed = Some(Ok(()));
                }
                continue;
            }
            let mut s = self.switch.lock();
            if s.init_id.as_deref() == Some(key.as_str()) && result.is_some() {
                s.init_answered = true;
                s.init_id = None;
            }
            if s.pending.contains_key(&key) {
                let stand_in = error.and_then(|e| e.message).is_some_and(|m| {
                    m.starts_with("bulkhead: ") && m.ends_with(" before answering")
                });
                if stand_in {
                    // Answered when the run's end is known.
                    continue;
                }
                s.pending.remove(&key);
            }
            drop(s);
            out.extend_from_slice(&line);
        }
        (out, replayed)
    }

    /// Whether a run that ended so may be restarted at all.
    fn restartable(&self, report: &CallReport, client_gone: bool) -> Result<(), &'static str> {
        let s = self.switch.lock();
        if s.client_closed || client_gone {
            return Err("the client ended the session");
        }
        if !s.init_answered {
            return Err("the server never answered the client's initialize");
        }
        if s.init.is_none() {
            return Err("the client's initialize was not kept");
        }
        drop(s);
        match &report.outcome {
            Outcome::Killed {
                reason: KillReason::Timeout,
            } => Err("the session's time limit passed"),
            Outcome::Killed {
                reason: KillReason::Cancelled,
            } if !self.stopped_by_us => Err("the session was cancelled"),
            _ => Ok(()),
        }
    }
}

/// How the server's run ended, as the client and stderr read it: `the MCP
/// server was killed: memory cap 256.0 MiB`, `the MCP server crashed
/// (signal 6)`.
fn death(report: &CallReport, memory_bytes: u64) -> String {
    match &report.outcome {
        Outcome::Killed {
            reason: KillReason::Memory,
        } => format!(
            "the MCP server was killed: memory cap {}",
            format_size(memory_bytes)
        ),
        Outcome::Killed { reason } => format!("the MCP server was killed: {reason}"),
        Outcome::Failed { error } => format!("the MCP server failed: {error}"),
        _ => report
            .summary
            .as_ref()
            .and_then(|s| s["ended"].as_str())
            .map_or_else(|| "the MCP server ended".to_owned(), str::to_owned),
    }
}

/// bulkhead's answer to request `id` of a dead run.
fn error_line(id: &Value, message: &str, restart: Option<&Decision>) -> Vec<u8> {
    let mut data = json!({"ended": message});
    if let Some(Decision::Restart { number, max, .. }) = restart {
        data["restart"] = json!({"number": number, "max": max});
    }
    let answer = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": -32603, "message": message, "data": {"bulkhead": data}},
    });
    let mut line = answer.to_string().into_bytes();
    line.push(b'\n');
    line
}

impl Relay {
    /// The run has ended. `true`: a new run is started, and the session
    /// goes on; `false`: the session ends (the caller reports the end as
    /// before), its requests in flight answered here.
    pub(super) async fn restart_after(&mut self, report: &CallReport) -> bool {
        let Some(r) = self.restarter.as_mut() else {
            return false;
        };
        let died = death(report, r.request.limits.memory_bytes);
        let allowed = r.restartable(report, self.client_gone);
        r.stopped_by_us = false;
        r.replaying = None;
        let decision = allowed.map(|()| r.restarts.after_death(Instant::now()));
        let remaining = r
            .session_deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        let decision = match (decision, remaining) {
            (Ok(Decision::Restart { .. }), Some(left)) if left.is_zero() => {
                Err("the session's time limit passed")
            }
            (d, _) => d,
        };
        let (note, restart) = match &decision {
            Ok(d @ Decision::Restart { .. }) => (d.note(), Some(d.clone())),
            Ok(d @ Decision::Spent { .. }) => (format!("{}: the session ends", d.note()), None),
            Err(why) => ((*why).to_owned(), None),
        };
        // The client's requests the dead run left unanswered.
        let pending = r.switch.run_died(restart.is_some());
        // A session that ends for its own reason (the client left, the
        // server never came up) answers as it always did.
        let message = match &decision {
            Ok(_) => format!("bulkhead: {died} before answering; {note}"),
            Err(_) => format!("bulkhead: {died} before answering"),
        };
        let mut out = Vec::new();
        for id in &pending {
            out.extend_from_slice(&error_line(id, &message, restart.as_ref()));
        }
        let Some(Decision::Restart { delay, .. }) = restart else {
            if decision.is_ok() {
                // The budget is spent: say so beside the end line.
                self.write_err(&format!("{PREFIX}{died}; {note}\n")).await;
            }
            self.write_out(&out).await;
            return false;
        };
        let line = format!(
            "{PREFIX}{died}; {note} in {} ms; {} request(s) in flight answered with that\n",
            delay.as_millis(),
            pending.len()
        );
        if let Some(Decision::Restart { number, max, .. }) = &restart {
            r.notice = Some(format!(
                "{died}; bulkhead restarted it ({number} of {max}): the session goes on, without \
                 what the server held in memory"
            ));
        }
        self.write_out(&out).await;
        self.write_err(&line).await;
        tokio::time::sleep(delay).await;
        // A client that left meanwhile ends the session here.
        if self
            .restarter
            .as_ref()
            .is_some_and(|r| r.switch.lock().client_closed)
        {
            return false;
        }
        self.start_run(remaining);
        true
    }

    /// Starts the next run and, off the relay, tells it the client's
    /// session again.
    fn start_run(&mut self, remaining: Option<Duration>) {
        let Some(r) = self.restarter.as_mut() else {
            return;
        };
        let mut request = r.request.clone();
        if let Some(left) = remaining {
            request.limits.timeout = left;
        }
        r.runs += 1;
        let call = r.host.call(request);
        let input = call.input();
        let (init, initialized, replays) = {
            let s = r.switch.lock();
            (s.init.clone(), s.initialized, s.replay.requests())
        };
        let run = r.runs;
        let init_key = json!(format!("{REPLAY_ID}{run}-init"));
        let mut lines = Vec::new();
        let mut ids = HashSet::new();
        for (i, (method, params)) in replays.into_iter().enumerate() {
            let id = json!(format!("{REPLAY_ID}{run}-{i}"));
            ids.insert(id.to_string());
            lines.push(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        }
        let (go, went) = oneshot::channel();
        let (settled, settling) = oneshot::channel();
        r.replaying = Some(Replaying {
            init_key: init_key.to_string(),
            go: Some(go),
            ids,
            settled,
            deadline: tokio::time::Instant::now() + r.init_timeout,
        });
        let switch = r.switch.clone();
        let mut init = init.unwrap_or_default();
        init["id"] = init_key;
        tokio::spawn(async move {
            let line = |v: &Value| bytes::Bytes::from(format!("{v}\n"));
            if input.send(line(&init)).await.is_err() || went.await.is_err() {
                return;
            }
            if initialized {
                let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
                if input.send(line(&note)).await.is_err() {
                    return;
                }
            }
            for l in &lines {
                if input.send(line(l)).await.is_err() {
                    return;
                }
            }
            if settling.await.is_err() {
                return;
            }
            if !switch.go_live(input.clone()) {
                let _ = input.close().await;
            }
        });
        self.live = call.live();
        self.call = call;
    }

    /// The new run answered every replayed request: the client is told,
    /// if its log level lets a warning through.
    pub(super) async fn run_is_up(&mut self) {
        let Some(r) = self.restarter.as_mut() else {
            return;
        };
        let Some(notice) = r.notice.take() else {
            return;
        };
        if !r.switch.lock().replay.passes("warning") {
            return;
        }
        let message = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {
            "level": "warning", "logger": "bulkhead", "data": notice}});
        self.write_out(format!("{message}\n").as_bytes()).await;
    }

    /// The replayed `initialize` failed or went unanswered: the run is
    /// stopped, and its end counts against the budget.
    pub(super) async fn replay_failed(&mut self, why: &str) {
        let Some(r) = self.restarter.as_mut() else {
            return;
        };
        r.replaying = None;
        r.notice = None;
        r.stopped_by_us = true;
        self.call.cancel();
        self.write_err(&format!("{PREFIX}{why}; the restarted server is stopped\n"))
            .await;
    }

    /// The replayed requests' deadline passed.
    pub(super) async fn replay_timed_out(&mut self) {
        let Some(r) = self.restarter.as_ref() else {
            return;
        };
        let why = format!(
            "the restarted server did not answer the replayed initialize (and the level and \
             subscriptions after it) within {} s",
            r.init_timeout.as_secs()
        );
        self.replay_failed(&why).await;
    }

    /// What a restart will not restore, on stderr, as it is learnt.
    pub(super) async fn print_restart_notes(&mut self) {
        let Some(r) = self.restarter.as_ref() else {
            return;
        };
        let notes = std::mem::take(&mut r.switch.lock().notes);
        for n in notes {
            self.write_err(&format!("{PREFIX}{n}\n")).await;
        }
    }
}
