//! The frame every overlay (help, pager, session picker) is drawn in.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear};

use super::theme::Theme;

/// Clears `area`, draws a bordered box titled `title` with `hint` (the
/// keys) at the bottom, and returns the inside.
pub fn framed(frame: &mut Frame<'_>, area: Rect, title: &str, hint: &str, theme: Theme) -> Rect {
    frame.render_widget(Clear, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(format!(" {title} "), theme.bold()))
        .title_bottom(Line::styled(format!(" {hint} "), theme.dim()));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    inner
}
