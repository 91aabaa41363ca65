//! What a result item's meta records about its call: the limits it ran
//! under, so a reopened session shows its cards against them rather than
//! against today's defaults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use bulkhead_host::CallLimits;

/// The limits a card shows: memory cap, output cap, timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedLimits {
    pub memory_bytes: u64,
    pub max_output_bytes: u64,
    pub timeout_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct ResultMeta {
    limits: RecordedLimits,
}

impl RecordedLimits {
    pub fn of(limits: &CallLimits) -> Self {
        Self {
            memory_bytes: limits.memory_bytes,
            max_output_bytes: limits.max_output_bytes,
            timeout_ms: u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The result item's meta that records them.
    pub fn to_meta(self) -> String {
        serde_json::json!({ "limits": self }).to_string()
    }

    /// The limits a result item's meta records; `None` for results
    /// recorded before meta carried them, or without a worker (MCP calls,
    /// refusals).
    pub fn from_meta(meta_json: &str) -> Option<Self> {
        serde_json::from_str::<ResultMeta>(meta_json)
            .ok()
            .map(|m| m.limits)
    }

    /// `base` with these three limits laid over it.
    pub fn over(self, base: CallLimits) -> CallLimits {
        CallLimits {
            memory_bytes: self.memory_bytes,
            max_output_bytes: self.max_output_bytes,
            timeout: Duration::from_millis(self.timeout_ms),
            ..base
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_round_trip_through_meta() {
        let limits = CallLimits {
            memory_bytes: 300 << 20,
            max_output_bytes: 3 << 20,
            timeout: Duration::from_secs(420),
            ..CallLimits::default()
        };
        let meta = RecordedLimits::of(&limits).to_meta();
        let back = RecordedLimits::from_meta(&meta).expect("limits in the meta");
        assert_eq!(back.over(CallLimits::default()), limits);
        assert_eq!(RecordedLimits::from_meta("{\"other\":1}"), None);
    }
}
