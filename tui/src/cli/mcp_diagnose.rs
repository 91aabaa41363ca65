//! Why a wrapped MCP server gave no answer, in words a user can act on:
//! shared by `mcp wrap` (which answers the client's `initialize` itself
//! when the server does not) and `mcp check`.
//!
//! A diagnosis names what went wrong, the policy the server ran under,
//! what its egress proxy refused, the last lines of its stderr, and the
//! flag that would most likely fix it. The flags come from heuristics over
//! those facts; they are suggestions, worded as such, never applied.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bulkhead_host::CallPolicy;
use bulkhead_ipc::NetworkMode;
use serde_json::{Value, json};

/// The server's stderr kept for a diagnosis. 2 KiB holds the last lines of
/// a stack trace or of npm's error output, which is where the cause is,
/// and stays small enough to go whole into one JSON-RPC error message that
/// a client shows to its user.
const STDERR_TAIL_BYTES: usize = 2 << 10;

/// At most this many of those lines are shown: the ones nearest the
/// failure, without burying the suggested fix under a long trace.
const STDERR_TAIL_LINES: usize = 10;

/// Suggestions beyond this many are left out: past the first few, a list
/// of flags reads as "allow everything", which is the one advice a
/// sandbox should not give.
const MAX_HINTS: usize = 4;

/// The end of what a server wrote to its stderr, bounded whatever it
/// writes.
#[derive(Debug, Default)]
pub struct StderrTail {
    bytes: Vec<u8>,
    /// Bytes were dropped from the front: the first line kept may be the
    /// end of a longer one.
    cut: bool,
}

impl StderrTail {
    pub fn push(&mut self, data: &[u8]) {
        let keep = data.len().min(STDERR_TAIL_BYTES);
        self.bytes.extend_from_slice(&data[data.len() - keep..]);
        if self.bytes.len() > STDERR_TAIL_BYTES {
            let excess = self.bytes.len() - STDERR_TAIL_BYTES;
            self.bytes.drain(..excess);
            self.cut = true;
        }
        self.cut |= keep < data.len();
    }

    /// The last non-blank lines, oldest first, without trailing space. A
    /// first line that may have lost its beginning is left out.
    pub fn lines(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.bytes);
        let mut lines: Vec<&str> = text.lines().collect();
        if self.cut && !lines.is_empty() {
            lines.remove(0);
        }
        let lines: Vec<String> = lines
            .into_iter()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        let skip = lines.len().saturating_sub(STDERR_TAIL_LINES);
        lines.into_iter().skip(skip).collect()
    }
}

/// What the server ran under, taken from its call's policy before the
/// call starts (a call that fails to start reports no enforcement).
#[derive(Debug, Clone)]
pub struct PolicyFacts {
    pub name: String,
    /// The policy in one line ([`bulkhead_host::Policy::explain`]).
    pub explained: String,
    /// `None`: no sandbox at all (`trusted`).
    pub network: Option<NetworkMode>,
    /// The hosts its egress proxy lets through, as `--allow-net` takes them.
    pub allow_net: Vec<String>,
}

impl PolicyFacts {
    pub fn of(policy: &CallPolicy) -> Self {
        Self {
            name: policy.name.clone(),
            explained: policy.explained.clone(),
            network: policy.sandbox.as_ref().map(|s| s.network),
            allow_net: policy
                .egress
                .as_ref()
                .map(|a| a.rules().iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
        }
    }

    /// The network the server had, in a few words.
    pub fn network_text(&self) -> String {
        match self.network {
            None | Some(NetworkMode::Full) => "full (no sandbox on the network)".into(),
            Some(NetworkMode::Proxied) => format!(
                "only through bulkhead's egress proxy, to {}",
                self.allow_net.join(", ")
            ),
            Some(NetworkMode::Loopback) => "its own loopback only".into(),
            Some(NetworkMode::None) => {
                "none (no proxy: a connection fails inside the sandbox, unseen here)".into()
            }
        }
    }

    fn has_network(&self) -> bool {
        matches!(self.network, None | Some(NetworkMode::Full))
    }
}

/// What the egress proxy saw so far (from the call's `LiveStatus`).
#[derive(Debug, Clone, Default)]
pub struct EgressSeen {
    pub allowed: u64,
    pub refused: u64,
    /// Each distinct refusal or failure message.
    pub messages: Vec<String>,
}

impl EgressSeen {
    pub fn of(live: &bulkhead_host::LiveStatus) -> Self {
        Self {
            allowed: live.egress_allowed,
            refused: live.egress_refused,
            messages: live.egress_messages.clone(),
        }
    }
}

/// What went wrong.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The server gave no answer to `method` within `waited`.
    NoAnswer { method: String, waited: Duration },
    /// The server (or its worker) ended before answering `method`.
    Ended { method: String, why: String },
    /// The server answered `method` with an error.
    ErrorAnswer { method: String, message: String },
}

