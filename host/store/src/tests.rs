//! The store's basics against a real SQLite file in a temp dir.

use bulkhead_ipc::StreamId;

use super::*;

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("s.db")).expect("open");
    (dir, store)
}

fn session(store: &Store, title: &str) -> SessionId {
    store
        .create_session(&NewSession {
            title: title.into(),
            model: Some("m".into()),
            config_json: Some("{}".into()),
        })
        .expect("create")
}

/// Writes `n` bytes of numbered lines as a result and finishes it.
fn result_of(store: &Store, s: SessionId, n: usize) -> (ItemId, Vec<u8>) {
    let mut w = store
        .begin_result(s, "shell", Some("c1"), "{}")
        .expect("begin");
    let data: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
    for piece in data.chunks(1000) {
        w.write(store, StreamId::Stdout, piece).expect("write");
    }
    let id = w
        .finish(
            store,
            &ResultEnd {
                status: "completed".into(),
                bytes_seen: n as u64,
                lines_seen: 1,
                ..ResultEnd::default()
            },
        )
        .expect("finish");
    (id, data)
}

#[test]
fn reopen_keeps_sessions_and_items_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sub/s.db");
    let s = {
        let store = Store::open(&path).expect("open");
        let s = session(&store, "first");
        store
            .append(s, &NewItem::system_prompt("be brief"))
            .expect("append");
        store
            .append(s, &NewItem::new(ItemKind::User, "hello"))
            .expect("append");
        store
            .append(s, &NewItem::new(ItemKind::Assistant, "hi").with_meta("[]"))
            .expect("append");
        s
    };
    let store = Store::open(&path).expect("reopen");
    let items = store.items(s, ItemPage::default()).expect("items");
    let kinds: Vec<_> = items
        .iter()
        .map(|i| (i.seq, i.kind, i.text.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (1, ItemKind::System, "be brief"),
            (2, ItemKind::User, "hello"),
            (3, ItemKind::Assistant, "hi")
        ]
    );
    assert!(items[0].pinned);
    let summary = store.session(s).expect("session");
    assert_eq!(summary.item_count, 3);
    assert_eq!(summary.content_bytes, 8 + 5 + 2 + 2);
    assert!(store.integrity_check().expect("check").is_empty());
}

#[test]
fn result_is_stored_in_chunks_and_read_in_slices() {
    let (_dir, store) = temp_store();
    let s = session(&store, "t");
    let n = 3 * CHUNK_BYTES + 123;
    let (id, data) = result_of(&store, s, n);
    let item = store.item(id).expect("item");
    assert_eq!(item.payload_bytes, n as u64);
    let info = item.result.expect("a result");
    assert_eq!(info.state, ResultState::Finished);
    assert_eq!(info.status.as_deref(), Some("completed"));
    // A slice across a chunk boundary.
    let off = CHUNK_BYTES as u64 - 10;
    let slice = store.read_payload(id, off, 100).expect("slice");
    assert_eq!(slice.data, &data[off as usize..off as usize + 100]);
    // Past the end: short, then empty.
    let end = store.read_payload(id, n as u64 - 5, 100).expect("end");
    assert_eq!(end.data, &data[n - 5..]);
    assert!(
        store
            .read_payload(id, n as u64 + 1, 10)
            .expect("past")
            .data
            .is_empty()
    );
    // Head and tail view.
    let view = store.result_view(id, 10, 20).expect("view");
    assert_eq!(view.head.data, &data[..10]);
    assert_eq!(view.tail.data, &data[n - 20..]);
    assert_eq!(view.omitted_bytes, n as u64 - 30);
    assert_eq!(view.stored_bytes, n as u64);
    // The session counts the payload; listing does not read it.
    assert_eq!(store.session(s).expect("s").payload_bytes, n as u64);
}

