//! `bulkhead mcp wrap [FLAGS] -- CMD ARGS…`: a stdio MCP server that
//! proxies to `CMD`, which runs sandboxed and capped in a worker. With
//! `--url URL` it proxies to a remote server instead, reached from a worker
//! (`mcp_remote.rs`).
//!
//! The client's bytes go to the server unchanged; the server's messages
//! come back through the worker's relay (`mcp_stdio`), which caps each one
//! before parsing it. This process holds no more than the credit windows
//! of either direction: it reads stdin only when the server has taken what
//! came before, and takes output only as fast as it writes it to stdout.
//! Until the server has answered the client's `initialize` (`mcp_watch`),
//! it also holds at most one capped line of the server's, so that it can
//! answer in the server's stead, with why (`mcp_diagnose`), when the answer
//! does not come within `--init-timeout`, and drop the late one.
//!
//! When the server dies, the session goes on (`restart`, unless
//! `--no-restart` or `--url`): the client's lines go through a switch to
//! whichever run is live (`switch`), and the server's are held whole (one
//! capped line) to see which of the client's requests are answered.

mod launch;
mod relay_faults;
mod restart;
mod start;
mod switch;

pub(crate) use launch::{Launched, launch};
use launch::{Ready, ready};
pub(crate) use switch::{ClientLines, Switch};

use start::start_line;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead_host::{CallEvent, CallHandle, CallReport, LiveStatus, Outcome};
use bulkhead_ipc::{StreamId, ToolExit};
use bytes::Bytes;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot, watch};

use crate::cli::mcp_diagnose::{
    Diagnosis, EgressSeen, Facts, Failure, PolicyFacts, StderrTail, seconds,
};
use crate::cli::mcp_inject::McpInjector;
use crate::cli::mcp_watch::{Answer, LineGate, Piece, Spotted, answer_to};
use crate::cli::{EXIT_USAGE, WrapArgs};

/// A session has no wall-clock limit unless `--session-timeout` sets one;
/// ten years stands for "none" where the host wants a deadline.
const NO_SESSION_LIMIT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

pub async fn wrap(mut args: WrapArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    // A fault that cannot apply to a session is refused, with the reason.
    if let Some(why) = args.inject.refused(bulkhead_faults::Target::McpSession) {
        eprintln!("bulkhead: {why}");
        return Ok(EXIT_USAGE);
    }
    args.inject.seed = args.inject.seed();
    let inject = McpInjector::new(&args.inject.specs, args.inject.seed, args.max_message);
    let Ready {
        host,
        request,
        policy,
    } = match ready(&args, config).await? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    let call = host.call(request.clone());
    // A session outlives its server's death unless `--no-restart`; a
    // remote server's (`--url`) ends with it, as its own session does.
    let switch =
        (!args.no_restart && args.url.is_none()).then(|| Arc::new(Switch::new(call.input())));
    let (spot_tx, spot_rx) = oneshot::channel();
    let fired =
        crate::cli::mcp_stdin::feed_stdin(call.input(), spot_tx, inject.clone(), switch.clone());
    let (restarter, host) = match switch {
        Some(switch) => (
            Some(restart::Restarter::new(switch, host, request, &args)),
            None,
        ),
        None => (None, Some(host)),
    };
    let relay = Relay {
        restarter,
        client_gone: false,
        injected_before: None,
        inject,
        fired,
        live: call.live(),
        call,
        policy,
        command: args.command.clone(),
        report_json: args.report_json,
        init_timeout: (!args.init_timeout.is_zero()).then_some(args.init_timeout),
        init: Init::Unknown,
        gate: LineGate::new(args.max_message),
        tail: StderrTail::default(),
        egress_printed: HashSet::new(),
        stdout: tokio::io::stdout(),
        stderr: tokio::io::stderr(),
        code: 0,
    };
    let code = relay.run(spot_rx).await;
    // The host outlives the call: its spawner thread and cages serve it.
    drop(host);
    Ok(code)
}

