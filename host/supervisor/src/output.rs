//! The bounded copy of a call's output that the host keeps.
//!
//! **Invariant:** a [`CapturedOutput`] never holds more than its limit plus
//! one chunk ([`bulkhead_ipc::MAX_CHUNK_BYTES`]), whatever is pushed into it.
//! Past the limit, bytes are counted, not stored. With a tail wanted, the
//! head keeps `limit - tail` bytes and a ring keeps the last `tail` bytes.
//! Each cut falls on a character (`bulkhead_ipc::utf8`), so a side may
//! keep up to 3 bytes less: kept text never ends or starts in half of one.

use std::collections::VecDeque;

use bulkhead_ipc::StreamId;
use bytes::Bytes;

/// One run of bytes from one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Which stream of the tool's the bytes came from.
    pub stream: StreamId,
    /// The bytes, as the tool wrote them (not necessarily UTF-8).
    pub data: Bytes,
}

/// A call's output as the host keeps it: never more than its limit plus
/// one chunk, whatever is pushed into it. Past the limit, bytes are
/// counted, not stored; with a tail wanted, the head keeps `limit - tail`
/// bytes and a ring the last `tail`. The default keeps nothing.
#[derive(Debug, Default)]
pub struct CapturedOutput {
    head_limit: u64,
    tail_limit: u64,
    head: Vec<Segment>,
    head_len: u64,
    /// The head was cut: it takes nothing more.
    head_closed: bool,
    tail: VecDeque<Segment>,
    tail_len: u64,
    /// Bytes were dropped from the tail's start.
    tail_cut: bool,
    /// Everything pushed, kept or not.
    seen: u64,
    lines_seen: u64,
}

impl CapturedOutput {
    /// Keeps at most `limit` bytes, the last `tail` of them (at most
    /// `limit`) from the end of the output and the rest from its start.
    pub fn new(limit: u64, tail: u64) -> Self {
        let tail = tail.min(limit);
        Self {
            head_limit: limit - tail,
            tail_limit: tail,
            ..Self::default()
        }
    }

    /// Takes a chunk. Returns the part kept in the head (to show live), if any.
    pub fn push(&mut self, stream: StreamId, data: Bytes) -> Option<Bytes> {
        self.seen += data.len() as u64;
        // SIMD count: a byte loop here stood out in the host's CPU profile
        // of output-heavy calls.
        self.lines_seen += memchr::memchr_iter(b'\n', &data).count() as u64;
        let room = if self.head_closed {
            0
        } else {
            self.head_limit.saturating_sub(self.head_len)
        };
        let mut take = usize::try_from(room).unwrap_or(usize::MAX).min(data.len());
        let mut moved = Vec::new();
        if take < data.len() && !self.head_closed && self.head_limit > 0 {
            // The head ends here: on a character, so the kept text does
            // not end in half of one. Its start may be in earlier chunks.
            let (cut, retracted) = self.head_cut(&data, take);
            take = cut;
            moved = retracted;
            // Nothing more goes into the head, though a few bytes of its
            // room may be left.
            self.head_closed = true;
        }
        let kept = (take > 0).then(|| data.slice(..take));
        if let Some(k) = &kept {
            self.head_len += k.len() as u64;
            self.head.push(Segment {
                stream,
                data: k.clone(),
            });
        }
        if self.tail_limit > 0 {
            for seg in moved {
                self.push_tail(seg.stream, seg.data);
            }
            if take < data.len() {
                self.push_tail(stream, data.slice(take..));
            }
        }
        kept
    }