#[test]
fn chunks_are_committed_before_finish() {
    let (dir, store) = temp_store();
    let s = session(&store, "t");
    let mut w = store.begin_result(s, "shell", None, "{}").expect("begin");
    w.write(&store, StreamId::Stdout, &vec![b'x'; CHUNK_BYTES + 5])
        .expect("write");
    // Another connection sees the full chunk (committed), not the 5 buffered bytes.
    let other = Store::open(dir.path().join("s.db")).expect("open");
    let view = other.result_view(w.item(), 1 << 20, 0).expect("view");
    assert_eq!(view.stored_bytes, CHUNK_BYTES as u64);
    assert_eq!(view.info.state, ResultState::Running);
    w.flush(&store).expect("flush");
    assert_eq!(
        other
            .result_view(w.item(), 0, 0)
            .expect("view")
            .stored_bytes,
        CHUNK_BYTES as u64 + 5
    );
}

#[test]
fn store_cap_drops_and_counts_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = StoreOptions {
        max_result_bytes: 1000,
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path().join("s.db"), options).expect("open");
    let s = session(&store, "t");
    let (id, _) = result_of(&store, s, 5000);
    let item = store.item(id).expect("item");
    assert_eq!(item.payload_bytes, 1000);
    assert_eq!(item.result.expect("result").dropped_bytes, 4000);
}

#[test]
fn pages_and_listing_are_bounded_and_ordered() {
    let (_dir, store) = temp_store();
    let a = session(&store, "a");
    let b = session(&store, "b");
    for i in 0..25 {
        store
            .append(
                a,
                &NewItem::new(ItemKind::User, format!("m{i} {}", "é".repeat(300))),
            )
            .expect("append");
    }
    store
        .append(b, &NewItem::new(ItemKind::User, "x"))
        .expect("append");
    let page = store
        .items(
            a,
            ItemPage {
                after_seq: 10,
                limit: 5,
                preview_bytes: 11,
            },
        )
        .expect("page");
    let seqs: Vec<u64> = page.iter().map(|i| i.seq).collect();
    assert_eq!(seqs, [11, 12, 13, 14, 15]);
    // 11 bytes cut inside a two-byte character: the preview drops it.
    assert_eq!(page[0].text, "m10 ééé");
    assert_eq!(page[0].text_bytes, 4 + 600);
    let last = store.last_items(a, 3, 10).expect("last");
    assert_eq!(last.iter().map(|i| i.seq).collect::<Vec<_>>(), [23, 24, 25]);
    // b was updated last.
    let list = store.list_sessions(None, 1).expect("list");
    assert_eq!(list[0].id, b);
    let next = store.list_sessions(list.last(), 10).expect("list");
    assert_eq!(next.iter().map(|s| s.id).collect::<Vec<_>>(), [a]);
}

#[test]
fn window_takes_pinned_and_newest_within_budget() {
    let (_dir, store) = temp_store();
    let s = session(&store, "w");
    store
        .append(s, &NewItem::system_prompt("SYS"))
        .expect("sys");
    for i in 0..50 {
        store
            .append(s, &NewItem::new(ItemKind::User, format!("{i:09}")))
            .expect("append");
    }
    // A 1 MB result counts at its view size (100 + 100), not 1 MB.
    let (big, _) = result_of(&store, s, 1 << 20);
    store
        .append(s, &NewItem::new(ItemKind::Assistant, "done"))
        .expect("append");
    let spec = WindowSpec {
        max_items: 30,
        budget_bytes: 3 + 200 + 4 + 9 * 5,
        view_head: 100,
        view_tail: 100,
    };
    let w = store.history_window(s, &spec).expect("window");
    assert_eq!(w.pinned.len(), 1);
    assert_eq!(w.pinned[0].item.text, "SYS");
    let texts: Vec<&str> = w.items.iter().map(|i| i.item.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "000000045",
            "000000046",
            "000000047",
            "000000048",
            "000000049",
            "",
            "done"
        ]
    );
    let view = w.items[5].view.as_ref().expect("view");
    assert_eq!(view.item, big);
    assert_eq!(view.head.data.len() + view.tail.data.len(), 200);
    assert_eq!(w.used_bytes, spec.budget_bytes);
    assert_eq!(w.omitted_items, 45);
    // The item limit binds before the budget.
    let w = store
        .history_window(
            s,
            &WindowSpec {
                max_items: 2,
                ..spec
            },
        )
        .expect("window");
    assert_eq!(w.items.len(), 2);
}