impl Failure {
    fn headline(&self) -> String {
        match self {
            Failure::NoAnswer { method, waited } => format!(
                "the MCP server did not answer {method} within {}",
                seconds(*waited)
            ),
            Failure::Ended { method, why } => {
                format!("the MCP server ended before answering {method}: {why}")
            }
            Failure::ErrorAnswer { method, message } => {
                format!("the MCP server answered {method} with an error: {message}")
            }
        }
    }
}

/// Everything a diagnosis is made from.
pub struct Facts<'a> {
    pub command: &'a [String],
    pub policy: &'a PolicyFacts,
    pub egress: &'a EgressSeen,
    pub stderr: Vec<String>,
}

/// What went wrong, what the server ran under, and what would likely fix it.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub headline: String,
    pub policy: String,
    pub network: String,
    pub egress: Vec<String>,
    pub egress_counts: (u64, u64),
    pub stderr: Vec<String>,
    pub hints: Vec<String>,
}

impl Diagnosis {
    pub fn new(failure: &Failure, facts: &Facts<'_>) -> Self {
        Self {
            headline: failure.headline(),
            policy: facts.policy.explained.clone(),
            network: facts.policy.network_text(),
            egress: facts.egress.messages.clone(),
            egress_counts: (facts.egress.allowed, facts.egress.refused),
            stderr: facts.stderr.clone(),
            hints: hints(failure, facts),
        }
    }

    /// The diagnosis as lines, without a prefix: the JSON-RPC error's
    /// message joins them with newlines, stderr indents them.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!("policy {}", self.policy)];
        out.push(format!("network: {}", self.network));
        if !self.egress.is_empty() || self.egress_counts != (0, 0) {
            out.push(format!(
                "egress so far: {} allowed, {} refused",
                self.egress_counts.0, self.egress_counts.1
            ));
            out.extend(self.egress.iter().map(|m| format!("  {m}")));
        }
        if self.stderr.is_empty() {
            out.push("server stderr: nothing".into());
        } else {
            let n = self.stderr.len();
            let lines = if n == 1 { "line" } else { "lines" };
            out.push(format!("server stderr (last {n} {lines}):"));
            out.extend(self.stderr.iter().map(|l| format!("  {l}")));
        }
        for (i, hint) in self.hints.iter().enumerate() {
            let lead = if i == 0 { "likely fix" } else { "or" };
            out.push(format!("{lead}: {hint}"));
        }
        out
    }

    /// The text of the JSON-RPC error a client shows: the headline, then
    /// the lines.
    pub fn message(&self, headline_suffix: &str) -> String {
        let mut text = format!("bulkhead: {}{headline_suffix}", self.headline);
        for line in self.lines() {
            text.push('\n');
            text.push_str(&line);
        }
        text
    }

    /// One block for stderr: `prefix` and the headline, then each line
    /// indented, written at once so nothing interleaves with it.
    pub fn block(&self, prefix: &str, headline_suffix: &str) -> String {
        let mut text = format!("{prefix}{}{headline_suffix}\n", self.headline);
        for line in self.lines() {
            text.push_str("    ");
            text.push_str(&line);
            text.push('\n');
        }
        text
    }

    pub fn json(&self) -> Value {
        json!({
            "error": self.headline,
            "policy": self.policy,
            "network": self.network,
            "egress": {
                "allowed": self.egress_counts.0,
                "refused": self.egress_counts.1,
                "messages": self.egress,
            },
            "stderr_tail": self.stderr,
            "hints": self.hints,
        })
    }
}

