//! Faults on the servers behind `mcp serve`: `--inject SERVER:SPEC`,
//! `[servers.NAME] inject = [...]` and `--chaos`, applied by the gateway
//! to the requests it sends each server and to the server's worker.
//!
//! What the client sees ([`Verdict`], read by the gateway):
//! - `error[:CODE]`: that JSON-RPC error, in the server's stead;
//! - `timeout`: no answer (the request never reaches the server); nothing
//!   is kept for it under stdio; over HTTP its POST is held open until the
//!   client cancels it or its session ends (`crate::held`);
//! - `drop`: the server answers, and no answer reaches the client;
//! - `malformed`: a result that breaks the MCP schema;
//! - `disconnect`: under stdio, that server's session is closed (its input
//!   closed as when a client goes away; the restart budget applies) and
//!   the request gets an error saying so; over HTTP, the client's session
//!   ends and its POST's stream is cut;
//! - `kill` and `crash` at a request: the worker is signalled (SIGKILL,
//!   SIGABRT) just before the request is sent, which then fails with the
//!   real death's reason; the session restarts it within its budget;
//! - process faults on a time or output trigger go into the server's
//!   first run (`CallRequest::inject`), as under `run`.
//!
//! Each fault that fires is one stderr line naming the server, the fault,
//! its trigger and the client's request id and method.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bulkhead_faults::{Fault, FaultKind, FaultSpec, Trigger};
use bulkhead_host::{CallReport, CallRequest, InputSender};
use serde_json::Value;

use crate::chaos::{Chaos, ChaosSpec};
use crate::inject::{Decision, McpFaults, malformed_result};

/// How long a server whose input was closed (`disconnect`) may take to
/// end by itself before its worker is killed: a server flushes and exits
/// on EOF in milliseconds; one that ignores EOF must not keep the session
/// with no input.
const DISCONNECT_GRACE: Duration = Duration::from_secs(2);

/// The faults asked of the gateway: per server (`--inject SERVER:SPEC`,
/// beside each server's own `inject` from the config) and chaos mode.
#[derive(Debug, Clone, Default)]
pub struct ServeFaults {
    pub inject: BTreeMap<String, Vec<FaultSpec>>,
    /// The seed of `@p:` draws (each server's generator starts from it
    /// plus the server's place in the list).
    pub seed: u64,
    pub chaos: Option<ChaosSpec>,
}

impl ServeFaults {
    pub fn is_empty(&self) -> bool {
        self.inject.is_empty() && self.chaos.is_none()
    }
}

/// What the gateway makes of a client request a fault took.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// Answer with this JSON-RPC error object.
    Error(Value),
    /// Never answer.
    Unanswered,
    /// End the client's session (HTTP).
    Disconnect,
}

impl Verdict {
    fn rank(&self) -> u8 {
        match self {
            Verdict::Error(_) => 0,
            Verdict::Disconnect => 1,
            Verdict::Unanswered => 2,
        }
    }
}

/// The client request the gateway is handling, for the faults its
/// requests to servers meet: its id (for the log line) and the verdict.
pub(crate) struct ClientRequest {
    pub(crate) id: Value,
    verdict: RefCell<Option<Verdict>>,
}

impl ClientRequest {
    pub(crate) fn new(id: Value) -> Self {
        Self {
            id,
            verdict: RefCell::new(None),
        }
    }

    pub(crate) fn take(&self) -> Option<Verdict> {
        self.verdict.borrow_mut().take()
    }
}

tokio::task_local! {
    pub(crate) static CLIENT: ClientRequest;
}

/// Records `v` for the client request being handled, if any (the
/// strongest wins: never answered over a closed session over an error).
fn verdict(v: Verdict) {
    let _ = CLIENT.try_with(|c| {
        let mut slot = c.verdict.borrow_mut();
        if slot.as_ref().is_none_or(|old| old.rank() < v.rank()) {
            *slot = Some(v);
        }
    });
}

