//! The status bar: the host's own memory, workers against the limit,
//! model or direct mode, session, enforcement, MCP servers.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::format::clip;
use super::state::StatusInfo;
use super::theme::Theme;

pub fn render(status: &StatusInfo, frame: &mut Frame<'_>, area: Rect, theme: Theme) {
    let model = status.model.as_deref().unwrap_or("direct mode");
    let session = status.session.as_deref().unwrap_or("no session");
    let mcp = if status.mcp_configured == 0 {
        "mcp none".to_owned()
    } else {
        format!("mcp {} up {} failed", status.mcp_up, status.mcp_failed)
    };
    let text = format!(
        " host {} · workers {}/{} · {model} · {} · {mcp} · {session}",
        short_size(status.host_rss),
        status.running,
        status.max_workers,
        status.enforcement,
    );
    let line = Line::raw(clip(&text, usize::from(area.width)));
    frame.render_widget(Paragraph::new(line).style(theme.bar()), area);
}

/// This process's resident memory now (`VmRSS`), in bytes; 0 where
/// `/proc` is missing.
pub fn host_rss() -> u64 {
    proc_status_kib("VmRSS:").map_or(0, |k| k * 1024)
}

/// A `kB` field of `/proc/self/status`.
fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
}

/// `12.9M`: the status bar has 80 columns for seven figures.
fn short_size(bytes: u64) -> String {
    let mib = bytes as f64 / f64::from(1 << 20);
    if mib >= 1024.0 {
        format!("{:.1}G", mib / 1024.0)
    } else {
        format!("{mib:.1}M")
    }
}
