//! `SseParser`: the same events (and the same last event id and retry
//! time) whatever pieces the body arrives in, no event's data over the cap,
//! and never more than a few caps held.

use bulkhead_ipc::sse::{SseEvent, SseParser};

use super::alloc::{assert_within, peak_during};
use super::{Params, Splits};

/// Longest `id:` the parser keeps (`MAX_EVENT_ID_BYTES` in sse.rs).
const MAX_EVENT_ID_BYTES: usize = 1024;

/// One feed allocates the line and the data buffers (each at most the cap,
/// which `Vec`'s doubling may make twice the cap), the last event id, and
/// the events it hands out: at most the piece's bytes, plus the event
/// vector (an event per two bytes at most, doubled by growth).
fn feed_bound(cap: usize, piece: usize) -> usize {
    4 * cap + 2 * MAX_EVENT_ID_BYTES + piece * (2 + std::mem::size_of::<SseEvent>()) + 1024
}

struct Parsed {
    events: Vec<SseEvent>,
    id: Option<String>,
    retry: Option<u64>,
}

fn parse(cap: usize, pieces: &[&[u8]]) -> Parsed {
    let mut parser = SseParser::new(cap);
    let mut events = Vec::new();
    for piece in pieces {
        let mut out = Vec::new();
        let ((), peak) = peak_during(|| parser.feed(piece, &mut out));
        assert_within(peak, feed_bound(cap, piece.len()), "SseParser::feed");
        for e in &out {
            if let SseEvent::Message { data } = e {
                assert!(
                    data.len() <= cap,
                    "{}-byte data with a {cap}-byte cap",
                    data.len()
                );
            }
        }
        events.append(&mut out);
    }
    Parsed {
        events,
        id: parser.last_event_id().map(str::to_owned),
        retry: parser.retry_ms(),
    }
}

pub fn sse(data: &[u8]) {
    let mut p = Params::new(data);
    let cap = usize::from(p.u16()) % 4096 + 1;
    let seed = p.u64();
    let body = p.rest();
    let whole = parse(cap, &[body]);
    let split = parse(cap, &Splits::new(seed).split(body, 32));
    let mut others = vec![(split, "in random pieces")];
    // A byte at a time, where that stays cheap: the worst split there is.
    if body.len() <= 1024 {
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        others.push((parse(cap, &bytes), "a byte at a time"));
    }
    for (other, how) in &others {
        assert_eq!(whole.events, other.events, "events differ when fed {how}");
        assert_eq!(whole.id, other.id, "last event id differs when fed {how}");
        assert_eq!(whole.retry, other.retry, "retry differs when fed {how}");
    }
}
