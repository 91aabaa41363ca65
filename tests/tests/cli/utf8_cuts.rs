//! A cut output ends (and a tail starts) on a character: no half of one is
//! kept, shown as U+FFFD, and `output_bytes_kept` counts what was kept.

use bulkhead_tests::run_json;

/// Two million `é` (2 bytes each) on one line.
const MANY_E_ACUTE: &str = r#"{"command":"python3 -c \"print(chr(233)*2000000)\""}"#;

/// The output's text before and after the cut marker.
fn head_and_tail(output: &str) -> (&str, &str) {
    let (head, rest) = output
        .split_once("\n[… bulkhead cut ")
        .expect("a cut marker");
    let tail = rest.split_once("…]\n").map_or("", |(_, t)| t);
    (head, tail)
}

#[test]
fn a_json_cut_ends_on_a_character_and_counts_what_it_kept() {
    let (v, out) = run_json("shell", MANY_E_ACUTE, &["--max-output", "1001"]);
    assert_eq!(out.status.code(), Some(3), "{v}");
    let output = v["output"].as_str().expect("output");
    assert!(!output.contains('\u{fffd}'), "{output:.200}");
    let (head, tail) = head_and_tail(output);
    assert!(head.chars().all(|c| c == 'é'), "{head:.200}");
    assert!(tail.is_empty(), "{tail:.200}");
    assert_eq!(head.len() % 2, 0);
    assert!(head.len() <= 1001 && head.len() >= 1000, "{}", head.len());
    assert_eq!(v["output_bytes_kept"], head.len() as u64, "{v:.300}");
}

#[test]
fn a_tail_cut_starts_and_ends_on_characters() {
    // A 499-byte head and a 502-byte tail: each cut, as asked, would split
    // an `é` (the output ends in a newline).
    let (v, out) = run_json(
        "shell",
        MANY_E_ACUTE,
        &["--max-output", "1001", "--tail", "502"],
    );
    assert_eq!(out.status.code(), Some(3), "{v}");
    let output = v["output"].as_str().expect("output");
    assert!(!output.contains('\u{fffd}'), "{output:.200}");
    let (head, tail) = head_and_tail(output);
    assert!(head.chars().all(|c| c == 'é'), "{head:.200}");
    let tail_text = tail
        .strip_suffix('\n')
        .expect("the tail is the output's end");
    assert!(tail_text.chars().all(|c| c == 'é'), "{tail:.200}");
    assert_eq!(head.len(), 498);
    assert_eq!(tail.len(), 501);
    assert_eq!(
        v["output_bytes_kept"],
        (head.len() + tail.len()) as u64,
        "{v:.300}"
    );
    assert_eq!(v["bytes_seen"], 4_000_001);
}
