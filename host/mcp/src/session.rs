//! A long-lived session with one MCP server: started in a worker under its
//! policy, initialized, asked for its tools, restarted within a budget when
//! it dies, and marked failed (with why) when the budget is spent.
//!
//! One driver task owns the worker's call. Requests come in through a
//! channel, get an id of the driver's own, and go out through a writer
//! task (input waits for the worker's credit, and must not stall the
//! driver, which has to keep taking output for that credit to come). Lines
//! the relay passes on are reassembled under the message cap and routed by
//! id.
//!
//! # Caveats
//! - Requests the server sends the client (sampling, elicitation, roots)
//!   go to the handler the gateway set ([`ServerSession::set_request_handler`]),
//!   which passes them to its own client; with no handler they are
//!   answered "method not found". Either way the server gets an answer
//!   within [`SERVER_REQUEST_TIMEOUT`].
//! - A request in flight when the server dies fails; it is not replayed on
//!   the restarted server, whose state is new.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use bulkhead_config::McpServerSpec;
use bulkhead_host::{LiveStatus, ToolHost};

use crate::serve_faults::{Before, ServerFaults};

/// How long a server may take to answer `initialize`. Node servers load in
/// a second or two; `npx` that must fetch a package can take far longer,
/// but then it should be installed first.
const INIT_TIMEOUT: Duration = Duration::from_secs(60);

/// The server's stderr kept for `status`.
const STDERR_TAIL_BYTES: usize = 8 << 10;

/// The protocol version bulkhead speaks as a client.
const PROTOCOL_VERSION: &str = "2025-06-18";

/// How long a server's request (sampling, elicitation) may wait for the
/// client's answer: a person answering an elicitation form, or a model
/// sampling a long reply, takes minutes, not hours.
pub const SERVER_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// A server's requests waiting for a client's answer at once; more are
/// refused at once, so a server cannot pile up waiting tasks.
const MAX_SERVER_REQUESTS: usize = 16;

/// What the gateway tells a server it can take: the requests it can pass
/// to its own client (which then answers, or says it cannot).
fn client_capabilities() -> Value {
    json!({"sampling": {}, "elicitation": {}, "roots": {"listChanged": false}})
}

/// What a [`RequestHandler`] returns: the client's `result`, or the
/// JSON-RPC error object the server gets instead.
pub type RequestFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, Value>> + Send>>;

/// Answers a server's request (the whole JSON-RPC message). Set by
/// whoever serves the session's client.
pub type RequestHandler = Arc<dyn Fn(Value) -> RequestFuture + Send + Sync>;

type HandlerSlot = Arc<Mutex<Option<RequestHandler>>>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    Starting,
    Ready,
    Restarting,
    /// Crashed more often than the restart budget allows, or could not
    /// start; the reason is `last_error`.
    Failed,
    Stopped,
}

/// What `bulkhead mcp status` shows of one server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerStatus {
    pub name: String,
    pub state: ServerState,
    pub restarts: u32,
    pub last_error: Option<String>,
    pub peak_rss_bytes: u64,
    pub policy: String,
    pub not_enforced: Vec<String>,
    pub tools: Vec<Value>,
    pub stderr_tail: String,
    /// Connections the egress proxy of the server's current run let
    /// through so far (0 without an allow list).
    pub egress_allowed: u64,
    /// Connections it refused so far.
    pub egress_refused: u64,
    /// The latest distinct refusal message, e.g. `egress to evil.example:443
    /// refused: not in the allow list`.
    pub last_egress_refusal: Option<String>,
    /// The package it runs from bulkhead's cache, pinned: `npm
    /// NAME@VERSION` (a package launcher's server only).
    pub package: Option<String>,
    /// The current run's refusal messages (each once, at most
    /// `bulkhead_egress::MAX_MESSAGES`).
    pub egress_refusals: Vec<String>,
    /// The pid of the worker the server runs in now; `None` between runs.
    pub worker_pid: Option<u32>,
    /// Resident memory of the current run's worker tree, at its latest
    /// sample.
    pub rss_bytes: u64,
    /// Time since the current run got its worker, at its latest sample.
    pub uptime_ms: Option<u64>,
    /// `tools/call` requests sent to the server.
    pub calls: u64,
    /// Of those, the ones that got an error, a result marked `isError`, or
    /// no answer.
    pub call_errors: u64,
    /// Faults injected into this server so far (`mcp serve --inject`,
    /// `--chaos`).
    pub injected: u64,
}

/// Why a request did not get the server's answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct McpError(pub String);

enum Cmd {
    Request {
        method: String,
        params: Value,
        reply: oneshot::Sender<Result<Value, McpError>>,
    },
    /// Requests whose askers have stopped waiting (cancelled by their
    /// client, or timed out) are cancelled at the server.
    Sweep,
}

