//! `bulkhead mcp check [FLAGS] -- CMD…`: starts a stdio MCP server once,
//! exactly as `mcp wrap` would with the same flags, and talks to it as a
//! client: `initialize`, `notifications/initialized`, `tools/list`. Then
//! it ends the session and reports what the server is, what it was
//! allowed and refused, and either a client config that runs it through
//! `mcp wrap` or why it failed (the diagnosis `mcp wrap` gives a client).
//!
//! Exit codes: 0 when `tools/list` succeeded, 5 when the server failed,
//! 2 for a usage error.

use std::path::Path;
use std::time::{Duration, Instant};

use bulkhead_host::{CallEvent, CallHandle, CallReport, Enforcement, Outcome};
use bulkhead_ipc::StreamId;
use bulkhead_ipc::lines::{BoundedLines, LineEvent};
use bytes::Bytes;
use clap::{Args, FromArgMatches};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::cli::mcp_diagnose::{EgressSeen, Failure, STOPPED_BY_BULKHEAD, StderrTail};
use crate::cli::mcp_wrap::{Launched, launch};
use crate::cli::{CheckArgs, SandboxArgs, WrapArgs};

mod output;
use output::Output;

/// Exit code when the server failed the check.
const EXIT_SERVER: u8 = 5;

/// The protocol version the check asks for: the newest the reference
/// servers and the SDKs speak.
const PROTOCOL_VERSION: &str = "2025-06-18";

/// `tools/list` pages followed through `nextCursor`. A server with more
/// pages than this is listed in part (and says so): a cursor that never
/// ends must not keep the check going.
const MAX_TOOL_PAGES: u32 = 20;

/// How long a server that passed may take to exit once its stdin is
/// closed (MCP's stdio shutdown), before its worker is killed.
const EXIT_GRACE: Duration = Duration::from_secs(3);

/// Where the check stands.
enum Step {
    /// `initialize` (id 1) was sent at this time.
    Initialize(Instant),
    /// `tools/list` (id `id`) was sent at this time.
    ListTools { id: u64, at: Instant, pages: u32 },
    /// The server passed, or failed: the session is ending.
    Done,
}

/// What the check learnt.
#[derive(Default)]
struct Probe {
    enforcement: Option<Box<Enforcement>>,
    tail: StderrTail,
    server_info: Value,
    protocol: Option<String>,
    tools: Vec<String>,
    tools_cut: bool,
    init_time: Option<Duration>,
    list_time: Option<Duration>,
    failure: Option<Failure>,
    /// Bytes of the server's own requests so far, answered through a queue
    /// that waits on the server reading them: at most [`MAX_ASKED_BYTES`].
    asked_bytes: usize,
}

pub async fn check(args: CheckArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    let command = args.command.clone();
    let json_out = args.json;
    let timeout = (!args.init_timeout.is_zero()).then_some(args.init_timeout);
    let flags = wrap_flags(&args.sandbox, config, args.init_timeout);
    let wrap = wrap_args(args)?;
    let Launched { host, call, policy } = match launch(&wrap, config).await? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let (probe, report, egress) = run(call, timeout, wrap.max_message).await;
    drop(host);
    let passed = probe.failure.is_none();
    let out = Output {
        command: &command,
        policy: &policy,
        probe: &probe,
        report: &report,
        egress: &egress,
        flags: &flags,
    };
    if json_out {
        println!("{}", serde_json::to_string_pretty(&out.json())?);
    } else {
        print!("{}", out.text());
    }
    Ok(if passed { 0 } else { EXIT_SERVER })
}

/// `mcp wrap`'s arguments for the check's own: the wrap grammar's defaults
/// for everything the check does not set, so the server starts exactly as
/// `mcp wrap` with these flags would start it.
fn wrap_args(args: CheckArgs) -> anyhow::Result<WrapArgs> {
    let argv = ["wrap", "--"]
        .into_iter()
        .map(String::from)
        .chain(args.command);
    let matches = WrapArgs::augment_args(clap::Command::new("wrap")).try_get_matches_from(argv)?;
    let mut wrap = WrapArgs::from_arg_matches(&matches)?;
    wrap.sandbox = args.sandbox;
    wrap.init_timeout = args.init_timeout;
    Ok(wrap)
}

