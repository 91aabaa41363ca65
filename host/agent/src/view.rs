//! The model's view of one tool result: at most its budget of the stored
//! output (head and tail), a marker that says exactly what was cut and how
//! to read it, and the outcome line. The model is told honestly what it did
//! not see.

use std::fmt::Write as _;

use bulkhead_host::report::CallReport;
use bulkhead_store::{ResultEnd, ResultView};

/// Of a view's budget, the part given to the head. The head of a search or
/// a build log says what it is; the tail says how it ended (the summary,
/// the error): both matter, the head a bit more.
const HEAD_SHARE_PERCENT: u64 = 60;

/// Bytes the marker and the outcome line take at most, kept out of the
/// output's share so a view never exceeds its budget.
pub const FRAME_BYTES: u64 = 400;

/// How the window asks the store for a view of `budget` bytes.
pub fn head_tail(budget: u64) -> (u64, u64) {
    let room = budget.saturating_sub(FRAME_BYTES);
    let head = room * HEAD_SHARE_PERCENT / 100;
    (head, room - head)
}

/// The one-line outcome the model (and stderr) gets, e.g.
/// `[completed · exit code 0]` or `[killed: timeout]`.
pub fn outcome_line(report: &CallReport) -> String {
    use bulkhead_ipc::ToolExit;
    let mut line = format!("[{}", report.outcome.status());
    if let Some(reason) = report.outcome.reason() {
        let _ = write!(line, ": {reason}");
    }
    match report.exit {
        Some(ToolExit::Code(c)) => {
            let _ = write!(line, " · exit code {c}");
        }
        Some(ToolExit::Signal(s)) => {
            let _ = write!(line, " · the tool died of signal {s}");
        }
        Some(ToolExit::Stopped) => line.push_str(" · the tool was stopped at the output limit"),
        Some(ToolExit::Finished) | None => {}
    }
    line.push(']');
    line
}

/// What the store keeps of a call's end: the host's own record, plus the
/// outcome line, so a later view needs no second interpretation.
pub fn result_end(report: &CallReport) -> ResultEnd {
    let mut end = ResultEnd::from_report(report);
    let outcome = serde_json::json!({
        "status": report.outcome.status(),
        "reason": report.outcome.reason(),
        "line": outcome_line(report),
        "summary": report.summary,
    });
    end.outcome_json = Some(outcome.to_string());
    end
}

/// The text the model gets for a stored result, within `budget` bytes
/// (plus at most [`FRAME_BYTES`]).
pub fn render(view: &ResultView, budget: u64) -> String {
    if let Some(stub) = view.info.pruned_stub() {
        return stub;
    }
    let (head_max, tail_max) = head_tail(budget);
    let stored = view.stored_bytes;
    let head_end = head_max.min(stored);
    let tail_start = stored.saturating_sub(tail_max).max(head_end);
    // The store may have read more than this budget wants (the window
    // reads the agent's default view); only these two ranges are shown.
    let mut head = slice(view, 0, head_end);
    let mut tail = std::borrow::Cow::Borrowed(slice(view, tail_start, stored));
    if tail_start > head_end {
        // Bytes are left out between the two: each side of the gap is
        // cut on a character, so the model reads no half of one.
        head = &head[..bulkhead_ipc::utf8::incomplete_tail_start(head)];
        let start = bulkhead_ipc::utf8::suffix_start(&tail, 0);
        tail = std::borrow::Cow::Borrowed(&slice(view, tail_start, stored)[start..]);
    } else if !tail.is_empty() {
        // One run of bytes in two pieces: a character across the join
        // moves whole into the tail.
        let whole = bulkhead_ipc::utf8::incomplete_tail_start(head);
        if whole < head.len() {
            let mut joined = head[whole..].to_vec();
            joined.extend_from_slice(&tail);
            tail = std::borrow::Cow::Owned(joined);
            head = &head[..whole];
        }
    }
    let info = &view.info;
    let mut out = String::with_capacity(head.len() + tail.len() + FRAME_BYTES as usize);
    out.push_str(&String::from_utf8_lossy(head));
    let shown = (head.len() + tail.len()) as u64;
    let produced = info.bytes_seen.max(stored);
    let cut = produced.saturating_sub(shown);
    if cut > 0 {
        let lines_cut = info
            .lines_seen
            .saturating_sub(count_lines(head) + count_lines(&tail));
        if !out.ends_with('\n') && !out.is_empty() {
            out.push('\n');
        }
        let kept = if stored < produced {
            format!(
                "the {} bytes kept (of {} produced) are stored",
                group(stored),
                group(produced)
            )
        } else {
            "the full output is stored".to_owned()
        };
        let _ = writeln!(
            out,
            "[… {} bytes / {} lines cut; {kept} as result r{} — read it with \
             read_tool_result(id, offset, limit) …]",
            group(cut),
            group(lines_cut),
            view.item.0
        );
    }
    out.push_str(&String::from_utf8_lossy(&tail));
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&stored_outcome_line(view));
    out
}

/// The outcome line recorded with the result, or one rebuilt from its
/// status when it was written by something else.
fn stored_outcome_line(view: &ResultView) -> String {
    let info = &view.info;
    let recorded = info
        .outcome_json
        .as_deref()
        .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
        .and_then(|v| v.get("line").and_then(|l| l.as_str()).map(str::to_owned));
    match (recorded, info.status.as_deref()) {
        (Some(line), _) => line,
        (None, Some(status)) => format!("[{status}]"),
        (None, None) => "[no outcome recorded: the call was interrupted]".to_owned(),
    }
}

