//! A process flood under a pids cap (cgroup v1): the call never holds more
//! than the cap, and `kill_all` leaves nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{Proc, call_id, have_v1, is_dead, read};
use bulkhead_host::enforce::{CageLimits, Enforcer, MemoryMechanism};

#[test]
fn pids_cap_bounds_a_flood_and_kill_all_clears_it() {
    if !have_v1() {
        return;
    }
    let e = Enforcer::detect_at(Path::new("/sys/fs/cgroup"), Some(MemoryMechanism::CgroupV1))
        .expect("detect");
    let mut cage = e
        .cage(
            call_id(),
            &CageLimits {
                memory_bytes: Some(256 << 20),
                pids: Some(64),
            },
        )
        .expect("cage");
    let pids_dir = cage.cgroup_dirs()[1].clone();
    assert_eq!(read(&pids_dir.join("pids.max")).trim(), "64");
    // Bounded: 2000 sleeps, each failing fork retried by the loop. (A shell
    // whose fork fails may exit; the sleeps it made stay in the cage.)
    let mut p = Proc::gated("i=0; while [ $i -lt 2000 ]; do sleep 100 & i=$((i+1)); done; wait");
    cage.attach(p.pid()).expect("attach");
    p.release();
    let start = Instant::now();
    let mut max = 0;
    while start.elapsed() < Duration::from_millis(1500) {
        let s = cage.sample();
        max = max.max(s.processes);
        assert!(s.processes <= 64, "{s:?}");
        if read(&pids_dir.join("pids.events")).contains("max ")
            && !read(&pids_dir.join("pids.events")).contains("max 0")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let events = read(&pids_dir.join("pids.events"));
    assert!(!events.contains("max 0"), "the cap was hit: {events}");
    let s = cage.sample();
    max = max.max(s.processes);
    assert!((32..=64).contains(&max), "processes peaked at {max}");
    let members: Vec<u32> = read(&cage.cgroup_dirs()[0].join("cgroup.procs"))
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let t = Instant::now();
    let r = cage.kill_all();
    let took = t.elapsed();
    assert_eq!(r.survivors, 0, "{r:?}");
    assert!(r.killed >= members.len(), "{r:?}");
    for pid in members {
        assert!(is_dead(pid), "{pid} killed");
    }
    assert_eq!(cage.sample().processes, 0);
    assert!(p.wait_timeout(Duration::from_secs(5)).is_some());
    eprintln!(
        "pids: peaked at {max} processes (cap 64); kill_all killed {} in {took:?}",
        r.killed
    );
}
