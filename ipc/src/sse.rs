//! A bounded `text/event-stream` parser (the HTML Living Standard's
//! "event stream interpretation"), fed the body chunk by chunk as it
//! arrives.
//!
//! Why by hand: the crates that parse SSE buffer an event (or a line) until
//! it ends, with no maximum, which is exactly what a server that never ends
//! its event turns into unbounded memory. Here an event's bytes (its data,
//! and any comment or field lines before the blank line that ends it) are
//! counted as they come, and the event is reported [`SseEvent::Oversize`]
//! the moment they pass the cap, before the data is joined or parsed.
//!
//! Shared by the worker's remote MCP client (`mcp_http`) and the host's
//! model providers (`bulkhead_host::model`), which is why it lives here.

/// A last-event id longer than this is ignored: it is echoed back as the
/// `Last-Event-ID` header on a reconnect, and no server needs a kilobyte
/// to number its events.
const MAX_EVENT_ID_BYTES: usize = 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum SseEvent {
    /// A dispatched event with data (the `data:` lines joined by `\n`).
    Message { data: Vec<u8> },
    /// The event being read passed the cap. Reported once, as soon as it
    /// does; the rest of it, up to the blank line that ends it, is dropped.
    Oversize,
}

#[derive(Debug)]
pub struct SseParser {
    cap: usize,
    /// The line being read, without its end of line. Never over `cap`.
    line: Vec<u8>,
    /// The line being read is not blank (even if its bytes were dropped).
    line_started: bool,
    /// The data of the event being read.
    data: Vec<u8>,
    has_data: bool,
    /// Bytes of the event being read so far, all its lines included.
    event_bytes: usize,
    /// Dropping the rest of an oversized event.
    discarding: bool,
    /// The previous chunk ended in `\r`: a `\n` starting this one belongs
    /// to that end of line.
    after_cr: bool,
    last_event_id: Option<String>,
    retry_ms: Option<u64>,
    /// The stream's first bytes, where a byte-order mark may be, are behind.
    started: bool,
    /// Bytes of a byte-order mark read so far, before `started`.
    bom_held: usize,
}

/// U+FEFF, which a stream may start with and which is not part of it.
const BOM: &[u8] = "\u{feff}".as_bytes();