/// `10 s`, `1.5 s`, `250 ms`.
pub fn seconds(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// How [`Failure::Ended`]'s reason begins when bulkhead stopped a server
/// that broke the protocol: no flag fixes that.
pub const STOPPED_BY_BULKHEAD: &str = "bulkhead stopped it: ";

/// The flags that would most likely fix it, most specific first: a host
/// the proxy refused, a path the sandbox refused, a package launcher with
/// no network; `--policy trusted` only when nothing more specific fits.
fn hints(failure: &Failure, facts: &Facts<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let program = facts.command.first().map(String::as_str).unwrap_or("");
    if let Failure::Ended { why, .. } = failure
        && why.contains("cannot start the MCP server")
    {
        out.push(format!(
            "check the command: `{program}` could not be started; is it installed and on PATH? \
             Or give its full path"
        ));
    }
    if let Failure::Ended { why, .. } = failure
        && why.starts_with(STOPPED_BY_BULKHEAD)
    {
        out.push(
            "no flag fixes this: the server broke the protocol, and a weaker sandbox would not \
             change that; tell its authors"
                .into(),
        );
    }
    for message in &facts.egress.messages {
        if let Some(target) = refused_target(message) {
            out.push(format!(
                "--allow-net {target} (the server tried to reach it, and the proxy refused)"
            ));
        }
    }
    for line in &facts.stderr {
        if let Some(hint) = path_hint(line) {
            out.push(hint);
        }
    }
    if let Some(registry) = launcher_registry(facts.command)
        && !facts.policy.has_network()
    {
        let cmd = facts.command.join(" ");
        out.push(format!(
            "`{program}` fetches its package at start, and this policy gives it no way to the \
             registry: fetch it first with `bulkhead mcp fetch -- {cmd}`, or allow the \
             registry with {}",
            registry
                .iter()
                .map(|h| format!("--allow-net {h}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    if out.is_empty() && facts.policy.network.is_some() {
        out.push(
            "--policy trusted, as a last resort: it runs the server with no sandbox at all \
             (full network, all of $HOME, only the limits), which is much weaker; use it only \
             for a server you trust"
                .into(),
        );
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|h| seen.insert(h.clone()));
    out.truncate(MAX_HINTS);
    out
}

/// `egress to HOST:PORT refused: REASON` → the `--allow-net` entry that
/// would let it through: the host, or the host and port when only the
/// port was refused. `None` for refusals no allow entry fixes (a private
/// address, a request the proxy does not take) and for failures.
fn refused_target(message: &str) -> Option<String> {
    let rest = message.strip_prefix("egress to ")?;
    let (target, reason) = rest.split_once(" refused: ")?;
    let (host, _port) = target.rsplit_once(':')?;
    if reason.starts_with("port ") {
        Some(target.to_owned())
    } else if reason.starts_with("not in the allow list") {
        Some(host.to_owned())
    } else {
        None
    }
}

/// A stderr line where the sandbox refused a path (`EACCES`, `Permission
/// denied`, `PermissionError`, `ENOENT`) → `--allow-read PATH`, or
/// `--allow-write PATH` when the line is about writing. The path is the
/// nearest one that exists, since a root that does not exist is refused.
fn path_hint(line: &str) -> Option<String> {
    let lower = line.to_ascii_lowercase();
    let denied = ["permission denied", "eacces", "permissionerror", "enoent"]
        .iter()
        .any(|w| lower.contains(w));
    if !denied {
        return None;
    }
    let path = path_in(line)?;
    let existing = nearest_existing(&path)?;
    let writes = [
        "mkdir",
        "write",
        "erofs",
        "read-only",
        "rename",
        "unlink",
        "rmdir",
        "symlink",
    ]
    .iter()
    .any(|w| lower.contains(w));
    let flag = if writes {
        "--allow-write"
    } else {
        "--allow-read"
    };
    let quoted: String = line.chars().take(200).collect();
    Some(format!(
        "{flag} {} (the server was refused a path: \"{quoted}\")",
        existing.display()
    ))
}

/// The first absolute (or `~/`) path in a line, without the quotes and
/// punctuation that error messages put around it.
fn path_in(line: &str) -> Option<PathBuf> {
    let trim: &[char] = &[
        '\'', '"', '`', ',', ';', ':', '(', ')', '[', ']', '{', '}', '<', '>',
    ];
    // The last path on the line: the one refused comes after the program
    // that reports it (`/usr/bin/sh: 1: exec: /opt/x/node: Permission
    // denied`, `PermissionError: … Permission denied: '/x'`).
    line.split_whitespace()
        .map(|t| t.trim_matches(trim))
        .rev()
        .find_map(|t| {
            if t.starts_with('/') && t.len() > 1 {
                Some(PathBuf::from(t))
            } else {
                let home = std::env::var_os("HOME")?;
                t.strip_prefix("~/").map(|rest| Path::new(&home).join(rest))
            }
        })
}

/// `path` if it exists, else its nearest existing ancestor; `None` when
/// that is `/`, which no suggestion should grant.
fn nearest_existing(path: &Path) -> Option<PathBuf> {
    let found = path.ancestors().find(|p| p.exists())?;
    (found != Path::new("/")).then(|| found.to_path_buf())
}

/// The registry hosts a package launcher fetches from, if `command` is one
/// (`npx`, `bunx`, `pnpx`, `npm exec`, `pnpm dlx`, `uvx`, `pipx`).
fn launcher_registry(command: &[String]) -> Option<&'static [&'static str]> {
    const NPM: &[&str] = &["registry.npmjs.org"];
    const PYPI: &[&str] = &["pypi.org", "files.pythonhosted.org"];
    let program = Path::new(command.first()?).file_name()?.to_str()?;
    let sub = command.get(1).map(String::as_str);
    match (program, sub) {
        ("npx" | "bunx" | "pnpx", _) => Some(NPM),
        ("npm" | "pnpm" | "yarn", Some("exec" | "dlx")) => Some(NPM),
        ("uvx" | "pipx", _) => Some(PYPI),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts_with<'a>(
        command: &'a [String],
        policy: &'a PolicyFacts,
        egress: &'a EgressSeen,
        stderr: &[&str],
    ) -> Facts<'a> {
        Facts {
            command,
            policy,
            egress,
            stderr: stderr.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn untrusted(network: NetworkMode) -> PolicyFacts {
        PolicyFacts {
            name: "untrusted".into(),
            explained: "untrusted: reads only the system".into(),
            network: Some(network),
            allow_net: Vec::new(),
        }
    }

    fn no_answer() -> Failure {
        Failure::NoAnswer {
            method: "initialize".into(),
            waited: Duration::from_secs(10),
        }
    }

    #[test]
    fn the_tail_keeps_the_last_lines_within_its_bound() {
        let mut tail = StderrTail::default();
        for i in 0..1000 {
            tail.push(format!("line {i}\n").as_bytes());
        }
        let lines = tail.lines();
        assert_eq!(lines.len(), STDERR_TAIL_LINES);
        assert_eq!(lines.last().map(String::as_str), Some("line 999"));
        assert!(tail.bytes.len() <= STDERR_TAIL_BYTES);
        tail.push(&vec![b'x'; 10 * STDERR_TAIL_BYTES]);
        assert!(tail.bytes.len() <= STDERR_TAIL_BYTES);
    }

    #[test]
    fn a_refusal_suggests_its_host() {
        let cmd = vec!["server".to_owned()];
        let policy = untrusted(NetworkMode::Proxied);
        let egress = EgressSeen {
            allowed: 0,
            refused: 2,
            messages: vec![
                "egress to evil.example:443 refused: not in the allow list".into(),
                "egress to api.example:8443 refused: port 8443 is not in the allow list for this host".into(),
            ],
        };
        let d = Diagnosis::new(&no_answer(), &facts_with(&cmd, &policy, &egress, &[]));
        assert!(
            d.hints[0].starts_with("--allow-net evil.example "),
            "{:?}",
            d.hints
        );
        assert!(
            d.hints[1].starts_with("--allow-net api.example:8443 "),
            "{:?}",
            d.hints
        );
    }

    #[test]
    fn a_denied_path_suggests_its_nearest_existing_root() {
        let cmd = vec!["server".to_owned()];
        let policy = untrusted(NetworkMode::None);
        let egress = EgressSeen::default();
        let line = "Error: EACCES: permission denied, open '/usr/no-such-dir/x.json'";
        let d = Diagnosis::new(&no_answer(), &facts_with(&cmd, &policy, &egress, &[line]));
        assert!(
            d.hints[0].starts_with("--allow-read /usr "),
            "{:?}",
            d.hints
        );
        let line = "Error: EACCES: permission denied, mkdir '/usr/no-such-dir'";
        let d = Diagnosis::new(&no_answer(), &facts_with(&cmd, &policy, &egress, &[line]));
        assert!(
            d.hints[0].starts_with("--allow-write /usr "),
            "{:?}",
            d.hints
        );
    }

    #[test]
    fn npx_without_network_suggests_fetch_and_the_registry() {
        let cmd: Vec<String> = ["npx", "-y", "pkg"].map(String::from).to_vec();
        let policy = untrusted(NetworkMode::None);
        let egress = EgressSeen::default();
        let d = Diagnosis::new(&no_answer(), &facts_with(&cmd, &policy, &egress, &[]));
        assert!(
            d.hints[0].contains("bulkhead mcp fetch -- npx -y pkg"),
            "{:?}",
            d.hints
        );
        assert!(
            d.hints[0].contains("--allow-net registry.npmjs.org"),
            "{:?}",
            d.hints
        );
    }

    #[test]
    fn trusted_is_the_last_resort_and_said_to_be_weaker() {
        let cmd = vec!["server".to_owned()];
        let policy = untrusted(NetworkMode::None);
        let egress = EgressSeen::default();
        let d = Diagnosis::new(&no_answer(), &facts_with(&cmd, &policy, &egress, &["boom"]));
        assert_eq!(d.hints.len(), 1);
        assert!(d.hints[0].starts_with("--policy trusted"));
        assert!(d.hints[0].contains("weaker"));
        let message = d.message("");
        assert!(
            message.starts_with("bulkhead: the MCP server did not answer initialize within 10 s")
        );
        assert!(message.contains("policy untrusted: reads only the system"));
        assert!(message.contains("\n  boom\n"));
    }
}
