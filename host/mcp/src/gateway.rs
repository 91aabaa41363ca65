//! The gateway: one MCP server that offers bulkhead's built-in tools and
//! every configured server's tools (as `server__tool`), each call
//! sandboxed. [`serve_stdio`] serves it on stdin/stdout; `crate::http`
//! serves the same [`Gateway`] over Streamable HTTP.
//!
//! The client's messages are read under the same cap as a server's
//! ([`bulkhead_ipc::lines`]); each `tools/call` runs in its own task, so a
//! slow tool does not hold the others; answers go out through one writer.
//! The client is the one peer, so the servers' notifications all go to it,
//! and so do their requests (sampling, elicitation, roots) when its
//! initialize declared the capability (`crate::client`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bulkhead_config::{Config, McpServerSpec, Transport, load_servers_file, servers_file, specs};
use bulkhead_host::policy::{ResolveContext, resolve};
use bulkhead_host::{CallPolicy, CallRequest, HostConfig, Outcome, ToolHost};
use bulkhead_ipc::ToolExit;
use bulkhead_ipc::lines::{BoundedLines, LineEvent};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Semaphore, mpsc};

use crate::byte_budget::try_charge;
use crate::client::{self, Waiting};
use crate::held::Held;
use crate::in_flight::InFlight;
use crate::note_queue::{Flush, PENDING_BYTES};
use crate::prepare::{FetchOptions, prepare};
use crate::serve_faults::{FaultPlan, Handled, ServeFaults};
use crate::session::ServerSession;
use crate::{GatewayError, NAMESPACE_SEPARATOR};

/// The cap on one client message: the same as on a server's.
pub const MAX_CLIENT_MESSAGE: usize = 4 << 20;

/// How long `tools/list` and `status` wait for the servers to be ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Gateway {
    host: ToolHost,
    pub(crate) sessions: Vec<ServerSession>,
    /// `--expose`: the one server whose catalogue is served unchanged.
    pub(crate) expose: Option<usize>,
    builtins: Vec<Value>,
    tool_policy: CallPolicy,
    cwd: PathBuf,
    /// Requests over HTTP left unanswered by an injected fault.
    pub(crate) held: Held,
}

/// Starts a session with every server in the servers file (`servers`, or
/// the config's `[mcp] servers_file`). The sessions initialize in the
/// background; [`ServerSession::ready`] waits for one.
pub async fn start_sessions(
    config: &Config,
    servers: Option<&Path>,
) -> Result<(ToolHost, Vec<ServerSession>), GatewayError> {
    start_sessions_with(config, servers, None).await
}

/// [`start_sessions`], and with `faults` (`mcp serve`) the faults to
/// inject: those given and each server's own (`[servers.NAME] inject`).
async fn start_sessions_with(
    config: &Config,
    servers: Option<&Path>,
    faults: Option<&ServeFaults>,
) -> Result<(ToolHost, Vec<ServerSession>), GatewayError> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute());
    let specs = match servers_file(servers, config, home.as_deref()) {
        Some(file) => {
            let entries =
                load_servers_file(&file).map_err(|e| GatewayError::Config(e.to_string()))?;
            specs(config, &entries, home.as_deref())
                .map_err(|e| GatewayError::Config(e.to_string()))?
        }
        None => Vec::new(),
    };
    let plan = FaultPlan::new(faults, &specs)?;
    // Each server holds a worker slot for as long as its session lives: the
    // slots are one per CPU for tool calls (and fetches), plus one per
    // server. With only the CPUs', a server past their number would wait
    // for a slot until another died, and never initialize.
    let defaults = HostConfig::default();
    let host = ToolHost::new(HostConfig {
        worker_from_config: config.worker.clone(),
        max_workers: defaults.max_workers + specs.len(),
        ..defaults
    })?;
    let mut sessions = Vec::new();
    if !specs.is_empty() {
        let launch_env = bulkhead_launch::LaunchEnv::from_process()?;
        for mut spec in specs {
            if spec.name.contains(NAMESPACE_SEPARATOR) {
                return Err(GatewayError::Config(format!(
                    "server \"{}\": names may not contain \"{NAMESPACE_SEPARATOR}\", which separates server and tool",
                    spec.name
                )));
            }
            with_package(&host, &mut spec, &launch_env).await?;
            let faults = plan.for_server(&spec);
            sessions.push(ServerSession::spawn_with_faults(host.clone(), spec, faults));
        }
    }
    Ok((host, sessions))
}