#[test]
fn bad_ids_are_named() {
    let (_dir, store) = temp_store();
    let s = session(&store, "t");
    let user = store
        .append(s, &NewItem::new(ItemKind::User, "x"))
        .expect("append");
    let none = SessionId(999);
    assert!(matches!(store.session(none), Err(StoreError::NoSession(id)) if id == none));
    assert!(matches!(
        store.items(none, ItemPage::default()),
        Err(StoreError::NoSession(_))
    ));
    assert!(matches!(
        store.append(none, &NewItem::new(ItemKind::User, "x")),
        Err(StoreError::NoSession(_))
    ));
    assert!(matches!(
        store.history_window(
            none,
            &WindowSpec {
                max_items: 1,
                budget_bytes: 1,
                view_head: 0,
                view_tail: 0
            }
        ),
        Err(StoreError::NoSession(_))
    ));
    assert!(matches!(
        store.read_payload(user, 0, 1),
        Err(StoreError::NotAResult(_))
    ));
    assert!(matches!(
        store.item(ItemId(12345)),
        Err(StoreError::NoItem(_))
    ));
    assert!("0".parse::<SessionId>().is_err());
    assert!("abc".parse::<SessionId>().is_err());
}

#[test]
fn delete_removes_items_and_chunks() {
    let (_dir, store) = temp_store();
    let s = session(&store, "t");
    let keep = session(&store, "keep");
    let (id, _) = result_of(&store, s, 10 * CHUNK_BYTES);
    let (kept, _) = result_of(&store, keep, 100);
    store.delete_session(s).expect("rm");
    assert!(matches!(store.item(id), Err(StoreError::NoItem(_))));
    assert!(matches!(
        store.delete_session(s),
        Err(StoreError::NoSession(_))
    ));
    assert_eq!(
        store.read_payload(kept, 0, 1000).expect("kept").data.len(),
        100
    );
}

#[test]
fn files_that_are_not_ours_are_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, b"these are my notes, not a database at all").expect("write");
    let err = Store::open(&text).err().expect("refused");
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err}");
    assert!(err.to_string().contains("notes.txt"));
    assert_eq!(
        std::fs::read(&text).expect("read"),
        b"these are my notes, not a database at all"
    );

    let foreign = dir.path().join("other.db");
    {
        let c = rusqlite::Connection::open(&foreign).expect("sqlite");
        c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .expect("table");
    }
    let before = std::fs::read(&foreign).expect("read");
    let err = Store::open(&foreign).err().expect("refused");
    assert!(matches!(err, StoreError::Foreign { found: 0, .. }), "{err}");
    assert_eq!(std::fs::read(&foreign).expect("read"), before);

    let newer = dir.path().join("newer.db");
    drop(Store::open(&newer).expect("create"));
    {
        let c = rusqlite::Connection::open(&newer).expect("sqlite");
        c.pragma_update(None, "user_version", 99).expect("version");
    }
    let err = Store::open(&newer).err().expect("refused");
    assert!(
        matches!(err, StoreError::NewerSchema { found: 99, supported, .. } if supported == SCHEMA_VERSION),
        "{err}"
    );
    assert!(err.to_string().contains("99"));
}

