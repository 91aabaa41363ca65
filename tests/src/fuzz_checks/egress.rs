//! The egress proxy's parsers of what a sandboxed client sends first: the
//! HTTP request head (`read_opening`, `parse`) and the SOCKS5 greeting and
//! request. The same verdict whatever pieces the bytes arrive in and from
//! one parse of the whole head, and a bounded allocation.

use bulkhead_egress::MAX_HEAD;
use bulkhead_egress::fuzzing::{Verdict, parse_head, read_opening, socks_request};

use super::alloc::{assert_within, peak_during};
use super::{Params, Pieces, Splits, block_on};

/// `read_opening` allocates its one head buffer, a rewritten head of at
/// most the same size plus a few lines, and the refusal's message, which
/// quotes at most a few hundred bytes.
const HEAD_BOUND: usize = 3 * MAX_HEAD + (16 << 10);

/// A SOCKS5 request is at most 2 + 255 + 4 + 1 + 255 + 2 bytes past what
/// the first read brought; the buffer may double once past that.
const SOCKS_REQUEST_MAX: usize = 519;

fn opening(pieces: Vec<&[u8]>) -> Verdict {
    let mut stream = Pieces::new(pieces);
    let (v, peak) = peak_during(|| block_on(read_opening(&mut stream)));
    assert_within(peak, HEAD_BOUND, "read_opening");
    v
}

pub fn head(data: &[u8]) {
    let mut p = Params::new(data);
    let seed = p.u64();
    let bytes = p.rest();
    block_on(async {});
    let whole = opening(vec![bytes]);
    let split = opening(Splits::new(seed).split(bytes, 40));
    match (&whole, &split) {
        (Verdict::Closed, Verdict::Closed) => {}
        (Verdict::Socks(a), Verdict::Socks(b)) => {
            assert!(
                a.starts_with(b) && !b.is_empty() && b[0] == 5,
                "SOCKS openings differ"
            );
        }
        (
            Verdict::Http {
                connect: c1,
                target: t1,
                first_bytes: f1,
            },
            Verdict::Http {
                connect: c2,
                target: t2,
                first_bytes: f2,
            },
        ) => {
            assert_eq!((c1, t1), (c2, t2), "the request differs when split");
            // A split read may have fewer bytes past the head in hand.
            assert!(
                f1.starts_with(f2),
                "the bytes for the target differ when split"
            );
        }
        // Refused either way, with the same status. Not always for the
        // same reason: the reader parses only when a piece brings a line
        // end, so bad bytes after the last one it saw are refused as a head
        // the client never finished.
        (Verdict::Refused { status: s1, .. }, Verdict::Refused { status: s2, .. }) => {
            assert_eq!(s1, s2, "the refusal's status differs when split");
        }
        (a, b) => panic!("whole: {a:?}, split: {b:?}"),
    }
    // One parse of the whole buffer agrees with reading it, for a head
    // that fits the buffer and is neither SOCKS nor TLS: the same request,
    // or a refusal (not always for the same reason: the reader parses only
    // once a line has ended, so bytes without a newline are a head the
    // client never finished).
    if bytes.len() <= MAX_HEAD
        && !matches!(bytes.first(), Some(5) | Some(0x16))
        && let Some(parsed) = parse_head(bytes)
    {
        match parsed {
            Verdict::Refused { .. } => assert!(
                matches!(whole, Verdict::Refused { .. }),
                "parse refuses what read_opening takes: {whole:?}"
            ),
            http => assert_eq!(http, whole, "parse and read_opening disagree"),
        }
    }
    if let Verdict::Http {
        target,
        first_bytes,
        connect,
    } = &whole
    {
        assert!(!target.is_empty(), "a request with no target");
        if !connect {
            // A forwarded head ends the connection after one request.
            let head_end = first_bytes
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("a forwarded head ends with a blank line");
            let head = &first_bytes[..head_end + 4];
            assert!(
                head.ends_with(b"Connection: close\r\n\r\n"),
                "a forwarded head without Connection: close"
            );
            let lower = head.to_ascii_lowercase();
            for hop in [
                &b"\r\nproxy-authorization:"[..],
                b"\r\nkeep-alive:",
                b"\r\nupgrade:",
            ] {
                assert!(
                    !lower.windows(hop.len()).any(|w| w == hop),
                    "a hop-by-hop header was forwarded"
                );
            }
        }
    }
}

/// The target and the bytes past the request, or the reply code and why.
type SocksVerdict = Result<(String, Vec<u8>), (Option<u8>, String)>;

/// The verdict on a SOCKS5 opening, and what the proxy wrote back.
fn socks_run(first: Vec<u8>, rest: Vec<&[u8]>) -> (SocksVerdict, Vec<u8>) {
    let mut client = Pieces::new(rest);
    let bound = 2 * (first.len() + SOCKS_REQUEST_MAX) + (16 << 10);
    let (r, peak) = peak_during(|| block_on(socks_request(&mut client, first)));
    assert_within(peak, bound, "the SOCKS5 request reader");
    (r, client.written)
}

pub fn socks(data: &[u8]) {
    let mut p = Params::new(data);
    // How much of the input the proxy's first read brought.
    let first_len = usize::from(p.u8());
    let seed = p.u64();
    let bytes = p.rest();
    block_on(async {});
    // The first byte is the version, 5: that is how the proxy told SOCKS
    // from HTTP.
    let (first, rest) = bytes.split_at(first_len.min(bytes.len()));
    let first = [&[5u8][..], first].concat();
    let (a, wrote_a) = socks_run(first.clone(), vec![rest]);
    let (b, wrote_b) = socks_run(first, Splits::new(seed).split(rest, 8));
    assert_eq!(
        wrote_a, wrote_b,
        "the replies differ when the request is split"
    );
    match (&a, &b) {
        (Ok((t1, r1)), Ok((t2, r2))) => {
            assert_eq!(t1, t2, "the target differs when split");
            assert_eq!(r1, r2, "the bytes past the request differ when split");
            assert!(!t1.ends_with(":0"), "port 0 accepted");
        }
        (Err(e1), Err(e2)) => assert_eq!(e1, e2, "the refusal differs when split"),
        (a, b) => panic!("whole: {a:?}, split: {b:?}"),
    }
}
