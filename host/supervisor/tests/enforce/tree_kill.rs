//! `kill_all` kills a whole tree, including a `setsid` subtree (which
//! `killpg` would miss), with cgroup v1 (+ cgroup.kill) and with the
//! watchdog's process-tree walk.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{Proc, call_id, have_v1, is_dead, wait_descendants};
use bulkhead_host::enforce::{CageLimits, Enforcer, MemoryMechanism};

const TREE: &str = r#"sleep 100 & sleep 100 & setsid sh -c "sleep 100 & sleep 100" & wait"#;

fn kill_tree(m: MemoryMechanism) {
    let e = Enforcer::detect_at(Path::new("/sys/fs/cgroup"), Some(m)).expect("detect");
    kill_tree_with(&e);
}

fn kill_tree_with(e: &Enforcer) {
    let m = e.mechanism();
    let mut cage = e.cage(call_id(), &CageLimits::default()).expect("cage");
    let mut p = Proc::gated(TREE);
    cage.attach(p.pid()).expect("attach");
    p.release();
    // sh, 2 sleeps, the setsid'd sh and its 2 sleeps (the inner sh may exec
    // its last sleep, so at least 4 descendants).
    let tree = wait_descendants(p.pid(), 4);
    let setsid_moved = tree.iter().any(|pid| {
        let sid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|t| {
                t[t.rfind(')').unwrap_or(0) + 2..]
                    .split_whitespace()
                    .nth(3)
                    .map(str::to_owned)
            });
        sid.is_some_and(|s| s != p.pid().to_string() && s != std::process::id().to_string())
    });
    assert!(setsid_moved, "a descendant is in its own session");
    let s = cage.sample();
    assert_eq!(s.processes as usize, tree.len() + 1, "{s:?}");

    let t = Instant::now();
    let r = cage.kill_all();
    let took = t.elapsed();
    assert_eq!(r.survivors, 0, "{r:?}");
    assert_eq!(r.killed, tree.len() + 1, "{r:?}");
    assert!(
        p.wait_timeout(Duration::from_secs(5)).is_some(),
        "worker dead"
    );
    for pid in &tree {
        assert!(is_dead(*pid), "{m}: descendant {pid} still alive");
    }
    assert_eq!(cage.sample().processes, 0);
    eprintln!(
        "{m} ({}): killed {} processes in {took:?}",
        e.kill_mechanism(),
        r.killed
    );
}

#[test]
fn cgroup_v1_kills_setsid_descendants() {
    if !have_v1() {
        return;
    }
    kill_tree(MemoryMechanism::CgroupV1);
}

#[test]
fn watchdog_kills_setsid_descendants() {
    kill_tree(MemoryMechanism::Watchdog);
}

#[test]
fn dropping_a_cage_kills_the_call() {
    for m in [MemoryMechanism::CgroupV1, MemoryMechanism::Watchdog] {
        if m == MemoryMechanism::CgroupV1 && !have_v1() {
            continue;
        }
        let e = Enforcer::detect_at(Path::new("/sys/fs/cgroup"), Some(m)).expect("detect");
        let mut cage = e.cage(call_id(), &CageLimits::default()).expect("cage");
        let mut p = Proc::gated(TREE);
        cage.attach(p.pid()).expect("attach");
        p.release();
        let tree = wait_descendants(p.pid(), 4);
        if m == MemoryMechanism::Watchdog {
            cage.sample();
        }
        let dirs = cage.cgroup_dirs();
        drop(cage);
        for pid in &tree {
            assert!(is_dead(*pid), "{m}: {pid} killed by drop");
        }
        for d in dirs {
            assert!(!d.exists(), "{} removed", d.display());
        }
        assert!(p.wait_timeout(Duration::from_secs(5)).is_some());
    }
}

/// Live processes whose command line contains `marker`.
fn with_marker(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
                && !is_dead(*pid)
        })
        .collect()
}

/// Killing while the call is still spawning: nothing it spawned survives.
fn kill_while_spawning(m: MemoryMechanism) {
    let e = Enforcer::detect_at(Path::new("/sys/fs/cgroup"), Some(m)).expect("detect");
    kill_while_spawning_with(&e);
}

fn kill_while_spawning_with(e: &Enforcer) {
    let m = e.mechanism();
    let mut cage = e.cage(call_id(), &CageLimits::default()).expect("cage");
    // A unique sleep duration marks this test's processes. The call id is
    // padded to a fixed width: all the tests of this binary share its pid and
    // counter, and without the padding the marker of id 3 would also match
    // the processes of a test marked with id 31.
    let marker = format!("1000.{}{:07}", std::process::id(), call_id() & 0xfffff);
    let script = format!("i=0; while [ $i -lt 3000 ]; do sleep {marker} & i=$((i+1)); done; wait");
    let mut p = Proc::gated(&script);
    cage.attach(p.pid()).expect("attach");
    p.release();
    wait_descendants(p.pid(), 50);
    if m == MemoryMechanism::Watchdog {
        cage.sample();
    }
    let r = cage.kill_all();
    assert_eq!(r.survivors, 0, "{m}: {r:?}");
    assert!(p.wait_timeout(Duration::from_secs(5)).is_some());
    let left = with_marker(&marker);
    assert!(
        left.is_empty(),
        "{m}: {} spawned processes survived",
        left.len()
    );
    eprintln!("{m}: killed {} processes of a spawning loop", r.killed);
}

#[test]
fn cgroup_v1_kills_a_spawning_loop() {
    if !have_v1() {
        return;
    }
    kill_while_spawning(MemoryMechanism::CgroupV1);
}

#[test]
fn watchdog_kills_a_spawning_loop() {
    kill_while_spawning(MemoryMechanism::Watchdog);
}

/// The real v1 hierarchies without the cgroup2 mount, so `kill_all` must
/// use the cgroup.procs loop: a root of symlinks to `memory` and `pids`.
fn v1_without_cgroup_kill() -> (tempfile::TempDir, Enforcer) {
    let tmp = tempfile::tempdir().expect("tempdir");
    for h in ["memory", "pids"] {
        std::os::unix::fs::symlink(Path::new("/sys/fs/cgroup").join(h), tmp.path().join(h))
            .expect("symlink");
    }
    let e = Enforcer::detect_at(tmp.path(), None).expect("detect");
    assert_eq!(e.mechanism(), MemoryMechanism::CgroupV1);
    assert_eq!(e.kill_mechanism(), "cgroup-v1 procs loop");
    (tmp, e)
}

#[test]
fn cgroup_v1_procs_loop_kills_setsid_descendants() {
    if !have_v1() {
        return;
    }
    let (_tmp, e) = v1_without_cgroup_kill();
    kill_tree_with(&e);
}

#[test]
fn cgroup_v1_procs_loop_kills_a_spawning_loop() {
    if !have_v1() {
        return;
    }
    let (_tmp, e) = v1_without_cgroup_kill();
    kill_while_spawning_with(&e);
}