/// Talks to the server until it passed or failed, ends the session, and
/// returns what was learnt, the call's report and its egress record. The
/// call's report comes after its teardown: every process of the server is
/// gone by then.
async fn run(
    mut call: CallHandle,
    timeout: Option<Duration>,
    max_message: u64,
) -> (Probe, Option<CallReport>, EgressSeen) {
    let live = call.live();
    let writer = spawn_writer(&call);
    let send = |v: Value| {
        let mut line = v.to_string().into_bytes();
        line.push(b'\n');
        let _ = writer.send(Some(Bytes::from(line)));
    };
    let mut probe = Probe::default();
    let mut lines = BoundedLines::new(usize::try_from(max_message).unwrap_or(usize::MAX));
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "bulkhead-check", "version": bulkhead_host::VERSION},
        }}),
    );
    let mut step = Step::Initialize(Instant::now());
    // When a server that passed is killed if it has not exited by then.
    let mut kill_at: Option<tokio::time::Instant> = None;
    let report = loop {
        let (method, since) = match &step {
            Step::Initialize(at) => ("initialize", Some(*at)),
            Step::ListTools { at, .. } => ("tools/list", Some(*at)),
            Step::Done => ("", None),
        };
        let deadline = since
            .zip(timeout)
            .map(|(at, t)| tokio::time::Instant::from_std(at + t));
        if matches!(step, Step::Done) && kill_at.is_none() {
            kill_at = Some(tokio::time::Instant::now() + EXIT_GRACE);
        }
        tokio::select! {
            biased;
            event = call.next_event() => match event {
                Some(CallEvent::Started(e)) => probe.enforcement = Some(e),
                Some(CallEvent::Output { stream: StreamId::Stdout, data }) => {
                    let mut events = Vec::new();
                    lines.feed(&data, &mut events);
                    for event in events {
                        if let LineEvent::Line(line) = event {
                            step = on_line(&line, step, &mut probe, &send);
                        }
                    }
                    if matches!(step, Step::Done) {
                        end_session(&call, &writer, probe.failure.is_some());
                    }
                }
                Some(CallEvent::Output { stream: StreamId::Stderr, data }) => probe.tail.push(&data),
                Some(CallEvent::Finished(report)) => break Some(*report),
                // `next_event` stands a lost report in with one of its own:
                // `None` comes only after `Finished`.
                None => break None,
            },
            () = sleep_until(deadline), if !matches!(step, Step::Done) => {
                probe.failure = Some(Failure::NoAnswer {
                    method: method.into(),
                    waited: timeout.unwrap_or_default(),
                });
                step = Step::Done;
                end_session(&call, &writer, true);
            }
            () = sleep_until(kill_at) => {
                kill_at = None;
                call.cancel();
            }
        }
    };
    if probe.failure.is_none() && !matches!(step, Step::Done) {
        probe.failure = Some(Failure::Ended {
            method: match step {
                Step::Initialize(_) => "initialize".into(),
                _ => "tools/list".into(),
            },
            why: report
                .as_ref()
                .map_or_else(|| "the session's worker vanished".into(), ended_why),
        });
    }
    let egress = match report.as_ref().and_then(|r| r.egress.as_ref()) {
        Some(e) => EgressSeen {
            allowed: e.allowed,
            refused: e.refused,
            messages: e.messages.iter().map(|m| m.text.clone()).collect(),
        },
        None => EgressSeen::of(&live.borrow()),
    };
    (probe, report, egress)
}

/// Input goes through a task of its own: sending waits for the worker's
/// credit, and the check must keep taking output meanwhile. `None` closes
/// the server's stdin.
fn spawn_writer(call: &CallHandle) -> mpsc::UnboundedSender<Option<Bytes>> {
    let input = call.input();
    let (tx, mut rx) = mpsc::unbounded_channel::<Option<Bytes>>();
    tokio::spawn(async move {
        while let Some(item) = rx.recv().await {
            let sent = match item {
                Some(line) => input.send(line).await,
                None => input.close().await,
            };
            if sent.is_err() {
                return;
            }
        }
    });
    tx
}

/// A server that passed gets its stdin closed and a grace period to exit
/// (the caller's timer); one that failed is stopped at once.
fn end_session(call: &CallHandle, writer: &mpsc::UnboundedSender<Option<Bytes>>, failed: bool) {
    let _ = writer.send(None);
    if failed {
        call.cancel();
    }
}

/// What a server may ask of the check: a check is `initialize` and
/// `tools/list`, and a server that asks (each answer echoing its id) more
/// than this meanwhile, perhaps without reading the answers, is stopped
/// rather than queued for.
const MAX_ASKED_BYTES: usize = 1 << 20;