    /// Where the head's cut at `room` bytes into `data` falls on a
    /// character: how much of `data` to keep, and the ends of earlier head
    /// segments given back when the character started in them (at most 3
    /// bytes, already shown live: a chunk that ends inside a character
    /// right at the cap is rare, and the kept output must still be whole).
    fn head_cut(&mut self, data: &[u8], room: usize) -> (usize, Vec<Segment>) {
        if room >= 3 {
            // The character the cut would split starts in this chunk.
            return (bulkhead_ipc::utf8::prefix_len(data, room), Vec::new());
        }
        // The last bytes of the head, then this chunk up to the cut.
        let mut window = [0u8; 3 + 3];
        let mut back = 0;
        'fill: for seg in self.head.iter().rev() {
            for &b in seg.data.iter().rev() {
                if back == 3 {
                    break 'fill;
                }
                back += 1;
                window[3 - back] = b;
            }
        }
        window[3..3 + room + 1].copy_from_slice(&data[..room + 1]);
        let window = &window[3 - back..3 + room + 1];
        let cut = bulkhead_ipc::utf8::prefix_len(window, back + room);
        if cut >= back {
            return (cut - back, Vec::new());
        }
        let mut give_back = back - cut;
        let mut moved = Vec::new();
        while give_back > 0 {
            let Some(last) = self.head.last_mut() else {
                break;
            };
            let n = last.data.len();
            if n <= give_back {
                give_back -= n;
                self.head_len -= n as u64;
                if let Some(seg) = self.head.pop() {
                    moved.push(seg);
                }
            } else {
                moved.push(Segment {
                    stream: last.stream,
                    data: last.data.slice(n - give_back..),
                });
                last.data = last.data.slice(..n - give_back);
                self.head_len -= give_back as u64;
                give_back = 0;
            }
        }
        moved.reverse();
        (0, moved)
    }

    fn push_tail(&mut self, stream: StreamId, data: Bytes) {
        // A piece longer than the whole tail only contributes its end.
        let data = if data.len() as u64 > self.tail_limit {
            self.tail_cut = true;
            data.slice(data.len() - self.tail_limit as usize..)
        } else {
            data
        };
        self.tail_len += data.len() as u64;
        self.tail.push_back(Segment { stream, data });
        while self.tail_len > self.tail_limit {
            let Some(front) = self.tail.front_mut() else {
                break;
            };
            self.tail_cut = true;
            let excess = (self.tail_len - self.tail_limit) as usize;
            if front.data.len() <= excess {
                self.tail_len -= front.data.len() as u64;
                self.tail.pop_front();
            } else {
                front.data = front.data.slice(excess..);
                self.tail_len -= excess as u64;
            }
        }
        // Once the tail's start was cut, its first bytes may be the rest of
        // a character whose start is gone, whichever push brought them.
        if self.tail_cut {
            self.tail_to_char();
        }
    }

    /// Drops the rest of a character the tail's cut start left behind
    /// (at most 3 bytes), so the kept tail starts whole.
    fn tail_to_char(&mut self) {
        let mut window = [0u8; 4];
        let mut n = 0;
        'fill: for seg in &self.tail {
            for &b in seg.data.iter() {
                if n == window.len() {
                    break 'fill;
                }
                window[n] = b;
                n += 1;
            }
        }
        let mut drop = bulkhead_ipc::utf8::suffix_start(&window[..n], 0);
        while drop > 0 {
            let Some(front) = self.tail.front_mut() else {
                break;
            };
            let len = front.data.len();
            if len <= drop {
                drop -= len;
                self.tail_len -= len as u64;
                self.tail.pop_front();
            } else {
                front.data = front.data.slice(drop..);
                self.tail_len -= drop as u64;
                drop = 0;
            }
        }
    }

    /// Bytes produced in all.
    pub(crate) fn bytes_seen(&self) -> u64 {
        self.seen
    }

    pub(crate) fn lines_seen(&self) -> u64 {
        self.lines_seen
    }

    /// Bytes held now.
    pub fn kept(&self) -> u64 {
        self.head_len + self.tail_len
    }

    /// The kept start of the output, in order.
    pub fn head(&self) -> &[Segment] {
        &self.head
    }

    /// The kept end of the output, in order; empty unless a tail was
    /// asked for and the output outgrew the head.
    pub fn tail(&self) -> impl Iterator<Item = &Segment> {
        self.tail.iter()
    }

    /// Head, `marker`, tail, as text (invalid UTF-8 becomes U+FFFD), written
    /// piece by piece: nothing is copied, so printing or serializing the
    /// output (serde's `collect_str`) costs no second buffer. A character
    /// split across two chunks is joined, not replaced.
    pub fn display<'a>(&'a self, marker: Option<&'a str>) -> impl std::fmt::Display + 'a {
        OutputDisplay {
            output: self,
            marker,
        }
    }
}

struct OutputDisplay<'a> {
    output: &'a CapturedOutput,
    marker: Option<&'a str>,
}

impl std::fmt::Display for OutputDisplay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = LossyText::default();
        for seg in &self.output.head {
            text.feed(f, &seg.data)?;
        }
        text.finish(f)?;
        if let Some(m) = self.marker {
            f.write_str(m)?;
        }
        for seg in &self.output.tail {
            text.feed(f, &seg.data)?;
        }
        text.finish(f)
    }
}

/// Lossy UTF-8 decoding across pieces: the few bytes of a character cut at
/// the end of one piece wait for the next.
#[derive(Default)]
struct LossyText {
    carry: Vec<u8>,
}

/// Length of the UTF-8 sequence a lead byte starts; 0 for a byte that
/// cannot start one.
fn utf8_width(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 0,
    }
}

