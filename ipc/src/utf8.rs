//! Where to cut bytes that are probably UTF-8 text.
//!
//! Every place that keeps only part of an output (the worker's cap, the
//! host's head and tail, the model's view, the pager, an MCP result) cuts
//! through these two functions, so a cut never splits a character: the
//! half left behind would show as U+FFFD and the other half would be lost.
//! A UTF-8 character is at most 4 bytes, so looking 3 bytes past the cut
//! is enough to find its start; bytes that are not UTF-8 are cut where
//! asked, and stay as lossy as they were.

/// Length of the UTF-8 sequence a lead byte starts; 0 for a byte that
/// cannot start one (a continuation byte or one never used).
pub fn sequence_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 0,
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0xc0 == 0x80
}

/// The length of the longest prefix of `bytes` of at most `max` bytes that
/// does not end inside a character: `max` moved back by at most 3 bytes to
/// the start of the character it would split. Invalid UTF-8 at the cut is
/// cut at `max`.
pub fn prefix_len(bytes: &[u8], max: usize) -> usize {
    if max >= bytes.len() {
        return bytes.len();
    }
    if !is_continuation(bytes[max]) {
        return max;
    }
    for start in (max.saturating_sub(3)..max).rev() {
        let b = bytes[start];
        if is_continuation(b) {
            continue;
        }
        // A lead byte whose character reaches past `max` is the one the
        // cut would split; any other byte means the input is not UTF-8 here.
        return if start + sequence_len(b) > max {
            start
        } else {
            max
        };
    }
    max
}

/// Where the longest suffix of `bytes` starting at or after `min` begins
/// on a character: `min` moved forward past at most 3 continuation bytes,
/// the rest of a character that starts before it. Invalid UTF-8 at the cut
/// is cut at `min`.
pub fn suffix_start(bytes: &[u8], min: usize) -> usize {
    if min >= bytes.len() {
        return bytes.len();
    }
    let cont = bytes[min..]
        .iter()
        .take(4)
        .take_while(|&&b| is_continuation(b))
        .count();
    if cont <= 3 { min + cont } else { min }
}

/// Where a character that the end of `bytes` leaves incomplete starts (at
/// most 3 bytes from the end), or `bytes.len()` if none does: what a
/// writer holds back until it knows whether the rest will come.
pub fn incomplete_tail_start(bytes: &[u8]) -> usize {
    let n = bytes.len();
    for start in (n.saturating_sub(3)..n).rev() {
        let b = bytes[start];
        if is_continuation(b) {
            continue;
        }
        return if start + sequence_len(b) > n {
            start
        } else {
            n
        };
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    // 1-, 2-, 3- and 4-byte characters.
    const TEXT: &str = "aé€🦀b";

    #[test]
    fn prefix_never_ends_inside_a_character() {
        let bytes = TEXT.as_bytes();
        for max in 0..=bytes.len() + 2 {
            let n = prefix_len(bytes, max);
            assert!(n <= max, "max {max}: {n}");
            assert!(TEXT.is_char_boundary(n), "max {max}: {n}");
            // The longest such prefix: a 4-byte character moves it at most 3.
            assert!(max.min(bytes.len()) - n <= 3, "max {max}: {n}");
        }
    }

    #[test]
    fn prefix_cuts_two_three_and_four_byte_characters_at_their_start() {
        let b = TEXT.as_bytes();
        // "a" then é at 1..3, € at 3..6, 🦀 at 6..10.
        assert_eq!(prefix_len(b, 2), 1);
        assert_eq!(prefix_len(b, 4), 3);
        assert_eq!(prefix_len(b, 5), 3);
        assert_eq!(prefix_len(b, 7), 6);
        assert_eq!(prefix_len(b, 9), 6);
        assert_eq!(prefix_len(b, 10), 10);
    }

    #[test]
    fn suffix_never_starts_inside_a_character() {
        let bytes = TEXT.as_bytes();
        for min in 0..=bytes.len() {
            let s = suffix_start(bytes, min);
            assert!(s >= min && s - min <= 3, "min {min}: {s}");
            assert!(TEXT.is_char_boundary(s), "min {min}: {s}");
        }
        assert_eq!(suffix_start(bytes, 2), 3);
        assert_eq!(suffix_start(bytes, 4), 6);
        assert_eq!(suffix_start(bytes, 7), 10);
    }

    #[test]
    fn incomplete_tail_is_the_start_of_a_cut_character() {
        let b = TEXT.as_bytes();
        assert_eq!(incomplete_tail_start(&b[..2]), 1);
        assert_eq!(incomplete_tail_start(&b[..5]), 3);
        assert_eq!(incomplete_tail_start(&b[..9]), 6);
        assert_eq!(incomplete_tail_start(&b[..10]), 10);
        assert_eq!(incomplete_tail_start(b"ab"), 2);
        assert_eq!(incomplete_tail_start(&[]), 0);
    }

    #[test]
    fn invalid_utf8_is_cut_where_asked() {
        // Five continuation bytes belong to no character.
        let junk = [b'a', 0x80, 0x80, 0x80, 0x80, 0x80, b'z'];
        assert_eq!(prefix_len(&junk, 5), 5);
        assert_eq!(suffix_start(&junk, 1), 1);
        // A lead byte whose character ended before the cut.
        let stray = [0xc3, 0xa9, 0xa9, b'z'];
        assert_eq!(prefix_len(&stray, 2), 2);
        assert_eq!(prefix_len(&[0xff, 0x80], 1), 1);
    }
}
