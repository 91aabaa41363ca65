//! `bulkhead run` leaves nothing behind when it exits: the call's cgroups
//! and its private temp dir are removed before the process ends, not left
//! for the next start's stale sweep.

use std::path::Path;
use std::process::{Command, Stdio};

use bulkhead_tests::bin;

/// Removal used to be left to a detached thread that the process's exit
/// could cut short, so that only some runs left something: hence several.
const RUNS: usize = 8;

#[test]
fn a_run_removes_its_cgroups_and_temp_dir_before_it_exits() {
    for policy in ["trusted", "workspace"].repeat(RUNS) {
        let mut cli = Command::new(bin("bulkhead"))
            .args([
                "run",
                "shell",
                r#"{"command":"echo hi > \"$TMPDIR/x\"; echo ok"}"#,
            ])
            .args(["--policy", policy])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn bulkhead");
        let pid = cli.id();
        let status = cli.wait().expect("wait");
        assert!(
            status.success(),
            "bulkhead run failed under {policy}: {status}"
        );
        let prefix = format!("h{pid}-");
        for hierarchy in ["memory", "pids", "unified", "."] {
            let parent = Path::new("/sys/fs/cgroup").join(hierarchy).join("bulkhead");
            let Ok(entries) = std::fs::read_dir(&parent) else {
                continue;
            };
            let left: Vec<_> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect();
            assert!(
                left.is_empty(),
                "{policy}: cgroups of the run left in {}: {left:?}",
                parent.display()
            );
        }
        // Calls' temp dirs are `<host pid>-<call id>` in `bulkhead-<uid>`.
        let tmp_prefix = format!("{pid}-");
        let uid = nix::unistd::geteuid().as_raw();
        let parent = std::env::temp_dir().join(format!("bulkhead-{uid}"));
        // Absent until a sandboxed call has run (`trusted` makes none).
        let entries = match std::fs::read_dir(&parent) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && policy == "trusted" => continue,
            r => r.expect("the calls' temp dir parent"),
        };
        let left: Vec<_> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&tmp_prefix))
            .collect();
        assert!(
            left.is_empty(),
            "{policy}: temp dirs of the run left: {left:?}"
        );
    }
}
