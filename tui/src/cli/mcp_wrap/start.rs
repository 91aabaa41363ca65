//! The one line `mcp wrap` prints when the server starts.

/// The most the start line's policy summary takes: a long allow list is
/// cut, since the line shares the client's log with the server's messages.
const START_SUMMARY_BYTES: usize = 200;

/// The one line `mcp wrap` prints at start, e.g. `bulkhead: mcp wrap:
/// policy untrusted (network none; own PID namespace; seccomp), 6
/// mechanisms enforced`: the policy's network and process parts (its
/// filesystem part names paths, too long for a log line), and a count.
pub(super) fn start_line(e: &bulkhead_host::report::Enforcement) -> String {
    let mut summary = e
        .policy_explained
        .split("; ")
        .filter(|part| {
            ["network", "own PID", "seccomp"]
                .iter()
                .any(|p| part.starts_with(p))
        })
        .collect::<Vec<_>>()
        .join("; ");
    if summary.len() > START_SUMMARY_BYTES {
        summary.truncate(bulkhead_ipc::utf8::prefix_len(
            summary.as_bytes(),
            START_SUMMARY_BYTES,
        ));
        summary.push('…');
    }
    let enforced = e.sandbox.iter().filter(|m| m.enforced).count();
    let missing = e.not_enforced().count();
    let mut line = format!("{}policy {}", super::PREFIX, e.policy);
    if !summary.is_empty() {
        line.push_str(&format!(" ({summary})"));
    }
    line.push_str(&format!(", {enforced} mechanisms enforced"));
    if missing > 0 {
        line.push_str(&format!(", {missing} NOT ENFORCED"));
    }
    line.push('\n');
    line
}
