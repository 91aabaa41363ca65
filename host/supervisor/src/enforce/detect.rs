//! Probing what the machine offers, and explaining it (`bulkhead doctor`).
//!
//! Probing has side effects, on purpose: the only reliable way to know
//! whether a cgroup subtree is usable is to create it and enable its
//! controllers. It creates the (empty) `bulkhead` parent cgroups and, in the
//! delegated cgroup v2 case, moves the host into a leaf cgroup (see
//! [`super::cgroup_v2`]). It never creates per-call cgroups.

use std::path::Path;

use super::cgfs::{self, CgDir};
use super::{MechanismRow, MemoryMechanism};

/// Name of the parent cgroup created in every hierarchy bulkhead uses.
pub(crate) const PARENT: &str = "bulkhead";

/// Everything probing found; kept by the `Enforcer` for cages and reports.
#[derive(Debug)]
pub(crate) struct Probe {
    pub v2: V2Probe,
    pub v1: V1Probe,
    /// Why the process table cannot be read, if it cannot.
    pub(crate) proc_error: Option<String>,
}

#[derive(Debug)]
pub(crate) struct V2Probe {
    /// Where memory-capped call cgroups go.
    pub(crate) memory: Result<V2Parent, String>,
    /// Where call cgroups go when only `cgroup.kill` is wanted (hybrid).
    pub(crate) kill: Result<V2Parent, String>,
}

#[derive(Debug, Clone)]
pub(crate) struct V2Parent {
    pub(crate) dir: CgDir,
    pub(crate) pids: bool,
    pub(crate) cgroup_kill: bool,
    pub(crate) delegated: bool,
}

#[derive(Debug)]
pub(crate) struct V1Probe {
    pub(crate) memory: Result<V1Memory, String>,
    pub(crate) pids: Result<CgDir, String>,
}

#[derive(Debug, Clone)]
pub(crate) struct V1Memory {
    pub(crate) dir: CgDir,
    /// `memory.memsw.*` exists (swap accounting on), so swap can be capped.
    pub(crate) memsw: bool,
    /// `memory.oom_control` has the `oom_kill` counter (Linux ≥ 4.13).
    pub(crate) oom_kill_counter: bool,
}

pub(crate) fn probe(root: &Path, self_cgroup: Option<&str>) -> Probe {
    Probe {
        v2: super::cgroup_v2::probe(root, self_cgroup),
        v1: probe_v1(root),
        proc_error: super::proctable::probe_error(),
    }
}

fn probe_v1(root: &Path) -> V1Probe {
    let mem_mount = root.join("memory");
    let memory = if mem_mount.join("memory.limit_in_bytes").is_file() {
        parent_dir(&mem_mount).map(|dir| V1Memory {
            memsw: mem_mount.join("memory.memsw.limit_in_bytes").exists(),
            oom_kill_counter: cgfs::read(&mem_mount.join("memory.oom_control"))
                .ok()
                .and_then(|t| cgfs::keyed(&t, "oom_kill"))
                .is_some(),
            dir,
        })
    } else {
        Err(format!(
            "no cgroup v1 memory hierarchy at {}",
            mem_mount.display()
        ))
    };
    let pids_mount = root.join("pids");
    let pids = if pids_mount.join("cgroup.procs").is_file() {
        parent_dir(&pids_mount)
    } else {
        Err(format!(
            "no cgroup v1 pids hierarchy at {}",
            pids_mount.display()
        ))
    };
    V1Probe { memory, pids }
}

/// Creates `<mount>/bulkhead` if needed.
pub(crate) fn parent_dir(mount: &Path) -> Result<CgDir, String> {
    let dir = CgDir {
        path: mount.join(PARENT),
        rel: format!("/{PARENT}"),
        simulated: !cgfs::is_cgroupfs(mount),
    };
    cgfs::mkdir_all(&dir.path).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// Why `forced` cannot be used, or `None` if it can.
pub(crate) fn unavailable(probe: &Probe, m: MemoryMechanism) -> Option<String> {
    match m {
        MemoryMechanism::CgroupV2 => probe.v2.memory.as_ref().err().cloned(),
        MemoryMechanism::CgroupV1 => probe.v1.memory.as_ref().err().cloned(),
        MemoryMechanism::Watchdog => probe.proc_error.clone(),
    }
}

/// The strongest mechanism available.
pub(crate) fn strongest(probe: &Probe) -> MemoryMechanism {
    [MemoryMechanism::CgroupV2, MemoryMechanism::CgroupV1]
        .into_iter()
        .find(|m| unavailable(probe, *m).is_none())
        .unwrap_or(MemoryMechanism::Watchdog)
}

fn simulated_note(dir: &CgDir) -> &'static str {
    if dir.simulated {
        " (simulated: not a cgroupfs)"
    } else {
        ""
    }
}

fn row(name: &str, available: bool, used: bool, why: String) -> MechanismRow {
    MechanismRow {
        name: name.to_owned(),
        available,
        used,
        why,
    }
}

