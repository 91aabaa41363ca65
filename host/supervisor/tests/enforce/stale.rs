//! `clear_stale` removes call cgroups of dead hosts, killing what is left in
//! them, and leaves the cgroups of live hosts alone.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{Proc, call_id, have_v1};
use bulkhead_host::enforce::{CageLimits, Enforcer, MemoryMechanism};

/// A pid whose process has exited (its number may be reused later, but the
/// start time we pair it with, 1, will not match).
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().expect("spawn true");
    let pid = c.id();
    c.wait().expect("wait");
    pid
}

#[test]
fn stale_cgroups_are_killed_and_removed() {
    if !have_v1() {
        return;
    }
    let e = Enforcer::detect_at(Path::new("/sys/fs/cgroup"), Some(MemoryMechanism::CgroupV1))
        .expect("detect");

    // 1. Made by hand, as a crashed host would leave it, with a process in it.
    let name = format!("h{}-1-c{}", dead_pid(), call_id());
    let dirs: Vec<PathBuf> = ["memory", "pids", "unified"]
        .iter()
        .map(|h| {
            Path::new("/sys/fs/cgroup")
                .join(h)
                .join("bulkhead")
                .join(&name)
        })
        .collect();
    for d in &dirs {
        fs::create_dir(d).expect("mkdir stale cgroup");
    }
    let mut orphan = Proc::sh("exec sleep 100");
    fs::write(dirs[0].join("cgroup.procs"), orphan.pid().to_string()).expect("move into stale");

    // 2. A real cage, leaked, then renamed as if a dead host had made it.
    let mut leaked = e
        .cage(
            call_id(),
            &CageLimits {
                memory_bytes: Some(64 << 20),
                pids: Some(8),
            },
        )
        .expect("cage");
    let mut leaked_proc = Proc::sh("exec sleep 100");
    leaked.attach(leaked_proc.pid()).expect("attach");
    let leaked_dirs = leaked.cgroup_dirs();
    std::mem::forget(leaked);
    // cgroup2 refuses rename (EPERM); the v1 directories can be renamed.
    let (v1_dirs, v2_dirs): (Vec<PathBuf>, Vec<PathBuf>) = leaked_dirs
        .into_iter()
        .partition(|d| !d.starts_with("/sys/fs/cgroup/unified"));
    let stale_name = format!("h{}-2-c{}", dead_pid(), call_id());
    let renamed: Vec<PathBuf> = v1_dirs
        .iter()
        .map(|d| d.with_file_name(&stale_name))
        .collect();
    for (from, to) in v1_dirs.iter().zip(&renamed) {
        fs::rename(from, to).expect("rename cgroup");
    }

    // 3. A live cage of this host: must survive.
    let mut live = e.cage(call_id(), &CageLimits::default()).expect("cage");
    let mut live_proc = Proc::sh("exec sleep 100");
    live.attach(live_proc.pid()).expect("attach");

    let removed = e.clear_stale();
    assert!(
        removed >= 5,
        "3 hand-made + 2 renamed directories, got {removed}"
    );
    for d in dirs.iter().chain(&renamed) {
        assert!(!d.exists(), "{} removed", d.display());
    }
    for p in [&mut orphan, &mut leaked_proc] {
        let st = p.wait_timeout(Duration::from_secs(5)).expect("killed");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(libc::SIGKILL));
    }
    assert!(
        live.cgroup_dirs().iter().all(|d| d.exists()),
        "live cage kept"
    );
    assert!(
        live_proc.0.try_wait().expect("try_wait").is_none(),
        "live call untouched"
    );
    let r = live.kill_all();
    assert_eq!((r.killed, r.survivors), (1, 0));
    // The leaked cage's cgroup2 directory still carries this (live) host's
    // name, so it is not stale; its process is dead, so it can go now.
    for d in v2_dirs {
        fs::remove_dir(&d).expect("rmdir leaked cgroup2 dir");
    }
}

#[test]
fn stale_cleanup_in_a_fake_tree() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    crate::common::write(
        &root.join("memory/memory.limit_in_bytes"),
        "9223372036854771712\n",
    );
    crate::common::write(&root.join("memory/cgroup.procs"), "");
    let e = Enforcer::detect_at(root, None).expect("detect");
    assert_eq!(e.mechanism(), MemoryMechanism::CgroupV1);
    let stale = root.join(format!("memory/bulkhead/h{}-5-c1", dead_pid()));
    crate::common::write(&stale.join("cgroup.procs"), "");
    let not_ours = root.join("memory/bulkhead/something-else");
    fs::create_dir_all(&not_ours).expect("mkdir");
    let mine = root.join(format!("memory/bulkhead/{}", e.cgroup_name(7)));
    fs::create_dir_all(&mine).expect("mkdir");
    assert_eq!(e.clear_stale(), 1);
    assert!(!stale.exists() && not_ours.exists() && mine.exists());
}
