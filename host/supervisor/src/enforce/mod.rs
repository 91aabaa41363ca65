//! Enforcement: capping one call's whole process tree (memory, pids),
//! sampling its usage, and killing all of it.
//!
//! # Model
//!
//! Each tool call runs in a worker process; everything the worker starts
//! belongs to the call. An [`Enforcer`] is created once per host (it probes
//! the machine); it makes one [`Cage`] per call. The supervisor puts the
//! worker in the cage before the worker runs anything (with cgroup v1 it
//! is born in its cgroups; otherwise it is attached right after its spawn),
//! samples it every [`Enforcer::sample_interval`], and calls
//! [`Cage::kill_all`] when the call ends, times out, or
//! [`Sample::memory_exceeded`] is set.
//!
//! Mechanisms, strongest first ([`Enforcer::detect`] picks the first that
//! works; [`Enforcer::report`] says why each does or does not):
//!
//! 1. [`MemoryMechanism::CgroupV2`]: a call cgroup with `memory.max`,
//!    `memory.swap.max = 0`, `memory.oom.group = 1` and `pids.max`. The kernel
//!    counts every page of every descendant and kills the whole call on OOM;
//!    `cgroup.kill` kills every member atomically. Call cgroups go at the top
//!    of the hierarchy (as root, or in a cgroup namespace of our own) or,
//!    under systemd's `Delegate=yes`, beside the host's own cgroup, into
//!    whose leaf the host then moves itself.
//! 2. [`MemoryMechanism::CgroupV1`]: v1 `memory` and `pids` call cgroups
//!    (root on hybrid hosts), plus a cgroup2 cgroup without controllers,
//!    used only for `cgroup.kill`, when cgroup2 is mounted.
//! 3. [`MemoryMechanism::Watchdog`]: no cgroups. The tree is found by
//!    walking the process table from the worker, its resident memory summed
//!    and compared with the cap; killing stops then kills the walked tree.
//!    The table is read from `/proc` on Linux, through libproc on macOS and
//!    `sysctl kern.proc` on FreeBSD; the macOS and FreeBSD readers are
//!    compile-checked, not run in CI.
//!
//! Memory figures: `rss_bytes` is the sum of resident pages of the call's
//! live processes (from `/proc`) in every mode, so modes compare; the
//! kernel's charge (which also counts page cache and kernel memory) is
//! reported apart as `peak_charged_bytes` in cgroup modes.
//!
//! All methods are synchronous and do small file I/O on `/proc` and
//! cgroupfs. [`Cage::sample`] reads a few files in cgroup modes, and walks
//! the whole process table in watchdog mode (a cost that grows with the
//! number of processes on the machine); [`Cage::kill_all`] and dropping a
//! [`Cage`] may block up to a second, plus a quarter second per cgroup, so
//! async callers should run them on a blocking thread.
//!
//! # Caveats
//!
//! - **Watchdog gaps.** Memory is checked once per sample interval (50 ms),
//!   so what a fast allocation adds between two samples is not seen until
//!   the next; the worker should also apply
//!   [`Enforcer::rlimit_data_backstop`] to itself.
//!   A process that is forked, orphaned (its parent exits) and reparented
//!   outside the tree entirely between two samples is never seen and
//!   escapes both the cap and `kill_all`; the worker is a child subreaper,
//!   so orphans normally stay inside its tree. There is no pids cap. A
//!   member in state `D` inside `fork` when `kill_all` stops the tree can
//!   complete that fork unseen.
//!   Summing RSS counts shared pages (libraries) once per process, so the
//!   watchdog errs towards killing early, never late.
//! - **cgroup v1 OOM kills one process** (the largest), not the call; the
//!   rest keep running until the supervisor, seeing
//!   [`Cage::memory_limit_hit`], calls [`Cage::kill_all`].
//! - **v1 call cgroups sit at the hierarchy root** (`memory/bulkhead/…`),
//!   not below the host's own cgroup, so limits set on the host's own
//!   cgroup (a service's `MemoryMax`) do not cover workers; the per-call cap
//!   is the bound.
//! - **Processes in uninterruptible sleep** (state `D`, e.g. stuck on NFS or
//!   FUSE) do not die on SIGKILL until the kernel lets them; `kill_all`
//!   reports them as survivors after a second and logs a warning.
//! - **CPU time** is the sum of what `/proc` showed for each process when
//!   last sampled: a process that lives and dies between two samples is not
//!   counted, except on cgroup v2 where `cpu.stat` counts everything.
//! - **Stale cleanup trusts pids.** Two hosts in different pid namespaces
//!   sharing one cgroupfs would see each other's cgroups as stale.
//! - **Probing writes**: it creates the `bulkhead` parent cgroups and, in
//!   the delegated cgroup v2 layout, moves the host into a leaf cgroup.