/// Where the watch of the client's `initialize` stands.
enum Init {
    /// The client's first request is not known yet.
    Unknown,
    /// Its `initialize` (this id) awaits the server's answer until
    /// `deadline`.
    Waiting {
        id: Value,
        deadline: tokio::time::Instant,
    },
    /// The server ended before answering it, for this reason (the relay's
    /// stand-in answer said so, and was held back): bulkhead answers it
    /// when the call's report comes, right after, which has the egress
    /// record complete.
    Ended { id: Value, why: String },
    /// bulkhead answered it in the server's stead; the server's late
    /// answer is to be dropped.
    AnsweredByUs { id: Value, at: Instant },
    /// Nothing more to watch: the server's bytes pass straight through.
    Done,
}

/// One `mcp wrap` session: the server's output to the client and to
/// stderr, the watch of `initialize`, and the egress refusals as they come.
struct Relay {
    /// The session's restarts; `None` under `--no-restart` and `--url`.
    restarter: Option<restart::Restarter>,
    /// The client stopped reading: the session is over.
    client_gone: bool,
    /// The fault that fired in a run that was then restarted (the restarted
    /// runs have none), for the session's end line.
    injected_before: Option<Value>,
    /// `--inject`'s MCP faults; `None` without, and the server's bytes
    /// then pass through unsplit.
    inject: Option<McpInjector>,
    /// Answers bulkhead gives in the server's stead (`error`), and wakes
    /// to print which fault fired, from the client's reader.
    fired: Option<mpsc::Receiver<Vec<u8>>>,
    call: CallHandle,
    live: watch::Receiver<LiveStatus>,
    policy: PolicyFacts,
    command: Vec<String>,
    /// `--report-json`: the whole sandbox report at start, not only its
    /// summary line.
    report_json: bool,
    /// `None`: `--init-timeout 0`, no watch.
    init_timeout: Option<Duration>,
    init: Init,
    gate: LineGate,
    tail: StderrTail,
    /// Egress messages already printed, at most [`EGRESS_PRINTED_CAP`].
    egress_printed: HashSet<String>,
    stdout: tokio::io::Stdout,
    stderr: tokio::io::Stderr,
    code: u8,
}

/// Distinct egress messages remembered so as to print each once. A run of
/// the server has at most `bulkhead_egress::MAX_MESSAGES` of them, but the
/// set outlives restarts, and a server that tries new names and dies, over
/// and over, would grow it for as long as it is restarted: four runs' worth
/// covers a server that settles, at a few tens of KiB.
const EGRESS_PRINTED_CAP: usize = 4 * bulkhead_egress::MAX_MESSAGES;

/// The prefix of every line `mcp wrap` writes to stderr of its own.
const PREFIX: &str = "bulkhead: mcp wrap: ";

