//! cgroup v2: finding a subtree bulkhead may write, and per-call limits.
//!
//! Two layouts are tried, in order:
//!
//! 1. **Top level** (root, or a cgroup namespace we own):
//!    `<mount>/bulkhead/`, with `+memory +pids` written to the mount's and
//!    `bulkhead`'s `cgroup.subtree_control`. Call cgroups are
//!    `<mount>/bulkhead/h<pid>-<start>-c<call>/`.
//! 2. **Delegated** (non-root under systemd `Delegate=yes`): the host's own
//!    cgroup `O` from `/proc/self/cgroup`. cgroup v2 forbids controllers in
//!    the subtree of a cgroup that holds processes, so the host moves itself
//!    into the leaf `O/bulkhead-host`, then enables `+memory +pids` in `O`,
//!    and creates call cgroups as siblings: `O/h<pid>-<start>-c<call>/`.
//!    Refused (reported unavailable) when `O` holds processes other than the
//!    host, because moving them is not ours to do, or when `O` has no memory
//!    controller or is not writable. Start the host in a unit of its own
//!    with `Delegate=yes` (e.g. `systemd-run --user --scope -p Delegate=yes`):
//!    without delegation systemd considers `O`'s subtree its own and may
//!    reorganise it.
//!
//! On a hybrid machine the cgroup2 mount (`<root>/unified`) usually has no
//! memory controller; layout 1 still works there without controllers and is
//! used for `cgroup.kill` only.

use std::path::Path;

use super::cgfs::{self, CgDir};
use super::detect::{V2Parent, V2Probe};
use super::{CageLimits, EnforceError};

/// Leaf the host moves itself into in the delegated layout.
pub(crate) const HOST_LEAF: &str = "bulkhead-host";

pub(crate) fn probe(root: &Path, self_cgroup: Option<&str>) -> V2Probe {
    let Some(mount) = [root.to_path_buf(), root.join("unified")]
        .into_iter()
        .find(|m| m.join("cgroup.controllers").is_file())
    else {
        let why = format!(
            "no cgroup2 hierarchy at {} or {}",
            root.display(),
            root.join("unified").display()
        );
        return V2Probe {
            memory: Err(why.clone()),
            kill: Err(why),
        };
    };
    let simulated = !cgfs::is_cgroupfs(&mount);
    let top = CgDir {
        path: mount.clone(),
        rel: "/".into(),
        simulated,
    };
    let controllers = controllers(&top);
    let has = |c: &str| controllers.iter().any(|x| x == c);

    let parent = super::detect::parent_dir(&mount).map(|dir| V2Parent {
        cgroup_kill: dir.has("cgroup.kill"),
        dir,
        pids: false,
        delegated: false,
    });

    let memory = if !has("memory") {
        Err(format!(
            "cgroup2 at {} has no memory controller (controllers: {})",
            mount.display(),
            if controllers.is_empty() {
                "none".into()
            } else {
                controllers.join(" ")
            }
        ))
    } else {
        let top_level = parent.clone().and_then(|mut p| {
            enable(&top, has("pids"))?;
            p.pids = enable(&p.dir, has("pids"))?;
            Ok(p)
        });
        top_level.or_else(|top_why| {
            delegated(&mount, self_cgroup, simulated)
                .map_err(|del_why| format!("{top_why}; delegated subtree: {del_why}"))
        })
    };
    let kill = match (&memory, parent) {
        (Ok(p), _) => Ok(p.clone()),
        (Err(_), Ok(p)) if p.cgroup_kill => Ok(p),
        (Err(_), Ok(p)) => Err(format!(
            "no cgroup.kill in {} (kernel < 5.14)",
            p.dir.path.display()
        )),
        (Err(_), Err(why)) => Err(why),
    };
    V2Probe { memory, kill }
}

