//! [`Cage`]: one call's container, over whichever mechanism the
//! [`Enforcer`](super::Enforcer) uses.

use std::path::PathBuf;

use super::DeferredAttach;
use super::cage_cgroup::CgroupCage;
use super::carry::SpawnCgroups;
use super::watchdog::WatchdogCage;
use super::{EnforceError, KillReport, Sample};

/// What a cage is made of: cgroups, or the watchdog's process tree.
#[derive(Debug)]
pub(super) enum Inner {
    Cgroup(CgroupCage),
    Watchdog(WatchdogCage),
}

/// The container of one call. Dropping it kills whatever is left of the
/// call and removes its cgroups.
#[derive(Debug)]
pub struct Cage {
    pub(super) inner: Inner,
    pub(super) call_id: u64,
}

impl Cage {
    /// The call's cgroup directories (the memory one first); empty in
    /// watchdog mode.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        match &self.inner {
            Inner::Cgroup(c) => std::iter::once(c.primary())
                .chain(c.others())
                .map(|d| d.path.clone())
                .collect(),
            Inner::Watchdog(_) => Vec::new(),
        }
    }

    /// Puts the worker `pid` into the cage, right after spawn and before it
    /// runs anything; its descendants inherit membership.
    pub fn attach(&mut self, pid: u32) -> Result<(), EnforceError> {
        match &mut self.inner {
            Inner::Cgroup(c) => c.attach(pid),
            Inner::Watchdog(w) => w.attach(pid),
        }
    }

    /// The cgroups a thread spawning the worker should be in (see
    /// [`SpawnCgroups`]); empty when the worker must be attached after its
    /// spawn.
    pub(crate) fn spawn_cgroups(&self) -> SpawnCgroups {
        match &self.inner {
            Inner::Cgroup(c) => c.spawn_cgroups(),
            Inner::Watchdog(_) => SpawnCgroups::default(),
        }
    }

    /// Like [`Cage::attach`], for a worker spawned with
    /// [`Cage::spawn_cgroups`] entered (`carried`) or not. A returned
    /// [`DeferredAttach`] must be run before the worker is reaped.
    pub(crate) fn attach_spawned(
        &mut self,
        pid: u32,
        carried: bool,
    ) -> Result<Option<DeferredAttach>, EnforceError> {
        match &mut self.inner {
            Inner::Cgroup(c) => c.attach_spawned(pid, carried),
            Inner::Watchdog(w) => w.attach(pid).map(|()| None),
        }
    }

    /// Samples usage; call every
    /// [`Enforcer::sample_interval`](super::Enforcer::sample_interval).
    pub fn sample(&mut self) -> Sample {
        match &mut self.inner {
            Inner::Cgroup(c) => c.sample(),
            Inner::Watchdog(w) => w.sample(),
        }
    }

    /// True if memory enforcement fired (see [`Sample::memory_exceeded`]).
    pub fn memory_limit_hit(&self) -> bool {
        match &self.inner {
            Inner::Cgroup(c) => c.memory_limit_hit(),
            Inner::Watchdog(w) => w.memory_limit_hit(),
        }
    }

    /// True if no process of the call is alive, known without waiting:
    /// the cgroups list no live member (cgroup modes), or, in watchdog
    /// mode, the latest process-table walk found none or every process the
    /// cage knows is dead (a `stat` each; no new walk is made, so `false`
    /// may only mean "not known"). Then [`Cage::kill_all`] has nothing to
    /// do.
    pub fn known_empty(&mut self) -> bool {
        match &mut self.inner {
            Inner::Cgroup(c) => c.is_empty(),
            Inner::Watchdog(w) => w.known_empty(),
        }
    }

    /// SIGKILLs every process of the call, setsid'd and double-forked ones
    /// included, until none remain or a second passes. Never
    /// waits for (reaps) the worker: the supervisor does, through its
    /// `Child`; other processes are reaped by their parents or init.
    pub fn kill_all(&mut self) -> KillReport {
        match &mut self.inner {
            Inner::Cgroup(c) => c.kill_all(),
            Inner::Watchdog(w) => w.kill_all(),
        }
    }
}

impl Drop for Cage {
    fn drop(&mut self) {
        // The inner cages kill leftovers and remove their cgroups in their
        // own Drop (so a partially built cage cleans up too); nothing in
        // those paths panics.
        tracing::trace!(call_id = self.call_id, "dropping cage");
    }
}
