//! Detection on this machine (hybrid cgroups, root): cgroup v1 is picked,
//! and the report explains why cgroup v2 is not.

use std::path::Path;

use crate::common::have_v1;
use bulkhead_host::enforce::{EnforceError, Enforcer, MemoryMechanism};

#[test]
fn picks_cgroup_v1_and_explains_v2() {
    if !have_v1() {
        return;
    }
    let e = Enforcer::detect_at(Path::new("/sys/fs/cgroup"), None).expect("detect");
    assert_eq!(e.mechanism(), MemoryMechanism::CgroupV1);
    assert_eq!(e.kill_mechanism(), "cgroup.kill");
    assert_eq!(e.sample_interval().as_millis(), 100);
    let rows = e.report();
    for r in &rows {
        eprintln!(
            "{:40} available={:5} used={:5} {}",
            r.name, r.available, r.used, r.why
        );
    }
    let v2 = rows
        .iter()
        .find(|r| r.name == "cgroup v2 memory.max")
        .expect("v2 row");
    assert!(!v2.available && !v2.used);
    assert_eq!(
        v2.why,
        "cgroup2 at /sys/fs/cgroup/unified has no memory controller (controllers: hugetlb)"
    );
    let v1 = rows
        .iter()
        .find(|r| r.name == "cgroup v1 memory")
        .expect("v1 row");
    assert!(v1.available && v1.used, "{v1:?}");
    let pids = rows
        .iter()
        .find(|r| r.name == "pids cap")
        .expect("pids row");
    assert!(pids.available && pids.used, "{pids:?}");
    let kill = rows
        .iter()
        .find(|r| r.name == "whole-tree kill: cgroup.kill")
        .expect("kill row");
    assert!(kill.available && kill.used && kill.why.contains("/sys/fs/cgroup/unified/bulkhead"));
    let wd = rows
        .iter()
        .find(|r| r.name == "RSS watchdog")
        .expect("watchdog row");
    assert!(wd.available && !wd.used);
    // Serializable for `bulkhead doctor --json`.
    let json = serde_json::to_string(&rows).expect("json");
    assert!(json.contains("\"available\":false"));
}

#[test]
fn forcing_an_unavailable_mechanism_names_why() {
    if !have_v1() {
        return;
    }
    let err = Enforcer::detect_at(Path::new("/sys/fs/cgroup"), Some(MemoryMechanism::CgroupV2))
        .expect_err("v2 has no memory controller here");
    assert!(matches!(
        err,
        EnforceError::Unavailable {
            mechanism: MemoryMechanism::CgroupV2,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "memory mechanism cgroup-v2 is unavailable: cgroup2 at /sys/fs/cgroup/unified has no memory controller (controllers: hugetlb)"
    );
    let e = Enforcer::detect_at(Path::new("/sys/fs/cgroup"), Some(MemoryMechanism::Watchdog))
        .expect("watchdog");
    assert_eq!(e.mechanism(), MemoryMechanism::Watchdog);
    assert_eq!(e.kill_mechanism(), "process-tree walk");
    assert_eq!(e.sample_interval().as_millis(), 50);
    let rows = e.report();
    assert!(rows.iter().any(|r| r.name == "RSS watchdog" && r.used));
    assert!(
        rows.iter()
            .any(|r| r.name == "RLIMIT_DATA backstop" && r.used)
    );
    let limits = bulkhead_host::enforce::CageLimits {
        memory_bytes: Some(128 << 20),
        pids: None,
    };
    assert_eq!(e.rlimit_data_backstop(&limits), Some(4 << 30));
}

#[test]
fn enforcer_is_shareable_and_cages_can_move() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Enforcer>();
    send_sync::<std::sync::Arc<Enforcer>>();
    send::<bulkhead_host::enforce::Cage>();
}

#[test]
fn mechanism_names_round_trip() {
    for (m, s) in [
        (MemoryMechanism::CgroupV2, "cgroup-v2"),
        (MemoryMechanism::CgroupV1, "cgroup-v1"),
        (MemoryMechanism::Watchdog, "watchdog"),
    ] {
        assert_eq!(m.to_string(), s);
        assert_eq!(s.parse::<MemoryMechanism>().expect("parse"), m);
        assert_eq!(serde_json::to_string(&m).expect("ser"), format!("\"{s}\""));
        assert_eq!(
            serde_json::from_str::<MemoryMechanism>(&format!("\"{s}\"")).expect("de"),
            m
        );
    }
    let err = "cgroups".parse::<MemoryMechanism>().expect_err("bad name");
    assert!(err.to_string().contains("\"cgroups\""));
}