/// A stdio server launched by a package launcher (`npx -y PKG`, `uvx
/// PKG`) runs from bulkhead's package cache: its package is fetched now if
/// it is not there yet, and the server may read it and nothing more of the
/// cache. Other commands are left as `specs` resolved them.
async fn with_package(
    host: &ToolHost,
    spec: &mut McpServerSpec,
    env: &bulkhead_launch::LaunchEnv,
) -> Result<(), GatewayError> {
    let Transport::Stdio { command, env: vars } = &mut spec.transport else {
        return Ok(());
    };
    let is_package = bulkhead_launch::analyze(command, env).is_ok_and(|p| p.package.is_some());
    if !is_package {
        return Ok(());
    }
    let prepared = prepare(host, command, env, &FetchOptions::default())
        .await
        .map_err(|e| GatewayError::Server(format!("server \"{}\": {e}", spec.name)))?;
    *command = prepared.argv.clone();
    if let Some(path) = prepared.path_var(env.var("PATH")) {
        vars.insert("PATH".into(), path);
    }
    // The cache dir and the interpreter's prefix hold no secret, so they
    // are added as read roots as they are, without the deny carving a
    // policy's own roots get.
    if let Some(fs) = spec
        .policy
        .sandbox
        .as_mut()
        .and_then(|s| s.filesystem.as_mut())
    {
        fs.read
            .extend(prepared.read.iter().map(|p| p.display().to_string()));
    }
    spec.package = prepared.package.as_ref().map(ToString::to_string);
    Ok(())
}

impl Gateway {
    /// Starts the servers and learns the built-in tools. `expose` names the
    /// one server whose catalogue is served unchanged (`--expose`).
    pub async fn start(
        config: &Config,
        servers: Option<&Path>,
        expose: Option<&str>,
    ) -> Result<Arc<Gateway>, GatewayError> {
        Self::start_with_faults(config, servers, expose, &ServeFaults::default()).await
    }

    /// [`Gateway::start`], injecting `faults` into the servers (and each
    /// server's own from the config): a server `faults` names that is not
    /// in the servers file, or a fault that cannot apply to a server, is a
    /// [`GatewayError::Config`] saying so.
    pub async fn start_with_faults(
        config: &Config,
        servers: Option<&Path>,
        expose: Option<&str>,
        faults: &ServeFaults,
    ) -> Result<Arc<Gateway>, GatewayError> {
        let (host, sessions) = start_sessions_with(config, servers, Some(faults)).await?;
        let cwd = std::env::current_dir()?;
        let ctx = ResolveContext {
            home: std::env::var_os("HOME").map(PathBuf::from),
            workspace: Some(cwd.clone()),
            ..ResolveContext::default()
        };
        let policy = config
            .get(&config.tool_default)
            .map_err(|e| GatewayError::Config(e.to_string()))?;
        let tool_policy = resolve(policy, &ctx)?;
        let builtins = host
            .list_tools()
            .await?
            .as_array()
            .cloned()
            .unwrap_or_default();
        let expose = match expose {
            None => None,
            Some(name) => match sessions.iter().position(|s| s.name() == name) {
                Some(i) => Some(i),
                None => {
                    return Err(GatewayError::Config(format!(
                        "--expose {name}: no such server in the servers file"
                    )));
                }
            },
        };
        Ok(Arc::new(Gateway {
            host,
            sessions,
            expose,
            builtins,
            tool_policy,
            cwd,
            held: Held::default(),
        }))
    }
}

impl Gateway {
    /// Its servers' live status, for its control socket; empty once the
    /// gateway is gone (the socket holds no gateway alive).
    pub(crate) fn status_source(self: &Arc<Self>) -> crate::control::StatusSource {
        let weak = Arc::downgrade(self);
        Arc::new(move || {
            weak.upgrade()
                .map(|g| {
                    g.sessions
                        .iter()
                        .map(|s| crate::control::LiveServer::from_status(s.status()))
                        .collect()
                })
                .unwrap_or_default()
        })
    }
}

