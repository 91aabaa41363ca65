//! What one call may use, with defaults that say why they are what they are.

use std::time::Duration;

use bulkhead_ipc::WorkerLimits;

/// Memory for a call's whole process tree. 1 GiB runs compilers, test
/// suites and node-based tools, and is a rounding error next to the 26 GB
/// that one unbounded search took in the incident bulkhead answers.
pub(crate) const DEFAULT_MEMORY_BYTES: u64 = 1 << 30;

/// Wall-clock limit. Five minutes covers a slow build; a call that needs
/// longer should say so, rather than every hung call costing an hour.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Output the host keeps per call. 1 MiB is about 250k tokens: more than
/// any model context should receive from one call, small enough that many
/// calls in flight cost the host little.
pub(crate) const DEFAULT_MAX_OUTPUT_BYTES: u64 = 1 << 20;

/// Processes a call may run at once. Enough for `make -j` or a test runner,
/// low enough that a fork bomb stops long before the machine notices.
pub(crate) const DEFAULT_PIDS: u64 = 256;

/// Open files per process. The common soft default; tools needing more
/// (watchers, big builds) can raise it per call.
pub(crate) const DEFAULT_OPEN_FILES: u64 = 1024;

/// Largest file a tool may write. Stops a runaway `yes > file` from filling
/// the disk, yet fits any build artefact a tool normally writes.
pub(crate) const DEFAULT_FILE_SIZE_BYTES: u64 = 4 << 30;

/// Limits that cannot be used together, from [`CallLimits::validate`]. The
/// message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// `memory_bytes` is below 16 MiB.
    #[error("memory limit {memory_bytes} is below 16 MiB, too little to start a worker")]
    MemoryTooLow {
        /// The limit asked for.
        memory_bytes: u64,
    },
    /// `tail_bytes` is larger than `max_output_bytes`, of which it is a part.
    #[error("tail is larger than max_output; the tail is part of max_output")]
    TailLargerThanOutput,
    /// `timeout` is zero.
    #[error("timeout must be above zero")]
    ZeroTimeout,
    /// `pids` is zero, or `open_files` below 16.
    #[error("pids must be at least 1 and open_files at least 16")]
    TooFewProcessesOrFiles,
}

/// The limits of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallLimits {
    /// Memory of the whole process tree.
    pub memory_bytes: u64,
    /// CPU time of the whole tree (also RLIMIT_CPU per process).
    pub cpu: Option<Duration>,
    /// Wall-clock time from when the call gets a worker slot; time spent
    /// queued does not count.
    pub timeout: Duration,
    /// Output bytes kept: the head, plus the tail when `tail_bytes` > 0.
    pub max_output_bytes: u64,
    /// Of `max_output_bytes`, how much is kept from the end of the output.
    /// Non-zero means the tool runs to its end instead of being stopped at
    /// the cap, so the tail can be seen.
    pub tail_bytes: u64,
    /// Processes the call may run at once: the cage's pids cap in cgroup
    /// modes, and an RLIMIT_NPROC budget for a worker not run as root.
    pub pids: u64,
    /// Open files per process (RLIMIT_NOFILE).
    pub open_files: u64,
    /// Largest file a process may write (RLIMIT_FSIZE).
    pub file_size_bytes: u64,
    /// RLIMIT_AS. Off by default: node, the JVM and Go reserve large
    /// address ranges and die under it even when they use little memory.
    pub address_space_bytes: Option<u64>,
}

impl Default for CallLimits {
    /// 1 GiB of memory, five minutes, 1 MiB of output and no tail, 256
    /// processes, 1024 open files, 4 GiB files, and no CPU or address-space
    /// limit. Each default is explained where it is defined, in this
    /// module's source.
    fn default() -> Self {
        Self {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            cpu: None,
            timeout: DEFAULT_TIMEOUT,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            tail_bytes: 0,
            pids: DEFAULT_PIDS,
            open_files: DEFAULT_OPEN_FILES,
            file_size_bytes: DEFAULT_FILE_SIZE_BYTES,
            address_space_bytes: None,
        }
    }
}

impl CallLimits {
    /// Checks the limits make sense together. The error names the field.
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.memory_bytes < (16 << 20) {
            return Err(LimitsError::MemoryTooLow {
                memory_bytes: self.memory_bytes,
            });
        }
        if self.tail_bytes > self.max_output_bytes {
            return Err(LimitsError::TailLargerThanOutput);
        }
        if self.timeout.is_zero() {
            return Err(LimitsError::ZeroTimeout);
        }
        if self.pids == 0 || self.open_files < 16 {
            return Err(LimitsError::TooFewProcessesOrFiles);
        }
        Ok(())
    }

    /// The part of the limits the worker applies to itself. `data_bytes` is
    /// the RLIMIT_DATA backstop the enforcer chose for its mechanism
    /// (`Enforcer::rlimit_data_backstop`).
    pub fn for_worker(&self, data_bytes: Option<u64>) -> WorkerLimits {
        WorkerLimits {
            cpu_seconds: self.cpu.map(|d| d.as_secs().max(1)),
            data_bytes,
            address_space_bytes: self.address_space_bytes,
            open_files: self.open_files,
            file_size_bytes: Some(self.file_size_bytes),
            processes: Some(self.pids),
            max_output_bytes: self.max_output_bytes,
            stop_at_output_cap: self.tail_bytes == 0,
        }
    }
}
