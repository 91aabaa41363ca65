//! Three processes append to one store at once, to a shared session and to
//! a session each: every item is present, each session's `seq` runs 1..N
//! without a gap, and each writer's items appear in the order it wrote them.

use std::process::{Command, Stdio};

use bulkhead_store::{ItemKind, NewSession, SessionId, Store};
use bulkhead_tests::bin;

const WRITERS: usize = 3;
const PER_WRITER: u64 = 200;

#[test]
fn three_writers_lose_nothing_and_keep_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sessions.db");
    let store = Store::open(&path).expect("open");
    let shared = store
        .create_session(&NewSession::default())
        .expect("shared session");
    let children: Vec<_> = (0..WRITERS)
        .map(|w| {
            Command::new(bin("store-writer"))
                .args([
                    "append",
                    path.to_str().expect("utf-8 path"),
                    &format!("w{w}"),
                    &shared.0.to_string(),
                    &PER_WRITER.to_string(),
                ])
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn store-writer")
        })
        .collect();
    let mut own = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "a writer failed: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let id = text
            .trim()
            .strip_prefix("done ")
            .and_then(|n| n.parse::<i64>().ok())
            .expect("done ID");
        own.push(SessionId(id));
    }
    assert!(store.integrity_check().expect("check").is_empty());

    // Each writer sent half its items to the shared session, half to its own.
    check_session(&store, shared, WRITERS as u64 * PER_WRITER / 2);
    for s in own {
        check_session(&store, s, PER_WRITER / 2);
    }
}

/// All items present, seq 1..=N, each writer's counters increasing.
fn check_session(store: &Store, session: SessionId, expected: u64) {
    let mut items = Vec::new();
    store
        .for_each_item(session, 64, |item| {
            items.push(item.clone());
            Ok::<(), ()>(())
        })
        .expect("items")
        .expect("visit");
    assert_eq!(items.len() as u64, expected, "session {session}");
    assert_eq!(
        store.session(session).expect("summary").item_count,
        expected
    );
    for (i, item) in items.iter().enumerate() {
        assert_eq!(
            item.seq,
            i as u64 + 1,
            "session {session}: a gap or a duplicate"
        );
    }
    let mut last_n: std::collections::HashMap<String, i64> = Default::default();
    for item in &items {
        // Messages say "wN COUNTER"; results carry the writer as their tool.
        let (writer, n) = match item.kind {
            ItemKind::ToolResult => {
                let r = item.result.as_ref().expect("result info");
                assert_eq!(item.payload_bytes, 210_000, "a result lost chunks");
                (r.tool.clone(), None)
            }
            _ => {
                let (w, n) = item.text.split_once(' ').expect("TAG N");
                (w.to_owned(), Some(n.parse::<i64>().expect("counter")))
            }
        };
        if let Some(n) = n {
            let prev = last_n.insert(writer.clone(), n).unwrap_or(-1);
            assert!(n > prev, "session {session}: {writer}'s items out of order");
        }
    }
}