/// The faults of one server behind the gateway.
pub(crate) struct ServerFaults {
    server: String,
    mcp: Mutex<McpFaults>,
    chaos: Option<Arc<Mutex<Chaos>>>,
    /// Process faults for the worker (time and output triggers), given to
    /// the server's first run only: a restarted server runs clean, so one
    /// fault is one death and one recovery, not a crash loop.
    worker: Mutex<Vec<FaultSpec>>,
    seed: u64,
    /// Faults fired so far (requests and worker).
    count: AtomicU64,
    /// Over HTTP a `disconnect` ends the client's session; under stdio it
    /// closes the server's.
    http: AtomicBool,
    /// The current run's input, for `disconnect`.
    input: Mutex<Option<InputSender>>,
    /// Runs started, and the last one ended (numbered from 1): a
    /// `disconnect` kills its worker only if its run has not ended.
    runs: AtomicU64,
    ended: tokio::sync::watch::Sender<u64>,
    /// The run whose input a `disconnect` closed: requests wait for its
    /// end, so they go to the next run, not into a closed input.
    closed: AtomicU64,
}

/// What a request does, once its faults are decided.
pub(crate) enum Before {
    /// Send it; then apply this to the answer.
    Send(Option<Decision>),
    /// Do not send it; this is its result.
    Done(Result<Value, String>),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counters and lists: still meaningful after a panic elsewhere.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ServerFaults {
    /// `None` when there is nothing to inject into this server.
    pub(crate) fn new(
        server: &str,
        specs: &[FaultSpec],
        seed: u64,
        chaos: Option<Arc<Mutex<Chaos>>>,
    ) -> Option<Arc<Self>> {
        if specs.is_empty() && chaos.is_none() {
            return None;
        }
        let (at_request, worker): (Vec<FaultSpec>, Vec<FaultSpec>) =
            specs.iter().cloned().partition(|s| {
                s.fault.kind() == FaultKind::Mcp
                    || matches!(
                        s.trigger,
                        Trigger::On(_) | Trigger::Every(_) | Trigger::Probability(_)
                    )
            });
        Some(Arc::new(Self {
            server: server.to_owned(),
            mcp: Mutex::new(McpFaults::for_gateway(&at_request, seed)),
            chaos,
            worker: Mutex::new(worker),
            seed,
            count: AtomicU64::new(0),
            http: AtomicBool::new(false),
            input: Mutex::new(None),
            runs: AtomicU64::new(0),
            ended: tokio::sync::watch::Sender::new(0),
            closed: AtomicU64::new(0),
        }))
    }

    pub(crate) fn set_http(&self) {
        self.http.store(true, Ordering::Relaxed);
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// A run starts: its input is kept for `disconnect`.
    pub(crate) fn started(&self, input: InputSender) {
        *lock(&self.input) = Some(input);
        self.runs.fetch_add(1, Ordering::Relaxed);
    }

    /// A run is about to start: the worker's faults (first run only) go
    /// into its request.
    pub(crate) fn run(&self, mut req: CallRequest) -> CallRequest {
        let worker = std::mem::take(&mut *lock(&self.worker));
        if !worker.is_empty() {
            req.inject = worker;
            req.inject_seed = Some(self.seed);
        }
        req
    }

    /// A run ended: a fault the supervisor fired in it is logged.
    pub(crate) fn finished(&self, report: &CallReport) {
        self.ended.send_replace(self.runs.load(Ordering::Relaxed));
        *lock(&self.input) = None;
        if let Some(i) = &report.injected {
            self.count.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "bulkhead: mcp serve: injected {} @{} at {} ms: server {}, its worker: {}",
                i.fault,
                i.trigger,
                i.at_ms,
                self.server,
                report.status_line()
            );
        }
    }

    /// Waits, if a `disconnect` closed the current run's input, until that
    /// run has ended (at most [`DISCONNECT_GRACE`] and its teardown).
    pub(crate) async fn settled(&self) {
        let closed = self.closed.load(Ordering::Relaxed);
        if closed > *self.ended.borrow() {
            let _ = self.ended.subscribe().wait_for(|e| *e >= closed).await;
        }
    }

    /// Decides the faults of one request to the server. `worker_pid`: the
    /// current run's worker, for `kill` and `crash`.
    pub(crate) fn before(
        self: &Arc<Self>,
        method: &str,
        params: &Value,
        worker_pid: Option<u32>,
    ) -> Before {
        let tool = params.get("name").and_then(Value::as_str);
        let client = CLIENT.try_with(|c| c.id.clone()).unwrap_or(Value::Null);
        let fired = {
            let mut mcp = lock(&self.mcp);
            let own = mcp.request(&client, method, tool);
            // Chaos draws for every request, in order, whether or not an
            // own fault took it, so its sequence depends only on them.
            let picked = self.chaos.as_ref().and_then(|c| lock(c).pick());
            match (own, picked) {
                (Some(f), _) => Some((f, "")),
                (None, Some(fault)) => Some((mcp.fire(FaultSpec::new(fault)), "chaos: ")),
                (None, None) => None,
            }
        };
        let Some((fired, chaos)) = fired else {
            return Before::Send(None);
        };
        self.count.fetch_add(1, Ordering::Relaxed);
        let what = match tool {
            Some(t) => format!("{method} {t}"),
            None => method.to_owned(),
        };
        eprintln!(
            "bulkhead: mcp serve: {chaos}{}: server {}, request {client} ({what})",
            fired.injected, self.server
        );
        match fired.decision {
            Decision::Error(obj) => {
                let message = obj["message"].as_str().unwrap_or_default().to_owned();
                verdict(Verdict::Error(obj));
                Before::Done(Err(message))
            }
            Decision::Timeout => {
                verdict(Verdict::Unanswered);
                Before::Done(Err("never answered (injected timeout)".into()))
            }
            Decision::Disconnect => Before::Done(Err(self.disconnect(worker_pid))),
            Decision::Drop => Before::Send(Some(Decision::Drop)),
            Decision::Malformed => Before::Send(Some(Decision::Malformed)),
            Decision::Pass => {
                let sig = match fired.spec.fault {
                    Fault::Kill => Some(nix::sys::signal::Signal::SIGKILL),
                    Fault::Crash => Some(nix::sys::signal::Signal::SIGABRT),
                    _ => None,
                };
                if let (Some(sig), Some(pid)) = (sig, worker_pid) {
                    signal(pid, sig);
                }
                Before::Send(None)
            }
        }
    }

    /// `disconnect`: over HTTP the client's session ends (the gateway's
    /// part); under stdio the server's input is closed, and its worker
    /// killed if it has not ended within [`DISCONNECT_GRACE`].
    fn disconnect(self: &Arc<Self>, worker_pid: Option<u32>) -> String {
        if self.http.load(Ordering::Relaxed) {
            verdict(Verdict::Disconnect);
            return "the client's session was closed (injected disconnect)".into();
        }
        if let Some(input) = lock(&self.input).take() {
            let run = self.runs.load(Ordering::Relaxed);
            self.closed.fetch_max(run, Ordering::Relaxed);
            let this = self.clone();
            tokio::spawn(async move {
                let _ = input.close().await;
                tokio::time::sleep(DISCONNECT_GRACE).await;
                // The same run has not ended: it ignores EOF.
                if *this.ended.borrow() < run
                    && let Some(pid) = worker_pid
                {
                    signal(pid, nix::sys::signal::Signal::SIGKILL);
                }
            });
        }
        format!(
            "server \"{}\": its session was closed (injected disconnect); it restarts within its budget",
            self.server
        )
    }
}

/// The answer to a request that was sent, with what its fault makes of it.
pub(crate) fn after(
    decision: Option<Decision>,
    answer: Result<Value, crate::McpError>,
) -> Result<Value, crate::McpError> {
    match decision {
        Some(Decision::Drop) => {
            verdict(Verdict::Unanswered);
            Err(crate::McpError("answer swallowed (injected drop)".into()))
        }
        Some(Decision::Malformed) => answer.map(|_| malformed_result()),
        _ => answer,
    }
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let Ok(pid) = i32::try_from(pid) else { return };
    // The pid is the worker's until the call's end is decided: a signal
    // sent just as it ends may find it gone, which is no harm.
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

/// The faults of the gateway's servers, checked and ready to hand out.
pub(crate) struct FaultPlan {
    inject: BTreeMap<String, Vec<FaultSpec>>,
    /// Whether the servers' own faults apply (`mcp serve`), not only
    /// those given.
    serving: bool,
    seed: u64,
    chaos: Option<Arc<Mutex<Chaos>>>,
}

impl FaultPlan {
    /// `faults` for the servers of `specs`: `None` injects nothing (not
    /// even the config's: only `mcp serve` injects). Refuses a server name
    /// not among `specs` (listing those that are) and a fault that cannot
    /// apply to a server behind the gateway (saying why).
    pub(crate) fn new(
        faults: Option<&ServeFaults>,
        specs: &[bulkhead_config::McpServerSpec],
    ) -> Result<Self, crate::GatewayError> {
        let Some(faults) = faults else {
            return Ok(Self {
                inject: BTreeMap::new(),
                serving: false,
                seed: 0,
                chaos: None,
            });
        };
        let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        for server in faults.inject.keys() {
            if !known.contains(&server.as_str()) {
                let listed = if known.is_empty() {
                    "there are none (give --servers FILE, or [mcp] servers_file)".to_owned()
                } else {
                    format!("the servers are: {}", known.join(", "))
                };
                return Err(crate::GatewayError::Config(format!(
                    "--inject {server}:…: no server \"{server}\" in the servers file; {listed}"
                )));
            }
        }
        for spec in specs {
            let given = faults.inject.get(&spec.name).into_iter().flatten();
            for (fault, from) in given
                .map(|f| (f, "--inject"))
                .chain(spec.inject.iter().map(|f| (f, "inject in [servers]")))
            {
                fault
                    .check(bulkhead_faults::Target::McpServe)
                    .map_err(|e| {
                        crate::GatewayError::Config(format!(
                            "server \"{}\": {from} {fault}: cannot apply: {}",
                            spec.name, e.reason
                        ))
                    })?;
            }
        }
        Ok(Self {
            inject: faults.inject.clone(),
            serving: true,
            seed: faults.seed,
            chaos: faults
                .chaos
                .clone()
                .map(|c| Arc::new(Mutex::new(Chaos::new(c)))),
        })
    }

    /// The faults of `spec`'s server; `None`: nothing to inject.
    pub(crate) fn for_server(
        &self,
        spec: &bulkhead_config::McpServerSpec,
    ) -> Option<Arc<ServerFaults>> {
        if !self.serving {
            return None;
        }
        let mut specs = spec.inject.clone();
        specs.extend(self.inject.get(&spec.name).into_iter().flatten().cloned());
        // Each server its own sequence of draws, the same from run to run:
        // the seed and the server's name.
        let seed = spec
            .name
            .bytes()
            .fold(self.seed, |h, b| h.rotate_left(5) ^ u64::from(b));
        ServerFaults::new(&spec.name, &specs, seed, self.chaos.clone())
    }
}

/// What the gateway does with a client's request.
pub enum Handled {
    /// Answer with this.
    Answer(Value),
    /// Never answer (an injected `timeout` or `drop`).
    Unanswered,
    /// End the client's session without an answer (an injected
    /// `disconnect` over HTTP).
    Disconnect,
}

impl crate::Gateway {
    /// Handles a client's request as [`crate::Gateway::handle`] does, with
    /// what the faults injected into the servers it reached make of it.
    pub async fn handle_client(&self, id: Value, msg: &Value) -> Handled {
        let (answer, verdict) = CLIENT
            .scope(ClientRequest::new(id.clone()), async {
                let answer = self.handle(id.clone(), msg).await;
                (answer, CLIENT.with(ClientRequest::take))
            })
            .await;
        match verdict {
            None => Handled::Answer(answer),
            Some(Verdict::Unanswered) => Handled::Unanswered,
            Some(Verdict::Disconnect) => Handled::Disconnect,
            // The injected error stands for the whole answer when the
            // answer is an error; a request that gathers from several
            // servers (`resources/list`) leaves the failed one out.
            Some(Verdict::Error(obj)) if answer.get("error").is_some() => {
                Handled::Answer(serde_json::json!({"jsonrpc": "2.0", "id": id, "error": obj}))
            }
            Some(Verdict::Error(_)) => Handled::Answer(answer),
        }
    }

    /// Over HTTP, a `disconnect` ends the client's session instead of the
    /// server's.
    pub(crate) fn faults_over_http(&self) {
        for s in &self.sessions {
            if let Some(f) = s.faults() {
                f.set_http();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_strongest_verdict_wins() {
        let ctx = ClientRequest::new(json!(1));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let v = rt.block_on(CLIENT.scope(ctx, async {
            verdict(Verdict::Unanswered);
            verdict(Verdict::Error(json!({"code": 1})));
            CLIENT.with(ClientRequest::take)
        }));
        assert_eq!(v, Some(Verdict::Unanswered));
    }
}
