//! What the control socket answers: the gateway's live figures, one entry
//! per server. The client (`bulkhead mcp status`) reads the same types.

use serde::{Deserialize, Serialize};

use crate::session::{ServerState, ServerStatus};

/// One running gateway, as its control socket reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayStatus {
    /// The gateway's process id.
    pub pid: u32,
    /// The gateway's name: its pid, unless it was given one.
    pub name: String,
    /// `stdio`, or the `http://ADDR/mcp` it listens on.
    pub transport: String,
    /// bulkhead's version.
    pub version: String,
    /// Time since the control socket opened (the gateway's start).
    pub uptime_ms: u64,
    /// Control connections refused because the peer was another user.
    pub control_refused: u64,
    pub servers: Vec<LiveServer>,
}

/// One server of a running gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveServer {
    pub name: String,
    pub state: ServerState,
    /// Why it failed, or why its last run ended.
    pub last_error: Option<String>,
    /// Restarts so far (within and beyond the budget's window).
    pub restarts: u32,
    /// The pid of the worker the server runs in now (`None` between runs).
    pub worker_pid: Option<u32>,
    /// Resident memory of the current run's worker tree, at the latest
    /// sample.
    pub rss_bytes: u64,
    /// The largest resident memory of any run so far.
    pub peak_rss_bytes: u64,
    /// `tools/call` requests the gateway sent it.
    pub calls: u64,
    /// Of those, the ones answered with an error or a result marked
    /// `isError`, or not answered (the server died, timed out).
    pub errors: u64,
    /// Connections its egress proxy let through in the current run.
    pub egress_allowed: u64,
    /// Connections its egress proxy refused in the current run.
    pub egress_refused: u64,
    /// The hosts (`HOST:PORT`) those refusals named, each once.
    pub refused_hosts: Vec<String>,
    /// Faults injected into its requests or worker so far (`mcp serve
    /// --inject`, `--chaos`).
    pub injected: u64,
    /// Time since the current run got its worker (`None` between runs).
    pub uptime_ms: Option<u64>,
    pub policy: String,
    pub not_enforced: Vec<String>,
    /// How many tools it offers.
    pub tools: usize,
    /// The package it runs from bulkhead's cache (a launcher's server).
    pub package: Option<String>,
    /// The last line of its stderr.
    pub stderr_last: Option<String>,
}

impl LiveServer {
    /// The live figures of one server from its session's status.
    pub(crate) fn from_status(s: ServerStatus) -> Self {
        let refused_hosts = refused_hosts(&s.egress_refusals);
        Self {
            stderr_last: s
                .stderr_tail
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_owned),
            name: s.name,
            state: s.state,
            last_error: s.last_error,
            restarts: s.restarts,
            worker_pid: s.worker_pid,
            rss_bytes: s.rss_bytes,
            peak_rss_bytes: s.peak_rss_bytes,
            calls: s.calls,
            errors: s.call_errors,
            egress_allowed: s.egress_allowed,
            egress_refused: s.egress_refused,
            refused_hosts,
            injected: s.injected,
            uptime_ms: s.uptime_ms,
            policy: s.policy,
            not_enforced: s.not_enforced,
            tools: s.tools.len(),
            package: s.package,
        }
    }
}

/// The targets of `egress to HOST:PORT refused: REASON` messages, each
/// once, in the order first refused.
pub(crate) fn refused_hosts(messages: &[String]) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for m in messages {
        let Some(rest) = m.strip_prefix("egress to ") else {
            continue;
        };
        let Some((target, _)) = rest.split_once(" refused") else {
            continue;
        };
        if !hosts.iter().any(|h| h == target) {
            hosts.push(target.to_owned());
        }
    }
    hosts
}
