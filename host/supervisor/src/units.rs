//! Human sizes and durations: `256M`, `1GiB`, `500ms`, `30s`.
//!
//! Sizes are binary: `K`, `KB` and `KiB` all mean 1024 bytes. Users type
//! `--memory 1G` and mean a gibibyte; making `G` mean 10^9 would hand them a
//! cap 7% lower than they think.

use std::time::Duration;

/// A size or duration that could not be parsed. The text names the input
/// and what would have been accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(String);

/// Splits `"1.5GiB"` into `("1.5", "GiB")`: the leading digits and dots,
/// then the rest.
fn split_number(text: &str) -> (&str, &str) {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    t.split_at(split)
}

/// Parses `1024`, `64K`, `64KiB`, `256M`, `1.5G`, `2GiB`, `1T` into bytes.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let (num, unit) = split_number(text);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(UnitError(format!(
                "invalid size \"{text}\": unknown unit \"{unit}\" (use B, K, M, G or T, e.g. 256M or 1GiB)"
            )));
        }
    };
    let value: f64 = num.parse().map_err(|_| {
        UnitError(format!(
            "invalid size \"{text}\": expected a number then a unit, e.g. 256M"
        ))
    })?;
    let bytes = value * factor as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(UnitError(format!("invalid size \"{text}\": out of range")));
    }
    Ok(bytes as u64)
}

/// Parses `500ms`, `30s`, `2m`, `1h`, `1.5s`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let (num, unit) = split_number(text);
    let secs_per_unit = match unit.trim() {
        "ms" => 0.001,
        "" | "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(UnitError(format!(
                "invalid duration \"{text}\": unknown unit \"{unit}\" (use ms, s, m or h, e.g. 500ms or 30s)"
            )));
        }
    };
    let value: f64 = num.parse().map_err(|_| {
        UnitError(format!(
            "invalid duration \"{text}\": expected a number then a unit, e.g. 30s"
        ))
    })?;
    Duration::try_from_secs_f64(value * secs_per_unit)
        .map_err(|_| UnitError(format!("invalid duration \"{text}\": out of range")))
}

/// Formats bytes for people: `1.0 MiB`, `512 B`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("64K").unwrap(), 64 << 10);
        assert_eq!(parse_size("256M").unwrap(), 256 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        assert!(
            parse_size("12Q")
                .unwrap_err()
                .to_string()
                .contains("unknown unit \"Q\"")
        );
        assert!(
            parse_size("M")
                .unwrap_err()
                .to_string()
                .contains("expected a number")
        );
        assert!(parse_size("-1M").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(
            parse_duration("3 days")
                .unwrap_err()
                .to_string()
                .contains("unknown unit")
        );
    }

    #[test]
    fn formatting() {
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(1 << 20), "1.0 MiB");
    }
}
