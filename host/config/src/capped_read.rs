//! Reading a config file under a size cap.

use std::path::Path;

use crate::ConfigError;

/// Reads a small text file whole, refusing one over `max` bytes: a wrong
/// path (a log, a disk image) must not be slurped. The error says what went
/// wrong, without the path, which callers add.
pub(crate) fn read_capped_text(path: &Path, max: u64) -> Result<String, ConfigError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|error| ConfigError::CannotOpen { error })?;
    let mut text = String::new();
    file.take(max + 1)
        .read_to_string(&mut text)
        .map_err(|error| ConfigError::CannotRead { error })?;
    if text.len() as u64 > max {
        return Err(ConfigError::TooLarge { max });
    }
    Ok(text)
}
