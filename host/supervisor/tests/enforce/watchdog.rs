//! Watchdog mode (forced here): sampling flags a memory eater over the cap,
//! `kill_all` kills it, processes orphaned after a sample are still
//! killed, and a cage whose known processes are all dead is known empty
//! (the end of most calls, answered without walking the process table).

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{Proc, call_id, is_dead, self_rss, wait_descendants, wait_for};
use bulkhead_host::enforce::{CageLimits, Enforcer, MemoryMechanism};

const CAP: u64 = 128 << 20;

fn watchdog() -> Enforcer {
    let e = Enforcer::detect_at(Path::new("/sys/fs/cgroup"), Some(MemoryMechanism::Watchdog))
        .expect("watchdog");
    assert_eq!(e.mechanism(), MemoryMechanism::Watchdog);
    e
}

#[test]
fn memory_eater_is_flagged_and_killed() {
    let e = watchdog();
    let mut cage = e
        .cage(
            call_id(),
            &CageLimits {
                memory_bytes: Some(CAP),
                pids: None,
            },
        )
        .expect("cage");
    assert!(cage.cgroup_dirs().is_empty(), "nothing on disk");
    let mut p = Proc::gated("tail /dev/zero");
    cage.attach(p.pid()).expect("attach");
    let start = Instant::now();
    p.release();
    let mut samples = 0;
    let (sample, flagged_at) = loop {
        thread::sleep(e.sample_interval());
        let s = cage.sample();
        samples += 1;
        if s.memory_exceeded {
            break (s, Instant::now());
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never exceeded: {s:?}"
        );
    };
    assert!(cage.memory_limit_hit());
    assert!(
        sample.rss_bytes > CAP && sample.peak_rss_bytes >= sample.rss_bytes,
        "{sample:?}"
    );
    assert_eq!(sample.peak_charged_bytes, None);
    let tree: Vec<u32> = crate::common::descendants(p.pid());
    let report = cage.kill_all();
    let killed_in = flagged_at.elapsed();
    assert_eq!(report.survivors, 0);
    assert!(report.killed >= 2, "sh and tail: {report:?}");
    let status = p.wait_timeout(Duration::from_secs(5)).expect("sh reaped");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    for pid in tree {
        assert!(is_dead(pid), "{pid} killed");
    }
    assert!(self_rss() < CAP, "test process unaffected");
    eprintln!(
        "watchdog: flagged after {:?} ({samples} samples) at rss {} MiB (cap 128 MiB); kill_all took {killed_in:?}",
        flagged_at - start,
        sample.rss_bytes >> 20
    );
    let after = cage.sample();
    assert_eq!(after.processes, 0);
    assert!(after.memory_exceeded, "stays set");
}

#[test]
fn orphans_seen_in_a_sample_are_killed() {
    let e = watchdog();
    let mut cage = e.cage(call_id(), &CageLimits::default()).expect("cage");
    let mut p = Proc::gated("sleep 100 & sleep 100 & wait");
    cage.attach(p.pid()).expect("attach");
    p.release();
    let kids = wait_descendants(p.pid(), 2);
    let s = cage.sample();
    assert_eq!(s.processes, 3, "{s:?}");
    // The worker dies first: its children are reparented outside the tree.
    p.0.kill().expect("kill sh");
    p.0.wait().expect("reap sh");
    wait_for("orphans reparented", Duration::from_secs(5), || {
        kids.iter()
            .all(|k| crate::common::stat(*k).is_some_and(|(ppid, _)| ppid != p.pid()))
    });
    assert_eq!(
        cage.sample().processes,
        2,
        "orphans still belong to the call"
    );
    let r = cage.kill_all();
    assert_eq!((r.killed, r.survivors), (2, 0), "{r:?}");
    for k in kids {
        assert!(is_dead(k), "orphan {k} killed");
    }
}

#[test]
fn cpu_time_is_cumulative() {
    let e = watchdog();
    let mut cage = e.cage(call_id(), &CageLimits::default()).expect("cage");
    // A short CPU burner that exits, then a sleeper.
    let mut p = Proc::gated("(i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done); exec sleep 100");
    cage.attach(p.pid()).expect("attach");
    p.release();
    let mut last = 0;
    let mut max_procs = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        thread::sleep(e.sample_interval());
        let s = cage.sample();
        assert!(s.cpu_ms >= last);
        last = s.cpu_ms;
        max_procs = max_procs.max(s.processes);
        // Burner gone, the root now `sleep`: the burner's CPU still counts.
        if crate::common::descendants(p.pid()).is_empty() && max_procs >= 2 {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    let s = cage.sample();
    assert!(s.cpu_ms >= 100, "burner's cpu kept after it exited: {s:?}");
    assert_eq!(s.processes, 1);
    cage.kill_all();
    p.wait_timeout(Duration::from_secs(5)).expect("reaped");
}

#[test]
fn a_cage_whose_known_processes_are_dead_is_known_empty() {
    let e = watchdog();
    let mut cage = e.cage(call_id(), &CageLimits::default()).expect("cage");
    assert!(
        !cage.known_empty(),
        "nothing attached: not known to be empty"
    );
    let mut p = Proc::gated("exit 0");
    cage.attach(p.pid()).expect("attach");
    assert!(!cage.known_empty(), "the root is alive");
    p.release();
    p.0.wait().expect("reap sh");
    // Never sampled, root gone: no walk could find anything.
    assert!(cage.known_empty());
    let s = cage.sample();
    assert_eq!(s.processes, 0, "{s:?}");
    let r = cage.kill_all();
    assert_eq!((r.killed, r.survivors), (0, 0), "{r:?}");
}

#[test]
fn a_dead_root_with_a_sampled_live_child_is_not_known_empty() {
    let e = watchdog();
    let mut cage = e.cage(call_id(), &CageLimits::default()).expect("cage");
    let mut p = Proc::gated("sleep 100 & wait");
    cage.attach(p.pid()).expect("attach");
    p.release();
    let kids = wait_descendants(p.pid(), 1);
    assert_eq!(cage.sample().processes, 2);
    p.0.kill().expect("kill sh");
    p.0.wait().expect("reap sh");
    assert!(!cage.known_empty(), "the orphaned sleep is alive and known");
    let r = cage.kill_all();
    assert_eq!((r.killed, r.survivors), (1, 0), "{r:?}");
    for k in kids {
        assert!(is_dead(k), "orphan {k} killed");
    }
}
