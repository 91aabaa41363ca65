//! A full disk under the session store, for real: the store lives on a
//! 3 MiB tmpfs. A write that does not fit fails with an error that says the
//! disk is full and names the file; everything committed before it stays,
//! and the store still passes `PRAGMA integrity_check`.
//!
//! Mounting needs root (CAP_SYS_ADMIN); without it the test says so and
//! does nothing else (CI runs as root).

use std::path::{Path, PathBuf};
use std::process::Command;

use bulkhead_ipc::StreamId;
use bulkhead_store::{ItemKind, NewItem, NewSession, Store, StoreError};
use bulkhead_tests::bin;

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "bulkhead-test",
            ])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_the_write_and_keeps_what_was_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(_mount) = Tmpfs::mount(dir.path(), "3m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    };
    let path = dir.path().join("sessions.db");
    let store = Store::open(&path).expect("open on the tmpfs");
    let session = store
        .create_session(&NewSession {
            title: "before the disk filled".into(),
            ..NewSession::default()
        })
        .expect("session");
    let kept = store
        .append(session, &NewItem::new(ItemKind::User, "committed before"))
        .expect("append");

    // Library: a result larger than the disk.
    let mut w = store
        .begin_result(session, "shell", None, "{}")
        .expect("begin");
    let block = vec![b'z'; 64 << 10];
    let err = (0..100)
        .find_map(|_| w.write(&store, StreamId::Stdout, &block).err())
        .expect("4 MiB of output cannot fit on a 3 MiB disk");
    assert!(matches!(err, StoreError::DiskFull { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("full") && text.contains("sessions.db"),
        "{text}"
    );
    let committed = w.written();
    drop(w);

    // What was committed is there and whole.
    assert!(store.integrity_check().expect("check").is_empty());
    assert_eq!(store.item(kept).expect("kept").text, "committed before");

    // The CLI: `run --session` tells the user, and the call still ends.
    let out = Command::new(bin("bulkhead"))
        .arg("--store")
        .arg(&path)
        .args([
            "run",
            "shell",
            r#"{"command":"head -c 3000000 /dev/zero | tr '\\0' y"}"#,
            "--session",
            &session.0.to_string(),
            "--max-output",
            "4M",
        ])
        .output()
        .expect("spawn bulkhead");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is full") && stderr.contains("not recorded"),
        "the user is not told: {stderr}"
    );
    assert_eq!(
        out.stdout.len(),
        3_000_000,
        "the call's output still reaches the user"
    );

    // After the failures the store opens, checks clean, and lists.
    drop(store);
    let store = Store::open(&path).expect("reopen");
    assert!(store.integrity_check().expect("check").is_empty());
    assert_eq!(store.item(kept).expect("kept").text, "committed before");
    let list = Command::new(bin("bulkhead"))
        .arg("--store")
        .arg(&path)
        .args(["sessions", "list"])
        .output()
        .expect("spawn");
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(String::from_utf8_lossy(&list.stdout).contains("before the disk filled"));
    assert!(committed > 0, "nothing was written before the disk filled");
}
