//! `[store]` in bulkhead's config file.
//!
//! ```toml
//! [store]
//! path = "~/sessions.db"        # else $BULKHEAD_STORE, else the XDG data dir
//! max_store_bytes = "2GiB"      # or "off"
//! max_session_bytes = "256MiB"  # or "off"
//! ```

use std::path::PathBuf;

use serde::Deserialize;

use bulkhead_host::units::parse_size;
use bulkhead_store::Retention;

use crate::ConfigError;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// The store file (`~/` allowed).
    pub path: Option<String>,
    pub max_store_bytes: Option<String>,
    pub max_session_bytes: Option<String>,
}

impl StoreSection {
    /// The limits, defaults where unset; an error
    /// ([`ConfigError::BadStoreSize`]) names the bad key and value.
    pub fn retention(&self) -> Result<Retention, ConfigError> {
        let defaults = Retention::default();
        let limit = |key: &str, text: &Option<String>, default: Option<u64>| match text {
            None => Ok(default),
            Some(t) if t.trim().eq_ignore_ascii_case("off") => Ok(None),
            Some(t) => parse_size(t)
                .map(Some)
                .map_err(|e| ConfigError::BadStoreSize {
                    key: key.to_owned(),
                    value: t.clone(),
                    reason: e,
                }),
        };
        Ok(Retention {
            max_store_bytes: limit(
                "max_store_bytes",
                &self.max_store_bytes,
                defaults.max_store_bytes,
            )?,
            max_session_bytes: limit(
                "max_session_bytes",
                &self.max_session_bytes,
                defaults.max_session_bytes,
            )?,
        })
    }

    /// `path`, with a leading `~/` expanded.
    pub fn path(&self) -> Option<PathBuf> {
        let p = self.path.as_deref()?;
        match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
            (Some(rest), Some(home)) => Some(PathBuf::from(home).join(rest)),
            _ => Some(PathBuf::from(p)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_section_parses_sizes_and_off() {
        let section = StoreSection {
            path: Some("~/x.db".into()),
            max_store_bytes: Some("1GiB".into()),
            max_session_bytes: Some("off".into()),
        };
        let r = section.retention().expect("valid");
        assert_eq!(r.max_store_bytes, Some(1 << 30));
        assert_eq!(r.max_session_bytes, None);
        let bad = StoreSection {
            max_store_bytes: Some("lots".into()),
            ..StoreSection::default()
        };
        let e = bad.retention().expect_err("invalid").to_string();
        assert!(e.contains("max_store_bytes") && e.contains("lots"), "{e}");
        assert_eq!(
            StoreSection::default().retention().expect("defaults"),
            Retention::default()
        );
    }
}
