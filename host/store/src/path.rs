//! Where the store lives by default.

use std::path::PathBuf;

/// Environment variable that names the store file (`--store` wins over it).
pub const STORE_ENV: &str = "BULKHEAD_STORE";

/// `$BULKHEAD_STORE`, else `$XDG_DATA_HOME/bulkhead/sessions.db`, else
/// `~/.local/share/bulkhead/sessions.db`. `None` when none of those can be
/// formed (no `$HOME`).
pub fn default_store_path() -> Option<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(p) = non_empty(STORE_ENV) {
        return Some(PathBuf::from(p));
    }
    // The XDG spec: a relative $XDG_DATA_HOME is invalid and ignored.
    let data = non_empty("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| non_empty("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(data.join("bulkhead").join("sessions.db"))
}
