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

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead_ipc::StreamId;
use bulkhead_ipc::lines::{BoundedLines, LineEvent};
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use bulkhead_config::{McpServerSpec, Transport};
use bulkhead_host::outcome::Outcome;
use bulkhead_host::report::CallEvent;
use bulkhead_host::{CallRequest, LiveStatus, ToolHost};

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    handler: HandlerSlot,
}

impl ServerSession {
    /// Starts the session's driver. Must be called inside a tokio runtime.
    pub fn spawn(host: ToolHost, spec: McpServerSpec) -> Self {
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
        }));
        let live = CurrentLive::default();
        let (cmds, cmd_rx) = mpsc::channel(64);
        let (state_tx, state) = watch::channel(ServerState::Starting);
        let (notifications, _) = broadcast::channel(NOTIFICATION_BACKLOG);
        let handler = HandlerSlot::default();
        let driver = Driver {
            handler: handler.clone(),
            server_requests: Arc::new(tokio::sync::Semaphore::new(MAX_SERVER_REQUESTS)),
            host,
            spec: spec.clone(),
            status: status.clone(),
            state: state_tx,
            notifications: notifications.clone(),
            live: live.clone(),
        };
        tokio::spawn(driver.run(cmd_rx));
        Self {
            name: spec.name,
            cmds,
            status,
            live,
            state,
            notifications,
            handler,
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
        }
        status
    }

    /// The server's notifications (progress, logging, list changes), as
    /// they come; a subscriber that falls behind loses the oldest.
    pub fn notifications(&self) -> broadcast::Receiver<Value> {
        self.notifications.subscribe()
    }

    /// Sends a request and waits for its answer (`result`), or the error
    /// that stands for it.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, McpError> {
        let (reply, answer) = oneshot::channel();
        self.cmds
            .send(Cmd::Request {
                method: method.to_owned(),
                params,
                reply,
            })
            .await
            .map_err(|_| McpError(format!("server \"{}\" is stopped", self.name)))?;
        answer
            .await
            .unwrap_or_else(|_| Err(McpError(format!("server \"{}\" stopped", self.name))))
    }
}

fn lock(m: &Mutex<ServerStatus>) -> std::sync::MutexGuard<'_, ServerStatus> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Driver {
    host: ToolHost,
    spec: McpServerSpec,
    status: Arc<Mutex<ServerStatus>>,
    state: watch::Sender<ServerState>,
    notifications: broadcast::Sender<Value>,
    live: CurrentLive,
    handler: HandlerSlot,
    server_requests: Arc<tokio::sync::Semaphore>,
}

/// Server notifications held for a slow subscriber; past this the oldest
/// are dropped (`broadcast` lag), so a chatty server cannot grow the host.
const NOTIFICATION_BACKLOG: usize = 256;

type Pending = HashMap<u64, oneshot::Sender<Result<Value, McpError>>>;

impl Driver {
    fn set_state(&self, state: ServerState, error: Option<String>) {
        {
            let mut s = lock(&self.status);
            s.state = state.clone();
            if error.is_some() {
                s.last_error = error;
            }
        }
        let _ = self.state.send(state);
    }

    async fn run(self, mut cmds: mpsc::Receiver<Cmd>) {
        let mut restarts: VecDeque<Instant> = VecDeque::new();
        loop {
            let why = self.run_once(&mut cmds).await;
            let Some(why) = why else {
                // The gateway dropped every handle: stop for good.
                self.set_state(ServerState::Stopped, None);
                return;
            };
            let window = self.spec.restart.window;
            restarts.retain(|t| t.elapsed() < window);
            if restarts.len() as u32 >= self.spec.restart.max {
                let msg = format!(
                    "{why}; it was restarted {} times in {} s, the budget, and is now marked failed",
                    restarts.len(),
                    window.as_secs()
                );
                self.set_state(ServerState::Failed, Some(msg.clone()));
                // Answer whoever still asks, with why.
                while let Some(Cmd::Request { reply, .. }) = cmds.recv().await {
                    let _ = reply.send(Err(McpError(format!(
                        "server \"{}\" failed: {msg}",
                        self.spec.name
                    ))));
                }
                return;
            }
            restarts.push_back(Instant::now());
            lock(&self.status).restarts += 1;
            self.set_state(ServerState::Restarting, Some(why));
        }
    }

