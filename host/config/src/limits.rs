//! The one shape of limits, shared by `[policies.NAME.limits]`,
//! `[agents.NAME.limits]` and `[servers.NAME]`: the keys, their units, and
//! their one parser ([`LimitsDef::to_limits`]). The keys are listed in the
//! crate doc.

use serde::Deserialize;

use bulkhead_host::policy::PolicyLimits;
use bulkhead_host::units::{UnitError, parse_duration, parse_size};

use crate::ConfigError;

/// Limits as written: sizes (`"512MiB"`, `"1G"`) and durations (`"30s"`,
/// `"2m"`) as strings, counts as integers; each key unset leaves the
/// limit under it (the base policy's, or bulkhead's default) in force.
///
/// A table of its own in `[policies.NAME.limits]` and
/// `[agents.NAME.limits]`; inline (flattened) in `[servers.NAME]`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsDef {
    /// The whole process tree's memory (a size).
    pub memory: Option<String>,
    /// CPU time (a duration).
    pub cpu: Option<String>,
    /// Wall-clock time of one call (a duration).
    pub timeout: Option<String>,
    /// Processes and threads at once.
    pub pids: Option<u64>,
    /// Open file descriptors.
    pub open_files: Option<u64>,
    /// Output kept of one call (a size).
    pub output: Option<String>,
    /// The largest file a tool may write (a size).
    pub file_size: Option<String>,
}

impl LimitsDef {
    /// The limits this table sets, unset keys `None`. Errors name the key
    /// as written: `prefix` is what comes before it (`"limits."` for a
    /// table of its own, `""` inline).
    pub fn to_limits(&self, prefix: &str) -> Result<PolicyLimits, ConfigError> {
        self.to_limits_in(None, prefix)
    }

    /// [`to_limits`](Self::to_limits), whose errors also name `table`
    /// (`[agents.coder]`).
    pub(crate) fn to_limits_in(
        &self,
        table: Option<&str>,
        prefix: &str,
    ) -> Result<PolicyLimits, ConfigError> {
        let bad = |key: &str, value: &str, reason: UnitError| ConfigError::BadValue {
            table: table.map(str::to_owned),
            key: format!("{prefix}{key}"),
            value: value.to_owned(),
            reason,
        };
        let size = |key: &str, v: &Option<String>| {
            v.as_deref()
                .map(|s| parse_size(s).map_err(|e| bad(key, s, e)))
                .transpose()
        };
        let dur = |key: &str, v: &Option<String>| {
            v.as_deref()
                .map(|s| parse_duration(s).map_err(|e| bad(key, s, e)))
                .transpose()
        };
        Ok(PolicyLimits {
            memory_bytes: size("memory", &self.memory)?,
            cpu: dur("cpu", &self.cpu)?,
            timeout: dur("timeout", &self.timeout)?,
            pids: self.pids,
            open_files: self.open_files,
            max_output_bytes: size("output", &self.output)?,
            file_size_bytes: size("file_size", &self.file_size)?,
        })
    }
}

/// `over`'s limits where it sets them, else `base`'s.
pub(crate) fn lay_over(over: PolicyLimits, base: &PolicyLimits) -> PolicyLimits {
    PolicyLimits {
        memory_bytes: over.memory_bytes.or(base.memory_bytes),
        cpu: over.cpu.or(base.cpu),
        timeout: over.timeout.or(base.timeout),
        pids: over.pids.or(base.pids),
        open_files: over.open_files.or(base.open_files),
        max_output_bytes: over.max_output_bytes.or(base.max_output_bytes),
        file_size_bytes: over.file_size_bytes.or(base.file_size_bytes),
    }
}