/// Sends [`Cmd::Sweep`] when a request stops being waited for before its
/// answer came: its asker was dropped (the client cancelled it) or gave up.
struct SweepUnlessAnswered<'a> {
    cmds: &'a mpsc::Sender<Cmd>,
    answered: bool,
}

impl Drop for SweepUnlessAnswered<'_> {
    fn drop(&mut self) {
        if !self.answered {
            // A full queue: the next sweep (or the next request past the
            // pending limit) takes this one too.
            let _ = self.cmds.try_send(Cmd::Sweep);
        }
    }
}

/// The live figures of a server's current run, published by its driver
/// at each (re)start; `None` before the first.
type CurrentLive = Arc<Mutex<Option<watch::Receiver<LiveStatus>>>>;

/// A handle on one server's session; cheap to clone.
#[derive(Clone)]
pub struct ServerSession {
    name: String,
    cmds: mpsc::Sender<Cmd>,
    status: Arc<Mutex<ServerStatus>>,
    live: CurrentLive,
    state: watch::Receiver<ServerState>,
    notifications: broadcast::Sender<Value>,
    /// Notifications handed to subscribers so far ([`ServerSession::notes_sent`]).
    notes_sent: Arc<AtomicU64>,
    handler: HandlerSlot,
    /// Faults injected by `mcp serve` (`crate::serve_faults`); `None`: none.
    faults: Option<Arc<ServerFaults>>,
    /// How long a request waits for the server's answer.
    answer_timeout: Duration,
}

impl ServerSession {
    /// Starts the session's driver. Must be called inside a tokio runtime.
    pub fn spawn(host: ToolHost, spec: McpServerSpec) -> Self {
        Self::spawn_with_faults(host, spec, None)
    }

    /// The faults injected into this server, if any.
    pub(crate) fn faults(&self) -> Option<&Arc<ServerFaults>> {
        self.faults.as_ref()
    }

    /// [`ServerSession::spawn`], with faults to inject.
    pub(crate) fn spawn_with_faults(
        host: ToolHost,
        spec: McpServerSpec,
        faults: Option<Arc<ServerFaults>>,
    ) -> Self {
        let status = Arc::new(Mutex::new(ServerStatus {
            name: spec.name.clone(),
            state: ServerState::Starting,
            restarts: 0,
            last_error: None,
            peak_rss_bytes: 0,
            policy: spec.policy.name.clone(),
            not_enforced: Vec::new(),
            tools: Vec::new(),
            stderr_tail: String::new(),
            egress_allowed: 0,
            egress_refused: 0,
            last_egress_refusal: None,
            package: spec.package.clone(),
            egress_refusals: Vec::new(),
            worker_pid: None,
            rss_bytes: 0,
            uptime_ms: None,
            calls: 0,
            call_errors: 0,
            injected: 0,
        }));
        let live = CurrentLive::default();
        let (cmds, cmd_rx) = mpsc::channel(64);
        let (state_tx, state) = watch::channel(ServerState::Starting);
        let (notifications, _) = broadcast::channel(NOTIFICATION_BACKLOG);
        let handler = HandlerSlot::default();
        let notes_sent = Arc::new(AtomicU64::new(0));
        let driver = Driver {
            handler: handler.clone(),
            server_requests: Arc::new(tokio::sync::Semaphore::new(MAX_SERVER_REQUESTS)),
            host,
            spec: spec.clone(),
            status: status.clone(),
            state: state_tx,
            notifications: notifications.clone(),
            notes_sent: notes_sent.clone(),
            live: live.clone(),
            faults: faults.clone(),
        };
        tokio::spawn(driver.run(cmd_rx));
        Self {
            answer_timeout: spec.call_timeout.saturating_add(ANSWER_GRACE),
            name: spec.name,
            cmds,
            status,
            live,
            state,
            notifications,
            notes_sent,
            handler,
            faults,
        }
    }