impl Relay {
    async fn run(mut self, mut spot: oneshot::Receiver<(Spotted, Instant)>) -> u8 {
        let mut live = self.live.clone();
        let (mut spot_open, mut live_open) = (true, true);
        let mut fired_open = self.fired.is_some();
        loop {
            let watch_deadline = match &self.init {
                Init::Waiting { deadline, .. } => Some(*deadline),
                _ => None,
            };
            let replay_deadline = self.restarter.as_ref().and_then(|r| r.deadline());
            let deadline = watch_deadline.into_iter().chain(replay_deadline).min();
            // Biased: the client's initialize is learnt before the answer
            // it may already have (the stdin thread reports it before it
            // passes the bytes on), and an answer wins over its deadline.
            tokio::select! {
                biased;
                spotted = &mut spot, if spot_open => {
                    spot_open = false;
                    self.spotted(spotted.ok()).await;
                }
                event = self.call.next_event() => match event {
                    Some(CallEvent::Finished(report)) => {
                        if self.injected_before.is_none() {
                            self.injected_before = run_injected(&report);
                        }
                        if self.restart_after(&report).await {
                            live = self.live.clone();
                            live_open = true;
                            continue;
                        }
                        self.finished(*report).await;
                        break;
                    }
                    Some(event) => self.event(event).await,
                    None => break,
                },
                line = crate::cli::mcp_stdin::recv_fired(&mut self.fired), if fired_open => match line {
                    Some(line) => self.injected(&line).await,
                    None => fired_open = false,
                },
                () = sleep_until(deadline) => {
                    if replay_deadline.is_some_and(|d| d <= tokio::time::Instant::now()) {
                        self.replay_timed_out().await;
                    } else {
                        self.answer_in_stead().await;
                    }
                }
                changed = live.changed(), if live_open => match changed {
                    Ok(()) => {
                        let messages = live.borrow_and_update().egress_messages.clone();
                        self.print_egress(&messages).await;
                    }
                    Err(_) => live_open = false,
                },
            }
        }
        let _ = self.stdout.flush().await;
        self.code
    }

    /// The client's first request is known: watch its answer, or nothing.
    async fn spotted(&mut self, spotted: Option<(Spotted, Instant)>) {
        match (spotted, self.init_timeout) {
            (Some((Spotted::Initialize(id), at)), Some(timeout)) => {
                let deadline = tokio::time::Instant::from_std(at + timeout);
                self.init = Init::Waiting { id, deadline };
            }
            _ => {
                self.init = Init::Done;
                let rest = self.gate.take_rest();
                self.write_out(&rest).await;
            }
        }
    }

    async fn event(&mut self, event: CallEvent) {
        match event {
            CallEvent::Started(enforcement) => {
                // A restarted run's start says only what is not enforced.
                let mut text = match &self.restarter {
                    Some(r) if r.runs > 1 => String::new(),
                    _ => start_line(&enforcement),
                };
                if self.report_json {
                    let line = serde_json::json!({
                        "policy": enforcement.policy,
                        "explained": enforcement.policy_explained,
                        "sandbox": enforcement.sandbox,
                        "worker": enforcement.worker.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                        "not_enforced": enforcement.not_enforced().map(|m| &m.mechanism).collect::<Vec<_>>(),
                    });
                    text.push_str(&format!("{PREFIX}sandbox {line}\n"));
                }
                // Weaker isolation is never silent, with or without the JSON.
                for m in enforcement.not_enforced() {
                    text.push_str(&format!(
                        "bulkhead: policy {}: NOT ENFORCED: {}: {}\n",
                        enforcement.policy, m.mechanism, m.detail
                    ));
                }
                self.write_err(&text).await;
            }
            CallEvent::Output {
                stream: StreamId::Stdout,
                data,
            } => {
                // The restarts' watch first: an answer a fault then
                // swallows (drop) was still the server's.
                let data = match self.restarter.as_mut() {
                    Some(r) => {
                        let (out, replayed) = r.server(&data);
                        match replayed {
                            Some(Ok(())) => self.run_is_up().await,
                            Some(Err(why)) => self.replay_failed(&why).await,
                            None => {}
                        }
                        self.print_restart_notes().await;
                        Bytes::from(out)
                    }
                    None => data,
                };
                let data = match self.inject.clone() {
                    Some(inject) => {
                        // Which faults fired on requests passed on (drop,
                        // malformed) is told as their answers come.
                        self.write_err(&inject.take_notes().concat()).await;
                        Bytes::from(inject.server(&data))
                    }
                    None => data,
                };
                if matches!(self.init, Init::Done) {
                    self.write_out(&data).await;
                } else {
                    self.watch_output(&data).await;
                }
            }
            CallEvent::Output {
                stream: StreamId::Stderr,
                data,
            } => {
                self.tail.push(&data);
                let _ = self.stderr.write_all(&data).await;
            }
            CallEvent::Finished(report) => self.finished(*report).await,
        }
    }

