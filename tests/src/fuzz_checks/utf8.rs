//! `bulkhead_ipc::utf8`, where every cutter cuts: a cut never splits a
//! character of valid UTF-8, moves at most 3 bytes, and is where asked in
//! bytes that are not UTF-8.

use bulkhead_ipc::utf8::{incomplete_tail_start, prefix_len, sequence_len, suffix_start};

use super::Params;

pub fn utf8(data: &[u8]) {
    let mut p = Params::new(data);
    let at = usize::from(p.u16());
    let bytes = p.rest();
    // Every cut position, or one chosen by the input when there are many.
    let positions: Vec<usize> = if bytes.len() <= 64 {
        (0..=bytes.len() + 1).collect()
    } else {
        vec![at % (bytes.len() + 2), 0, bytes.len()]
    };
    let valid = match std::str::from_utf8(bytes) {
        Ok(s) => s.len(),
        Err(e) => e.valid_up_to(),
    };
    let text = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
    for max in positions {
        let n = prefix_len(bytes, max);
        assert!(n <= max.min(bytes.len()), "prefix_len({max}) = {n}");
        assert!(
            max.min(bytes.len()) - n <= 3,
            "prefix_len({max}) = {n} moved more than 3 bytes"
        );
        if max < valid {
            assert!(
                text.is_char_boundary(n),
                "prefix_len({max}) = {n} splits a character"
            );
            // The longest such prefix: no boundary between n and max.
            assert!(
                (n + 1..=max).all(|i| !text.is_char_boundary(i)),
                "prefix_len({max}) = {n} is not the longest"
            );
        }
        let s = suffix_start(bytes, max);
        assert!(
            s >= max.min(bytes.len()) && s <= bytes.len(),
            "suffix_start({max}) = {s}"
        );
        assert!(
            s - max.min(bytes.len()) <= 3,
            "suffix_start({max}) = {s} moved more than 3 bytes"
        );
        if max <= valid && valid == bytes.len() {
            assert!(
                text.is_char_boundary(s),
                "suffix_start({max}) = {s} splits a character"
            );
        }
    }
    let t = incomplete_tail_start(bytes);
    assert!(
        t <= bytes.len() && bytes.len() - t <= 3,
        "incomplete_tail_start = {t}"
    );
    if valid == bytes.len() {
        assert_eq!(t, bytes.len(), "valid UTF-8 has no incomplete tail");
    } else if t < bytes.len() {
        // What is held back starts a character that the end cuts short.
        assert!(
            t + sequence_len(bytes[t]) > bytes.len(),
            "incomplete_tail_start = {t} holds back a whole character"
        );
    }
    // Valid text cut short anywhere: the tail held back is exactly the
    // cut character, and the rest is valid.
    if valid == bytes.len() && !bytes.is_empty() {
        let cut = at % bytes.len();
        let t = incomplete_tail_start(&bytes[..cut]);
        assert!(
            std::str::from_utf8(&bytes[..t]).is_ok(),
            "the part before the held-back tail is not UTF-8"
        );
        assert!(
            text.is_char_boundary(t),
            "the held-back tail does not start a character"
        );
    }
}