    /// Runs the server until it ends. `None`: no more requests will come.
    async fn run_once(&self, cmds: &mut mpsc::Receiver<Cmd>) -> Option<String> {
        let (tool, args) = match &self.spec.transport {
            Transport::Stdio { command, env } => {
                ("mcp_stdio", json!({"command": command, "env": env}))
            }
            Transport::Http { url, headers } => {
                ("mcp_http", json!({"url": url, "headers": headers}))
            }
        };
        let mut args = args;
        args["max_message_bytes"] = json!(self.spec.max_message);
        args["max_result_bytes"] = json!(self.spec.max_result);
        args["call_timeout_ms"] = json!(self.spec.call_timeout.as_millis() as u64);
        let mut req = CallRequest::new(tool, args.to_string())
            .limits(self.spec.limits.clone())
            .policy(self.spec.policy.clone())
            .stream_output(true);
        if let Some(cwd) = &self.spec.cwd {
            req = req.cwd(cwd);
        }
        let mut call = self.host.call(req);
        let live = call.live();
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = Some(live.clone());
        let (lines_tx, mut lines_rx) = mpsc::unbounded_channel::<Bytes>();
        let input = call.input();
        // The writer: input waits for the worker's credit, off the driver.
        tokio::spawn(async move {
            while let Some(line) = lines_rx.recv().await {
                if input.send(line).await.is_err() {
                    return;
                }
            }
        });
        let send = |v: &Value| {
            let mut line = v.to_string().into_bytes();
            line.push(b'\n');
            let _ = lines_tx.send(Bytes::from(line));
        };
        let mut lines =
            BoundedLines::new(usize::try_from(self.spec.max_message).unwrap_or(usize::MAX));
        let mut pending: Pending = HashMap::new();
        let mut next_id: u64 = 1;

        // Initialize: our own request, before any of the gateway's.
        let (init_tx, mut init_rx) = oneshot::channel();
        pending.insert(0, init_tx);
        send(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL_VERSION, "capabilities": client_capabilities(),
            "clientInfo": {"name": "bulkhead", "version": bulkhead_host::VERSION}}}),
        );
        let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
        tokio::pin!(init_deadline);
        let mut initialized = false;
        let mut tools_id = None;
        loop {
            tokio::select! {
                event = call.next_event() => match event {
                    Some(CallEvent::Started(e)) => {
                        lock(&self.status).not_enforced = e.not_enforced().map(|m| m.mechanism.clone()).collect();
                    }
                    Some(CallEvent::Output { stream: StreamId::Stdout, data }) => {
                        let mut events = Vec::new();
                        lines.feed(&data, &mut events);
                        for ev in events {
                            if let LineEvent::Line(line) = ev {
                                self.route(&line, &mut pending, &lines_tx);
                            }
                        }
                    }
                    Some(CallEvent::Output { stream: StreamId::Stderr, data }) => {
                        let mut s = lock(&self.status);
                        s.stderr_tail.push_str(&String::from_utf8_lossy(&data));
                        if s.stderr_tail.len() > STDERR_TAIL_BYTES {
                            let cut = s.stderr_tail.len() - STDERR_TAIL_BYTES;
                            let cut = (cut..s.stderr_tail.len()).find(|i| s.stderr_tail.is_char_boundary(*i)).unwrap_or(0);
                            s.stderr_tail.drain(..cut);
                        }
                    }
                    Some(CallEvent::Finished(report)) => {
                        let why = match &report.outcome {
                            Outcome::Killed { reason } => format!("the server was killed: {reason}"),
                            Outcome::Failed { error } => format!("the server failed: {error}"),
                            _ => report.summary.as_ref().and_then(|s| s["ended"].as_str().map(str::to_owned))
                                .unwrap_or_else(|| "the server ended".into()),
                        };
                        lock(&self.status).peak_rss_bytes = report.usage.peak_rss_bytes.max(live.borrow().peak_rss_bytes);
                        for (_, reply) in pending.drain() {
                            let _ = reply.send(Err(McpError(format!("{why} before answering"))));
                        }
                        return Some(why);
                    }
                    None => return Some("the session's worker vanished".into()),
                },
                answer = &mut init_rx, if !initialized => {
                    match answer {
                        Ok(Ok(_)) => {
                            initialized = true;
                            send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
                            let (tx, rx) = oneshot::channel();
                            let id = next_id;
                            next_id += 1;
                            pending.insert(id, tx);
                            tools_id = Some(rx);
                            send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": {}}));
                        }
                        Ok(Err(e)) => {
                            call.cancel();
                            self.set_state(ServerState::Starting, Some(format!("initialize failed: {e}")));
                        }
                        Err(_) => call.cancel(),
                    }
                }
                tools = async {
                    match tools_id.as_mut() {
                        Some(rx) => rx.await,
                        None => std::future::pending().await,
                    }
                }, if tools_id.is_some() => {
                    tools_id = None;
                    let list = match tools {
                        Ok(Ok(v)) => v["tools"].as_array().cloned().unwrap_or_default(),
                        _ => Vec::new(),
                    };
                    lock(&self.status).tools = list;
                    self.set_state(ServerState::Ready, None);
                }
                _ = &mut init_deadline, if !initialized => {
                    lock(&self.status).last_error = Some(format!("no answer to initialize within {} s", INIT_TIMEOUT.as_secs()));
                    call.cancel();
                }
                cmd = cmds.recv(), if initialized => match cmd {
                    Some(Cmd::Request { method, params, reply }) => {
                        let id = next_id;
                        next_id += 1;
                        pending.insert(id, reply);
                        let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": method});
                        // No `params` rather than `null`, which JSON-RPC
                        // does not allow and some SDKs drop unanswered.
                        if !params.is_null() {
                            msg["params"] = params;
                        }
                        send(&msg);
                    }
                    None => {
                        call.cancel();
                        let _ = call.wait().await;
                        return None;
                    }
                },
            }
            let peak = live.borrow().peak_rss_bytes;
            let mut s = lock(&self.status);
            s.peak_rss_bytes = s.peak_rss_bytes.max(peak);
        }
    }

    /// One line from the server: an answer to route, a request to decline,
    /// or a notification to drop.
    fn route(&self, line: &[u8], pending: &mut Pending, lines: &mpsc::UnboundedSender<Bytes>) {
        let Ok(msg) = serde_json::from_slice::<Value>(line) else {
            return;
        };
        let id = msg.get("id").cloned();
        let has_method = msg.get("method").is_some();
        match (id, has_method) {
            (Some(id), false) => {
                let Some(reply) = id.as_u64().and_then(|n| pending.remove(&n)) else {
                    return;
                };
                let answer = match (msg.get("result"), msg.get("error")) {
                    (Some(r), _) => Ok(r.clone()),
                    (None, Some(e)) => Err(McpError(
                        e["message"]
                            .as_str()
                            .unwrap_or("the server answered with an error")
                            .to_owned(),
                    )),
                    (None, None) => Err(McpError(
                        "the server's answer has neither result nor error".into(),
                    )),
                };
                let _ = reply.send(answer);
            }
            (Some(id), true) => self.server_request(id, msg, lines.clone()),
            // Nobody listening is fine: the notification is dropped.
            (None, true) => {
                let _ = self.notifications.send(msg);
            }
            (None, false) => {}
        }
    }

    /// A request from the server: to the handler, off the driver (whose
    /// loop must keep reading), within the bounds.
    fn server_request(&self, id: Value, msg: Value, lines: mpsc::UnboundedSender<Bytes>) {
        let send = move |v: Value| {
            let mut line = v.to_string().into_bytes();
            line.push(b'\n');
            let _ = lines.send(Bytes::from(line));
        };
        let handler = self
            .handler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (Some(handler), Ok(permit)) =
            (handler, self.server_requests.clone().try_acquire_owned())
        else {
            send(json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": -32601,
                "message": "bulkhead's gateway has no client to pass this request to (sampling, elicitation, roots), or too many are waiting",
            }}));
            return;
        };
        tokio::spawn(async move {
            let _permit = permit;
            let answer = match tokio::time::timeout(SERVER_REQUEST_TIMEOUT, handler(msg)).await {
                Ok(Ok(result)) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
                Ok(Err(error)) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
                Err(_) => json!({"jsonrpc": "2.0", "id": id, "error": {
                    "code": -32603,
                    "message": format!("the client did not answer within {} s", SERVER_REQUEST_TIMEOUT.as_secs()),
                }}),
            };
            send(answer);
        });
    }
}