    /// The server's output while its answer to `initialize` is watched
    /// for: whole lines, each passed on unless it is an answer that
    /// bulkhead has already given in the server's stead.
    async fn watch_output(&mut self, data: &[u8]) {
        let mut pieces = Vec::new();
        self.gate.feed(data, &mut pieces);
        let mut out = Vec::new();
        for piece in pieces {
            let line = match piece {
                Piece::Raw(bytes) => {
                    out.extend_from_slice(&bytes);
                    continue;
                }
                Piece::Line(line) => line,
            };
            match std::mem::replace(&mut self.init, Init::Done) {
                Init::Waiting { id, deadline } => match answer_to(&line, &id) {
                    None => {
                        out.extend_from_slice(&line);
                        self.init = Init::Waiting { id, deadline };
                    }
                    Some(Answer::FromServer) => out.extend_from_slice(&line),
                    Some(Answer::Ended(why)) => self.init = Init::Ended { id, why },
                },
                Init::AnsweredByUs { id, at } => match answer_to(&line, &id) {
                    None => {
                        out.extend_from_slice(&line);
                        self.init = Init::AnsweredByUs { id, at };
                    }
                    Some(Answer::FromServer) => {
                        self.write_err(&format!(
                            "{PREFIX}the server answered initialize after all, {} after bulkhead \
                             did; its answer was dropped, since the client already has \
                             bulkhead's error for that id\n",
                            seconds(at.elapsed())
                        ))
                        .await;
                    }
                    Some(Answer::Ended(why)) => {
                        self.write_err(&format!(
                            "{PREFIX}{why}; the client already has bulkhead's error for \
                             its initialize\n"
                        ))
                        .await;
                    }
                },
                other => {
                    out.extend_from_slice(&line);
                    self.init = other;
                }
            }
        }
        if matches!(self.init, Init::Done) {
            out.extend_from_slice(&self.gate.take_rest());
        }
        self.write_out(&out).await;
    }

    /// No answer to `initialize` in time: the client gets bulkhead's
    /// error, which says why, and the session goes on.
    async fn answer_in_stead(&mut self) {
        let Init::Waiting { id, .. } = std::mem::replace(&mut self.init, Init::Done) else {
            return;
        };
        let failure = Failure::NoAnswer {
            method: "initialize".into(),
            waited: self.init_timeout.unwrap_or_default(),
        };
        let line = self.answer_line(&failure, &id, None).await;
        self.write_out(&line).await;
        self.init = Init::AnsweredByUs {
            id,
            at: Instant::now(),
        };
    }

