//! The store's check of a file at its path (`Store::open`): any bytes give
//! a store or a typed error; a file refused is left exactly as it was, and
//! no file but an empty one or an SQLite database is ever taken.

use bulkhead_store::{Store, StoreError};

use super::config::scratch_file;

/// SQLite's header magic: the first 16 bytes of every database file.
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

pub fn store_file(data: &[u8]) {
    let path = scratch_file("store.db", data);
    // What an earlier input's open left beside the file.
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.clone().into_os_string();
        side.push(suffix);
        let _ = std::fs::remove_file(side);
    }
    let opened = Store::open(&path);
    match opened {
        Ok(store) => {
            drop(store);
            assert!(
                data.is_empty() || data.starts_with(SQLITE_MAGIC),
                "a file that is not SQLite was opened as the store"
            );
        }
        Err(e) => {
            let after = std::fs::read(&path).expect("reading the refused file back");
            assert!(after == data, "a refused file was modified ({e})");
            if !data.starts_with(SQLITE_MAGIC) {
                assert!(
                    matches!(e, StoreError::NotADatabase { .. }),
                    "a file that is not SQLite refused as something else: {e}"
                );
            }
        }
    }
}
