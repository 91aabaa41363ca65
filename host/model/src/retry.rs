//! When to try a failed request again, and how long to wait first.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::ModelLimits;

/// The wait before retry number `retry` (0 for the first): the server's
/// `Retry-After` if it gave one, else exponential backoff with full jitter
/// (a uniform draw in `[0, base·2^retry]`, so many clients rate-limited at
/// once do not come back in step). Either way capped at `max_backoff`.
pub(super) fn wait(limits: &ModelLimits, retry: u32, retry_after: Option<Duration>) -> Duration {
    let wait = retry_after.unwrap_or_else(|| {
        let ceiling = limits
            .backoff_base
            .saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX));
        ceiling.mul_f64(jitter())
    });
    wait.min(limits.max_backoff)
}

/// A uniform draw in [0, 1]. `RandomState` is seeded per instance from the
/// OS, which is random enough to spread retries and needs no crate.
fn jitter() -> f64 {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3); a
/// date in the past is no wait. `None` if absent or unreadable.
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after(&headers("7")), Some(Duration::from_secs(7)));
        let soon = SystemTime::now() + Duration::from_secs(30);
        let got = retry_after(&headers(&httpdate::fmt_http_date(soon))).unwrap();
        assert!(got > Duration::from_secs(28) && got <= Duration::from_secs(30));
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(30));
        assert_eq!(retry_after(&headers(&past)), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn waits_grow_with_jitter_and_stay_under_the_cap() {
        let limits = ModelLimits {
            backoff_base: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..ModelLimits::default()
        };
        for retry in 0..40 {
            let ceiling = (Duration::from_millis(100) * 2u32.saturating_pow(retry.min(20)))
                .min(Duration::from_secs(1));
            assert!(wait(&limits, retry, None) <= ceiling);
        }
        let asked = Some(Duration::from_secs(3600));
        assert_eq!(wait(&limits, 0, asked), Duration::from_secs(1));
        assert_eq!(
            wait(&limits, 0, Some(Duration::from_millis(5))),
            Duration::from_millis(5)
        );
    }
}
