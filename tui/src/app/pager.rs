//! The full-output pager. It never holds or lays out an output whole: it
//! keeps the byte offset of the top line and reads, per frame, only the
//! slices the visible rows need from its [`PagerSource`] (the bounded
//! capture, or the session store once the output is stored there).

use std::sync::Arc;

use bytes::Bytes;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::theme::Theme;

/// A "line" longer than this is shown as several: a 1 GiB output with no
/// newline must not make one scroll step read 1 GiB. 4 KiB is wider than
/// any terminal.
pub const MAX_LINE_BYTES: u64 = 4096;

/// Bytes read per slice while looking for a line's end.
const SLICE_BYTES: usize = 4096;

/// Where the pager reads an output from: random access in slices.
pub trait PagerSource: Send + Sync {
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Up to `max` bytes from `offset` (fewer only at the end). A source
    /// that fails returns what it has; the pager shows the error line.
    fn read(&self, offset: u64, max: usize) -> Result<Vec<u8>, String>;
}

/// An output held in memory as shared pieces (the bounded capture): no
/// copy of the whole is made to page it.
pub struct PiecesSource {
    pieces: Vec<Bytes>,
    /// Start offset of each piece.
    starts: Vec<u64>,
    len: u64,
}

impl PiecesSource {
    pub fn new(pieces: Vec<Bytes>) -> Self {
        let mut starts = Vec::with_capacity(pieces.len());
        let mut len = 0;
        for p in &pieces {
            starts.push(len);
            len += p.len() as u64;
        }
        Self {
            pieces,
            starts,
            len,
        }
    }
}

impl PagerSource for PiecesSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read(&self, offset: u64, max: usize) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(max.min(SLICE_BYTES * 4));
        let mut i = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let mut at = offset;
        while out.len() < max && i < self.pieces.len() {
            let piece = &self.pieces[i];
            let skip = (at - self.starts[i]) as usize;
            if skip < piece.len() {
                let take = (piece.len() - skip).min(max - out.len());
                out.extend_from_slice(&piece[skip..skip + take]);
                at += take as u64;
            }
            i += 1;
        }
        Ok(out)
    }
}

/// The pager over one output.
pub struct Pager {
    pub title: String,
    /// A line above the text: what was kept of how much, and where from.
    pub note: String,
    source: Arc<dyn PagerSource>,
    /// Byte offset of the top visible line.
    top: u64,
    /// Rows of text the last frame showed, for page steps.
    page_rows: u16,
    error: Option<String>,
}

impl Pager {
    pub fn new(title: String, note: String, source: Arc<dyn PagerSource>) -> Self {
        Self {
            title,
            note,
            source,
            top: 0,
            page_rows: 10,
            error: None,
        }
    }

    /// Start of the line after the one starting at `off`, or `None` at the end.
    fn next_line(&mut self, off: u64) -> Option<u64> {
        let len = self.source.len();
        let limit = (off + MAX_LINE_BYTES).min(len);
        let mut at = off;
        while at < limit {
            let want = SLICE_BYTES.min((limit - at) as usize);
            let buf = self.read(at, want)?;
            if buf.is_empty() {
                return None;
            }
            if let Some(i) = memchr_newline(&buf) {
                let next = at + i as u64 + 1;
                return (next < len).then_some(next);
            }
            at += buf.len() as u64;
        }
        (limit < len).then_some(limit)
    }