mod cage;
mod cage_cgroup;
mod carry;
mod cgfs;
mod cgroup_v1;
mod cgroup_v2;
mod detect;
mod proctable;
mod proctree;
mod spare;
mod stale;
mod treewalk;
mod watchdog;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use cage::Cage;
use cage::Inner;
pub(crate) use cage_cgroup::DeferredAttach;
use cage_cgroup::{CgroupCage, Flavor};
pub(crate) use carry::{Carried, SpawnCgroups, own_cgroups};
pub(crate) use proctree::signal_tree;
use spare::SpareSlot;
use stale::Graveyard;
use watchdog::WatchdogCage;

/// Environment variable naming the mechanism when none is forced.
pub const MECHANISM_ENV: &str = "BULKHEAD_MEMORY_MECHANISM";

/// Where cgroupfs is mounted on Linux.
pub(crate) const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Watchdog sampling period. Each sample scans `/proc` (measured ≈1.2 ms
/// with 80 processes on the machine, debug build), so 50 ms costs the host
/// ~2% of a core per running call. The price is overshoot: `tail /dev/zero`
/// grows ≈2 GiB/s here and was flagged at 186–237 MiB against a 128 MiB cap.
pub(crate) const WATCHDOG_INTERVAL: Duration = Duration::from_millis(50);

/// Sampling period in cgroup modes: the kernel enforces, sampling only
/// feeds usage reports and notices OOM kills, so 100 ms is prompt enough.
pub(crate) const CGROUP_INTERVAL: Duration = Duration::from_millis(100);

/// How long `kill_all` keeps re-killing before reporting survivors. SIGKILLed
/// processes normally vanish within milliseconds; a second covers tearing
/// down large address spaces and slow machines, and anything still alive
/// after that is stuck in the kernel, where waiting longer rarely helps.
pub(crate) const KILL_PATIENCE: Duration = Duration::from_secs(1);

/// Smallest RLIMIT_DATA recommended as a watchdog backstop: RLIMIT_DATA
/// counts writable private mappings, which V8 and Go reserve generously;
/// Chromium's renderers run under 4–16 GiB, so 4 GiB is the smallest value
/// known not to break such runtimes.
const RLIMIT_DATA_FLOOR: u64 = 4 << 30;

/// How a call's memory is capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryMechanism {
    /// A cgroup v2 call cgroup: the kernel caps the whole tree.
    CgroupV2,
    /// cgroup v1 memory and pids call cgroups: the kernel caps the whole
    /// tree, but its OOM killer kills one process, and the host the rest.
    CgroupV1,
    /// No cgroups: the host samples the tree's resident memory and kills
    /// it when over the cap.
    Watchdog,
}

impl MemoryMechanism {
    pub(crate) const ALL: [MemoryMechanism; 3] = [Self::CgroupV2, Self::CgroupV1, Self::Watchdog];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::CgroupV2 => "cgroup-v2",
            Self::CgroupV1 => "cgroup-v1",
            Self::Watchdog => "watchdog",
        }
    }
}

impl fmt::Display for MemoryMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MemoryMechanism {
    type Err = EnforceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s.trim())
            .ok_or_else(|| EnforceError::UnknownMechanism(s.to_owned()))
    }
}

/// Limits of one call. `None` means uncapped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CageLimits {
    /// Memory of the whole tree.
    pub memory_bytes: Option<u64>,
    /// Processes of the whole tree at once (`pids.max`); not capped in
    /// watchdog mode.
    pub pids: Option<u64>,
}

/// One row of `bulkhead doctor`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MechanismRow {
    /// The mechanism, as `doctor` names it (`cgroup v2 memory.max`).
    pub name: String,
    /// The machine offers it.
    pub available: bool,
    /// Calls of this host use it.
    pub used: bool,
    /// Where and how it applies, or why it is unavailable.
    pub why: String,
}

