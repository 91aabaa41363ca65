//! A tool call card: what runs, its live figures against its limits, and
//! how it ended.

use std::sync::Arc;
use std::time::Duration;

use bulkhead_host::{CallLimits, KillReason, LiveStatus};
use ratatui::text::{Line, Span};

use super::format::{clip, duration, size};
use super::pager::PagerSource;
use super::theme::Theme;

/// Braille spinner: one frame per tick while a call runs.
const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// Lines of output preview a running card shows: enough to see it move,
/// few enough that four running cards fit in 24 rows.
pub const PREVIEW_LINES: usize = 2;

/// How a call ended, as the card shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum CardOutcome {
    Completed { exit: Option<String> },
    Truncated { kept: u64, seen: u64, lines: u64 },
    Killed { reason: KillReason },
    Failed { error: String },
}

/// One call as the UI knows it. The output itself is not here: only a
/// short preview and a handle to read it from.
pub struct Card {
    pub call_id: u64,
    pub tool: String,
    pub short_args: String,
    pub limits: CallLimits,
    pub live: LiveStatus,
    /// The last lines of output, bounded ([`PREVIEW_LINES`]).
    pub preview: Vec<String>,
    pub outcome: Option<CardOutcome>,
    /// Peak RSS and CPU when finished.
    pub final_usage: Option<(u64, u64, Duration)>,
    /// Where the pager reads the full output; `None` once it was let go
    /// (older cards) or when nothing was kept.
    pub output: Option<Arc<dyn PagerSource>>,
    /// Bytes the pager can show, and how many were produced.
    pub kept_bytes: u64,
    /// Set when the user asked to kill it; the outcome follows.
    pub kill_requested: bool,
    /// Faults the call was started with (`/inject`) or sent while it ran
    /// (the kill and memory keys), as written.
    pub faults: Vec<String>,
    /// The injected fault that fired, from the call's report: what tells
    /// an injected failure from a real one.
    pub injected: Option<String>,
}

impl Card {
    pub fn new(call_id: u64, tool: &str, short_args: &str, limits: CallLimits) -> Self {
        Self {
            call_id,
            tool: tool.to_owned(),
            short_args: short_args.to_owned(),
            limits,
            live: LiveStatus::default(),
            preview: Vec::new(),
            outcome: None,
            final_usage: None,
            output: None,
            kept_bytes: 0,
            kill_requested: false,
            faults: Vec::new(),
            injected: None,
        }
    }

    pub fn running(&self) -> bool {
        self.outcome.is_none()
    }

    /// The card's lines (unwrapped: each is cut to the width).
    pub fn lines(
        &self,
        width: u16,
        selected: bool,
        tick: usize,
        theme: Theme,
    ) -> Vec<Line<'static>> {
        let w = usize::from(width);
        let marker = if selected { "▶ " } else { "  " };
        let (badge, badge_style) = match &self.outcome {
            None if self.live.state == bulkhead_host::CallState::Queued => {
                ("queued".to_owned(), theme.dim())
            }
            None => (SPINNER[tick % SPINNER.len()].to_owned(), theme.warn()),
            Some(CardOutcome::Completed { .. }) => ("✓".to_owned(), theme.ok()),
            Some(CardOutcome::Truncated { .. }) => ("✂".to_owned(), theme.warn()),
            Some(CardOutcome::Killed { .. }) | Some(CardOutcome::Failed { .. }) => {
                ("✗".to_owned(), theme.bad())
            }
        };
        let head_room = w.saturating_sub(self.tool.len() + badge.chars().count() + 4);
        let mut head = Line::from(vec![
            Span::raw(marker),
            Span::styled(badge, badge_style),
            Span::raw(" "),
            Span::styled(self.tool.clone(), theme.tool()),
            Span::raw(" "),
            Span::raw(clip(&self.short_args, head_room)),
        ]);
        if selected {
            head = head.style(theme.selected());
        }
        let mut lines = vec![head, self.figures_line(w, theme)];
        match &self.outcome {
            None => {
                for p in self.preview.iter().rev().take(PREVIEW_LINES).rev() {
                    lines.push(Line::styled(
                        format!("    {}", clip(p, w.saturating_sub(4))),
                        theme.dim(),
                    ));
                }
            }
            Some(o) => lines.push(self.outcome_line(o, w, theme)),
        }
        if let Some(line) = self.fault_line(w, theme) {
            lines.push(line);
        }
        lines
    }

    /// A line of its own (an outcome's text may fill the width): which
    /// fault is armed or was sent, and once the call ended, which fired.
    /// `None` for a call no fault was asked for.
    fn fault_line(&self, w: usize, theme: Theme) -> Option<Line<'static>> {
        let text = match (&self.injected, &self.outcome) {
            (Some(fired), _) => format!("    ↯ {fired}"),
            _ if self.faults.is_empty() => return None,
            (None, None) => format!("    ↯ inject: {}", self.faults.join(", ")),
            (None, Some(_)) => format!(
                "    ↯ inject: {}: none fired; the outcome is the call's own",
                self.faults.join(", ")
            ),
        };
        Some(Line::styled(clip(&text, w), theme.warn()))
    }

    /// `mem 2.1 MiB/1.0 GiB · cpu 1.2s · out 512 KiB/1.0 MiB · 3.2s/5m00s`
    fn figures_line(&self, w: usize, theme: Theme) -> Line<'static> {
        let (rss, cpu_ms, elapsed) = match self.final_usage {
            Some((peak, cpu, wall)) => (peak, cpu, wall),
            None => (self.live.rss_bytes, self.live.cpu_ms, self.live.elapsed),
        };
        let rss_label = if self.final_usage.is_some() {
            "peak"
        } else {
            "mem"
        };
        let text = format!(
            "    {rss_label} {}/{} · cpu {} · out {}/{} · {}/{}",
            size(rss),
            size(self.limits.memory_bytes),
            duration(Duration::from_millis(cpu_ms)),
            size(self.live.bytes_seen),
            size(self.limits.max_output_bytes),
            duration(elapsed),
            duration(self.limits.timeout),
        );
        Line::styled(clip(&text, w), theme.dim())
    }

    fn outcome_line(&self, outcome: &CardOutcome, w: usize, theme: Theme) -> Line<'static> {
        let (text, style) = match outcome {
            CardOutcome::Completed { exit } => (
                match exit {
                    Some(e) => format!("completed ({e}) · {} kept", size(self.kept_bytes)),
                    None => format!("completed · {} kept", size(self.kept_bytes)),
                },
                theme.ok(),
            ),
            CardOutcome::Truncated { kept, seen, lines } => (
                format!(
                    "truncated: kept {} of {} seen ({lines} lines)",
                    size(*kept),
                    size(*seen)
                ),
                theme.warn(),
            ),
            CardOutcome::Killed { reason } => (format!("killed: {reason}"), theme.bad()),
            CardOutcome::Failed { error } => (format!("failed: {error}"), theme.bad()),
        };
        Line::styled(clip(&format!("    {text}"), w), style)
    }
}