/// Serves `gateway` on stdin/stdout until the client closes stdin.
pub async fn serve_stdio(gateway: Arc<Gateway>) -> std::io::Result<()> {
    // `bulkhead mcp status` reads it; closed and removed on return.
    let _control = crate::control::start(gateway.status_source(), "stdio".into());
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Out>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(out) = out_rx.recv().await {
            let (line, permit) = match out {
                Out::Message(msg) => (Bytes::from(msg.to_string()), None),
                Out::Charged((line, permit)) => (line, Some(permit)),
            };
            if stdout.write_all(&line).await.is_err()
                || stdout.write_all(b"\n").await.is_err()
                || stdout.flush().await.is_err()
            {
                return;
            }
            // Written: its bytes go back to the budget they were charged to.
            drop(permit);
        }
    });
    // Server notifications (progress with the client's own token, logging)
    // go to the client as they come, each server's through its byte-bounded
    // queue: a client that stops reading while a server keeps sending
    // costs at most `PENDING_BYTES` a server, and what does not fit is
    // dropped with a count on stderr. An answer waits for the notes its
    // server sent before it (a call's progress, its log lines), which
    // travel apart from it, so it is written after them.
    let mut forwarders = Vec::new();
    let mut routed = Vec::new();
    for session in &gateway.sessions {
        let (mut notes, noted) = crate::note_queue::spawn(session);
        routed.push(noted.clone());
        let out = out_tx.clone();
        forwarders.push(tokio::spawn(async move {
            while let Some(note) = notes.recv().await {
                if out.send(Out::Charged(note)).is_err() {
                    return;
                }
                // In the writer's queue, ahead of any answer sent from now.
                noted.add(1);
            }
        }));
    }
    // Servers' requests (sampling, elicitation, roots) go to the one
    // client, if its initialize declared the capability.
    let caps = Arc::new(std::sync::Mutex::new(Value::Null));
    let waiting = Arc::new(Waiting::default());
    // Servers' requests wait for the client to read them under a budget
    // of their own: one that outlives its answer's timeout would otherwise
    // stay queued for a client that does not read, and the next take its
    // place.
    let asks = Arc::new(Semaphore::new(PENDING_BYTES));
    for session in &gateway.sessions {
        // Weak: the handlers outlive this function (the sessions keep
        // them), and a strong sender would keep the writer's queue open
        // after the client has gone, so the gateway would never exit.
        let (caps, waiting, out) = (caps.clone(), waiting.clone(), out_tx.downgrade());
        let asks = asks.clone();
        session.set_request_handler(Arc::new(move |msg: Value| {
            let (caps, waiting, out, asks) = (caps.clone(), waiting.clone(), out.clone(), asks.clone());
            Box::pin(async move {
                let gone = || json!({"code": -32603, "message": "the client went away"});
                let declared = caps.lock().unwrap_or_else(|p| p.into_inner()).clone();
                client::takes(&declared, &msg)?;
                let (request, _guard, answer) = waiting.register("", &msg);
                let request = Bytes::from(request.to_string());
                let permit = try_charge(&asks, PENDING_BYTES, request.len()).ok_or_else(|| {
                    json!({"code": -32603, "message": format!(
                        "the client is not reading: {} MiB of servers' requests already wait for it",
                        PENDING_BYTES >> 20
                    )})
                })?;
                out.upgrade()
                    .ok_or_else(gone)?
                    .send(Out::Charged((request, permit)))
                    .map_err(|_| gone())?;
                client::outcome(answer.await)
            })
        }));
    }
    let in_flight = Arc::new(InFlight::default());
    let mut input = read_stdin();
    while let Some(line) = input.recv().await {
        let msg = match line {
            Ok(line) => match serde_json::from_slice::<Value>(&line) {
                Ok(m) => m,
                Err(e) => {
                    let _ = out_tx.send(Out::Message(error(
                        Value::Null,
                        -32700,
                        &format!("not JSON: {e}"),
                    )));
                    continue;
                }
            },
            Err(e) => {
                let _ = out_tx.send(Out::Message(error(Value::Null, -32600, &e)));
                continue;
            }
        };
        let Some(id) = msg.get("id").cloned() else {
            // A notification: a cancel stops the request it names.
            in_flight.notified("", &msg);
            continue;
        };
        if msg.get("method").is_none() {
            waiting.answer("", &msg); // an answer to a server's request
            continue;
        }
        if msg["method"] == "initialize" {
            *caps.lock().unwrap_or_else(|p| p.into_inner()) = msg["params"]["capabilities"].clone();
        }
        let before_answer = {
            let reach = gateway.target(&msg);
            Flush::new(&gateway.sessions, &routed, |i| reach.includes(i))
        };
        let (ticket, cancelled) = in_flight.start("", &id);
        let gateway = gateway.clone();
        let out = out_tx.clone();
        tokio::spawn(async move {
            let _ticket = ticket;
            tokio::select! {
                // A request a fault leaves unanswered (`timeout`, `drop`)
                // ends here, holding nothing.
                handled = gateway.handle_client(id, &msg) => {
                    if let Handled::Answer(answer) = handled {
                        before_answer.wait().await;
                        let _ = out.send(Out::Message(answer));
                    }
                }
                // Cancelled by the client: no answer, and the request the
                // session waited on is cancelled at the server.
                Ok(()) = cancelled => {}
            }
        });
    }
    // The client is gone: stop forwarding, so the writer's queue can close.
    for f in forwarders {
        f.abort();
    }
    drop(out_tx);
    let _ = writer.await;
    Ok(())
}

