//! Snapshot tests of whole frames (ratatui's `TestBackend`, `insta`). The
//! state is built directly, so no worker runs; 80×24, the smallest
//! terminal the TUI promises to be usable in.

use std::sync::Arc;
use std::time::Duration;

use bulkhead_host::{CallLimits, CallState, KillReason, LiveStatus};
use bytes::Bytes;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::card::{Card, CardOutcome};
use super::pager::{Pager, PiecesSource};
use super::state::{App, Entry, Overlay};
use super::theme::Theme;

fn app() -> App {
    let mut app = App::new(Theme { color: false });
    app.status.host_rss = 14 << 20;
    app.status.max_workers = 2;
    app.status.enforcement = "cgroup-v1 sbx 8/8".into();
    app
}

fn frame(app: &mut App) -> String {
    frame_at(app, 80, 24)
}

/// A frame of `app` drawn at `width`×`height`.
pub(super) fn frame_at(app: &mut App, width: u16, height: u16) -> String {
    let mut terminal = match Terminal::new(TestBackend::new(width, height)) {
        Ok(t) => t,
        Err(e) => panic!("test backend: {e}"),
    };
    if let Err(e) = terminal.draw(|f| super::render::draw(app, f)) {
        panic!("draw: {e}");
    }
    terminal.backend().to_string()
}

fn card(id: u64, tool: &str, args: &str) -> Card {
    let mut c = Card::new(id, tool, args, CallLimits::default());
    c.live = LiveStatus {
        state: CallState::Running,
        rss_bytes: 3 << 20,
        peak_rss_bytes: 3 << 20,
        cpu_ms: 1200,
        bytes_seen: 512 << 10,
        elapsed: Duration::from_millis(3200),
        progress: None,
        ..LiveStatus::default()
    };
    c
}

#[test]
fn empty_state() {
    insta::assert_snapshot!(frame(&mut app()));
}

/// `!yes` running: a selected card with figures and a preview.
pub(super) fn running_state() -> App {
    let mut app = app();
    app.push(Entry::User("!yes".into()));
    let mut c = card(1, "shell", "yes");
    c.preview = vec!["y".into(), "y".into()];
    app.push(Entry::Card(Box::new(c)));
    app.selected = Some(1);
    app.status.running = 1;
    app
}

#[test]
fn running_card() {
    let mut app = running_state();
    insta::assert_snapshot!(frame(&mut app));
}

#[test]
fn truncated_card() {
    let mut app = app();
    app.push(Entry::User("/search needle /tmp/tree".into()));
    let mut c = card(2, "search_files_content", "needle in /tmp/tree");
    c.outcome = Some(CardOutcome::Truncated {
        kept: 1 << 20,
        seen: 1_153_433,
        lines: 20_480,
    });
    c.final_usage = Some((9 << 20, 410, Duration::from_millis(730)));
    c.live.bytes_seen = 1_153_433;
    app.push(Entry::Card(Box::new(c)));
    insta::assert_snapshot!(frame(&mut app));
}

#[test]
fn killed_card() {
    let mut app = app();
    app.push(Entry::User("!yes".into()));
    let mut c = card(3, "shell", "yes");
    c.limits.max_output_bytes = 50 << 30;
    c.limits.timeout = Duration::from_secs(3);
    c.outcome = Some(CardOutcome::Killed {
        reason: KillReason::Timeout,
    });
    c.final_usage = Some((14 << 20, 2900, Duration::from_secs(3)));
    c.live.bytes_seen = 3 << 30;
    app.push(Entry::Card(Box::new(c)));
    app.selected = Some(3);
    insta::assert_snapshot!(frame(&mut app));
}

/// Cards of calls with faults: one armed and running, one killed by the
/// kill key (the fault that fired is on a line of its own), one whose
/// armed fault never fired.
#[test]
fn injected_cards() {
    let mut app = app();
    let mut c = card(5, "shell", "echo hi; sleep 30");
    c.faults = vec!["exit:3@bytes:65536".into()];
    app.push(Entry::Card(Box::new(c)));
    let mut c = card(6, "shell", "sleep 30");
    c.faults = vec!["kill (key)".into()];
    c.outcome = Some(CardOutcome::Killed {
        reason: KillReason::Signal(9),
    });
    c.injected = Some("injected kill @2150ms at 2150 ms".into());
    c.final_usage = Some((3 << 20, 10, Duration::from_millis(2160)));
    app.push(Entry::Card(Box::new(c)));
    let mut c = card(7, "read_file", "notes.txt");
    c.faults = vec!["kill@on:shell".into()];
    c.outcome = Some(CardOutcome::Completed { exit: None });
    c.final_usage = Some((2 << 20, 5, Duration::from_millis(40)));
    app.push(Entry::Card(Box::new(c)));
    app.selected = Some(6);
    insta::assert_snapshot!(frame(&mut app));
}

#[test]
fn pager() {
    let mut app = app();
    app.push(Entry::Card(Box::new(card(4, "shell", "seq 1 100000"))));
    let text: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    let source = Arc::new(PiecesSource::new(vec![Bytes::from(text)]));
    let mut pager = Pager::new(
        "shell seq 1 100000".into(),
        "574.8 KiB kept of 574.8 KiB produced".into(),
        source,
    );
    pager.down(41_999);
    app.overlay = Some(Overlay::Pager(pager));
    insta::assert_snapshot!(frame(&mut app));
}

#[test]
fn help_overlay() {
    let mut app = app();
    app.overlay = Some(Overlay::Help);
    insta::assert_snapshot!(frame(&mut app));
}

#[test]
fn streaming_answer() {
    let mut app = app();
    app.status.model = Some("anthropic:claude".into());
    app.push(Entry::User("what is in this repo?".into()));
    let mut c = card(5, "list_directory", ".");
    c.outcome = Some(CardOutcome::Completed { exit: None });
    c.final_usage = Some((4 << 20, 3, Duration::from_millis(12)));
    c.kept_bytes = 812;
    c.live.bytes_seen = 812;
    app.push(Entry::Card(Box::new(c)));
    app.push(Entry::Streaming(
        "It is a **Rust** workspace with:\n\n- `host/`: the supervisor\n- `tui/`: this app\n\n```sh\ncargo build\n```\n\nThe *interesting* part"
            .into(),
    ));
    app.turn_running = true;
    insta::assert_snapshot!(frame(&mut app));
}

#[test]
fn approval_prompt() {
    let mut app = app();
    app.status.model = Some("anthropic:claude".into());
    app.push(Entry::User("clean the build".into()));
    app.push(Entry::Card(Box::new(card(6, "shell", "rm -rf target"))));
    app.overlay = Some(Overlay::Approval(super::state::ApprovalPrompt {
        name: "shell".into(),
        args: r#"{"command":"rm -rf target"}"#.into(),
        reply: None,
    }));
    insta::assert_snapshot!(frame(&mut app));
}