/// Usage of a call, as of one [`Cage::sample`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Sample {
    /// Sum of resident memory of the call's live processes.
    pub rss_bytes: u64,
    /// Largest `rss_bytes` seen by this cage.
    pub peak_rss_bytes: u64,
    /// The kernel's peak charge (includes page cache): v2 `memory.peak`,
    /// v1 `memory.max_usage_in_bytes`; `None` in watchdog mode.
    pub peak_charged_bytes: Option<u64>,
    /// CPU time of the call so far; never decreases.
    pub cpu_ms: u64,
    /// Live (non-zombie) processes of the call.
    pub processes: u32,
    /// The memory cap fired: the kernel OOM-killed a member (cgroup modes)
    /// or the tree's RSS exceeded the cap (watchdog). The supervisor should
    /// report the call as killed for memory and call [`Cage::kill_all`].
    pub memory_exceeded: bool,
}

/// What [`Cage::kill_all`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KillReport {
    /// Distinct processes of the call found alive and killed.
    pub killed: usize,
    /// Processes still alive when `kill_all` gave up.
    pub survivors: usize,
}

/// Why a mechanism cannot be used, or a cage cannot be made or entered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnforceError {
    /// A cgroupfs or `/proc` operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done (`write`, `create`, `remove`…).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The forced mechanism is not available on this machine.
    #[error("memory mechanism {mechanism} is unavailable: {why}")]
    Unavailable {
        /// The mechanism asked for.
        mechanism: MemoryMechanism,
        /// What probing found.
        why: String,
    },
    /// A mechanism name that is none of `cgroup-v2`, `cgroup-v1`, `watchdog`.
    #[error("unknown memory mechanism {0:?} (expected cgroup-v2, cgroup-v1 or watchdog)")]
    UnknownMechanism(String),
    /// [`MECHANISM_ENV`] names no mechanism.
    #[error(
        "{MECHANISM_ENV}={0:?} is not a memory mechanism (expected cgroup-v2, cgroup-v1 or watchdog)"
    )]
    BadEnv(String),
    /// The process to attach has already exited.
    #[error("process {pid} does not exist (it exited before it could be attached)")]
    NoSuchProcess {
        /// The pid given to [`Cage::attach`].
        pid: u32,
    },
}

/// Knobs of [`Enforcer::detect_with`].
#[derive(Debug, Clone, Default)]
pub struct DetectOptions {
    /// cgroupfs root; `/sys/fs/cgroup` when `None`.
    pub cgroup_root: Option<PathBuf>,
    /// Mechanism to use instead of the strongest available.
    pub forced: Option<MemoryMechanism>,
    /// The host's cgroup v2 path (as in `/proc/self/cgroup`), for tests of
    /// the delegated layout; read from `/proc/self/cgroup` when `None`.
    pub self_cgroup: Option<String>,
}

/// Probes the machine once and makes [`Cage`]s. `Send + Sync`; share it
/// through an `Arc`.
#[derive(Debug)]
pub struct Enforcer {
    mechanism: MemoryMechanism,
    probe: detect::Probe,
    host_pid: u32,
    host_start: u64,
    graveyard: Graveyard,
    /// The next call's cage, built ahead (see `spare`).
    spare: SpareSlot,
}

impl Enforcer {
    /// Detects the strongest mechanism; `forced` picks one (an error names
    /// why it is unavailable). With `forced == None`, the environment
    /// variable [`MECHANISM_ENV`] may force one.
    pub fn detect(forced: Option<MemoryMechanism>) -> Result<Enforcer, EnforceError> {
        let forced = match forced {
            Some(m) => Some(m),
            None => match std::env::var(MECHANISM_ENV) {
                Ok(v) if !v.trim().is_empty() => {
                    Some(v.parse().map_err(|_| EnforceError::BadEnv(v.clone()))?)
                }
                _ => None,
            },
        };
        Self::detect_with(&DetectOptions {
            forced,
            ..DetectOptions::default()
        })
    }

    /// Like [`Enforcer::detect`] with another cgroupfs root (tests lay out
    /// fake files in a tempdir). Ignores [`MECHANISM_ENV`] so tests stay
    /// deterministic.
    pub fn detect_at(
        cgroup_root: &Path,
        forced: Option<MemoryMechanism>,
    ) -> Result<Enforcer, EnforceError> {
        Self::detect_with(&DetectOptions {
            cgroup_root: Some(cgroup_root.to_path_buf()),
            forced,
            self_cgroup: None,
        })
    }

