//! The cgroup v2 code path on a fake cgroupfs (this machine has no v2
//! memory controller): which files are written, with what values.

use std::path::Path;
use std::time::Duration;

use crate::common::{Proc, call_id, is_dead, read, write};
use bulkhead_host::enforce::{CageLimits, DetectOptions, Enforcer, MemoryMechanism};

/// A pure cgroup v2 root as the kernel shows it before bulkhead runs.
fn pure_v2(root: &Path) {
    write(
        &root.join("cgroup.controllers"),
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    );
    write(&root.join("cgroup.subtree_control"), "");
    write(&root.join("cgroup.procs"), "");
}

#[test]
fn top_level_layout() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    pure_v2(root);
    let e = Enforcer::detect_at(root, None).expect("detect");
    assert_eq!(e.mechanism(), MemoryMechanism::CgroupV2);
    assert_eq!(e.kill_mechanism(), "cgroup.kill");
    assert_eq!(read(&root.join("cgroup.subtree_control")), "+memory +pids");
    assert_eq!(
        read(&root.join("bulkhead/cgroup.subtree_control")),
        "+memory +pids"
    );
    let rows = e.report();
    let v2 = rows
        .iter()
        .find(|r| r.name == "cgroup v2 memory.max")
        .expect("row");
    assert!(
        v2.available && v2.used && v2.why.contains("simulated"),
        "{v2:?}"
    );
    let v1 = rows
        .iter()
        .find(|r| r.name == "cgroup v1 memory")
        .expect("row");
    assert!(
        !v1.available && v1.why.starts_with("no cgroup v1 memory hierarchy at "),
        "{v1:?}"
    );

    let id = call_id();
    let mut cage = e
        .cage(
            id,
            &CageLimits {
                memory_bytes: Some(128 << 20),
                pids: Some(64),
            },
        )
        .expect("cage");
    let dir = root.join("bulkhead").join(e.cgroup_name(id));
    assert_eq!(cage.cgroup_dirs(), vec![dir.clone()]);
    assert_eq!(read(&dir.join("memory.max")), "134217728");
    assert_eq!(read(&dir.join("memory.swap.max")), "0");
    assert_eq!(read(&dir.join("memory.oom.group")), "1");
    assert_eq!(read(&dir.join("pids.max")), "64");

    let mut p = Proc::sh("exec sleep 100");
    cage.attach(p.pid()).expect("attach");
    assert_eq!(read(&dir.join("cgroup.procs")), p.pid().to_string());
    write(&dir.join("memory.peak"), "4096\n");
    write(
        &dir.join("cpu.stat"),
        "usage_usec 2500000\nuser_usec 2000000\n",
    );
    let s = cage.sample();
    assert_eq!(
        (s.processes, s.peak_charged_bytes, s.cpu_ms),
        (1, Some(4096), 2500)
    );
    assert!(!s.memory_exceeded && !cage.memory_limit_hit());
    write(
        &dir.join("memory.events"),
        "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 1\n",
    );
    assert!(cage.memory_limit_hit());
    assert!(cage.sample().memory_exceeded);

    let r = cage.kill_all();
    assert_eq!(read(&dir.join("cgroup.kill")), "1");
    // The fake cgroup.kill does nothing; the procs loop killed the sleeper.
    assert_eq!((r.killed, r.survivors), (1, 0));
    assert!(is_dead(p.pid()));
    assert!(p.wait_timeout(Duration::from_secs(5)).is_some());
    drop(cage);
    assert!(!dir.exists(), "removed on drop");
}

#[test]
fn no_limits_writes_no_limits() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    pure_v2(root);
    let e = Enforcer::detect_at(root, None).expect("detect");
    let id = call_id();
    let cage = e.cage(id, &CageLimits::default()).expect("cage");
    let dir = root.join("bulkhead").join(e.cgroup_name(id));
    assert!(!dir.join("memory.max").exists() && !dir.join("pids.max").exists());
    assert_eq!(read(&dir.join("memory.oom.group")), "1");
    drop(cage);
}

#[test]
fn delegated_layout_moves_the_host_into_a_leaf() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    pure_v2(root);
    // Not root: the top level cannot be used (simulated by a file in the
    // way of `bulkhead/`).
    write(&root.join("bulkhead"), "");
    let own = root.join("user.slice/user-1000.slice/app.slice/tool.scope");
    write(&own.join("cgroup.controllers"), "memory pids\n");
    write(&own.join("cgroup.subtree_control"), "");
    write(
        &own.join("cgroup.procs"),
        &format!("{}\n", std::process::id()),
    );
    let opts = DetectOptions {
        cgroup_root: Some(root.to_path_buf()),
        forced: None,
        self_cgroup: Some("/user.slice/user-1000.slice/app.slice/tool.scope".into()),
    };
    let e = Enforcer::detect_with(&opts).expect("detect");
    assert_eq!(e.mechanism(), MemoryMechanism::CgroupV2);
    assert_eq!(
        read(&own.join("bulkhead-host/cgroup.procs")),
        std::process::id().to_string()
    );
    assert_eq!(read(&own.join("cgroup.subtree_control")), "+memory +pids");
    let v2 = e
        .report()
        .into_iter()
        .find(|r| r.name == "cgroup v2 memory.max")
        .expect("row");
    assert!(v2.used && v2.why.contains("delegated"), "{v2:?}");
    let id = call_id();
    let cage = e
        .cage(
            id,
            &CageLimits {
                memory_bytes: Some(1 << 30),
                pids: None,
            },
        )
        .expect("cage");
    let dir = own.join(e.cgroup_name(id));
    assert_eq!(cage.cgroup_dirs(), vec![dir.clone()]);
    assert_eq!(read(&dir.join("memory.max")), "1073741824");
    drop(cage);
    assert!(!dir.exists());
}

#[test]
fn delegated_layout_refuses_a_shared_cgroup() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    pure_v2(root);
    write(&root.join("bulkhead"), "");
    let own = root.join("user.slice/session-2.scope");
    write(&own.join("cgroup.controllers"), "memory pids\n");
    write(
        &own.join("cgroup.procs"),
        &format!("{}\n4242\n", std::process::id()),
    );
    let opts = DetectOptions {
        cgroup_root: Some(root.to_path_buf()),
        forced: None,
        self_cgroup: Some("/user.slice/session-2.scope".into()),
    };
    let e = Enforcer::detect_with(&opts).expect("detect");
    assert_eq!(
        e.mechanism(),
        MemoryMechanism::Watchdog,
        "nothing else is available"
    );
    let v2 = e
        .report()
        .into_iter()
        .find(|r| r.name == "cgroup v2 memory.max")
        .expect("row");
    assert!(!v2.available, "{v2:?}");
    assert!(
        v2.why.contains("also holds other processes (4242)"),
        "{}",
        v2.why
    );
    assert!(
        !own.join("bulkhead-host").exists(),
        "the host was not moved"
    );
    let forced = DetectOptions {
        forced: Some(MemoryMechanism::CgroupV2),
        ..opts
    };
    let err = Enforcer::detect_with(&forced).expect_err("unavailable");
    assert!(
        err.to_string().contains("also holds other processes"),
        "{err}"
    );
}
