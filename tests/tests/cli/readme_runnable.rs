//! Every command the README marks runnable (fenced as `sh runnable`) runs
//! and succeeds, as a newcomer would run it: `bash -euo pipefail` in the
//! repository, with a scratch HOME and a PATH of the built binaries and the
//! system directories only. A block that must show a failing command says
//! so itself (`… || test $? = 3`).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_tests::{profile_dir, readme};

/// The slowest README command is a capped tool call; a minute per block is
/// generous on a loaded 2-core machine, and bounds a block that hangs.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn every_runnable_readme_block_succeeds() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let blocks = readme::runnable_blocks(&text);
    assert!(
        !blocks.is_empty(),
        "README.md marks no block as `{}`",
        readme::MARK
    );
    let home = tempfile::tempdir().unwrap();
    // Output goes to files, not pipes: a block printing more than a pipe
    // holds must not stall until the timeout.
    let logs = tempfile::tempdir().unwrap();
    let path = format!("{}:/usr/bin:/bin", profile_dir().display());
    for block in &blocks {
        let out_file = logs.path().join(format!("{}.out", block.line));
        let err_file = logs.path().join(format!("{}.err", block.line));
        let mut child = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &block.code])
            .env_clear()
            .env("PATH", &path)
            .env("HOME", home.path())
            .current_dir(&repo)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_file).unwrap())
            .stderr(std::fs::File::create(&err_file).unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if start.elapsed() > BLOCK_TIMEOUT {
                // The whole group: the block's commands included.
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = std::fs::read_to_string(&out_file).unwrap_or_default();
        let err = std::fs::read_to_string(&err_file).unwrap_or_default();
        assert!(
            status.is_some_and(|s| s.success()),
            "README.md block at line {} {}:\n{}\n--- stdout\n{out}\n--- stderr\n{err}",
            block.line,
            match status {
                Some(s) => format!("failed ({s})"),
                None => format!("did not finish within {BLOCK_TIMEOUT:?}"),
            },
            block.code
        );
    }
}