    /// Start of the line before the one starting at `off`.
    fn prev_line(&mut self, off: u64) -> Option<u64> {
        if off == 0 {
            return None;
        }
        // The byte before `off` ends the previous line; search before it.
        let end = off - 1;
        let floor = off.saturating_sub(MAX_LINE_BYTES);
        let mut at = end;
        while at > floor {
            let start = at.saturating_sub(SLICE_BYTES as u64).max(floor);
            let buf = self.read(start, (at - start) as usize)?;
            if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
                return Some(start + i as u64 + 1);
            }
            at = start;
        }
        Some(floor)
    }

    fn read(&mut self, offset: u64, max: usize) -> Option<Vec<u8>> {
        match self.source.read(offset, max) {
            Ok(b) => Some(b),
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }

    pub fn down(&mut self, rows: u16) {
        for _ in 0..rows {
            match self.next_line(self.top) {
                Some(n) => self.top = n,
                None => break,
            }
        }
    }

    pub fn up(&mut self, rows: u16) {
        for _ in 0..rows {
            match self.prev_line(self.top) {
                Some(p) => self.top = p,
                None => break,
            }
        }
    }

    pub fn page_down(&mut self) {
        self.down(self.page_rows.saturating_sub(1).max(1));
    }

    pub fn page_up(&mut self) {
        self.up(self.page_rows.saturating_sub(1).max(1));
    }

    /// Shows the line that holds byte `offset` at the top.
    pub fn seek(&mut self, offset: u64) {
        let at = offset.min(self.source.len());
        self.top = self.prev_line(at + 1).unwrap_or(0);
    }

    pub fn home(&mut self) {
        self.top = 0;
    }

    /// The last page: from the end, one page up.
    pub fn end(&mut self) {
        self.top = self.source.len();
        self.up(self.page_rows);
    }

    /// The visible rows: reads only what they need.
    fn rows(&mut self, count: u16, width: u16) -> Vec<Line<'static>> {
        let mut lines = Vec::with_capacity(usize::from(count));
        let mut off = Some(self.top);
        while lines.len() < usize::from(count) {
            let Some(start) = off else { break };
            let next = self.next_line(start);
            let end = next.unwrap_or(self.source.len());
            // Only the part that fits the width is read and shown.
            let show = ((end - start) as usize).min(usize::from(width) * 4);
            let mut bytes = self.read(start, show).unwrap_or_default();
            if show < (end - start) as usize {
                // A line cut at the width's bytes ends on a character, not
                // in half of one.
                bytes.truncate(bulkhead_ipc::utf8::incomplete_tail_start(&bytes));
            }
            let text = String::from_utf8_lossy(&bytes);
            let text = text.trim_end_matches(['\n', '\r']);
            lines.push(Line::raw(super::format::clip(
                &text.replace('\t', "    "),
                usize::from(width),
            )));
            off = next;
        }
        lines
    }

    pub fn render(&mut self, frame: &mut Frame<'_>, area: Rect, theme: Theme) {
        let inner = super::overlay::framed(
            frame,
            area,
            &self.title,
            "↑↓ PgUp PgDn Home End · q/Esc closes",
            theme,
        );
        if inner.height < 2 {
            return;
        }
        self.page_rows = inner.height - 1;
        let percent = if self.source.is_empty() {
            100
        } else {
            self.top * 100 / self.source.len()
        };
        let mut header = format!("{} · {percent}%", self.note);
        if let Some(e) = &self.error {
            header = format!("read error: {e}");
        }
        let mut lines = vec![Line::styled(
            super::format::clip(&header, usize::from(inner.width)),
            theme.dim(),
        )];
        lines.extend(self.rows(inner.height - 1, inner.width));
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

fn memchr_newline(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pager(text: &str) -> Pager {
        let pieces = text
            .as_bytes()
            .chunks(7)
            .map(Bytes::copy_from_slice)
            .collect();
        Pager::new("t".into(), "n".into(), Arc::new(PiecesSource::new(pieces)))
    }

    #[test]
    fn pieces_read_across_boundaries() {
        let src = PiecesSource::new(vec![
            Bytes::from("abc"),
            Bytes::from("defg"),
            Bytes::from("h"),
        ]);
        assert_eq!(src.read(2, 4).ok(), Some(b"cdef".to_vec()));
        assert_eq!(src.read(7, 10).ok(), Some(b"h".to_vec()));
        assert_eq!(src.read(8, 10).ok(), Some(Vec::new()));
    }

    #[test]
    fn a_long_line_cut_at_the_width_ends_on_two_three_and_four_byte_characters() {
        for ch in ['é', '€', '🦀'] {
            for width in 1..12u16 {
                // A line longer than the bytes read for the width.
                let line: String = std::iter::repeat_n(ch, usize::from(width) * 4).collect();
                let mut p = pager(&format!("{line}\nnext\n"));
                let row = p.rows(1, width)[0].to_string();
                assert!(!row.contains('\u{fffd}'), "{ch} width {width}: {row}");
                assert!(row.chars().all(|c| c == ch || c == '…'), "{row}");
            }
        }
    }

    #[test]
    fn scrolls_line_by_line_both_ways() {
        let text: String = (1..=50).map(|i| format!("line {i}\n")).collect();
        let mut p = pager(&text);
        p.down(3);
        assert_eq!(p.rows(1, 80)[0].to_string(), "line 4");
        p.up(2);
        assert_eq!(p.rows(1, 80)[0].to_string(), "line 2");
        p.up(5);
        assert_eq!(p.rows(1, 80)[0].to_string(), "line 1");
        p.page_rows = 10;
        p.end();
        let last = p.rows(10, 80);
        assert_eq!(last.last().map(|l| l.to_string()), Some("line 50".into()));
    }

    #[test]
    fn a_huge_line_is_paged_in_pieces() {
        let text = "x".repeat(3 * MAX_LINE_BYTES as usize + 10);
        let mut p = pager(&text);
        p.down(10);
        assert_eq!(p.top, 3 * MAX_LINE_BYTES);
        p.up(1);
        assert_eq!(p.top, 2 * MAX_LINE_BYTES);
    }
}
