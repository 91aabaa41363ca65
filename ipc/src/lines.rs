//! Newline-delimited messages with a hard cap, enforced before any byte of
//! a message is parsed: MCP's stdio transport is one JSON-RPC message per
//! line, and a server decides how long a line is. Used by the worker's MCP
//! relay (on what the server writes) and by the host's MCP client (on what
//! the relay passes on), so neither holds more than one cap of a line.

/// How much of an oversized line is kept, to find the id of the request it
/// answers. JSON-RPC responses usually start with `"jsonrpc"` and `"id"`.
pub const OVERSIZE_PREFIX_BYTES: usize = 4096;

#[derive(Debug, PartialEq, Eq)]
pub enum LineEvent {
    /// A complete line, without its newline, at most the cap.
    Line(Vec<u8>),
    /// A line passed the cap. Sent once, as soon as it does (a line that
    /// never ends must not wait for its end); the rest of it up to the
    /// next newline is dropped.
    Oversize { prefix: Vec<u8> },
}

#[derive(Debug)]
pub struct BoundedLines {
    buf: Vec<u8>,
    cap: usize,
    discarding: bool,
    /// Bytes dropped so far of the oversized line being skipped.
    discarded: u64,
}

impl BoundedLines {
    pub fn new(cap: usize) -> Self {
        Self {
            buf: Vec::new(),
            cap,
            discarding: false,
            discarded: 0,
        }
    }

    /// How much of the current oversized line has been dropped: a line
    /// that keeps growing is a server that will not stop.
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    /// Bytes of the line being assembled: never more than the cap.
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<LineEvent>) {
        while !data.is_empty() {
            let (piece, ends_line) = match memchr::memchr(b'\n', data) {
                Some(i) => (&data[..i], true),
                None => (data, false),
            };
            data = &data[piece.len() + usize::from(ends_line)..];
            if self.discarding {
                self.discarded += piece.len() as u64;
            } else {
                if self.buf.len() + piece.len() > self.cap {
                    let room = OVERSIZE_PREFIX_BYTES.saturating_sub(self.buf.len());
                    let mut prefix = std::mem::take(&mut self.buf);
                    prefix.truncate(OVERSIZE_PREFIX_BYTES);
                    prefix.extend_from_slice(&piece[..piece.len().min(room)]);
                    out.push(LineEvent::Oversize { prefix });
                    self.discarding = true;
                    self.discarded = piece.len() as u64;
                } else {
                    self.buf.extend_from_slice(piece);
                }
            }
            if ends_line {
                if !self.discarding && !self.buf.iter().all(u8::is_ascii_whitespace) {
                    out.push(LineEvent::Line(std::mem::take(&mut self.buf)));
                }
                self.buf.clear();
                self.discarding = false;
                self.discarded = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(cap: usize, parts: &[&[u8]]) -> Vec<LineEvent> {
        let mut lines = BoundedLines::new(cap);
        let mut out = Vec::new();
        for p in parts {
            lines.feed(p, &mut out);
            assert!(lines.buffered() <= cap);
        }
        out
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        let out = feed(100, &[b"{\"a\"", b":1}\n{\"b\":2}\n\n{\"c\""]);
        assert_eq!(
            out,
            vec![
                LineEvent::Line(b"{\"a\":1}".to_vec()),
                LineEvent::Line(b"{\"b\":2}".to_vec())
            ]
        );
    }

    #[test]
    fn an_oversized_line_is_reported_once_as_soon_as_it_passes_the_cap() {
        let long = vec![b'x'; 50];
        let out = feed(20, &[b"{\"id\":7,", &long, &long]);
        assert_eq!(out.len(), 1);
        let LineEvent::Oversize { prefix } = &out[0] else {
            panic!()
        };
        assert!(prefix.starts_with(b"{\"id\":7,"));
    }

    #[test]
    fn the_line_after_an_oversized_one_is_whole() {
        let long = vec![b'x'; 50];
        let out = feed(20, &[&long, b"\n{\"ok\":1}\n"]);
        assert!(matches!(out[0], LineEvent::Oversize { .. }));
        assert_eq!(out[1], LineEvent::Line(b"{\"ok\":1}".to_vec()));
    }
}
