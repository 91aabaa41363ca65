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

use super::Retention;
use crate::units::parse_size;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// The store file (`~/` allowed).
    pub path: Option<String>,
    pub max_store_bytes: Option<String>,
    pub max_session_bytes: Option<String>,
}

impl StoreSection {
    /// The limits, defaults where unset; an error names the bad key.
    pub fn retention(&self) -> Result<Retention, String> {
        let defaults = Retention::default();
        let limit = |key: &str, text: &Option<String>, default: Option<u64>| match text {
            None => Ok(default),
            Some(t) if t.trim().eq_ignore_ascii_case("off") => Ok(None),
            Some(t) => parse_size(t).map(Some).map_err(|e| {
                format!("[store] {key} = \"{t}\": {e} (a size like \"2GiB\", or \"off\")")
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
