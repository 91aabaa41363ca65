//! Sizes and durations as the rest of bulkhead writes them (`64K`, `1GiB`,
//! `500ms`, `30s`; binary units). A copy of the supervisor's parsers kept
//! small on purpose: the supervisor depends on this crate, so this crate
//! cannot use its.

use std::time::Duration;

/// The digits (and dots) first, then the unit.
fn split_number(text: &str) -> (&str, &str) {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    t.split_at(split)
}

/// `1024`, `64K`, `64KiB`, `1.5M`, `2G` into bytes.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let (num, unit) = split_number(text);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err("a size: a number then B, K, M or G, e.g. 64K".into()),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| "a size: a number then a unit, e.g. 64K".to_owned())?;
    let bytes = value * factor as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err("a size in range".into());
    }
    Ok(bytes as u64)
}

/// `500ms`, `30s`, `2m`, `1h`; a bare number is seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let (num, unit) = split_number(text);
    let secs_per_unit = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err("a duration: a number then ms, s, m or h, e.g. 200ms".into()),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| "a duration: a number then a unit, e.g. 200ms".to_owned())?;
    Duration::try_from_secs_f64(value * secs_per_unit).map_err(|_| "a duration in range".into())
}
