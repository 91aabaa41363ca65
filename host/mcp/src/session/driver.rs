//! The driver of one server's session: the task that owns the worker's
//! call, restarts it within the budget, routes the server's lines by id,
//! and answers (or passes on) the server's own requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bulkhead_config::{McpServerSpec, Transport};
use bulkhead_host::outcome::Outcome;
use bulkhead_host::report::CallEvent;
use bulkhead_host::{CallRequest, ToolHost};
use bulkhead_ipc::StreamId;
use bulkhead_ipc::lines::{BoundedLines, LineEvent};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::to_server::ToServer;
use super::{
    Cmd, CurrentLive, HandlerSlot, INIT_TIMEOUT, MAX_PENDING_REQUESTS, McpError, PROTOCOL_VERSION,
    SERVER_REQUEST_TIMEOUT, STDERR_TAIL_BYTES, ServerState, ServerStatus, client_capabilities,
    lock,
};
use crate::restart::{Backoff, Decision, Replay, Restarts};
use crate::serve_faults::ServerFaults;

/// One server's driver; [`super::ServerSession`] holds the other end of its
/// channels.
pub(super) struct Driver {
    pub(super) host: ToolHost,
    pub(super) spec: McpServerSpec,
    pub(super) status: Arc<Mutex<ServerStatus>>,
    pub(super) state: watch::Sender<ServerState>,
    pub(super) notifications: broadcast::Sender<Value>,
    pub(super) notes_sent: Arc<std::sync::atomic::AtomicU64>,
    pub(super) live: CurrentLive,
    pub(super) handler: HandlerSlot,
    pub(super) server_requests: Arc<tokio::sync::Semaphore>,
    pub(super) faults: Option<Arc<ServerFaults>>,
}

type Pending = HashMap<u64, oneshot::Sender<Result<Value, McpError>>>;

