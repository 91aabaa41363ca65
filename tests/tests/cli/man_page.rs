//! `bulkhead man`: a roff man page from the real grammar, printed or written
//! one page per command.

use std::process::Command;

use bulkhead_tests::bin;

#[test]
fn the_man_page_is_roff_and_documents_the_commands() {
    let out = Command::new(bin("bulkhead")).arg("man").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH bulkhead 1"), "{page}");
    assert!(page.contains(".SH NAME"), "{page}");
    for sub in ["run", "doctor", "mcp", "completions"] {
        assert!(page.contains(sub), "man page lacks {sub}");
    }
    // The exit codes are part of the contract, so they are in the page.
    assert!(page.contains("truncated"), "{page}");
}

#[test]
fn out_dir_writes_one_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin("bulkhead"))
        .args(["man", "--out-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for page in [
        "bulkhead.1",
        "bulkhead-run.1",
        "bulkhead-doctor.1",
        "bulkhead-mcp-wrap.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}");
    }
}
