//! The spare cage (`enforce/spare.rs`): built ahead with a call's limits,
//! taken only by a call with the same limits, holding nothing, and removed
//! with its `Enforcer`.

use std::path::{Path, PathBuf};

use crate::common::{call_id, have_v1, read};
use bulkhead_host::enforce::{CageLimits, Enforcer, MemoryMechanism};

fn limits(memory_mib: u64) -> CageLimits {
    CageLimits {
        memory_bytes: Some(memory_mib << 20),
        pids: Some(64),
    }
}

fn v1() -> Option<Enforcer> {
    have_v1().then(|| {
        Enforcer::detect_at(Path::new("/sys/fs/cgroup"), Some(MemoryMechanism::CgroupV1))
            .expect("detect")
    })
}

fn is_spare(dir: &Path) -> bool {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.contains(&format!("h{}-", std::process::id())) && name.contains("-s")
}

/// One test, so that the spare cgroups this process sees are this test's
/// own: the steps share the process's pid in their names.
#[test]
fn spare_cage_lifecycle_on_cgroup_v1() {
    let Some(e) = v1() else { return };
    a_call_with_the_same_limits_takes_the_spare_built_ahead(&e);
    a_call_with_other_limits_builds_its_own_and_the_spare_waits(&e);
    drop(e);
    assert!(spare_dirs().is_empty(), "spares left: {:?}", spare_dirs());
    let Some(e) = v1() else { return };
    an_unused_spare_is_removed_with_its_enforcer(e);
}

fn a_call_with_the_same_limits_takes_the_spare_built_ahead(e: &Enforcer) {
    e.prepare_spare(&limits(96));
    let cage = e.cage(call_id(), &limits(96)).expect("cage");
    let dirs = cage.cgroup_dirs();
    assert_eq!(dirs.len(), 3, "memory, pids and the kill cgroup: {dirs:?}");
    assert!(dirs.iter().all(|d| is_spare(d)), "not the spare: {dirs:?}");
    assert_eq!(
        read(&dirs[0].join("memory.limit_in_bytes")).trim(),
        (96u64 << 20).to_string(),
        "the spare has the call's memory cap"
    );
    assert_eq!(read(&dirs[1].join("pids.max")).trim(), "64");
    assert!(
        dirs.iter()
            .all(|d| read(&d.join("cgroup.procs")).trim().is_empty()),
        "a spare holds no process"
    );
    // Taken: the next call of the same limits builds its own.
    let next = e.cage(call_id(), &limits(96)).expect("cage");
    assert!(
        next.cgroup_dirs().iter().all(|d| !is_spare(d)),
        "the spare was used twice: {:?}",
        next.cgroup_dirs()
    );
    drop((cage, next));
    assert!(dirs.iter().all(|d| !d.exists()), "a used spare is removed");
}

fn a_call_with_other_limits_builds_its_own_and_the_spare_waits(e: &Enforcer) {
    e.prepare_spare(&limits(64));
    let other = e.cage(call_id(), &limits(128)).expect("cage");
    assert!(
        other.cgroup_dirs().iter().all(|d| !is_spare(d)),
        "a spare of 64 MiB served a call capped at 128 MiB: {:?}",
        other.cgroup_dirs()
    );
    let same = e.cage(call_id(), &limits(64)).expect("cage");
    assert!(
        same.cgroup_dirs().iter().all(|d| is_spare(d)),
        "the waiting spare was not taken: {:?}",
        same.cgroup_dirs()
    );
}

fn an_unused_spare_is_removed_with_its_enforcer(e: Enforcer) {
    e.prepare_spare(&limits(80));
    // Preparing again with the same limits keeps the one there.
    e.prepare_spare(&limits(80));
    let spares = spare_dirs();
    assert_eq!(
        spares.len(),
        3,
        "one spare in each of the three hierarchies: {spares:?}"
    );
    drop(e);
    assert!(
        spares.iter().all(|d| !d.exists()),
        "spare cgroups left behind: {spares:?}"
    );
}

#[test]
fn the_watchdog_prepares_nothing() {
    let e = Enforcer::detect(Some(MemoryMechanism::Watchdog)).expect("watchdog");
    e.prepare_spare(&limits(64));
    let cage = e.cage(call_id(), &limits(64)).expect("cage");
    assert!(cage.cgroup_dirs().is_empty());
}

/// This process's spare cgroups in every v1/hybrid hierarchy.
fn spare_dirs() -> Vec<PathBuf> {
    ["memory", "pids", "unified"]
        .iter()
        .filter_map(|h| {
            std::fs::read_dir(Path::new("/sys/fs/cgroup").join(h).join("bulkhead")).ok()
        })
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .filter(|p| p.is_dir() && is_spare(p))
        .collect()
}
