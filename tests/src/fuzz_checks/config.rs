//! The config readers: `bulkhead.toml` (`Config::load`) and an
//! `mcpServers` JSON file (`load_servers_file`, then `specs`). Any bytes
//! give a config or a typed error naming the file, never a panic; reading
//! the file and parsing its text agree.

use std::path::{Path, PathBuf};

use bulkhead_config::{Config, ConfigError, load_servers_file, specs};

/// A file in a directory of this thread's own, rewritten for each input.
/// In `/dev/shm` where there is one: on a disk, ext4 writes a file out when
/// it is closed after being truncated, which made each input cost a disk
/// write.
pub(super) fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    thread_local! {
        static DIR: tempfile::TempDir = {
            let shm = Path::new("/dev/shm");
            let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
            tempfile::Builder::new()
                .prefix("bulkhead-fuzz-")
                .tempdir_in(base)
                .expect("a scratch directory")
        };
    }
    let path = DIR.with(|d| d.path().join(name));
    std::fs::write(&path, bytes).expect("writing the scratch file");
    path
}

fn names_file(e: &ConfigError, path: &Path) {
    let text = e.to_string();
    assert!(
        text.contains(&path.display().to_string()),
        "an error that does not name the file: {text}"
    );
}

pub fn config_toml(data: &[u8]) {
    let path = scratch_file("bulkhead.toml", data);
    let loaded = Config::load(Some(&path));
    if let Err(e) = &loaded {
        names_file(e, &path);
    }
    match std::str::from_utf8(data) {
        Ok(text) => {
            let parsed = Config::parse(text, &path);
            assert_eq!(
                format!("{loaded:?}"),
                format!("{parsed:?}"),
                "loading the file and parsing its text disagree"
            );
        }
        Err(_) => assert!(loaded.is_err(), "a file that is not UTF-8 was loaded"),
    }
}

pub fn servers_json(data: &[u8]) {
    let path = scratch_file("servers.json", data);
    let servers = match load_servers_file(&path) {
        Ok(servers) => servers,
        Err(e) => {
            names_file(&e, &path);
            return;
        }
    };
    // What each server resolves to under the default config: a spec or a
    // typed error naming the server.
    let home = path.parent().map(Path::to_path_buf);
    if let Err(e) = specs(&Config::default(), &servers, home.as_deref()) {
        assert!(
            matches!(e, ConfigError::InServer { .. }),
            "an error that names no server: {e}"
        );
    }
}
