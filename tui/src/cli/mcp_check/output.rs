//! The check's report, as text or JSON: the diagnosis of a failure, and
//! what was learnt of the server either way.

use bulkhead_host::CallReport;
use serde_json::{Value, json};

use super::{MAX_TOOL_PAGES, Probe};
use crate::cli::mcp_diagnose::{Diagnosis, EgressSeen, Facts, PolicyFacts, seconds};

/// The check's report, as text or JSON.
pub(super) struct Output<'a> {
    pub(super) command: &'a [String],
    pub(super) policy: &'a PolicyFacts,
    pub(super) probe: &'a Probe,
    pub(super) report: &'a Option<CallReport>,
    pub(super) egress: &'a EgressSeen,
    pub(super) flags: &'a [String],
}

impl Output<'_> {
    pub(super) fn diagnosis(&self) -> Option<Diagnosis> {
        let failure = self.probe.failure.as_ref()?;
        let facts = Facts {
            command: self.command,
            policy: self.policy,
            egress: self.egress,
            stderr: self.probe.tail.lines(),
        };
        Some(Diagnosis::new(failure, &facts))
    }

    pub(super) fn not_enforced(&self) -> Vec<String> {
        self.probe
            .enforcement
            .iter()
            .flat_map(|e| e.not_enforced())
            .map(|m| format!("{}: {}", m.mechanism, m.detail))
            .collect()
    }

    /// The `mcpServers` entry that runs this server through `mcp wrap`:
    /// its name (the last part of the server's own, in the characters
    /// clients take) and its value.
    pub(super) fn client_config(&self) -> (String, Value) {
        let mut args: Vec<String> = vec!["mcp".into(), "wrap".into()];
        args.extend(self.flags.iter().cloned());
        args.push("--".into());
        args.extend(self.command.iter().cloned());
        let own = self.probe.server_info["name"].as_str().unwrap_or("");
        let name: String = own
            .rsplit('/')
            .next()
            .unwrap_or("")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        let name = if name.is_empty() {
            "server".into()
        } else {
            name
        };
        (name, json!({"command": "bulkhead", "args": args}))
    }

    pub(super) fn text(&self) -> String {
        let p = self.probe;
        let mut out = String::new();
        let mut line = |l: String| {
            out.push_str(&l);
            out.push('\n');
        };
        let diagnosis = self.diagnosis();
        match &diagnosis {
            None => line(format!(
                "bulkhead mcp check: PASSED: {} {} (protocol {})",
                p.server_info["name"].as_str().unwrap_or("(no name)"),
                p.server_info["version"].as_str().unwrap_or("(no version)"),
                p.protocol.as_deref().unwrap_or("not given"),
            )),
            Some(d) => line(format!("bulkhead mcp check: FAILED: {}", d.headline)),
        }
        line(format!("  command: {}", self.command.join(" ")));
        if let Some(t) = p.init_time {
            line(format!("  initialize answered in {}", seconds(t)));
        }
        if let Some(t) = p.list_time {
            let cut = if p.tools_cut {
                format!(" (the first {MAX_TOOL_PAGES} pages)")
            } else {
                String::new()
            };
            line(format!(
                "  tools/list answered in {}: {} tools{cut}",
                seconds(t),
                p.tools.len()
            ));
            if !p.tools.is_empty() {
                line(format!("    {}", p.tools.join(", ")));
            }
        }
        let not_enforced = self.not_enforced();
        match &diagnosis {
            Some(d) => {
                for l in d.lines() {
                    line(format!("  {l}"));
                }
            }
            None => {
                line(format!("  policy {}", self.policy.explained));
                line(format!("  network: {}", self.policy.network_text()));
                line(format!(
                    "  egress: {} allowed, {} refused",
                    self.egress.allowed, self.egress.refused
                ));
                for m in &self.egress.messages {
                    line(format!("    {m}"));
                }
            }
        }
        if p.enforcement.is_none() {
            line("  not enforced: unknown (the worker never built the sandbox)".into());
        } else if not_enforced.is_empty() {
            line(
                "  not enforced: nothing (every mechanism the policy asks for is in force)".into(),
            );
        } else {
            for m in &not_enforced {
                line(format!("  NOT ENFORCED: {m}"));
            }
        }
        if let Some(r) = self.report {
            let status = r.status_line();
            line(format!(
                "  the session: {}",
                status.trim_start_matches("bulkhead: ")
            ));
        }
        if diagnosis.is_none() {
            let (name, entry) = self.client_config();
            line(
                "  client config (an entry of mcpServers; it runs the server through mcp wrap):"
                    .into(),
            );
            line(format!("    {}: {entry}", Value::from(name)));
        }
        out
    }

    pub(super) fn json(&self) -> Value {
        let p = self.probe;
        let diagnosis = self.diagnosis();
        json!({
            "ok": diagnosis.is_none(),
            "command": self.command,
            "server": p.server_info,
            "protocol_version": p.protocol,
            "tools": p.tools,
            "tool_count": p.tools.len(),
            "tools_cut": p.tools_cut,
            "initialize_ms": p.init_time.map(|t| t.as_millis() as u64),
            "tools_list_ms": p.list_time.map(|t| t.as_millis() as u64),
            "policy": {"name": self.policy.name, "explained": self.policy.explained,
                       "network": self.policy.network_text()},
            "not_enforced": self.not_enforced(),
            "egress": {"allowed": self.egress.allowed, "refused": self.egress.refused,
                       "messages": self.egress.messages},
            "stderr_tail": p.tail.lines(),
            "diagnosis": diagnosis.as_ref().map(Diagnosis::json),
            "client_config": diagnosis.is_none().then(|| {
                let (name, entry) = self.client_config();
                json!({"mcpServers": {name: entry}})
            }),
            "session": self.report.as_ref().map(|r| json!({
                "outcome": r.outcome.status(),
                "reason": r.outcome.reason(),
                "summary": r.summary,
                "peak_rss_bytes": r.usage.peak_rss_bytes,
            })),
        })
    }
}