#[test]
fn a_damaged_database_that_reads_as_empty_is_refused_untouched() {
    // No tables and no application id, so it reads as a store to create,
    // but its freelist points past the end: the first write (WAL mode's
    // header) must not happen.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("damaged.db");
    {
        let c = rusqlite::Connection::open(&path).expect("sqlite");
        c.execute_batch("CREATE TABLE t (x); DROP TABLE t;")
            .expect("table");
    }
    let mut bytes = std::fs::read(&path).expect("read");
    // The header's first freelist trunk page and freelist page count.
    bytes[32..40].copy_from_slice(&[0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    std::fs::write(&path, &bytes).expect("write");
    let err = Store::open(&path).err().expect("refused");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        bytes,
        "the file was modified"
    );
    // A sound file whose header's schema format or text encoding SQLite
    // never writes: it opens as empty and would fail at the first write.
    let sound = dir.path().join("sound.db");
    {
        let c = rusqlite::Connection::open(&sound).expect("sqlite");
        c.execute_batch("CREATE TABLE t (x); DROP TABLE t; VACUUM;")
            .expect("table");
    }
    // Our id, version 0, page 1 cut short inside its b-tree header (an
    // input the fuzzer found): damaged, not a store to create.
    let cut = dir.path().join("cut.db");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend_from_slice(&[0x10, 0, 1, 1, 0, 0x40, 0x20, 0x20, 0, 0, 0, 1, 0, 0, 0, 1]);
    bytes.resize(0x44, 0);
    bytes.extend_from_slice(&crate::APPLICATION_ID.to_be_bytes());
    bytes.resize(0x50, 0);
    bytes.extend_from_slice(&[6, 0, 0, 0]);
    bytes.resize(0x5c, 0);
    bytes.extend_from_slice(&[
        0, 0, 0, 1, 0, 0x2e, 0x63, 1, 0x0d, 0, 0, 0, 0, 0x10, 0, 0x3d,
    ]);
    std::fs::write(&cut, &bytes).expect("write");
    let err = Store::open(&cut).err().expect("refused");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert_eq!(std::fs::read(&cut).expect("read"), bytes);

    // No tables, no id, but a schema version: another program's.
    let versioned = dir.path().join("versioned.db");
    std::fs::copy(&sound, &versioned).expect("copy");
    {
        let c = rusqlite::Connection::open(&versioned).expect("sqlite");
        c.pragma_update(None, "user_version", 2).expect("version");
    }
    let before = std::fs::read(&versioned).expect("read");
    let err = Store::open(&versioned).err().expect("refused");
    assert!(matches!(err, StoreError::Foreign { found: 0, .. }), "{err}");
    assert_eq!(std::fs::read(&versioned).expect("read"), before);
    for at in [44, 56] {
        let mut bytes = std::fs::read(&sound).expect("read");
        bytes[at..at + 4].copy_from_slice(&0xf700_0000_u32.to_be_bytes());
        std::fs::write(&path, &bytes).expect("write");
        let err = Store::open(&path).err().expect("refused");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{at}: {err}");
        assert_eq!(std::fs::read(&path).expect("read"), bytes, "{at}");
    }
}

#[test]
fn durability_sets_synchronous() {
    let dir = tempfile::tempdir().expect("tempdir");
    let level = |durability| {
        let options = StoreOptions {
            durability,
            ..StoreOptions::default()
        };
        let store = Store::open_with(dir.path().join("s.db"), options).expect("open");
        let level: i64 = store
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("pragma");
        level
    };
    // SQLite's numbers: NORMAL = 1, FULL = 2.
    assert_eq!(level(Durability::Full), 2);
    assert_eq!(level(Durability::Normal), 1);
}

#[test]
fn page_cache_is_bounded_in_kib() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("s.db")).expect("open");
    let cache: i64 = store
        .conn
        .query_row("PRAGMA cache_size", [], |r| r.get(0))
        .expect("pragma");
    // Negative: KiB, whatever the page size.
    assert_eq!(cache, -i64::from(crate::PAGE_CACHE_KIB));
}
