//! `/limits`: the limits of the calls that follow, changed from the
//! prompt (the policy's limits are the starting point).

use bulkhead_host::CallLimits;
use bulkhead_host::units::{parse_duration, parse_size};

use super::format::{duration, size};

/// Applies `key=value` pairs; on any error nothing changes and the text
/// names the key and the problem.
pub fn apply(limits: &mut CallLimits, pairs: &[(String, String)]) -> Result<(), String> {
    let mut next = limits.clone();
    for (key, value) in pairs {
        let bad = |e: String| format!("`/limits {key}={value}`: {e}");
        match key.as_str() {
            "memory" => next.memory_bytes = parse_size(value).map_err(|e| bad(e.to_string()))?,
            "output" => {
                next.max_output_bytes = parse_size(value).map_err(|e| bad(e.to_string()))?
            }
            "timeout" => next.timeout = parse_duration(value).map_err(|e| bad(e.to_string()))?,
            "cpu" => next.cpu = Some(parse_duration(value).map_err(|e| bad(e.to_string()))?),
            other => {
                return Err(format!(
                    "`/limits`: unknown limit `{other}` (memory, output, timeout, cpu)"
                ));
            }
        }
    }
    next.validate().map_err(|e| format!("`/limits`: {e}"))?;
    *limits = next;
    Ok(())
}

pub fn describe(l: &CallLimits) -> String {
    format!(
        "Next calls: memory {} · output {} · timeout {} · cpu {}",
        size(l.memory_bytes),
        size(l.max_output_bytes),
        duration(l.timeout),
        l.cpu.map_or("no limit".to_owned(), duration),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pairs(s: &[(&str, &str)]) -> Vec<(String, String)> {
        s.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn sets_and_refuses_whole() {
        let mut l = CallLimits::default();
        apply(&mut l, &pairs(&[("output", "64M"), ("timeout", "3s")])).ok();
        assert_eq!(l.max_output_bytes, 64 << 20);
        assert_eq!(l.timeout, Duration::from_secs(3));
        let before = l.clone();
        let err = apply(&mut l, &pairs(&[("output", "1M"), ("speed", "9")]));
        assert!(err.is_err_and(|e| e.contains("speed")));
        assert_eq!(l, before);
    }
}