/// The rows of [`super::Enforcer::report`].
pub(crate) fn rows(probe: &Probe, used: MemoryMechanism) -> Vec<MechanismRow> {
    use MemoryMechanism::*;
    let mut rows = Vec::new();

    rows.push(match &probe.v2.memory {
        Ok(p) => row(
            "cgroup v2 memory.max",
            true,
            used == CgroupV2,
            format!(
                "call cgroups under {}{}{}; memory.max, memory.swap.max=0, memory.oom.group=1",
                p.dir.path.display(),
                if p.delegated {
                    " (delegated subtree; host moved to bulkhead-host leaf)"
                } else {
                    ""
                },
                simulated_note(&p.dir),
            ),
        ),
        Err(why) => row("cgroup v2 memory.max", false, false, why.clone()),
    });

    rows.push(match &probe.v1.memory {
        Ok(m) => row(
            "cgroup v1 memory",
            true,
            used == CgroupV1,
            format!(
                "call cgroups under {}{}; memory.limit_in_bytes{}; OOM kills {}; the v1 OOM killer kills one process, the host kills the rest",
                m.dir.path.display(),
                simulated_note(&m.dir),
                if m.memsw { " and memory.memsw.limit_in_bytes (no swap)" } else { " (no swap accounting: memory.swappiness=0)" },
                if m.oom_kill_counter { "counted by memory.oom_control oom_kill" } else { "inferred from failcnt and a lost process (kernel < 4.13)" },
            ),
        ),
        Err(why) => row("cgroup v1 memory", false, false, why.clone()),
    });

    let v2_pids = probe.v2.memory.as_ref().is_ok_and(|p| p.pids);
    let pids_row = match (&probe.v1.pids, used) {
        (_, CgroupV2) if v2_pids => row("pids cap", true, true, "cgroup v2 pids.max".into()),
        (Ok(d), CgroupV1) => row(
            "pids cap",
            true,
            true,
            format!("cgroup v1 pids.max under {}{}", d.path.display(), simulated_note(d)),
        ),
        (_, Watchdog) => row(
            "pids cap",
            v2_pids || probe.v1.pids.is_ok(),
            false,
            "watchdog mode has no pids cap (RLIMIT_NPROC counts every process of the uid, not the call)".into(),
        ),
        (Err(why), _) => row("pids cap", false, false, why.clone()),
        (Ok(d), _) => row(
            "pids cap",
            true,
            false,
            format!("v1 pids at {} unused with cgroup v2 memory", d.path.display()),
        ),
    };
    rows.push(pids_row);

    let kill = kill_parent(probe, used);
    rows.push(match (&kill, &probe.v2.kill) {
        (Some(p), _) => row(
            "whole-tree kill: cgroup.kill",
            true,
            true,
            format!(
                "cgroup.kill in call cgroups under {}: the kernel kills every member, setsid'd ones included",
                p.dir.path.display()
            ),
        ),
        (None, Ok(p)) => row(
            "whole-tree kill: cgroup.kill",
            p.cgroup_kill,
            false,
            if used == Watchdog {
                "watchdog mode creates no cgroups".into()
            } else {
                format!("no cgroup.kill in {} (kernel < 5.14)", p.dir.path.display())
            },
        ),
        (None, Err(why)) => row("whole-tree kill: cgroup.kill", false, false, why.clone()),
    });
    rows.push(row(
        "whole-tree kill: cgroup procs loop",
        probe.v1.memory.is_ok() || probe.v2.memory.is_ok(),
        used != Watchdog,
        if used == Watchdog {
            "watchdog mode creates no cgroups".into()
        } else if kill.is_some() {
            "checks cgroup.procs after cgroup.kill and SIGKILLs any member left, until none".into()
        } else {
            "reads cgroup.procs and SIGKILLs every member, until none remain".into()
        },
    ));
    rows.push(row(
        "whole-tree kill: process-tree walk",
        probe.proc_error.is_none(),
        used == Watchdog,
        format!(
            "SIGSTOP then SIGKILL every process reachable from the worker through parent links ({}), plus every process seen in earlier samples (orphans); {}",
            super::proctable::READER,
            if cfg!(target_os = "linux") {
                "pidfds prevent hitting reused pids"
            } else {
                "start times are checked right before each kill (no pidfds on this OS)"
            }
        ),
    ));
    rows.push(match &probe.proc_error {
        None => row(
            "RSS watchdog",
            true,
            used == Watchdog,
            if used == Watchdog {
                format!(
                    "sums resident memory of the call's process tree from {} every {} ms; a spike between two samples is not seen",
                    super::proctable::READER,
                    super::WATCHDOG_INTERVAL.as_millis()
                )
            } else {
                format!(
                    "the kernel enforces; {} is only sampled for usage reports",
                    super::proctable::READER
                )
            },
        ),
        Some(why) => row("RSS watchdog", false, false, why.clone()),
    });
    rows.push(row(
        "RLIMIT_DATA backstop",
        !cfg!(target_os = "macos"),
        used == Watchdog && !cfg!(target_os = "macos"),
        if cfg!(target_os = "macos") {
            "macOS refuses RLIMIT_DATA (EINVAL since macOS 12): one process outgrowing the cap between two watchdog samples is not caught".into()
        } else if used == Watchdog {
            "per-process RLIMIT_DATA (see Enforcer::rlimit_data_backstop) set by the worker on itself catches one process outgrowing the cap between samples".into()
        } else {
            "not needed: the cgroup limit covers every process".into()
        },
    ));
    rows
}

/// The v2 parent whose `cgroup.kill` a cage of mechanism `m` uses.
pub(crate) fn kill_parent(probe: &Probe, m: MemoryMechanism) -> Option<&V2Parent> {
    let p = match m {
        MemoryMechanism::CgroupV2 => probe.v2.memory.as_ref().ok(),
        MemoryMechanism::CgroupV1 => probe.v2.kill.as_ref().ok(),
        MemoryMechanism::Watchdog => None,
    }?;
    p.cgroup_kill.then_some(p)
}
