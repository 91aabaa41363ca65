//! The session picker: a list of stored sessions, newest first, read from
//! the store a page at a time (never with their payloads).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::format::clip;
use super::theme::Theme;

/// One row of the picker.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub title: String,
    pub updated: String,
    pub items: u64,
}

pub struct Picker {
    pub rows: Vec<SessionRow>,
    pub selected: usize,
}

impl Picker {
    pub fn new(rows: Vec<SessionRow>) -> Self {
        Self { rows, selected: 0 }
    }

    pub fn move_by(&mut self, delta: isize) {
        if self.rows.is_empty() {
            return;
        }
        let max = self.rows.len() as isize - 1;
        self.selected = (self.selected as isize + delta).clamp(0, max) as usize;
    }

    pub fn chosen(&self) -> Option<&SessionRow> {
        self.rows.get(self.selected)
    }

    pub fn render(&self, frame: &mut Frame<'_>, area: Rect, theme: Theme) {
        let inner = super::overlay::framed(
            frame,
            area,
            "sessions",
            "↑↓ · Enter opens · Esc closes",
            theme,
        );
        let h = usize::from(inner.height);
        let first = self.selected.saturating_sub(h.saturating_sub(1));
        let w = usize::from(inner.width);
        let mut lines: Vec<Line<'static>> = Vec::new();
        if self.rows.is_empty() {
            lines.push(Line::styled("no sessions yet", theme.dim()));
        }
        for (i, r) in self.rows.iter().enumerate().skip(first).take(h) {
            let text = format!("{}  {}  {} items  {}", r.id, r.updated, r.items, r.title);
            let line = Line::raw(clip(&text, w));
            lines.push(if i == self.selected {
                line.style(theme.selected())
            } else {
                line
            });
        }
        frame.render_widget(Paragraph::new(lines), inner);
    }
}
