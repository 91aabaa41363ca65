//! The bounded copy of a call's output that the host keeps.
//!
//! **Invariant:** a [`CapturedOutput`] never holds more than its limit plus
//! one chunk ([`bulkhead_ipc::MAX_CHUNK_BYTES`]), whatever is pushed into it.
//! Past the limit, bytes are counted, not stored. With a tail wanted, the
//! head keeps `limit - tail` bytes and a ring keeps the last `tail` bytes.

use std::collections::VecDeque;

use bulkhead_ipc::StreamId;
use bytes::Bytes;

/// One run of bytes from one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub stream: StreamId,
    pub data: Bytes,
}

#[derive(Debug, Default)]
pub struct CapturedOutput {
    head_limit: u64,
    tail_limit: u64,
    head: Vec<Segment>,
    head_len: u64,
    tail: VecDeque<Segment>,
    tail_len: u64,
    /// Everything pushed, kept or not.
    seen: u64,
    lines_seen: u64,
}

impl CapturedOutput {
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
        self.lines_seen += data.iter().filter(|&&b| b == b'\n').count() as u64;
        let room = self.head_limit.saturating_sub(self.head_len);
        let take = usize::try_from(room).unwrap_or(usize::MAX).min(data.len());
        let kept = (take > 0).then(|| data.slice(..take));
        if let Some(k) = &kept {
            self.head_len += k.len() as u64;
            self.head.push(Segment {
                stream,
                data: k.clone(),
            });
        }
        if self.tail_limit > 0 && take < data.len() {
            self.push_tail(stream, data.slice(take..));
        }
        kept
    }

    fn push_tail(&mut self, stream: StreamId, data: Bytes) {
        // A piece longer than the whole tail only contributes its end.
        let data = if data.len() as u64 > self.tail_limit {
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
            let excess = (self.tail_len - self.tail_limit) as usize;
            if front.data.len() <= excess {
                self.tail_len -= front.data.len() as u64;
                self.tail.pop_front();
            } else {
                front.data = front.data.slice(excess..);
                self.tail_len -= excess as u64;
            }
        }
    }

    /// Bytes produced in all.
    pub fn bytes_seen(&self) -> u64 {
        self.seen
    }

    pub fn lines_seen(&self) -> u64 {
        self.lines_seen
    }

    /// Bytes held now.
    pub fn kept(&self) -> u64 {
        self.head_len + self.tail_len
    }

    /// Bytes produced but not kept.
    pub fn cut(&self) -> u64 {
        self.seen - self.kept()
    }

    pub fn head(&self) -> &[Segment] {
        &self.head
    }

    pub fn tail(&self) -> impl Iterator<Item = &Segment> {
        self.tail.iter()
    }

    /// Head and tail as one byte string, with `marker` between them. For
    /// display and JSON.
    pub fn render(&self, marker: Option<&str>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.kept() as usize + marker.map_or(0, str::len));
        for s in &self.head {
            out.extend_from_slice(&s.data);
        }
        if let Some(m) = marker {
            out.extend_from_slice(m.as_bytes());
        }
        for s in &self.tail {
            out.extend_from_slice(&s.data);
        }
        out
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
        assert_eq!(c.cut(), 63_900);
    }

    #[test]
    fn tail_keeps_the_last_bytes() {
        let mut c = CapturedOutput::new(10, 4);
        c.push(StreamId::Stdout, Bytes::from_static(b"0123456789abcdef"));
        c.push(StreamId::Stderr, Bytes::from_static(b"XYZ"));
        let marker = format!("[{}]", c.cut());
        let text = c.render(Some(&marker));
        assert_eq!(String::from_utf8(text).unwrap(), "012345[9]fXYZ");
        assert_eq!(c.kept(), 10);
    }

    #[test]
    fn oversized_tail_piece_keeps_only_its_end() {
        let mut c = CapturedOutput::new(8, 8);
        c.push(StreamId::Stdout, chunk(1 << 16, b'z'));
        assert_eq!(c.kept(), 8);
    }
}