/// Stored bytes `from..to` out of the view's head or tail; empty when the
/// view does not hold them whole (the caller asked the store for a view at
/// least as large as the budget, so that does not happen).
fn slice(view: &ResultView, from: u64, to: u64) -> &[u8] {
    let (head, tail) = (&view.head.data, &view.tail.data);
    if to <= head.len() as u64 {
        return &head[from as usize..to as usize];
    }
    let base = view.tail.offset;
    if from >= base && to - base <= tail.len() as u64 {
        return &tail[(from - base) as usize..(to - base) as usize];
    }
    &[]
}

fn count_lines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// `2481004` → `2,481,004`, as the marker shows sizes.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_store::{ItemId, PayloadSlice, ResultInfo, ResultState};

    fn info(bytes_seen: u64, lines_seen: u64) -> ResultInfo {
        ResultInfo {
            state: ResultState::Finished,
            tool: "search_files_content".into(),
            call_ref: Some("call_1".into()),
            args_json: "{}".into(),
            status: Some("truncated".into()),
            outcome_json: Some(
                r#"{"line":"[truncated: output limit 1048576 bytes reached]"}"#.into(),
            ),
            usage_json: None,
            enforcement_json: None,
            bytes_seen,
            lines_seen,
            cut_offset: None,
            cut_bytes: 0,
            dropped_bytes: 0,
            pruned_ms: None,
            pruned_bytes: 0,
        }
    }

    fn view(stored: &[u8], bytes_seen: u64, lines_seen: u64, head: u64, tail: u64) -> ResultView {
        let head_end = (head as usize).min(stored.len());
        let tail_start = stored.len().saturating_sub(tail as usize).max(head_end);
        ResultView {
            item: ItemId(42),
            info: info(bytes_seen, lines_seen),
            stored_bytes: stored.len() as u64,
            head: PayloadSlice {
                offset: 0,
                data: stored[..head_end].to_vec(),
            },
            tail: PayloadSlice {
                offset: tail_start as u64,
                data: stored[tail_start..].to_vec(),
            },
            omitted_bytes: (tail_start - head_end) as u64,
        }
    }

    #[test]
    fn a_big_result_shows_head_marker_tail_and_outcome_within_budget() {
        let stored: Vec<u8> = (0..100_000)
            .flat_map(|i| format!("src/f{i}.rs:1:needle\n").into_bytes())
            .collect();
        let v = view(&stored, 2_481_004, 31_022 + 100_000, 8000, 8000);
        let text = render(&v, 4096);
        assert!(text.len() as u64 <= 4096 + FRAME_BYTES, "{}", text.len());
        assert!(text.starts_with("src/f0.rs:1:needle\n"));
        assert!(text.contains("bytes kept (of 2,481,004 produced) are stored as result r42"));
        assert!(text.contains("read_tool_result(id, offset, limit)"));
        assert!(text.contains("src/f99999.rs:1:needle\n"));
        assert!(text.ends_with("[truncated: output limit 1048576 bytes reached]"));
        let (head, tail) = head_tail(4096);
        let cut = 2_481_004 - head - tail;
        assert!(
            text.contains(&format!("[… {} bytes / ", group(cut))),
            "{text}"
        );
    }

    #[test]
    fn a_small_result_is_shown_whole_without_a_marker() {
        let v = view(b"one\ntwo\n", 8, 2, 8000, 8000);
        let text = render(&v, 4096);
        assert_eq!(
            text,
            "one\ntwo\n[truncated: output limit 1048576 bytes reached]"
        );
    }

    #[test]
    fn sizes_are_grouped_by_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(2_481_004), "2,481,004");
    }

    #[test]
    fn head_and_tail_of_the_view_end_on_two_three_and_four_byte_characters() {
        for ch in ['é', '€', '🦀'] {
            let stored: String = std::iter::repeat_n(ch, 4000).collect();
            let n = stored.len() as u64;
            for budget in 1000..1012 {
                let (head, tail) = head_tail(budget);
                let v = view(stored.as_bytes(), n, 0, head, tail);
                let text = render(&v, budget);
                assert!(!text.contains('\u{fffd}'), "{ch} budget {budget}: {text}");
                let (shown_head, rest) = text.split_once('\n').unwrap_or_default();
                assert!(shown_head.chars().all(|c| c == ch));
                assert!(shown_head.len() as u64 + ch.len_utf8() as u64 > head);
                let marker = format!(
                    "[… {} bytes",
                    group(
                        n - {
                            let tail_text = rest.lines().nth(1).unwrap_or_default();
                            (shown_head.len() + tail_text.len()) as u64
                        }
                    )
                );
                assert!(rest.starts_with(&marker), "{ch} budget {budget}: {rest}");
            }
        }
    }

    #[test]
    fn a_character_across_the_join_of_head_and_tail_stays_whole() {
        let stored: String = std::iter::repeat_n('€', 1000).collect();
        let n = stored.len() as u64;
        for budget in n + FRAME_BYTES..n + FRAME_BYTES + 6 {
            // Head and tail meet, with nothing between them, somewhere
            // inside a character.
            let (head, tail) = head_tail(budget);
            let v = view(stored.as_bytes(), n, 0, head, tail);
            let text = render(&v, budget);
            assert!(text.starts_with(&stored), "budget {budget}: {text}");
            assert!(!text.contains('\u{fffd}'));
            assert!(!text.contains("bytes cut"));
        }
    }
}
