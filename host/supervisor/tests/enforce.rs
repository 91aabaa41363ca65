//! `Enforcer` and its cages on this machine's cgroups, on fake cgroup
//! trees, and in watchdog mode: detection and its report, caps, whole-tree
//! kills, spare cages, stale cleanup, and the environment variable that
//! forces a mechanism.
//!
//! One test binary, one module per former binary, with the helpers in
//! `common`. The tests run as threads of one process and share its pid,
//! which names their cgroups: `common::call_id` keeps the call ids apart,
//! only `spare` builds spare cages (it counts them by the pid), and `env`,
//! which sets an environment variable, runs in a process of its own
//! (`common::alone`).
//!
//! The modules are in `enforce/`: a crate root's modules are looked for beside
//! it, not in a folder of its name, so each `mod` names its file.

#[path = "enforce/cgroup_v1.rs"]
mod cgroup_v1;
#[path = "enforce/common.rs"]
mod common;
#[path = "enforce/detect.rs"]
mod detect;
#[path = "enforce/env.rs"]
mod env;
#[path = "enforce/fake_hybrid.rs"]
mod fake_hybrid;
#[path = "enforce/fake_v2.rs"]
mod fake_v2;
#[path = "enforce/pids.rs"]
mod pids;
#[path = "enforce/spare.rs"]
mod spare;
#[path = "enforce/stale.rs"]
mod stale;
#[path = "enforce/tree_kill.rs"]
mod tree_kill;
#[path = "enforce/watchdog.rs"]
mod watchdog;