    /// Who answers the server's requests from now on (replacing any
    /// before); each gets at most [`SERVER_REQUEST_TIMEOUT`].
    pub fn set_request_handler(&self, handler: RequestHandler) {
        *self.handler.lock().unwrap_or_else(|p| p.into_inner()) = Some(handler);
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits until the server is ready (initialized, tools listed), or has
    /// failed.
    pub async fn ready(&self) -> Result<(), McpError> {
        let mut state = self.state.clone();
        loop {
            match &*state.borrow_and_update() {
                ServerState::Ready => return Ok(()),
                ServerState::Failed | ServerState::Stopped => {
                    return Err(McpError(
                        self.status()
                            .last_error
                            .unwrap_or_else(|| "the server stopped".into()),
                    ));
                }
                _ => {}
            }
            if state.changed().await.is_err() {
                return Err(McpError("the session ended".into()));
            }
        }
    }

    /// The server's status, with the egress figures of its current run
    /// as of now (the driver wakes only for the server's output, so they
    /// are read from the run's live figures here, not kept there).
    pub fn status(&self) -> ServerStatus {
        let mut status = lock(&self.status).clone();
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(live) = live {
            let l = live.borrow();
            status.egress_allowed = l.egress_allowed;
            status.egress_refused = l.egress_refused;
            status.last_egress_refusal = l
                .egress_messages
                .iter()
                .rev()
                .find(|m| m.contains(" refused"))
                .cloned();
            status.egress_refusals = l
                .egress_messages
                .iter()
                .filter(|m| m.contains(" refused"))
                .cloned()
                .collect();
            status.peak_rss_bytes = status.peak_rss_bytes.max(l.peak_rss_bytes);
            if status.worker_pid.is_some() {
                status.rss_bytes = l.rss_bytes;
                status.uptime_ms = Some(u64::try_from(l.elapsed.as_millis()).unwrap_or(u64::MAX));
            }
        }
        status.injected = self.faults.as_ref().map_or(0, |f| f.count());
        status
    }

    /// The server's notifications (progress, logging, list changes), as
    /// they come; a subscriber that falls behind loses the oldest.
    pub fn notifications(&self) -> broadcast::Receiver<Value> {
        self.notifications.subscribe()
    }

    /// How many notifications have been handed to subscribers so far. The
    /// driver counts one before it takes the server's next line, so once
    /// a request's answer is here, every notification the server sent
    /// before it is counted: a subscriber that has taken this many has
    /// seen them all (the HTTP gateway waits for that before it ends a
    /// call's stream).
    pub fn notes_sent(&self) -> u64 {
        self.notes_sent.load(Ordering::Acquire)
    }

    /// Sends a request and waits for its answer (`result`), or the error
    /// that stands for it. A `tools/call` is counted, with whether the
    /// client got an error, for `mcp status`.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, McpError> {
        let answer = self.exchange(method, params).await;
        if method == "tools/call" {
            let mut s = lock(&self.status);
            s.calls += 1;
            s.call_errors += u64::from(!answer.as_ref().is_ok_and(|r| r["isError"] != true));
        }
        answer
    }

    async fn exchange(&self, method: &str, params: Value) -> Result<Value, McpError> {
        // Injected faults (`mcp serve --inject`, `--chaos`): a request may
        // not reach the server, or its answer be changed.
        let fault = match &self.faults {
            None => None,
            Some(f) => {
                f.settled().await;
                match f.before(method, &params, lock(&self.status).worker_pid) {
                    Before::Send(fault) => fault,
                    Before::Done(result) => return result.map_err(McpError),
                }
            }
        };
        let (reply, answer) = oneshot::channel();
        self.cmds
            .send(Cmd::Request {
                method: method.to_owned(),
                params,
                reply,
            })
            .await
            .map_err(|_| McpError(format!("server \"{}\" is stopped", self.name)))?;
        let mut sweep = SweepUnlessAnswered {
            cmds: &self.cmds,
            answered: false,
        };
        // Unanswered, the request would hold its task and its message
        // for as long as the server lives. Timed out, it is cancelled at
        // the server as the guard drops.
        let answer = match tokio::time::timeout(self.answer_timeout, answer).await {
            Ok(answer) => {
                sweep.answered = true;
                answer
                    .unwrap_or_else(|_| Err(McpError(format!("server \"{}\" stopped", self.name))))
            }
            Err(_) => Err(McpError(format!(
                "server \"{}\" did not answer `{method}` within {} s (its call_timeout, and {} s more)",
                self.name,
                self.answer_timeout.as_secs(),
                ANSWER_GRACE.as_secs()
            ))),
        };
        crate::serve_faults::after(fault, answer)
    }
}

fn lock(m: &Mutex<ServerStatus>) -> std::sync::MutexGuard<'_, ServerStatus> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How much longer than its `call_timeout` a request waits for the
/// server's answer here: the worker's relay answers a `tools/call` past
/// that time itself, with the reason, and that answer should be the one
/// the client gets; other methods have no timeout of their own but this.
const ANSWER_GRACE: Duration = Duration::from_secs(5);

/// Requests of the gateway's a server may leave unanswered at once. Each
/// waits at most its `call_timeout` (then its entry is swept when the
/// limit is reached); a few thousand is far past any client's pipeline
/// and small beside the host (an entry is a few dozen bytes).
const MAX_PENDING_REQUESTS: usize = 4096;

/// Server notifications held for a slow subscriber; past this the oldest
/// are dropped (`broadcast` lag), so a chatty server cannot grow the host.
const NOTIFICATION_BACKLOG: usize = 256;

mod driver;
mod to_server;
use driver::Driver;