impl LossyText {
    fn feed(&mut self, f: &mut std::fmt::Formatter<'_>, mut bytes: &[u8]) -> std::fmt::Result {
        if let Some(&lead) = self.carry.first() {
            let need = utf8_width(lead).saturating_sub(self.carry.len());
            // Only continuation bytes (10xxxxxx) can complete the character.
            let take = bytes
                .iter()
                .take(need)
                .take_while(|&&b| b & 0xc0 == 0x80)
                .count();
            self.carry.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if take == need || !bytes.is_empty() {
                f.write_str(&String::from_utf8_lossy(&self.carry))?;
                self.carry.clear();
            } else {
                // Still cut, and this piece is used up: wait for the next.
                return Ok(());
            }
        }
        let mut chunks = bytes.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            f.write_str(chunk.valid())?;
            let invalid = chunk.invalid();
            let last = chunks.peek().is_none();
            let incomplete = invalid
                .first()
                .is_some_and(|&b| utf8_width(b) > invalid.len());
            if last && incomplete {
                self.carry.extend_from_slice(invalid);
            } else if !invalid.is_empty() {
                f.write_str("\u{fffd}")?;
            }
        }
        Ok(())
    }

    /// A character still cut at the end is invalid.
    fn finish(&mut self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.carry.is_empty() {
            self.carry.clear();
            f.write_str("\u{fffd}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(n: usize, b: u8) -> Bytes {
        Bytes::from(vec![b; n])
    }

    #[test]
    fn head_only_is_bounded_and_counts_the_rest() {
        let mut c = CapturedOutput::new(100, 0);
        for _ in 0..1000 {
            c.push(StreamId::Stdout, chunk(64, b'a'));
        }
        assert_eq!(c.kept(), 100);
        assert_eq!(c.bytes_seen(), 64_000);
        assert_eq!(c.bytes_seen() - c.kept(), 63_900);
    }

    #[test]
    fn tail_keeps_the_last_bytes() {
        let mut c = CapturedOutput::new(10, 4);
        c.push(StreamId::Stdout, Bytes::from_static(b"0123456789abcdef"));
        c.push(StreamId::Stderr, Bytes::from_static(b"XYZ"));
        let marker = format!("[{}]", c.bytes_seen() - c.kept());
        assert_eq!(c.display(Some(&marker)).to_string(), "012345[9]fXYZ");
        assert_eq!(c.kept(), 10);
    }

    #[test]
    fn oversized_tail_piece_keeps_only_its_end() {
        let mut c = CapturedOutput::new(8, 8);
        c.push(StreamId::Stdout, chunk(1 << 16, b'z'));
        assert_eq!(c.kept(), 8);
    }

    #[test]
    fn a_character_split_across_chunks_is_joined() {
        let text = "héllo wörld ✓ 🦀 done";
        let bytes = text.as_bytes();
        for cut in 0..bytes.len() {
            let mut c = CapturedOutput::new(1 << 10, 0);
            c.push(StreamId::Stdout, Bytes::copy_from_slice(&bytes[..cut]));
            c.push(StreamId::Stdout, Bytes::copy_from_slice(&bytes[cut..]));
            assert_eq!(c.display(None).to_string(), text, "cut at {cut}");
        }
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut c = CapturedOutput::new(1 << 10, 0);
        c.push(StreamId::Stdout, Bytes::from_static(b"a\xffb\xe2"));
        c.push(StreamId::Stdout, Bytes::from_static(b"z"));
        c.push(StreamId::Stdout, Bytes::from_static(b"\xf0\x9f"));
        assert_eq!(c.display(None).to_string(), "a\u{fffd}b\u{fffd}z\u{fffd}");
        // The same as decoding the whole at once.
        assert_eq!(
            String::from_utf8_lossy(b"a\xffb\xe2z\xf0\x9f"),
            "a\u{fffd}b\u{fffd}z\u{fffd}"
        );
    }

    /// Head and tail of `text` pushed in two chunks split at `split`.
    fn cut_in_two(text: &str, split: usize, limit: u64, tail: u64) -> (String, u64) {
        let bytes = text.as_bytes();
        let mut c = CapturedOutput::new(limit, tail);
        c.push(StreamId::Stdout, Bytes::copy_from_slice(&bytes[..split]));
        c.push(StreamId::Stdout, Bytes::copy_from_slice(&bytes[split..]));
        (c.display(Some("|")).to_string(), c.kept())
    }

    #[test]
    fn head_and_tail_cuts_end_on_two_three_and_four_byte_characters() {
        for ch in ['é', '€', '🦀'] {
            let text: String = std::iter::repeat_n(ch, 12).collect();
            let w = ch.len_utf8() as u64;
            for split in 0..=text.len() {
                for limit in 0..text.len() as u64 {
                    for tail in [0, limit / 2, limit] {
                        let (shown, kept) = cut_in_two(&text, split, limit, tail);
                        let case = format!("{ch} split {split} limit {limit} tail {tail}");
                        assert!(!shown.contains('\u{fffd}'), "{case}: {shown}");
                        let (head, rest) = shown.split_once('|').unwrap_or((&shown, ""));
                        assert_eq!((head.len() + rest.len()) as u64, kept, "{case}");
                        assert!(kept <= limit, "{case}");
                        // Each cut drops less than one character.
                        assert!(limit - kept < 2 * w, "{case}: kept {kept}");
                        assert!(head.chars().all(|c| c == ch) && rest.chars().all(|c| c == ch));
                    }
                }
            }
        }
    }
}