    /// bulkhead's JSON-RPC error for request `id`, with the diagnosis as
    /// its message; the same diagnosis goes to stderr as one block. The
    /// egress record is the live one unless the call's final one is given.
    async fn answer_line(
        &mut self,
        failure: &Failure,
        id: &Value,
        egress: Option<EgressSeen>,
    ) -> Vec<u8> {
        let egress = egress.unwrap_or_else(|| EgressSeen::of(&self.live.borrow()));
        self.print_egress(&egress.messages).await;
        let facts = Facts {
            command: &self.command,
            policy: &self.policy,
            egress: &egress,
            stderr: self.tail.lines(),
        };
        let diagnosis = Diagnosis::new(failure, &facts);
        let (code, suffix, note) = match failure {
            // The MCP SDKs' own code for a request that timed out.
            Failure::NoAnswer { .. } => (
                -32001,
                "; bulkhead answered in its stead (the server still runs)",
                "; the client got an error that says so, and the session goes on:",
            ),
            _ => (-32603, "", "; the client got an error that says so:"),
        };
        self.write_err(&diagnosis.block(PREFIX, note)).await;
        let answer = serde_json::json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {
                "code": code,
                "message": diagnosis.message(suffix),
                "data": {"bulkhead": diagnosis.json()},
            },
        });
        let mut line = answer.to_string().into_bytes();
        line.push(b'\n');
        line
    }

    /// A fault fired on a client request: what it answers, if anything,
    /// goes to the client, and which fault it was to stderr.
    async fn injected(&mut self, line: &[u8]) {
        self.write_out(line).await;
        if let Some(inject) = &self.inject {
            let notes = inject.take_notes().concat();
            self.write_err(&notes).await;
        }
    }

    async fn finished(&mut self, report: CallReport) {
        let why = match &report.outcome {
            Outcome::Completed | Outcome::Truncated { .. } => {
                if let Some(ToolExit::Code(c)) = report.exit {
                    self.code = u8::try_from(c).unwrap_or(1);
                }
                format!("the server ended ({:?})", report.exit)
            }
            Outcome::Killed { reason } => {
                self.code = 4;
                format!("killed: {reason}")
            }
            Outcome::Failed { error } => {
                self.code = 5;
                format!("failed: {error}")
            }
        };
        let egress = report.egress.as_ref().map(|e| EgressSeen {
            allowed: e.allowed,
            refused: e.refused,
            messages: e.messages.iter().map(|m| m.text.clone()).collect(),
        });
        // A server that ended before it answered leaves the client's
        // initialize open (its worker may not even have started it): answer
        // it, with the relay's account of the end, else the outcome.
        let open = match std::mem::replace(&mut self.init, Init::Done) {
            Init::Ended { id, why } => Some((id, why)),
            Init::Waiting { id, .. } => {
                let ended = report.summary.as_ref().and_then(|s| s["ended"].as_str());
                Some((id, ended.map_or_else(|| why.clone(), str::to_owned)))
            }
            _ => None,
        };
        if let Some((id, ended)) = open {
            let failure = Failure::Ended {
                method: "initialize".into(),
                why: ended,
            };
            let line = self.answer_line(&failure, &id, egress.clone()).await;
            self.write_out(&line).await;
        }
        if let Some(e) = &egress {
            self.print_egress(&e.messages).await;
        }
        let summary = serde_json::json!({
            "outcome": report.outcome.status(),
            "why": why,
            "relay": report.summary,
            "egress": report.egress_json(),
            "injected": self
                .injected_before
                .take()
                .or_else(|| self.inject.as_ref()?.injected_json()),
            "host_peak_rss_bytes": crate::cli::run::host_peak_rss_bytes(),
            "restarts": self.restarter.as_ref().map(restart::Restarter::total),
        });
        self.write_err(&format!("{PREFIX}ended {summary}\n")).await;
    }

    /// Each egress refusal or failure on stderr, once, as it happens.
    async fn print_egress(&mut self, messages: &[String]) {
        let mut text = String::new();
        for m in messages {
            if self.egress_printed.contains(m) {
                continue;
            }
            // Past the cap, a message is printed without being remembered:
            // each run of the server says at most `MAX_MESSAGES` anyway.
            if self.egress_printed.len() < EGRESS_PRINTED_CAP {
                self.egress_printed.insert(m.clone());
            }
            text.push_str(&format!("{PREFIX}{m}\n"));
        }
        if !text.is_empty() {
            self.write_err(&text).await;
        }
    }

    async fn write_out(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.stdout.write_all(data).await.is_err() || self.stdout.flush().await.is_err() {
            // The client is gone: so is the session.
            self.client_gone = true;
            self.call.cancel();
        }
    }

    async fn write_err(&mut self, text: &str) {
        let _ = self.stderr.write_all(text.as_bytes()).await;
    }
}

/// The fault that fired in a run: a process fault (the host's report), or
/// a stream fault (the relay's summary).
fn run_injected(report: &CallReport) -> Option<Value> {
    report
        .injected_json()
        .or_else(|| report.summary.as_ref()?.get("injected").cloned())
}

/// Sleeps until `deadline`; forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