fn controllers(dir: &CgDir) -> Vec<String> {
    dir.read("cgroup.controllers")
        .unwrap_or_default()
        .split_ascii_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Enables `memory` (required) and `pids` (if `want_pids`) for `dir`'s
/// children. Returns whether pids ended up enabled.
fn enable(dir: &CgDir, want_pids: bool) -> Result<bool, String> {
    let current = dir.read("cgroup.subtree_control").unwrap_or_default();
    let on = |c: &str| current.split_ascii_whitespace().any(|x| x == c);
    let need_memory = !on("memory");
    let need_pids = want_pids && !on("pids");
    if !need_memory && !need_pids {
        return Ok(want_pids);
    }
    // One write first: in a simulated hierarchy it leaves both in the file,
    // and on a real one it is a single transaction. If it fails (pids may be
    // missing), enable what can be enabled one by one.
    let both: Vec<&str> = [(need_memory, "+memory"), (need_pids, "+pids")]
        .into_iter()
        .filter_map(|(need, c)| need.then_some(c))
        .collect();
    if dir.write("cgroup.subtree_control", &both.join(" ")).is_ok() {
        return Ok(want_pids);
    }
    if need_memory {
        dir.write("cgroup.subtree_control", "+memory")
            .map_err(|e| e.to_string())?;
    }
    Ok(want_pids && (!need_pids || dir.write("cgroup.subtree_control", "+pids").is_ok()))
}

/// The host's own cgroup v2 path, as `/proc/self/cgroup` shows it.
fn own_cgroup() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

fn delegated(mount: &Path, self_cgroup: Option<&str>, simulated: bool) -> Result<V2Parent, String> {
    let mut rel = match self_cgroup {
        Some(s) => s.to_owned(),
        None => own_cgroup().ok_or("no cgroup2 line in /proc/self/cgroup")?,
    };
    // A second probe in the same process finds the host already in its leaf.
    if let Some(up) = rel.strip_suffix(&format!("/{HOST_LEAF}")) {
        rel = up.to_owned();
    }
    let trimmed = rel.trim_start_matches('/');
    if trimmed.is_empty() {
        return Err(
            "the host's own cgroup is the cgroup2 root; nothing is delegated below it".into(),
        );
    }
    let own = CgDir {
        path: mount.join(trimmed),
        rel: rel.clone(),
        simulated,
    };
    let ctl = controllers(&own);
    if !ctl.iter().any(|c| c == "memory") {
        return Err(format!(
            "own cgroup {} has no memory controller delegated (controllers: {})",
            own.path.display(),
            if ctl.is_empty() {
                "none".into()
            } else {
                ctl.join(" ")
            }
        ));
    }
    let me = std::process::id() as i32;
    let others: Vec<String> = own
        .procs()
        .into_iter()
        .filter(|p| *p != me)
        .map(|p| p.to_string())
        .collect();
    if !others.is_empty() {
        return Err(format!(
            "own cgroup {} also holds other processes ({}); bulkhead will not move them",
            own.path.display(),
            others.join(" ")
        ));
    }
    let leaf = CgDir {
        path: own.path.join(HOST_LEAF),
        rel: format!("{rel}/{HOST_LEAF}"),
        simulated,
    };
    cgfs::mkdir_all(&leaf.path).map_err(|e| e.to_string())?;
    leaf.write("cgroup.procs", &me.to_string())
        .map_err(|e| e.to_string())?;
    let pids = enable(&own, ctl.iter().any(|c| c == "pids"))?;
    Ok(V2Parent {
        cgroup_kill: own.has("cgroup.kill"),
        dir: own,
        pids,
        delegated: true,
    })
}

/// Creates a call cgroup under `parent` and, if `with_limits`, writes them.
pub(crate) fn create(
    parent: &V2Parent,
    name: &str,
    limits: &CageLimits,
    with_limits: bool,
) -> Result<CgDir, EnforceError> {
    let dir = CgDir {
        path: parent.dir.path.join(name),
        rel: format!("{}/{name}", parent.dir.rel.trim_end_matches('/')),
        simulated: parent.dir.simulated,
    };
    cgfs::mkdir(&dir.path)?;
    if !with_limits {
        return Ok(dir);
    }
    let result = write_limits(&dir, parent, limits);
    if result.is_err() {
        let _ = cgfs::remove_cgroup(&dir.path, dir.simulated);
    }
    result.map(|()| dir)
}

fn write_limits(dir: &CgDir, parent: &V2Parent, limits: &CageLimits) -> Result<(), EnforceError> {
    if let Some(bytes) = limits.memory_bytes {
        dir.write("memory.max", &bytes.to_string())?;
        // Swap would let a call exceed its cap invisibly; absent when the
        // kernel has no swap accounting, in which case there is nothing to cap.
        if dir.has("memory.swap.max") {
            dir.write("memory.swap.max", "0")?;
        }
    }
    // On OOM, kill the whole call, not only its largest process: a half-dead
    // tool tree is useless and may hold pipes open.
    if dir.has("memory.oom.group") {
        dir.write("memory.oom.group", "1")?;
    }
    if let Some(n) = limits.pids
        && parent.pids
    {
        dir.write("pids.max", &n.to_string())?;
    }
    Ok(())
}

/// `oom_kill`/`oom_group_kill` in `memory.events` (hierarchical counts).
pub(crate) fn oom_killed(dir: &CgDir) -> bool {
    let Ok(text) = dir.read("memory.events") else {
        return false;
    };
    ["oom_kill", "oom_group_kill"]
        .iter()
        .any(|k| cgfs::keyed(&text, k).unwrap_or(0) > 0)
}

/// Total CPU of every process that ever ran in the cgroup, in ms.
pub(crate) fn cpu_ms(dir: &CgDir) -> Option<u64> {
    let text = dir.read("cpu.stat").ok()?;
    cgfs::keyed(&text, "usage_usec").map(|us| us / 1000)
}
