//! cgroup v1 (this machine): an unbounded memory eater dies at the cap, the
//! cage reports the OOM kill, and the test process is unaffected.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{Proc, call_id, have_v1, is_dead, read, self_rss};
use bulkhead_host::enforce::{CageLimits, Enforcer, MemoryMechanism};

const CAP: u64 = 128 << 20;

#[test]
fn memory_eater_is_oom_killed_at_the_cap() {
    if !have_v1() {
        return;
    }
    let e = Enforcer::detect_at(Path::new("/sys/fs/cgroup"), Some(MemoryMechanism::CgroupV1))
        .expect("detect");
    let mut cage = e
        .cage(
            call_id(),
            &CageLimits {
                memory_bytes: Some(CAP),
                pids: Some(64),
            },
        )
        .expect("cage");
    let dirs = cage.cgroup_dirs();
    assert_eq!(
        dirs.len(),
        3,
        "memory, pids and unified kill cgroups: {dirs:?}"
    );
    assert_eq!(
        read(&dirs[0].join("memory.limit_in_bytes")).trim(),
        CAP.to_string()
    );
    assert_eq!(
        read(&dirs[0].join("memory.memsw.limit_in_bytes")).trim(),
        CAP.to_string()
    );
    assert_eq!(read(&dirs[1].join("pids.max")).trim(), "64");
    assert!(dirs[2].starts_with("/sys/fs/cgroup/unified/bulkhead"));

    let mut p = Proc::gated("exec tail /dev/zero");
    cage.attach(p.pid()).expect("attach");
    let start = Instant::now();
    p.release();
    let mut peak_seen = 0;
    let status = loop {
        let s = cage.sample();
        peak_seen = peak_seen.max(s.peak_charged_bytes.unwrap_or(0));
        if let Some(st) = p.0.try_wait().expect("try_wait") {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "eater not killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let died_after = start.elapsed();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(cage.memory_limit_hit(), "oom_kill counted");
    let s = cage.sample();
    assert!(s.memory_exceeded);
    assert_eq!(s.processes, 0);
    assert!(
        s.peak_charged_bytes.unwrap_or(0) <= CAP && s.peak_charged_bytes.unwrap_or(0) > CAP / 2,
        "{s:?}"
    );
    let report = cage.kill_all();
    assert_eq!(report.survivors, 0);
    assert!(is_dead(p.pid()));
    // The host is unaffected: alive, small, not in the call's cgroup.
    assert!(self_rss() < CAP, "test process RSS {}", self_rss());
    let own = read(Path::new("/proc/self/cgroup"));
    assert!(!own.contains("/bulkhead/"), "{own}");
    eprintln!(
        "cgroup-v1: eater started→SIGKILLed by the kernel in {died_after:?}; peak charged {peak_seen} B"
    );
    let dirs = cage.cgroup_dirs();
    drop(cage);
    for d in dirs {
        assert!(!d.exists(), "{} removed on drop", d.display());
    }
}

#[test]
fn usage_is_sampled_in_cgroup_mode() {
    if !have_v1() {
        return;
    }
    let e = Enforcer::detect_at(Path::new("/sys/fs/cgroup"), Some(MemoryMechanism::CgroupV1))
        .expect("detect");
    let mut cage = e.cage(call_id(), &CageLimits::default()).expect("cage");
    // Burns CPU for a while, in two processes.
    let mut p =
        Proc::gated("i=0; while [ $i -lt 3000000 ]; do i=$((i+1)); done & sleep 100 & wait");
    cage.attach(p.pid()).expect("attach");
    p.release();
    crate::common::wait_descendants(p.pid(), 2);
    let mut last = 0;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(50));
        let s = cage.sample();
        assert!(s.cpu_ms >= last, "cpu never decreases");
        last = s.cpu_ms;
        assert_eq!(s.processes, 3, "{s:?}");
        assert!(s.rss_bytes > 0 && s.peak_rss_bytes >= s.rss_bytes);
        assert!(!s.memory_exceeded);
    }
    assert!(last > 0, "cpu counted");
    let r = cage.kill_all();
    assert_eq!((r.killed, r.survivors), (3, 0));
    assert!(p.wait_timeout(Duration::from_secs(5)).is_some());
    assert!(!cage.memory_limit_hit());
}