/// Lets go of the requests nobody waits for any more (their client
/// cancelled them, or they timed out), and tells the server so with
/// `notifications/cancelled`, as the client's own cancel would have: a
/// long `tools/call` then stops instead of running for nobody.
fn cancel_abandoned(pending: &mut Pending, to_server: &ToServer) {
    pending.retain(|&id, reply| {
        if !reply.is_closed() {
            return true;
        }
        let _ = to_server.send(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": id, "reason": "the client cancelled the request, or it timed out"}}));
        false
    });
}

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

    pub(super) async fn run(self, mut cmds: mpsc::Receiver<Cmd>) {
        // The one restart policy, shared with `mcp wrap`; restarts at once.
        let mut restarts = Restarts::new(self.spec.restart, Backoff::NONE);
        let mut replay = Replay::default();
        loop {
            let why = self.run_once(&mut cmds, &mut replay).await;
            let Some(why) = why else {
                // The gateway dropped every handle: stop for good.
                self.set_state(ServerState::Stopped, None);
                return;
            };
            let decision = restarts.after_death(Instant::now());
            let Decision::Restart { delay, .. } = decision else {
                let msg = format!("{why}; {}, and is now marked failed", decision.note());
                self.set_state(ServerState::Failed, Some(msg.clone()));
                // Answer whoever still asks, with why (a sweep has nothing
                // left to cancel).
                while let Some(cmd) = cmds.recv().await {
                    if let Cmd::Request { reply, .. } = cmd {
                        let _ = reply.send(Err(McpError(format!(
                            "server \"{}\" failed: {msg}",
                            self.spec.name
                        ))));
                    }
                }
                return;
            };
            lock(&self.status).restarts += 1;
            self.set_state(ServerState::Restarting, Some(why));
            // Requests wait in the channel meanwhile.
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
    }

    /// Runs the server until it ends. `None`: no more requests will come.
    async fn run_once(
        &self,
        cmds: &mut mpsc::Receiver<Cmd>,
        replay: &mut Replay,
    ) -> Option<String> {
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
        if let Some(f) = &self.faults {
            req = f.run(req);
        }
        let mut call = self.host.call(req);
        if let Some(f) = &self.faults {
            f.started(call.input());
        }
        let live = call.live();
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = Some(live.clone());
        // Input waits for the worker's credit, off the driver, bounded.
        let to_server = ToServer::start(call.input());
        // The session's own messages, sent where nothing waits yet (after
        // `initialize`'s answer, the server has read what came before).
        let send = |v: &Value| {
            let _ = to_server.send(v);
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
                        let mut s = lock(&self.status);
                        s.not_enforced = e.not_enforced().map(|m| m.mechanism.clone()).collect();
                        s.worker_pid = call.worker_pid();
                    }
                    Some(CallEvent::Output { stream: StreamId::Stdout, data }) => {
                        let mut events = Vec::new();
                        lines.feed(&data, &mut events);
                        for ev in events {
                            if let LineEvent::Line(line) = ev {
                                self.route(&line, &mut pending, &to_server);
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
                        if let Some(f) = &self.faults {
                            f.finished(&report);
                        }
                        let why = match &report.outcome {
                            Outcome::Killed { reason } => format!("the server was killed: {reason}"),
                            Outcome::Failed { error } => format!("the server failed: {error}"),
                            _ => report.summary.as_ref().and_then(|s| s["ended"].as_str().map(str::to_owned))
                                .unwrap_or_else(|| "the server ended".into()),
                        };
                        {
                            let mut s = lock(&self.status);
                            s.peak_rss_bytes = report.usage.peak_rss_bytes.max(live.borrow().peak_rss_bytes);
                            s.worker_pid = None;
                        }
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
                            // What the gateway's clients set before a
                            // restart; the answers are not awaited.
                            // Not pending: their answers are dropped unrouted,
                            // and a sweep does not take them for cancelled.
                            for (method, params) in replay.requests() {
                                let id = next_id;
                                next_id += 1;
                                send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
                            }
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
                        if let Err(e) = replay.observe(&method, &params) {
                            tracing::warn!(server = %self.spec.name, "{e}");
                        }
                        if pending.len() >= MAX_PENDING_REQUESTS {
                            // Those whose askers have given up go first.
                            cancel_abandoned(&mut pending, &to_server);
                        }
                        if pending.len() >= MAX_PENDING_REQUESTS {
                            let _ = reply.send(Err(McpError(format!(
                                "server \"{}\" has {} requests unanswered; it is sent no more until it answers",
                                self.spec.name,
                                pending.len()
                            ))));
                            continue;
                        }
                        let id = next_id;
                        next_id += 1;
                        let mut msg = json!({"jsonrpc": "2.0", "id": id, "method": method});
                        // No `params` rather than `null`, which JSON-RPC
                        // does not allow and some SDKs drop unanswered.
                        if !params.is_null() {
                            msg["params"] = params;
                        }
                        match to_server.send(&msg) {
                            Ok(()) => {
                                pending.insert(id, reply);
                            }
                            Err(full) => {
                                let _ = reply.send(Err(McpError(full.message(&self.spec.name))));
                            }
                        }
                    }
                    Some(Cmd::Sweep) => cancel_abandoned(&mut pending, &to_server),
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
    fn route(&self, line: &[u8], pending: &mut Pending, to_server: &ToServer) {
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
            (Some(id), true) => self.server_request(id, msg, to_server.clone()),
            // Nobody listening is fine: the notification is dropped.
            (None, true) => {
                if self.notifications.send(msg).is_ok() {
                    self.notes_sent
                        .fetch_add(1, std::sync::atomic::Ordering::Release);
                }
            }
            (None, false) => {}
        }
    }

    /// A request from the server: to the handler, off the driver (whose
    /// loop must keep reading), within the bounds.
    fn server_request(&self, id: Value, msg: Value, to_server: ToServer) {
        let (name, status) = (self.spec.name.clone(), self.status.clone());
        let send = move |v: Value| {
            if let Err(full) = to_server.send(&v) {
                lock(&status).last_error = Some(format!(
                    "a request of the server's went unanswered: {}",
                    full.message(&name)
                ));
            }
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