impl Gateway {
    pub async fn handle(&self, id: Value, msg: &Value) -> Value {
        let params = msg.get("params").cloned().unwrap_or(Value::Null);
        let method = msg["method"].as_str().unwrap_or("");
        if let Some(result) = self.route(method, &params).await {
            return match result {
                Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
                Err(e) => error(id, -32603, &e),
            };
        }
        let result = match method {
            "initialize" => Ok(json!({
                "protocolVersion": params["protocolVersion"].as_str().unwrap_or("2025-06-18"),
                "capabilities": self.capabilities(),
                "serverInfo": {"name": "bulkhead", "version": bulkhead_host::VERSION},
            })),
            "ping" => Ok(json!({})),
            "tools/list" => Ok(self.tools().await),
            "tools/call" => self.call(&params).await,
            other => {
                return error(
                    id,
                    -32601,
                    &format!("bulkhead's gateway has no method \"{other}\""),
                );
            }
        };
        match result {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err(e) => error(id, -32603, &e),
        }
    }

    /// Tools always; resources, prompts, logging and completions when
    /// there are servers to pass them to.
    fn capabilities(&self) -> Value {
        if self.sessions.is_empty() {
            return json!({"tools": {"listChanged": false}});
        }
        json!({
            "tools": {"listChanged": false},
            "resources": {"subscribe": true, "listChanged": false},
            "prompts": {"listChanged": false},
            "logging": {},
            "completions": {},
        })
    }

    async fn tools(&self) -> Value {
        let mut tools: Vec<Value> = self
            .builtins
            .iter()
            .map(|t| json!({"name": t["name"], "description": t["description"], "inputSchema": t["schema"]}))
            .collect();
        for s in &self.sessions {
            let _ = tokio::time::timeout(READY_TIMEOUT, s.ready()).await;
            for t in s.status().tools {
                let mut t = t;
                let name = format!(
                    "{}{NAMESPACE_SEPARATOR}{}",
                    s.name(),
                    t["name"].as_str().unwrap_or("")
                );
                t["name"] = json!(name);
                tools.push(t);
            }
        }
        json!({ "tools": tools })
    }

    async fn call(&self, params: &Value) -> Result<Value, String> {
        let name = params["name"]
            .as_str()
            .ok_or("tools/call: `name` is missing")?;
        let arguments = params
            .get("arguments")
            .cloned()
            .unwrap_or_else(|| json!({}));
        if let Some((server, tool)) = name.split_once(NAMESPACE_SEPARATOR) {
            let session = self
                .sessions
                .iter()
                .find(|s| s.name() == server)
                .ok_or_else(|| format!("no server \"{server}\""))?;
            tokio::time::timeout(READY_TIMEOUT, session.ready())
                .await
                .map_err(|_| format!("server \"{server}\" is not ready"))?
                .map_err(|e| format!("server \"{server}\": {e}"))?;
            return session
                .request("tools/call", {
                    // The rest of the params (`_meta.progressToken` above
                    // all) go through, so the server's progress reaches
                    // the client.
                    let mut p = params.clone();
                    p["name"] = json!(tool);
                    p["arguments"] = arguments;
                    p
                })
                .await
                .map_err(|e| e.to_string());
        }
        let report = self
            .host
            .call(
                CallRequest::new(name, arguments.to_string())
                    .cwd(&self.cwd)
                    .policy(self.tool_policy.clone()),
            )
            .wait()
            .await;
        let failed = matches!(
            report.outcome,
            Outcome::Killed { .. } | Outcome::Failed { .. }
        ) || matches!(report.exit, Some(ToolExit::Code(c)) if c != 0);
        Ok(json!({
            "content": [
                {"type": "text", "text": report.output_text()},
                {"type": "text", "text": report.status_line()},
            ],
            "isError": failed,
        }))
    }
}

/// A line for the stdio client.
enum Out {
    /// An answer or an error, each one caused by a client's request.
    Message(Value),
    /// A server's notification, holding its bytes of the server's
    /// [`note_queue`](crate::note_queue) budget until it is written, or a
    /// server's request, holding its bytes of the requests' budget.
    Charged(crate::note_queue::Pending),
}

fn error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// The client's lines, capped, from a plain thread (a client holding stdin
/// open must not hold the runtime's shutdown). An oversized line is an
/// `Err` naming the cap.
fn read_stdin() -> mpsc::Receiver<Result<Vec<u8>, String>> {
    let (tx, rx) = mpsc::channel(16);
    let spawned = std::thread::Builder::new()
        .name("mcp-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut lines = BoundedLines::new(MAX_CLIENT_MESSAGE);
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let mut events = Vec::new();
                lines.feed(&buf[..n], &mut events);
                for ev in events {
                    let item = match ev {
                        LineEvent::Line(l) => Ok(l),
                        LineEvent::Oversize { .. } => {
                            Err(format!("message over the {MAX_CLIENT_MESSAGE}-byte limit"))
                        }
                    };
                    if tx.blocking_send(item).is_err() {
                        return;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        eprintln!("bulkhead: cannot start the stdin reader: {e}");
    }
    rx
}
