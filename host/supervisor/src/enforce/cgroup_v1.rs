//! cgroup v1: per-call memory and pids cgroups (hybrid and legacy hosts).
//!
//! Layout: `<root>/memory/bulkhead/<call>/` and `<root>/pids/bulkhead/<call>/`,
//! plus, when a cgroup2 hierarchy with `cgroup.kill` is mounted (hybrid),
//! `<root>/unified/bulkhead/<call>/` used only for killing.
//!
//! The v1 OOM killer kills one process (the largest), not the group, so
//! "the limit fired" must be detected rather than inferred from the whole
//! call dying: `memory.oom_control` carries an `oom_kill N` counter since
//! Linux 4.13. `memory.failcnt` is *not* used on such kernels: it counts
//! every time usage touched the limit, which happens routinely while the
//! kernel reclaims page cache, without anything being killed. On older
//! kernels (no counter) the fallback is "failcnt grew and a process
//! vanished since the previous sample", which can be fooled by a process
//! that exits normally while the cgroup is reclaiming.

use super::cgfs::{self, CgDir};
use super::detect::V1Memory;
use super::{CageLimits, EnforceError};

pub(crate) fn child(parent: &CgDir, name: &str) -> CgDir {
    CgDir {
        path: parent.path.join(name),
        rel: format!("{}/{name}", parent.rel.trim_end_matches('/')),
        simulated: parent.simulated,
    }
}

/// Creates `memory/bulkhead/<name>` with the memory limit (and no swap).
pub(crate) fn create_memory(
    m: &V1Memory,
    name: &str,
    limits: &CageLimits,
) -> Result<CgDir, EnforceError> {
    let dir = child(&m.dir, name);
    cgfs::mkdir(&dir.path)?;
    let result = (|| {
        let Some(bytes) = limits.memory_bytes else {
            return Ok(());
        };
        // memsw must stay ≥ the memory limit, so the memory limit goes first.
        dir.write("memory.limit_in_bytes", &bytes.to_string())?;
        if m.memsw && dir.has("memory.memsw.limit_in_bytes") {
            // Equal limits leave no room for swap: the cap is real memory.
            dir.write("memory.memsw.limit_in_bytes", &bytes.to_string())?;
        } else if dir.has("memory.swappiness") {
            // Without swap accounting, swappiness 0 keeps this memcg from
            // swapping at all. Best effort: older kernels refuse it.
            let _ = dir.write("memory.swappiness", "0");
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = cgfs::remove_cgroup(&dir.path, dir.simulated);
        return Err(e);
    }
    Ok(dir)
}

/// Creates `pids/bulkhead/<name>` with `pids.max` if a cap is given.
pub(crate) fn create_pids(
    parent: &CgDir,
    name: &str,
    max: Option<u64>,
) -> Result<CgDir, EnforceError> {
    let dir = child(parent, name);
    cgfs::mkdir(&dir.path)?;
    if let Some(n) = max
        && let Err(e) = dir.write("pids.max", &n.to_string())
    {
        let _ = cgfs::remove_cgroup(&dir.path, dir.simulated);
        return Err(e);
    }
    Ok(dir)
}

/// The `oom_kill` counter of `memory.oom_control`, if the kernel has it.
pub(crate) fn oom_kills(dir: &CgDir) -> Option<u64> {
    cgfs::keyed(&dir.read("memory.oom_control").ok()?, "oom_kill")
}

pub(crate) fn failcnt(dir: &CgDir) -> u64 {
    cgfs::read_u64(&dir.file("memory.failcnt")).unwrap_or(0)
}
