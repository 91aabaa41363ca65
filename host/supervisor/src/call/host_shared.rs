//! The host's state that its calls share.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::sync::Semaphore;

use crate::enforce::Enforcer;
use crate::policy::CallPolicy;
use crate::spawn::{Spawner, WorkerBinary};

/// What every call of one [`ToolHost`](crate::ToolHost) shares: the
/// enforcer, the spawner thread, the concurrency slots and the worker.
/// The host owns it; calls hold an `Arc` of it.
pub(crate) struct HostShared {
    pub(crate) enforcer: Enforcer,
    pub(crate) spawner: Spawner,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) worker: WorkerBinary,
    /// The worker environment under the host's default allowlist.
    pub(crate) env: Vec<(String, String)>,
    /// `HostConfig::worker_env`, added under every allowlist.
    pub(crate) extra_env: Vec<(String, String)>,
    /// Calls this host has spawned a worker for. From the second on, the
    /// host builds the next call's cage ahead (see `enforce::spare`): a
    /// host that made one call, like `bulkhead run`, builds none.
    pub(crate) spawned: AtomicU64,
}

impl HostShared {
    /// The worker's environment: the policy's allowlist read from ours, or the
    /// host's default, plus the variables the host config sets for workers.
    pub(crate) fn worker_env(&self, policy: &CallPolicy) -> Vec<(String, String)> {
        let Some(names) = &policy.env_allowlist else {
            return self.env.clone();
        };
        let mut env: Vec<(String, String)> = names
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
            .collect();
        env.extend(self.extra_env.iter().cloned());
        env
    }
}
