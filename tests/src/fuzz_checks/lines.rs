//! `BoundedLines`, the MCP stdio line splitter: fed in any pieces, it gives
//! exactly the input's lines, each oversized one reported once with a
//! prefix of it, and never holds more than about one cap.

use bulkhead_ipc::lines::{BoundedLines, LineEvent, OVERSIZE_PREFIX_BYTES};

use super::alloc::{assert_within, counting, current, peak_during};
use super::{Params, Splits};

/// What the splitter keeps between feeds: its line buffer, which `Vec`'s
/// doubling may leave at up to twice the cap, plus the oversize prefix it
/// builds when a line passes the cap.
fn retained_bound(cap: usize) -> usize {
    2 * cap + OVERSIZE_PREFIX_BYTES + 1024
}

/// One feed may also allocate what it hands out: the lines of this piece
/// (at most the piece, copied once) and the event vector (an event per two
/// bytes at most, `size_of::<LineEvent>()` each, doubled by growth).
fn feed_bound(cap: usize, piece: usize) -> usize {
    retained_bound(cap) + piece * (2 + std::mem::size_of::<LineEvent>())
}

pub fn lines(data: &[u8]) {
    let mut p = Params::new(data);
    // Caps from 1 byte to a little over the oversize prefix, so both a
    // prefix shorter than the cap and one cut at OVERSIZE_PREFIX_BYTES occur.
    let cap = usize::from(p.u16()) % (OVERSIZE_PREFIX_BYTES + 512) + 1;
    let seed = p.u64();
    let input = p.rest();

    let mut splitter = BoundedLines::new(cap);
    let mut events = Vec::new();
    let pieces = Splits::new(seed).split(input, 64);
    // Heap of the lines handed out so far, kept as they come (summing it
    // afresh after every piece made the check quadratic).
    let mut handed_lines = 0;
    let base = current();
    for piece in pieces {
        let mut out = Vec::new();
        let ((), peak) = peak_during(|| splitter.feed(piece, &mut out));
        assert_within(peak, feed_bound(cap, piece.len()), "BoundedLines::feed");
        handed_lines += events_heap(&out);
        events.append(&mut out);
        drop(out);
        if counting() {
            // What the splitter itself holds: all that is live on this
            // thread beyond the events handed out.
            let held = usize::try_from(current() - base).unwrap_or(0);
            let handed = handed_lines + events.capacity() * std::mem::size_of::<LineEvent>();
            assert!(
                held <= handed + retained_bound(cap),
                "BoundedLines holds {} bytes with a {cap}-byte cap",
                held.saturating_sub(handed)
            );
        }
    }

    // The model: the input's complete lines, in order.
    let mut expected = Vec::new();
    let mut parts: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    let unterminated = parts.pop().unwrap_or_default();
    for line in parts {
        if line.len() > cap {
            expected.push(Expect::Oversize(line));
        } else if !line.iter().all(u8::is_ascii_whitespace) {
            expected.push(Expect::Line(line));
        }
    }
    if unterminated.len() > cap {
        expected.push(Expect::Oversize(unterminated));
        // Everything of the line past the part buffered before it passed
        // the cap (at most the cap) is counted as dropped.
        let dropped = splitter.discarded();
        assert!(
            dropped <= unterminated.len() as u64
                && dropped + cap as u64 >= unterminated.len() as u64,
            "{dropped} bytes reported dropped of a {}-byte unterminated line with a {cap}-byte cap",
            unterminated.len()
        );
    } else {
        assert_eq!(splitter.discarded(), 0, "nothing is being dropped");
    }
    assert_eq!(
        events.len(),
        expected.len(),
        "{} events for {} lines (cap {cap})",
        events.len(),
        expected.len()
    );
    for (got, want) in events.iter().zip(&expected) {
        match (got, want) {
            (LineEvent::Line(got), Expect::Line(want)) => assert_eq!(got, want),
            (LineEvent::Oversize { prefix }, Expect::Oversize(line)) => {
                assert!(line.starts_with(prefix), "the prefix is not the line's");
                assert!(
                    prefix.len() <= OVERSIZE_PREFIX_BYTES,
                    "a {}-byte prefix",
                    prefix.len()
                );
                assert!(
                    prefix.len() >= (cap + 1).min(OVERSIZE_PREFIX_BYTES),
                    "a {}-byte prefix of a line over a {cap}-byte cap",
                    prefix.len()
                );
            }
            (got, want) => panic!("got {got:?}, expected {want:?}"),
        }
    }
}

#[derive(Debug)]
enum Expect<'a> {
    Line(&'a [u8]),
    Oversize(&'a [u8]),
}

/// Heap held by the lines of `events` (not the vector's own).
fn events_heap(events: &[LineEvent]) -> usize {
    events
        .iter()
        .map(|e| match e {
            LineEvent::Line(l) => l.capacity(),
            LineEvent::Oversize { prefix } => prefix.capacity(),
        })
        .sum::<usize>()
}
