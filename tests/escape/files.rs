//! Attempts 1-3 and 12: secrets, symlinks, writes outside the roots, and
//! a disk filled past RLIMIT_FSIZE.

use crate::{Fixture, applied, attempt};

/// The fixture's key sits under a fake `$HOME/.ssh`: `untrusted` does not
/// even see `$HOME`, and `.ssh` is a denied path besides.
#[test]
fn read_a_secret_key() {
    let fx = Fixture::new();
    let key = fx.secret_key().display().to_string();
    let a = attempt(&fx, &["read_secret", "--path", &key], &[]);
    a.assert_stopped_by(&["landlock_fs"], &["EACCES"]);
}

/// A symlink in the tool's own temp dir, pointing at the key: Landlock
/// checks the file the link resolves to.
#[test]
fn read_a_secret_through_a_symlink() {
    let fx = Fixture::new();
    let key = fx.secret_key().display().to_string();
    let a = attempt(
        &fx,
        &["symlink_secret", "--path", &key, "--link-dir", "$TMPDIR"],
        &[],
    );
    if a.enforced("landlock_fs") {
        // The link itself is allowed (the temp dir is writable); reading
        // through it is not.
        assert_eq!(a.probe["stage"], "open", "{}", a.probe);
    }
    a.assert_stopped_by(&["landlock_fs"], &["EACCES"]);
}

#[test]
fn write_outside_the_roots() {
    let fx = Fixture::new();
    let target = fx.outside.path().join("planted");
    let a = attempt(
        &fx,
        &["write_outside", "--path", &target.display().to_string()],
        &[],
    );
    a.assert_stopped_by(&["landlock_fs"], &["EACCES"]);
    assert!(!target.exists(), "the file was written");
}

/// The private temp dir is writable, but no file in it may pass the call's
/// RLIMIT_FSIZE (here 1 MiB).
#[test]
fn fill_the_disk_past_the_file_size_limit() {
    let fx = Fixture::new();
    let a = attempt(
        &fx,
        &["fill_disk", "--dir", "$TMPDIR", "--limit", "1048576"],
        &["--max-file-size", "1M"],
    );
    assert_eq!(
        applied(&a, "RLIMIT_FSIZE"),
        "1048576",
        "{}",
        a.report["enforcement"]
    );
    assert!(!a.escaped(), "{}", a.probe);
    assert_eq!(a.errno_name(), "EFBIG", "{}", a.probe);
    println!("| fill_disk | RLIMIT_FSIZE | blocked: write EFBIG |");
}
