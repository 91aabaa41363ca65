//! How `mcp wrap` watches a session's start without changing it: the
//! client's `initialize` request is spotted in what the client sends (the
//! bytes still go to the server unchanged), and the server's answer to it
//! in what comes back, line by line, until the answer has passed.
//!
//! Both sides look at whole lines, under caps, so watching never holds
//! more than one capped line: the client's lines are only peeked at until
//! its first request, and the server's are held only while the answer to
//! `initialize` is awaited (or, once bulkhead has answered in its stead,
//! to be dropped).

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

/// How much of one client line is looked at to find `initialize`. A real
/// `initialize` request is a few hundred bytes (capabilities and client
/// info); 64 KiB leaves room for large capability objects while bounding
/// what is held. A longer first line is not watched.
const CLIENT_LINE_PEEK: usize = 64 << 10;

/// Room above the relay's message cap for a server line held whole: the
/// relay's own lines (its errors) are short, and one newline.
const LINE_SLACK: usize = 64 << 10;

/// What the client's first request was.
#[derive(Debug, Clone, PartialEq)]
pub enum Spotted {
    /// `initialize`, with this id.
    Initialize(Value),
    /// Another method, a line too long to look at, or no request at all
    /// before the client's input ended: there is nothing to watch.
    Nothing,
}

/// Finds the client's first request in its bytes, as they are read.
#[derive(Debug, Default)]
pub struct InitSpotter {
    line: Vec<u8>,
    done: bool,
}

#[derive(Deserialize)]
struct RequestPeek {
    id: Option<Value>,
    method: Option<String>,
}

impl InitSpotter {
    /// Looks at the next bytes the client sent; `Some` once, when the
    /// first request has been seen (or cannot be).
    pub fn feed(&mut self, mut data: &[u8]) -> Option<Spotted> {
        while !self.done && !data.is_empty() {
            let end = newline(data);
            let piece = &data[..end.unwrap_or(data.len())];
            data = &data[end.map_or(data.len(), |i| i + 1)..];
            if self.line.len() + piece.len() > CLIENT_LINE_PEEK {
                self.done = true;
                return Some(Spotted::Nothing);
            }
            self.line.extend_from_slice(piece);
            // The line goes on in the next read.
            end?;
            let line = std::mem::take(&mut self.line);
            // Blank lines and notifications come before no request in a
            // session that follows the protocol, but they are harmless:
            // the first line with both an id and a method decides.
            if let Ok(RequestPeek {
                id: Some(id),
                method: Some(method),
            }) = serde_json::from_slice::<RequestPeek>(&line)
            {
                self.done = true;
                return Some(if method == "initialize" {
                    Spotted::Initialize(id)
                } else {
                    Spotted::Nothing
                });
            }
        }
        None
    }
}

/// A piece of the server's output, as the gate hands it on.
#[derive(Debug, PartialEq)]
pub enum Piece {
    /// One whole line, its newline included.
    Line(Vec<u8>),
    /// Part of a line longer than the gate holds, passed on as it came.
    Raw(Vec<u8>),
}

/// Splits the server's output into whole lines while the watch needs
/// them, holding at most `cap` bytes of an unfinished line. A line over
/// the cap (which the relay never sends: it caps lines at the message
/// limit) is passed on as it comes rather than held or dropped.
#[derive(Debug)]
pub struct LineGate {
    held: Vec<u8>,
    cap: usize,
    /// Inside an over-cap line: bytes go on raw until its newline.
    raw: bool,
}

impl LineGate {
    /// A gate for a relay whose message cap is `max_message` bytes.
    pub fn new(max_message: u64) -> Self {
        let cap = usize::try_from(max_message)
            .unwrap_or(usize::MAX)
            .saturating_add(LINE_SLACK);
        Self {
            held: Vec::new(),
            cap,
            raw: false,
        }
    }

    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<Piece>) {
        while !data.is_empty() {
            let end = newline(data);
            let take = end.map_or(data.len(), |i| i + 1);
            let (piece, rest) = data.split_at(take);
            data = rest;
            if self.raw {
                out.push(Piece::Raw(piece.to_vec()));
                self.raw = end.is_none();
                continue;
            }
            if self.held.len() + piece.len() > self.cap {
                let mut raw = std::mem::take(&mut self.held);
                raw.extend_from_slice(piece);
                out.push(Piece::Raw(raw));
                self.raw = end.is_none();
                continue;
            }
            self.held.extend_from_slice(piece);
            if end.is_some() {
                out.push(Piece::Line(std::mem::take(&mut self.held)));
            }
        }
    }

    /// What is held of an unfinished line, to pass on when the watch ends.
    pub fn take_rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

