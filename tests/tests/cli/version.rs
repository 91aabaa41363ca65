//! `bulkhead -V` and `bulkhead --version`: the version, the git commit, the
//! target, the features, and the worker that would be used, with its own
//! version and features.

use std::process::Command;

use bulkhead_tests::bin;

fn stdout(args: &[&str]) -> String {
    let out = Command::new(bin("bulkhead")).args(args).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The commit: 12 hex digits from git, or "unknown" without git metadata.
fn is_commit(s: &str) -> bool {
    s == "unknown" || (s.len() == 12 && s.chars().all(|c| c.is_ascii_hexdigit()))
}

#[test]
fn short_version_is_one_line_with_the_commit() {
    let v = stdout(&["-V"]);
    let line = v.trim_end();
    let rest = line
        .strip_prefix(&format!("bulkhead {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected -V: {line}"));
    assert!(is_commit(rest), "{line}");
}

#[test]
fn long_version_names_commit_target_features_and_the_worker() {
    let v = stdout(&["--version"]);
    let field = |name: &str| -> String {
        v.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name}: line in\n{v}"))
            .trim()
            .to_owned()
    };
    assert!(
        v.starts_with(&format!("bulkhead {}\n", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    assert!(is_commit(&field("commit")), "{v}");
    assert!(field("target").contains("linux"), "{v}");
    assert!(field("features").starts_with("none"), "{v}");
    let worker = field("worker");
    let expected = format!("bulkhead-worker {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(worker.starts_with(&expected), "{v}");
    assert!(worker.contains("features: remote"), "{v}");
    // Both binaries come from this build, so they name the same commit.
    assert!(
        worker.contains(&format!("commit {};", field("commit"))),
        "{v}"
    );
    assert!(
        v.contains(&bin("bulkhead-worker").display().to_string()),
        "{v}"
    );
    assert!(!v.contains("MISMATCH"), "{v}");
}