    /// Detects with every knob of [`DetectOptions`]; like
    /// [`Enforcer::detect_at`], it ignores [`MECHANISM_ENV`].
    pub fn detect_with(opts: &DetectOptions) -> Result<Enforcer, EnforceError> {
        let root = opts
            .cgroup_root
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CGROUP_ROOT));
        let probe = detect::probe(&root, opts.self_cgroup.as_deref());
        let mechanism = match opts.forced {
            Some(m) => match detect::unavailable(&probe, m) {
                None => m,
                Some(why) => return Err(EnforceError::Unavailable { mechanism: m, why }),
            },
            None => detect::strongest(&probe),
        };
        tracing::debug!(%mechanism, "memory enforcement mechanism");
        Ok(Enforcer {
            mechanism,
            probe,
            host_pid: std::process::id(),
            host_start: proctree::self_start_time(),
            graveyard: Graveyard::default(),
            spare: SpareSlot::default(),
        })
    }

    /// The mechanism every cage of this enforcer uses.
    pub fn mechanism(&self) -> MemoryMechanism {
        self.mechanism
    }

    /// Why memory is not actually capped, if it is not: the watchdog is
    /// the last resort, and without a readable process table (an OS with no
    /// reader: neither Linux, macOS nor FreeBSD; or a table this process
    /// may not read) it has nothing to sample.
    pub(crate) fn memory_unenforced(&self) -> Option<String> {
        match self.mechanism {
            MemoryMechanism::Watchdog => self
                .probe
                .proc_error
                .as_ref()
                .map(|e| format!("no writable cgroup, and the RSS watchdog cannot sample: {e}")),
            _ => None,
        }
    }

    /// One row per mechanism, for `bulkhead doctor`.
    pub fn report(&self) -> Vec<MechanismRow> {
        detect::rows(&self.probe, self.mechanism)
    }

    /// Short name of how `kill_all` kills.
    pub fn kill_mechanism(&self) -> &'static str {
        match (
            self.mechanism,
            detect::kill_parent(&self.probe, self.mechanism),
        ) {
            (MemoryMechanism::Watchdog, _) => "process-tree walk",
            (_, Some(_)) => "cgroup.kill",
            (MemoryMechanism::CgroupV2, None) => "cgroup-v2 procs loop",
            (MemoryMechanism::CgroupV1, None) => "cgroup-v1 procs loop",
        }
    }

    /// How often a running call's cage is sampled: often enough, in
    /// watchdog mode, to be the memory cap; in cgroup modes, where the
    /// kernel caps, only for the live figures and to notice OOM kills.
    pub fn sample_interval(&self) -> Duration {
        match self.mechanism {
            MemoryMechanism::Watchdog => WATCHDOG_INTERVAL,
            _ => CGROUP_INTERVAL,
        }
    }

    /// RLIMIT_DATA the worker should set on itself as a backstop against
    /// spikes between watchdog samples: twice the cap (RLIMIT_DATA counts
    /// virtual writable memory, not resident), at least
    /// 4 GiB. `None` in cgroup modes, where the kernel
    /// already enforces, without a memory cap, and on macOS, whose
    /// `setrlimit(RLIMIT_DATA)` fails with EINVAL (since macOS 12) and would
    /// make the worker refuse every call.
    pub fn rlimit_data_backstop(&self, limits: &CageLimits) -> Option<u64> {
        match self.mechanism {
            MemoryMechanism::Watchdog if !cfg!(target_os = "macos") => limits
                .memory_bytes
                .map(|cap| cap.saturating_mul(2).max(RLIMIT_DATA_FLOOR)),
            _ => None,
        }
    }

    /// Name of the call cgroup for `call_id` (in every hierarchy used).
    pub fn cgroup_name(&self, call_id: u64) -> String {
        format!("h{}-{}-c{call_id}", self.host_pid, self.host_start)
    }

    /// Parent cgroups that hold call cgroups, in every hierarchy found.
    fn parents(&self) -> Vec<cgfs::CgDir> {
        let p = &self.probe;
        let mut out: Vec<cgfs::CgDir> = Vec::new();
        let v2 = [p.v2.memory.as_ref().ok(), p.v2.kill.as_ref().ok()];
        out.extend(v2.into_iter().flatten().map(|x| x.dir.clone()));
        out.extend(p.v1.memory.as_ref().ok().map(|m| m.dir.clone()));
        out.extend(p.v1.pids.as_ref().ok().cloned());
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out.dedup_by(|a, b| a.path == b.path);
        out
    }

    /// Removes call cgroups left by dead hosts (killing their processes
    /// first) in every hierarchy found, whatever the mechanism in use.
    /// Returns how many cgroup directories were removed.
    pub fn clear_stale(&self) -> usize {
        self.graveyard.retry() + stale::clear(&self.parents())
    }

    /// Creates the container of one call: cgroups in cgroup modes, nothing
    /// on disk in watchdog mode.
    /// Takes the spare built by [`Enforcer::prepare_spare`] if its limits
    /// are `limits`.
    pub fn cage(&self, call_id: u64, limits: &CageLimits) -> Result<Cage, EnforceError> {
        self.graveyard.retry();
        if let Some(mut cage) = self.spare.take(limits) {
            cage.call_id = call_id;
            return Ok(cage);
        }
        self.build(self.cgroup_name(call_id), call_id, limits)
    }

    /// Builds a cage for a call to come, with `limits`, unless one is ready
    /// (see `spare` for when this pays and what it does not change). Blocks
    /// for the cgroup writes: call it off the async threads. Failures are
    /// only logged: the call that would have taken the spare builds its
    /// own cage and reports the error then.
    pub fn prepare_spare(&self, limits: &CageLimits) {
        if self.mechanism == MemoryMechanism::Watchdog || self.spare.holds(limits) {
            return;
        }
        let name = format!(
            "h{}-{}-s{}",
            self.host_pid,
            self.host_start,
            spare::next_seq()
        );
        match self.build(name, 0, limits) {
            Ok(cage) => drop(self.spare.offer(*limits, cage)),
            Err(e) => tracing::debug!(error = %e, "cannot build a spare cage"),
        }
    }

    fn build(&self, name: String, call_id: u64, limits: &CageLimits) -> Result<Cage, EnforceError> {
        let unavailable = |m: MemoryMechanism, why: &String| EnforceError::Unavailable {
            mechanism: m,
            why: why.clone(),
        };
        let inner = match self.mechanism {
            MemoryMechanism::Watchdog => Inner::Watchdog(WatchdogCage::new(limits.memory_bytes)),
            MemoryMechanism::CgroupV2 => {
                let parent =
                    (self.probe.v2.memory.as_ref()).map_err(|w| unavailable(self.mechanism, w))?;
                let dir = cgroup_v2::create(parent, &name, limits, true)?;
                Inner::Cgroup(CgroupCage::new(Flavor::V2, dir, self.graveyard.clone()))
            }
            MemoryMechanism::CgroupV1 => {
                let m =
                    (self.probe.v1.memory.as_ref()).map_err(|w| unavailable(self.mechanism, w))?;
                let dir = cgroup_v1::create_memory(m, &name, limits)?;
                let flavor = Flavor::V1 {
                    oom_kill_counter: m.oom_kill_counter,
                };
                // Built step by step: if a later step fails, dropping the
                // partial cage removes what was created.
                let mut cage = CgroupCage::new(flavor, dir.clone(), self.graveyard.clone());
                cage.carry("memory", &dir, None);
                if limits.pids.is_some() {
                    match &self.probe.v1.pids {
                        Ok(parent) => {
                            let pids = cgroup_v1::create_pids(parent, &name, limits.pids)?;
                            cage.carry("pids", &pids, limits.pids);
                            cage.add(pids, false);
                        }
                        Err(why) => tracing::debug!(%why, "no pids cap for this call"),
                    }
                }
                // The kill cgroup only makes killing atomic; without it the
                // procs loop still kills everything, so a failure degrades.
                if let Some(k) = detect::kill_parent(&self.probe, self.mechanism) {
                    match cgroup_v2::create(k, &name, limits, false) {
                        Ok(dir) => cage.add(dir, true),
                        Err(e) => tracing::warn!(error = %e, "no cgroup.kill for this call"),
                    }
                }
                Inner::Cgroup(cage)
            }
        };
        Ok(Cage { inner, call_id })
    }
}
