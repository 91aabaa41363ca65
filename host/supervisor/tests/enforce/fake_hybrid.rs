//! The cgroup v1 code path on a fake hybrid (and v1-only) cgroupfs: which
//! files are written, with what values.

use std::path::Path;
use std::time::Duration;

use crate::common::{Proc, call_id, is_dead, read, write};
use bulkhead_host::enforce::{CageLimits, Enforcer, MemoryMechanism};

fn v1(root: &Path, memsw: bool) {
    write(
        &root.join("memory/memory.limit_in_bytes"),
        "9223372036854771712\n",
    );
    if memsw {
        write(
            &root.join("memory/memory.memsw.limit_in_bytes"),
            "9223372036854771712\n",
        );
    }
    write(
        &root.join("memory/memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
    );
    write(&root.join("memory/cgroup.procs"), "");
    write(&root.join("pids/cgroup.procs"), "");
}

fn hybrid(root: &Path) {
    v1(root, true);
    write(&root.join("unified/cgroup.controllers"), "hugetlb\n");
    write(&root.join("unified/cgroup.subtree_control"), "");
    write(&root.join("unified/cgroup.procs"), "");
}

#[test]
fn hybrid_layout() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    hybrid(root);
    let e = Enforcer::detect_at(root, None).expect("detect");
    assert_eq!(e.mechanism(), MemoryMechanism::CgroupV1);
    assert_eq!(e.kill_mechanism(), "cgroup.kill");
    let v2 = e
        .report()
        .into_iter()
        .find(|r| r.name == "cgroup v2 memory.max")
        .expect("row");
    assert_eq!(
        v2.why,
        format!(
            "cgroup2 at {} has no memory controller (controllers: hugetlb)",
            root.join("unified").display()
        )
    );
    assert_eq!(
        read(&root.join("unified/cgroup.subtree_control")),
        "",
        "no controllers enabled"
    );

    let id = call_id();
    let name = e.cgroup_name(id);
    let mut cage = e
        .cage(
            id,
            &CageLimits {
                memory_bytes: Some(128 << 20),
                pids: Some(64),
            },
        )
        .expect("cage");
    let mem = root.join("memory/bulkhead").join(&name);
    let pids = root.join("pids/bulkhead").join(&name);
    let kill = root.join("unified/bulkhead").join(&name);
    assert_eq!(
        cage.cgroup_dirs(),
        vec![mem.clone(), pids.clone(), kill.clone()]
    );
    assert_eq!(read(&mem.join("memory.limit_in_bytes")), "134217728");
    assert_eq!(read(&mem.join("memory.memsw.limit_in_bytes")), "134217728");
    assert!(
        !mem.join("memory.swappiness").exists(),
        "memsw forbids swap already"
    );
    assert_eq!(read(&pids.join("pids.max")), "64");
    assert!(
        kill.is_dir()
            && !kill.join("memory.max").exists()
            && !kill.join("memory.oom.group").exists()
    );

    let mut p = Proc::sh("exec sleep 100");
    cage.attach(p.pid()).expect("attach");
    for d in [&mem, &pids, &kill] {
        assert_eq!(
            read(&d.join("cgroup.procs")),
            p.pid().to_string(),
            "{}",
            d.display()
        );
    }
    write(&mem.join("memory.max_usage_in_bytes"), "8192\n");
    let s = cage.sample();
    assert_eq!((s.processes, s.peak_charged_bytes), (1, Some(8192)));
    assert!(!cage.memory_limit_hit());
    write(
        &mem.join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
    );
    assert!(cage.memory_limit_hit());

    let r = cage.kill_all();
    assert_eq!(read(&kill.join("cgroup.kill")), "1");
    assert_eq!((r.killed, r.survivors), (1, 0));
    assert!(is_dead(p.pid()));
    assert!(p.wait_timeout(Duration::from_secs(5)).is_some());
    drop(cage);
    for d in [mem, pids, kill] {
        assert!(!d.exists(), "{} removed", d.display());
    }
}

#[test]
fn v1_only_without_swap_accounting() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    v1(root, false);
    let e = Enforcer::detect_at(root, None).expect("detect");
    assert_eq!(e.mechanism(), MemoryMechanism::CgroupV1);
    assert_eq!(e.kill_mechanism(), "cgroup-v1 procs loop");
    let id = call_id();
    let cage = e
        .cage(
            id,
            &CageLimits {
                memory_bytes: Some(1 << 20),
                pids: None,
            },
        )
        .expect("cage");
    let mem = root.join("memory/bulkhead").join(e.cgroup_name(id));
    assert_eq!(
        cage.cgroup_dirs(),
        vec![mem.clone()],
        "no pids cgroup without a pids cap"
    );
    assert_eq!(read(&mem.join("memory.limit_in_bytes")), "1048576");
    assert!(!mem.join("memory.memsw.limit_in_bytes").exists());
    assert_eq!(read(&mem.join("memory.swappiness")), "0");
    let rows = e.report();
    let v2 = rows
        .iter()
        .find(|r| r.name == "cgroup v2 memory.max")
        .expect("row");
    assert!(v2.why.starts_with("no cgroup2 hierarchy at "), "{v2:?}");
    let kill = rows
        .iter()
        .find(|r| r.name == "whole-tree kill: cgroup procs loop")
        .expect("row");
    assert!(kill.used);
}

#[test]
fn forcing_v2_on_hybrid_fails_with_the_reason() {
    let tmp = tempfile::tempdir().expect("tempdir");
    hybrid(tmp.path());
    let err =
        Enforcer::detect_at(tmp.path(), Some(MemoryMechanism::CgroupV2)).expect_err("no v2 memory");
    assert!(
        err.to_string()
            .contains("has no memory controller (controllers: hugetlb)"),
        "{err}"
    );
}