/// One line from the server, at step `step`: the next step.
fn on_line(line: &[u8], step: Step, probe: &mut Probe, send: &impl Fn(Value)) -> Step {
    let Ok(msg) = serde_json::from_slice::<Value>(line) else {
        return step;
    };
    let (id, method) = (msg.get("id"), msg.get("method"));
    if let (Some(id), Some(method)) = (id, method) {
        // The server asks the client something: a ping is answered, the
        // rest declined, so the server does not wait on the check.
        let answer = if method == "ping" {
            json!({"jsonrpc": "2.0", "id": id, "result": {}})
        } else {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601,
                "message": "bulkhead mcp check takes no requests"}})
        };
        probe.asked_bytes += line.len();
        // Once the check is done (the rest of a batch of lines), the server
        // is no longer answered, and its outcome stands.
        if matches!(step, Step::Done) {
            return step;
        }
        if probe.asked_bytes > MAX_ASKED_BYTES {
            let method = if matches!(step, Step::Initialize(_)) {
                "initialize"
            } else {
                "tools/list"
            };
            let why = format!(
                "{STOPPED_BY_BULKHEAD}it sent over {} KiB of requests of its own during the check",
                MAX_ASKED_BYTES >> 10
            );
            probe.failure = Some(Failure::Ended {
                method: method.into(),
                why,
            });
            return Step::Done;
        }
        send(answer);
        return step;
    }
    let Some(id) = id.and_then(Value::as_u64) else {
        return step;
    };
    let error = msg.get("error").map(|e| {
        e["message"]
            .as_str()
            .unwrap_or("an error without a message")
            .to_owned()
    });
    match step {
        Step::Initialize(at) if id == 1 => {
            probe.init_time = Some(at.elapsed());
            if let Some(message) = error {
                probe.failure = Some(failure_of("initialize", message));
                return Step::Done;
            }
            probe.server_info = msg["result"]["serverInfo"].clone();
            probe.protocol = msg["result"]["protocolVersion"].as_str().map(str::to_owned);
            send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
            send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}));
            Step::ListTools {
                id: 2,
                at: Instant::now(),
                pages: 1,
            }
        }
        Step::ListTools {
            id: want,
            at,
            pages,
        } if id == want => {
            if let Some(message) = error {
                probe.failure = Some(failure_of("tools/list", message));
                return Step::Done;
            }
            let page = msg["result"]["tools"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            probe.tools.extend(
                page.iter()
                    .filter_map(|t| t["name"].as_str().map(str::to_owned)),
            );
            match msg["result"]["nextCursor"].as_str() {
                Some(cursor) if pages < MAX_TOOL_PAGES => {
                    send(
                        json!({"jsonrpc": "2.0", "id": want + 1, "method": "tools/list",
                        "params": {"cursor": cursor}}),
                    );
                    Step::ListTools {
                        id: want + 1,
                        at,
                        pages: pages + 1,
                    }
                }
                cursor => {
                    probe.tools_cut = cursor.is_some();
                    probe.list_time = Some(at.elapsed());
                    Step::Done
                }
            }
        }
        other => other,
    }
}

/// An error answer: the server's own, or bulkhead's in the stead of a
/// server that ended (`bulkhead: the MCP server … before answering`).
fn failure_of(method: &str, message: String) -> Failure {
    match message
        .strip_prefix("bulkhead: ")
        .and_then(|m| m.strip_suffix(" before answering"))
    {
        Some(why) => Failure::Ended {
            method: method.into(),
            why: why.into(),
        },
        None => Failure::ErrorAnswer {
            method: method.into(),
            message,
        },
    }
}

/// Why the call ended, in words: the relay's account, else the outcome.
fn ended_why(report: &CallReport) -> String {
    if let Some(why) = report.summary.as_ref().and_then(|s| s["ended"].as_str()) {
        return why.to_owned();
    }
    match &report.outcome {
        Outcome::Killed { reason } => format!("killed: {reason}"),
        Outcome::Failed { error } => error.clone(),
        _ => format!("the MCP server ended ({:?})", report.exit),
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The `mcp wrap` flags that reproduce the check's sandbox, for the
/// client-config snippet. Paths are made absolute: a client starts the
/// server from a directory of its own.
fn wrap_flags(s: &SandboxArgs, config: Option<&Path>, init_timeout: Duration) -> Vec<String> {
    let abs = |p: &Path| {
        std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    let mut f: Vec<String> = Vec::new();
    let mut flag = |name: &str, value: String| {
        f.push(name.to_owned());
        f.push(value);
    };
    if let Some(c) = config {
        flag("--config", abs(c));
    }
    if let Some(p) = &s.policy {
        flag("--policy", p.clone());
    }
    s.allow_read
        .iter()
        .for_each(|p| flag("--allow-read", abs(p)));
    s.allow_write
        .iter()
        .for_each(|p| flag("--allow-write", abs(p)));
    s.allow_net
        .iter()
        .for_each(|r| flag("--allow-net", r.to_string()));
    let sizes = [
        ("--memory", s.memory),
        ("--max-file-size", s.max_file_size),
        ("--address-space", s.address_space),
        ("--pids", s.pids),
        ("--cpu", s.cpu),
    ];
    for (name, value) in sizes {
        if let Some(v) = value {
            flag(name, v.to_string());
        }
    }
    if let Some(c) = &s.cwd {
        flag("--cwd", abs(c));
    }
    if let Some(m) = s.memory_mechanism {
        flag("--memory-mechanism", m.to_string());
    }
    let default = bulkhead_host::units::parse_duration(crate::cli::DEFAULT_INIT_TIMEOUT).ok();
    if Some(init_timeout) != default {
        flag("--init-timeout", format!("{}ms", init_timeout.as_millis()));
    }
    f
}
