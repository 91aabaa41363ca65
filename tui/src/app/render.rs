//! One frame. The cost depends on the visible area only: the conversation
//! is laid out from the newest entry up until the pane is full, cards are
//! a few lines each whatever their output, and the pager reads only the
//! rows it shows.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::commands::HELP;
use super::markdown;
use super::state::{App, Entry, Overlay};
use super::wrap::wrap;

/// Of a streaming answer, the end that is laid out each frame.
const STREAMING_TAIL_BYTES: usize = 8 << 10;

/// Keys, for the help overlay.
const KEYS: &str = "\
- `Enter` runs the line; on an empty line, opens the selected card's output
- `↑` `↓` select a card · `PgUp` `PgDn` scroll · `End` back to the bottom
- selected call: `Ctrl-K` stop · `Ctrl-X` SIGKILL · `Ctrl-O` over its memory cap
- `Ctrl-C` cancels every running call · `Ctrl-D` quits
- `Ctrl-S` opens the session picker · `?` (on an empty line) this help";

pub fn draw(app: &mut App, frame: &mut Frame<'_>) {
    let area = frame.area();
    let [conv, input, bar] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    conversation(app, frame, conv);
    prompt(app, frame, input);
    super::status::render(&app.status, frame, bar, app.theme);
    let theme = app.theme;
    match &mut app.overlay {
        None => {}
        Some(Overlay::Help) => help(frame, conv, theme),
        Some(Overlay::Pager(p)) => p.render(frame, conv, theme),
        Some(Overlay::Sessions(s)) => s.render(frame, conv, theme),
        Some(Overlay::Approval(a)) => approval(frame, conv, a, theme),
    }
}

/// The rows of one entry at this width.
fn entry_rows(app: &App, entry: &Entry, width: u16) -> Vec<Line<'static>> {
    let theme = app.theme;
    match entry {
        Entry::User(text) => wrap(
            &Line::from(vec![
                Span::styled("› ", theme.user()),
                Span::raw(text.clone()),
            ]),
            width,
        ),
        Entry::Note(lines) => lines.iter().flat_map(|l| wrap(l, width)).collect(),
        Entry::Streaming(text) => {
            // Only the end is on screen while it streams; 8 KiB is more
            // than a pane shows, so the cost does not grow with the answer.
            let mut start = text.len().saturating_sub(STREAMING_TAIL_BYTES);
            while !text.is_char_boundary(start) {
                start += 1;
            }
            let mut rows: Vec<Line<'static>> = markdown::render(&text[start..], theme)
                .iter()
                .flat_map(|l| wrap(l, width))
                .collect();
            rows.push(Line::styled("▍", theme.dim()));
            rows
        }
        Entry::Card(card) => {
            let selected = app.selected == Some(card.call_id);
            card.lines(width, selected, app.tick, theme)
        }
    }
}

fn conversation(app: &mut App, frame: &mut Frame<'_>, area: Rect) {
    let height = usize::from(area.height);
    if app.entries.is_empty() {
        let lines = markdown::render(
            &format!(
                "**bulkhead** — direct mode: tools run in capped, sandboxed workers.\n\n{HELP}\n\n`?` shows the keys."
            ),
            app.theme,
        );
        let rows: Vec<Line<'static>> = lines.iter().flat_map(|l| wrap(l, area.width)).collect();
        frame.render_widget(Paragraph::new(rows), area);
        return;
    }
    // Newest first, until the pane plus the scroll offset is covered.
    let want = height + app.scroll;
    let mut blocks: Vec<Vec<Line<'static>>> = Vec::new();
    let mut have = 0;
    for entry in app.entries.iter().rev() {
        let mut rows = entry_rows(app, entry, area.width);
        rows.push(Line::default());
        have += rows.len();
        blocks.push(rows);
        if have >= want {
            break;
        }
    }
    // Scrolled past the oldest entry: stop there.
    app.scroll = app.scroll.min(have.saturating_sub(height));
    let rows: Vec<Line<'static>> = blocks.into_iter().rev().flatten().collect();
    let end = rows.len().saturating_sub(app.scroll);
    let start = end.saturating_sub(height);
    let visible: Vec<Line<'static>> = rows[start..end].to_vec();
    frame.render_widget(Paragraph::new(visible), area);
}

fn prompt(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let width = usize::from(area.width).saturating_sub(3).max(1);
    // Keep the cursor in view on a line longer than the terminal.
    let first = app.cursor.saturating_sub(width.saturating_sub(1));
    let shown: String = app.input.chars().skip(first).take(width).collect();
    let line = Line::from(vec![Span::styled("> ", app.theme.user()), Span::raw(shown)]);
    frame.render_widget(Paragraph::new(line), area);
    if app.overlay.is_none() {
        let x = area.x + 2 + (app.cursor - first) as u16;
        frame.set_cursor_position((x.min(area.right().saturating_sub(1)), area.y));
    }
}

fn approval(
    frame: &mut Frame<'_>,
    area: Rect,
    prompt: &super::state::ApprovalPrompt,
    theme: super::theme::Theme,
) {
    let w = area.width.min(72);
    let h = area.height.min(9);
    let rect = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let inner = super::overlay::framed(
        frame,
        rect,
        "approval",
        "y once · a session · n deny",
        theme,
    );
    let width = usize::from(inner.width);
    let lines = vec![
        Line::from(vec![
            Span::raw("The model wants to run "),
            Span::styled(prompt.name.clone(), theme.tool()),
            Span::raw(":"),
        ]),
        Line::styled(super::format::clip(&prompt.args, width), theme.code()),
        Line::default(),
        Line::raw("y  allow once"),
        Line::raw("a  allow for this session"),
        Line::raw("n  deny (the model is told)"),
    ];
    frame.render_widget(Paragraph::new(lines), inner);
}

fn help(frame: &mut Frame<'_>, area: Rect, theme: super::theme::Theme) {
    let w = area.width.min(78);
    let h = area.height.min(20);
    let rect = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let inner = super::overlay::framed(frame, rect, "help", "any key closes", theme);
    let text = format!("{KEYS}\n\n{HELP}");
    let rows: Vec<Line<'static>> = markdown::render(&text, theme)
        .iter()
        .flat_map(|l| wrap(l, inner.width))
        .collect();
    frame.render_widget(Paragraph::new(rows), inner);
}
