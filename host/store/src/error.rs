//! The store's errors. Each names the database file, so a user with several
//! stores (`--store`) knows which one is meant.

use std::path::PathBuf;

use super::{ItemId, SessionId};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the session store {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file exists but is not an SQLite database (or its header is
    /// damaged). It is left as it is.
    #[error(
        "{path} is not a bulkhead session store: it is not an SQLite database ({detail}); \
         it was left untouched (move it away, or pass another --store)"
    )]
    NotADatabase { path: PathBuf, detail: String },
    /// An SQLite database of another program (its application id is not
    /// bulkhead's). It is left as it is.
    #[error(
        "{path} is an SQLite database of another program (application id {found:#010x}, \
         bulkhead's is {expected:#010x}); it was left untouched (pass another --store)"
    )]
    Foreign {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error(
        "{path} was written by a newer bulkhead: store schema version {found}, this bulkhead \
         reads up to version {supported}; upgrade bulkhead (the file was left untouched)"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error(
        "the session store {path} is corrupt ({detail}); nothing was overwritten. \
         `sqlite3 {path} .recover` may save its content"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "the disk holding the session store {path} is full: this write failed, everything \
         committed before it is kept (free space, or run `bulkhead sessions gc`)"
    )]
    DiskFull { path: PathBuf },
    #[error(
        "the session store {path} stayed locked by another process for {waited_ms} ms; \
         the write was not made"
    )]
    Busy { path: PathBuf, waited_ms: u64 },
    #[error("no session {0} in the store")]
    NoSession(SessionId),
    #[error("no item {0} in the store")]
    NoItem(ItemId),
    #[error("item {0} is not a tool result")]
    NotAResult(ItemId),
    #[error("{what} is {size} bytes, over the store's limit of {limit} bytes for one item")]
    TooLarge {
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("the tool result {0} was already finished")]
    Finished(ItemId),
    #[error("the session store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the session store {path} holds a bad value: {detail}")]
    BadValue { path: PathBuf, detail: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Classifies an SQLite error: a full disk, corruption and a
    /// non-database get their own variants.
    pub(crate) fn from_sqlite(path: &std::path::Path, e: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode;
        let path = path.to_path_buf();
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull { path },
            Some(ErrorCode::NotADatabase) => StoreError::NotADatabase {
                path,
                detail: e.to_string(),
            },
            Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
                path,
                detail: e.to_string(),
            },
            _ => StoreError::Sqlite { path, source: e },
        }
    }

    /// True when another connection held the lock past the busy timeout.
    pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
        matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}