impl SseParser {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            line: Vec::new(),
            line_started: false,
            data: Vec::new(),
            has_data: false,
            event_bytes: 0,
            discarding: false,
            after_cr: false,
            last_event_id: None,
            retry_ms: None,
            started: false,
            bom_held: 0,
        }
    }

    /// The stream's last event id, for `Last-Event-ID` on a reconnect.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// The reconnection time the server asked for (`retry:`), if any.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// A new stream after a reconnect: a half-read event of the old one is
    /// dropped, the last event id and the retry time are kept (as an
    /// `EventSource` keeps them).
    pub fn reconnected(&mut self) {
        *self = Self {
            last_event_id: self.last_event_id.take(),
            retry_ms: self.retry_ms,
            ..Self::new(self.cap)
        };
    }

    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) {
        if !self.started {
            // A byte-order mark may arrive split across reads: its bytes
            // are held until the mark is whole (and dropped) or broken
            // (and were the stream's first bytes after all).
            let held = self.bom_held;
            let n = (BOM.len() - held).min(chunk.len());
            if chunk[..n] == BOM[held..held + n] {
                self.bom_held += n;
                chunk = &chunk[n..];
                if self.bom_held < BOM.len() {
                    return;
                }
                self.started = true;
            } else {
                self.started = true;
                self.bom_held = 0;
                self.feed_started(&BOM[..held], out);
            }
        }
        self.feed_started(chunk, out);
    }

    /// [`feed`](Self::feed) once the byte-order mark is behind.
    fn feed_started(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) {
        // An empty read says nothing about what follows a `\r`.
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            chunk = chunk.strip_prefix(b"\n").unwrap_or(chunk);
        }
        while !chunk.is_empty() {
            let end = memchr::memchr2(b'\n', b'\r', chunk);
            let piece = &chunk[..end.unwrap_or(chunk.len())];
            self.take_piece(piece, out);
            let Some(at) = end else { break };
            let mut next = at + 1;
            if chunk[at] == b'\r' {
                match chunk.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            chunk = &chunk[next..];
            self.end_line(out);
        }
    }

    /// Part of a line: counted against the cap before it is kept.
    fn take_piece(&mut self, piece: &[u8], out: &mut Vec<SseEvent>) {
        self.line_started |= !piece.is_empty();
        if self.discarding {
            return;
        }
        self.event_bytes = self.event_bytes.saturating_add(piece.len());
        if self.event_bytes > self.cap {
            self.discarding = true;
            self.line.clear();
            self.data.clear();
            self.has_data = false;
            out.push(SseEvent::Oversize);
            return;
        }
        self.line.extend_from_slice(piece);
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.line);
        if !std::mem::take(&mut self.line_started) {
            self.dispatch(out);
            return;
        }
        if self.discarding {
            return;
        }
        // The end of line counts too, so a flood of empty `data:` lines is
        // an oversized event, not an endless one.
        self.event_bytes += 1;
        if line[0] == b':' {
            return; // a comment (keep-alive)
        }
        let (field, value) = match memchr::memchr(b':', &line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"id" if !value.contains(&0) && value.len() <= MAX_EVENT_ID_BYTES => {
                self.last_event_id = std::str::from_utf8(value).ok().map(str::to_owned);
            }
            b"retry" => {
                if let Some(ms) = std::str::from_utf8(value)
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse().ok())
                {
                    self.retry_ms = Some(ms);
                }
            }
            // `event:` names the type; neither user needs it: MCP sends
            // only `message` events, and both model APIs repeat the type
            // in the data's JSON (`"type":…`) or use only one.
            _ => {}
        }
    }

    /// A blank line: the event is complete.
    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if !self.discarding && self.has_data {
            out.push(SseEvent::Message {
                data: std::mem::take(&mut self.data),
            });
        }
        self.data.clear();
        self.has_data = false;
        self.event_bytes = 0;
        self.discarding = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(cap: usize, parts: &[&[u8]]) -> (Vec<SseEvent>, SseParser) {
        let mut p = SseParser::new(cap);
        let mut out = Vec::new();
        for part in parts {
            p.feed(part, &mut out);
            assert!(p.line.len() <= cap && p.data.len() <= cap);
        }
        (out, p)
    }

    fn msg(s: &str) -> SseEvent {
        SseEvent::Message {
            data: s.as_bytes().to_vec(),
        }
    }

    #[test]
    fn events_split_across_reads_are_joined() {
        let (out, _) = parse(
            100,
            &[
                b"event: mess",
                b"age\nda",
                b"ta: {\"a\"",
                b":1}\n",
                b"\n",
                b"data:x\n\n",
            ],
        );
        assert_eq!(out, vec![msg("{\"a\":1}"), msg("x")]);
    }

    #[test]
    fn a_crlf_split_between_reads_is_one_end_of_line() {
        let (out, _) = parse(100, &[b"data: a\r", b"\n\r", b"\ndata: b\r\r"]);
        assert_eq!(out, vec![msg("a"), msg("b")]);
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let (out, _) = parse(100, &[b"data: {\"a\":\ndata:  1}\n\n"]);
        assert_eq!(out, vec![msg("{\"a\":\n 1}")]);
    }

    #[test]
    fn ids_and_retry_are_kept_and_comments_ignored() {
        let (out, p) = parse(
            100,
            &[b": keep-alive\n\nid: 7\ndata: a\n\nid: 8\n\nretry: 1500\n\n"],
        );
        assert_eq!(out, vec![msg("a")]);
        assert_eq!(p.last_event_id(), Some("8"));
        assert_eq!(p.retry_ms(), Some(1500));
        let (_, p) = parse(100, &[b"id: a\0b\n\n"]);
        assert_eq!(p.last_event_id(), None, "an id with NUL is ignored");
    }

    #[test]
    fn an_event_without_data_is_not_dispatched() {
        let (out, _) = parse(100, &[b"event: ping\n\ndata\n\n"]);
        assert_eq!(out, vec![msg("")], "a bare `data` line is empty data");
    }

    #[test]
    fn an_oversized_event_is_reported_once_and_the_next_is_whole() {
        let big = vec![b'x'; 64];
        let (out, _) = parse(
            32,
            &[b"data: ", &big, &big, b"\ndata: more\n\ndata: ok\n\n"],
        );
        assert_eq!(out, vec![SseEvent::Oversize, msg("ok")]);
    }

    #[test]
    fn an_endless_event_is_cut_at_the_cap_even_in_small_lines() {
        let mut p = SseParser::new(1000);
        let mut out = Vec::new();
        for _ in 0..10_000 {
            p.feed(b"data: 0123456789\n", &mut out);
            assert!(p.data.len() <= 1000);
        }
        assert_eq!(out, vec![SseEvent::Oversize]);
        let mut p = SseParser::new(1000);
        for _ in 0..10_000 {
            p.feed(b": comment without end\n", &mut out);
        }
        assert_eq!(out.len(), 2, "comments count toward the event too");
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let (out, _) = parse(100, &[b"\xef\xbb\xbfdata: a\n\n"]);
        assert_eq!(out, vec![msg("a")]);
    }

    #[test]
    fn a_byte_order_mark_split_across_reads_is_skipped() {
        let (out, _) = parse(100, &[b"\xef", b"", b"\xbb", b"\xbfdata: a\n\n"]);
        assert_eq!(out, vec![msg("a")]);
        // The start of a mark that turns out not to be one is kept: here
        // it makes the first line's field unknown, split or not.
        let (whole, _) = parse(100, &[b"\xef\xbbdata: a\n\ndata: b\n\n"]);
        let (split, _) = parse(100, &[b"\xef", b"\xbb", b"data: a\n\ndata: b\n\n"]);
        assert_eq!(whole, vec![msg("b")]);
        assert_eq!(split, whole);
    }

    #[test]
    fn an_empty_read_between_cr_and_lf_keeps_them_one_end_of_line() {
        let (out, _) = parse(100, &[b"data: a\r", b"", b"\ndata: b\n\n"]);
        assert_eq!(
            out,
            vec![SseEvent::Message {
                data: b"a\nb".to_vec()
            }]
        );
    }
}
