//! Retention, gc, migration and the `[store]` config against real files.

use bulkhead_ipc::StreamId;

use super::*;

fn open(dir: &tempfile::TempDir, retention: Retention) -> Store {
    let options = StoreOptions {
        retention,
        ..StoreOptions::default()
    };
    Store::open_with(dir.path().join("s.db"), options).expect("open")
}

fn finished_result(store: &Store, s: SessionId, bytes: usize) -> ItemId {
    let mut w = store.begin_result(s, "shell", None, "{}").expect("begin");
    w.write(store, StreamId::Stdout, &vec![b'r'; bytes])
        .expect("write");
    w.finish(
        store,
        &ResultEnd {
            status: "completed".into(),
            bytes_seen: bytes as u64,
            ..ResultEnd::default()
        },
    )
    .expect("finish")
}

#[test]
fn session_limit_prunes_oldest_outputs_to_a_stub() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(
        &dir,
        Retention {
            max_store_bytes: None,
            max_session_bytes: Some(250_000),
        },
    );
    let s = store
        .create_session(&NewSession::default())
        .expect("session");
    let other = store
        .create_session(&NewSession::default())
        .expect("session");
    let kept_elsewhere = finished_result(&store, other, 200_000);
    let ids: Vec<ItemId> = (0..4)
        .map(|_| finished_result(&store, s, 100_000))
        .collect();
    // 400 KB into a 250 KB session: the two oldest outputs went.
    let pruned: Vec<bool> = ids
        .iter()
        .map(|&id| {
            store
                .item(id)
                .expect("item")
                .result
                .expect("r")
                .pruned_ms
                .is_some()
        })
        .collect();
    assert_eq!(pruned, [true, true, false, false]);
    assert_eq!(store.session(s).expect("s").payload_bytes, 200_000);
    let view = store.result_view(ids[0], 1000, 0).expect("view");
    let stub = String::from_utf8(view.head.data).expect("utf8");
    assert!(
        stub.contains("pruned") && stub.contains("100000 bytes"),
        "{stub}"
    );
    assert_eq!(view.info.bytes_seen, 100_000);
    assert_eq!(
        store
            .read_payload(kept_elsewhere, 0, 10)
            .expect("other")
            .data
            .len(),
        10
    );
}

#[test]
fn store_limit_prunes_across_sessions_oldest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unlimited = Retention {
        max_store_bytes: None,
        max_session_bytes: None,
    };
    let store = open(&dir, unlimited);
    let a = store.create_session(&NewSession::default()).expect("a");
    let b = store.create_session(&NewSession::default()).expect("b");
    let first = finished_result(&store, a, 300_000);
    let second = finished_result(&store, b, 300_000);
    let third = finished_result(&store, a, 300_000);
    let report = store
        .gc(&Retention {
            max_store_bytes: Some(700_000),
            max_session_bytes: None,
        })
        .expect("gc");
    assert_eq!(report.results_pruned, 1);
    assert_eq!(report.bytes_pruned, 300_000);
    assert_eq!(store.item(first).expect("1").payload_bytes, 0);
    assert_eq!(store.item(second).expect("2").payload_bytes, 300_000);
    assert_eq!(store.item(third).expect("3").payload_bytes, 300_000);
    let stats = store.stats(&unlimited).expect("stats");
    assert_eq!(stats.pruned_results, 1);
    assert_eq!(stats.payload_bytes, 600_000);
    assert_eq!(stats.largest.len(), 2);
    assert!(store.integrity_check().expect("check").is_empty());
    store.vacuum().expect("vacuum");
}

#[test]
fn gc_interrupts_results_of_dead_writers_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir, Retention::default());
    let s = store.create_session(&NewSession::default()).expect("s");
    let mut live = store.begin_result(s, "shell", None, "{}").expect("live");
    live.write(&store, StreamId::Stdout, b"partial")
        .expect("write");
    live.flush(&store).expect("flush");
    let dead = store.begin_result(s, "shell", None, "{}").expect("dead");
    // Pretend another process began `dead` and died: 999999999 is above
    // any pid_max (2^22), so no process has it.
    let raw = rusqlite::Connection::open(dir.path().join("s.db")).expect("raw");
    raw.execute(
        "UPDATE results SET writer = '999999999:1' WHERE item_id = ?1",
        [dead.item().0],
    )
    .expect("update");
    let report = store.gc(&Retention::default()).expect("gc");
    assert_eq!(report.results_interrupted, 1);
    let state = |id| store.item(id).expect("item").result.expect("r").state;
    assert_eq!(state(dead.item()), ResultState::Interrupted);
    assert_eq!(state(live.item()), ResultState::Running);
    assert_eq!(
        store.read_payload(live.item(), 0, 100).expect("p").data,
        b"partial"
    );
}

#[test]
fn a_version_1_store_is_migrated_with_its_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v1.db");
    {
        let c = rusqlite::Connection::open(&path).expect("sqlite");
        c.execute_batch(schema::V1).expect("v1");
        c.pragma_update(None, "application_id", APPLICATION_ID as i64)
            .expect("id");
        c.pragma_update(None, "user_version", 1).expect("version");
        c.execute_batch(
            "INSERT INTO sessions (created_ms, updated_ms, title, next_seq, item_count)
                 VALUES (1, 1, 'old', 2, 1);
             INSERT INTO items (session_id, seq, kind, created_ms, content_bytes, text)
                 VALUES (1, 1, 'user', 1, 5, 'hello');",
        )
        .expect("data");
    }
    let store = Store::open(&path).expect("migrated");
    let items = store
        .items(SessionId(1), ItemPage::default())
        .expect("items");
    assert_eq!(items[0].text, "hello");
    let raw = rusqlite::Connection::open(&path).expect("raw");
    let v: i64 = raw
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("v");
    assert_eq!(v, SCHEMA_VERSION);
    // The v2 column exists and is written.
    let w = store
        .begin_result(SessionId(1), "t", None, "{}")
        .expect("begin");
    let writer: Option<String> = raw
        .query_row(
            "SELECT writer FROM results WHERE item_id = ?1",
            [w.item().0],
            |r| r.get(0),
        )
        .expect("writer");
    assert!(writer.is_some());
}