/// Where the first newline in `data` is. A byte loop: these are short
/// lines of a session's start, and the binary has no `memchr` of its own.
fn newline(data: &[u8]) -> Option<usize> {
    data.iter().position(|&b| b == b'\n')
}

/// What a server line is to the watched request.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// The server's answer (a result, or its own error).
    FromServer,
    /// bulkhead's error standing for the answer of a server that ended
    /// (from the worker's relay, or from the host when the worker died):
    /// the server ended, for this reason.
    Ended(String),
}

#[derive(Deserialize)]
struct ResponsePeek {
    id: Option<Value>,
    method: Option<IgnoredAny>,
    error: Option<ErrorPeek>,
}

#[derive(Deserialize)]
struct ErrorPeek {
    message: Option<String>,
}

/// Whether `line` answers the request with `id`; `None` for any other
/// line. Only the id, method and error message are read: a large result
/// is skipped over, not built.
pub fn answer_to(line: &[u8], id: &Value) -> Option<Answer> {
    let peek: ResponsePeek = serde_json::from_slice(line).ok()?;
    if peek.method.is_some() || peek.id.as_ref() != Some(id) {
        return None;
    }
    // The relay's and the host's answers in a dead server's stead read
    // `bulkhead: the MCP server … before answering`.
    let ended = peek.error.and_then(|e| e.message).and_then(|m| {
        m.strip_prefix("bulkhead: ")?
            .strip_suffix(" before answering")
            .map(str::to_owned)
    });
    Some(match ended {
        Some(why) => Answer::Ended(why),
        None => Answer::FromServer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_request_is_spotted_across_reads() {
        let mut s = InitSpotter::default();
        assert_eq!(s.feed(b"\n{\"jsonrpc\":\"2.0\",\"id\":7,\"meth"), None);
        assert_eq!(
            s.feed(b"od\":\"initialize\",\"params\":{}}\n{\"id\":8"),
            Some(Spotted::Initialize(json!(7)))
        );
        assert_eq!(s.feed(b",\"method\":\"initialize\"}\n"), None);
    }

    #[test]
    fn another_first_request_or_a_huge_line_is_not_watched() {
        let mut s = InitSpotter::default();
        let line = b"{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"tools/list\"}\n";
        assert_eq!(s.feed(line), Some(Spotted::Nothing));
        let mut s = InitSpotter::default();
        assert_eq!(
            s.feed(&vec![b' '; CLIENT_LINE_PEEK + 1]),
            Some(Spotted::Nothing)
        );
    }

    #[test]
    fn the_gate_holds_lines_whole_and_passes_an_over_cap_line_raw() {
        let mut g = LineGate::new(0);
        let mut out = Vec::new();
        g.feed(b"{\"a\":1}\n{\"b\"", &mut out);
        assert_eq!(out, vec![Piece::Line(b"{\"a\":1}\n".to_vec())]);
        assert_eq!(g.take_rest(), b"{\"b\"".to_vec());
        let mut out = Vec::new();
        let big = vec![b'x'; LINE_SLACK + 1];
        g.feed(&big, &mut out);
        g.feed(b"yy\nz\n", &mut out);
        assert_eq!(
            out,
            vec![
                Piece::Raw(big),
                Piece::Raw(b"yy\n".to_vec()),
                Piece::Line(b"z\n".to_vec())
            ]
        );
    }

    #[test]
    fn answers_are_told_from_a_dead_servers_stand_in() {
        let id = json!(0);
        let ok = br#"{"jsonrpc":"2.0","id":0,"result":{"big":[1,2,3]}}"#;
        assert_eq!(answer_to(ok, &id), Some(Answer::FromServer));
        let dead = br#"{"jsonrpc":"2.0","id":0,"error":{"code":-32603,"message":"bulkhead: the MCP server exited (code 1) before answering"}}"#;
        assert_eq!(
            answer_to(dead, &id),
            Some(Answer::Ended("the MCP server exited (code 1)".into()))
        );
        let other = br#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        assert_eq!(answer_to(other, &id), None);
        let request = br#"{"jsonrpc":"2.0","id":0,"method":"roots/list"}"#;
        assert_eq!(answer_to(request, &id), None);
    }
}
