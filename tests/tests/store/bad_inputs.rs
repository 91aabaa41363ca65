//! `bulkhead sessions` on files that are not a usable store, and on ids
//! that name nothing: a clear error naming the file (or id), a non-zero
//! exit, and the file byte for byte as it was.

use std::path::Path;
use std::process::{Command, Output};

use bulkhead_store::{ItemKind, NewItem, NewSession, Store};
use bulkhead_tests::bin;

fn sessions(store: &Path, args: &[&str]) -> Output {
    Command::new(bin("bulkhead"))
        .arg("--store")
        .arg(store)
        .arg("sessions")
        .args(args)
        .env_remove("BULKHEAD_CONFIG")
        .output()
        .expect("spawn bulkhead")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `list` fails with exit 1, says `needle`, names the file, changes nothing.
fn refused(path: &Path, needle: &str) {
    let before = std::fs::read(path).expect("read");
    let out = sessions(path, &["list"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "expected \"{needle}\" in: {err}");
    assert!(
        err.contains(&path.display().to_string()),
        "the file is not named: {err}"
    );
    assert_eq!(
        std::fs::read(path).expect("read"),
        before,
        "the file was changed"
    );
    assert!(
        !Path::new(&format!("{}-wal", path.display())).exists()
            || std::fs::metadata(format!("{}-wal", path.display())).map_or(0, |m| m.len()) == 0,
        "a WAL was written next to a refused file"
    );
}

#[test]
fn a_text_file_is_not_a_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notes.db");
    std::fs::write(&path, "my notes\n".repeat(1000)).expect("write");
    refused(&path, "is not an SQLite database");
}

#[test]
fn another_programs_database_is_foreign() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("places.sqlite");
    {
        let c = rusqlite::Connection::open(&path).expect("sqlite");
        c.execute_batch("CREATE TABLE moz_places (url TEXT); INSERT INTO moz_places VALUES ('x');")
            .expect("table");
    }
    refused(&path, "another program");
    // An SQLite file with another application id too.
    let path = dir.path().join("other.db");
    {
        let c = rusqlite::Connection::open(&path).expect("sqlite");
        c.pragma_update(None, "application_id", 1234).expect("id");
    }
    refused(&path, "application id 0x000004d2");
}

#[test]
fn a_newer_schema_is_refused_with_both_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("newer.db");
    drop(Store::open(&path).expect("create"));
    {
        let c = rusqlite::Connection::open(&path).expect("sqlite");
        c.pragma_update(None, "user_version", 42).expect("version");
        c.pragma_update(None, "journal_mode", "DELETE")
            .expect("no wal");
    }
    let supported = bulkhead_store::SCHEMA_VERSION.to_string();
    refused(&path, "schema version 42");
    let err = stderr(&sessions(&path, &["list"]));
    assert!(err.contains(&format!("up to version {supported}")), "{err}");
}

#[test]
fn a_corrupt_store_is_reported_not_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("corrupt.db");
    {
        let store = Store::open(&path).expect("create");
        let s = store
            .create_session(&NewSession::default())
            .expect("session");
        for i in 0..300 {
            store
                .append(
                    s,
                    &NewItem::new(ItemKind::User, format!("message {i} {}", "x".repeat(500))),
                )
                .expect("append");
        }
        store.vacuum().expect("checkpoint into the main file");
    }
    // Garbage over every page after the first (the header stays valid).
    let mut bytes = std::fs::read(&path).expect("read");
    assert!(bytes.len() > 8192, "the store is too small to damage");
    for (i, b) in bytes.iter_mut().enumerate().skip(4096) {
        *b = (i * 7 % 251) as u8;
    }
    std::fs::write(&path, &bytes).expect("damage");
    let before = std::fs::read(&path).expect("read");
    let out = sessions(&path, &["show", "1"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("corrupt") && err.contains("corrupt.db"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&path).expect("read"),
        before,
        "the file was changed"
    );
}

#[test]
fn bad_session_ids_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.db");
    let out = sessions(&path, &["show", "777"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no session 777"), "{}", stderr(&out));
    let out = sessions(&path, &["export", "abc"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a malformed id is a usage error"
    );
    assert!(
        stderr(&out).contains("\"abc\" is not a session id"),
        "{}",
        stderr(&out)
    );
    let out = sessions(&path, &["rm", "-3"]);
    assert_eq!(out.status.code(), Some(2));
    let run = Command::new(bin("bulkhead"))
        .arg("--store")
        .arg(&path)
        .args(["run", "read_file", "{}", "--session", "5"])
        .output()
        .expect("spawn");
    assert_eq!(run.status.code(), Some(1));
    assert!(stderr(&run).contains("no session 5"), "{}", stderr(&run));
}
