//! Fits styled lines to a width, by character (tool output and prose
//! alike): a line wider than the pane becomes several rows.

use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthChar;

/// Wraps one line into rows of at most `width` columns.
pub fn wrap(line: &Line<'static>, width: u16) -> Vec<Line<'static>> {
    let width = usize::from(width.max(1));
    if line.width() <= width {
        return vec![line.clone()];
    }
    let mut rows = Vec::new();
    let mut row: Vec<Span<'static>> = Vec::new();
    let mut row_width = 0;
    for span in &line.spans {
        let mut piece = String::new();
        for c in span.content.chars() {
            let w = c.width().unwrap_or(0);
            if row_width + w > width && row_width > 0 {
                if !piece.is_empty() {
                    row.push(Span::styled(std::mem::take(&mut piece), span.style));
                }
                rows.push(Line::from(std::mem::take(&mut row)).style(line.style));
                row_width = 0;
            }
            piece.push(c);
            row_width += w;
        }
        if !piece.is_empty() {
            row.push(Span::styled(piece, span.style));
        }
    }
    if !row.is_empty() {
        rows.push(Line::from(row).style(line.style));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_by_width_keeping_styles() {
        let line = Line::from(vec![Span::raw("abcd"), Span::raw("efgh")]);
        let rows: Vec<String> = wrap(&line, 3).iter().map(|l| l.to_string()).collect();
        assert_eq!(rows, vec!["abc", "def", "gh"]);
    }
}
