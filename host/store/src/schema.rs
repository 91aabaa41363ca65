//! The schema, its version, and the checks that run before anything is
//! written: a file that is not ours is refused, never overwritten.
//!
//! The version is SQLite's `user_version`; `application_id` marks the file
//! as bulkhead's. Migration `i` in [`MIGRATIONS`] takes a store from version
//! `i` to `i + 1`; all pending ones run at open, in one `BEGIN IMMEDIATE`
//! transaction, so a concurrent opener either sees the old schema or the new
//! one, never half.

use std::io::Read;
use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::error::{Result, StoreError};

/// `PRAGMA application_id` of a bulkhead store: "BKHD".
pub const APPLICATION_ID: u32 = 0x424b_4844;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The 16 bytes every SQLite database file starts with.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

pub(crate) const V1: &str = "
CREATE TABLE sessions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL,
    item_count    INTEGER NOT NULL DEFAULT 0,
    next_seq      INTEGER NOT NULL DEFAULT 1,
    content_bytes INTEGER NOT NULL DEFAULT 0,
    payload_bytes INTEGER NOT NULL DEFAULT 0,
    title         TEXT NOT NULL,
    model         TEXT,
    config_json   TEXT
);
CREATE INDEX sessions_by_updated ON sessions(updated_ms, id);

-- The small columns come first: SQLite reads a row's header and the columns
-- it needs, and the large text only when it is asked for.
CREATE TABLE items (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id    INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN
                    ('system', 'user', 'assistant', 'tool_call', 'tool_result', 'notice')),
    pinned        INTEGER NOT NULL DEFAULT 0,
    created_ms    INTEGER NOT NULL,
    content_bytes INTEGER NOT NULL,
    payload_bytes INTEGER NOT NULL DEFAULT 0,
    text          TEXT NOT NULL,
    meta_json     TEXT,
    UNIQUE (session_id, seq)
);
CREATE INDEX items_pinned ON items(session_id, seq) WHERE pinned = 1;

CREATE TABLE results (
    item_id          INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
    state            TEXT NOT NULL CHECK (state IN ('running', 'finished', 'interrupted')),
    tool             TEXT NOT NULL,
    call_ref         TEXT,
    args_json        TEXT NOT NULL,
    status           TEXT,
    outcome_json     TEXT,
    usage_json       TEXT,
    enforcement_json TEXT,
    bytes_seen       INTEGER NOT NULL DEFAULT 0,
    lines_seen       INTEGER NOT NULL DEFAULT 0,
    cut_offset       INTEGER,
    cut_bytes        INTEGER NOT NULL DEFAULT 0,
    dropped_bytes    INTEGER NOT NULL DEFAULT 0,
    pruned_ms        INTEGER,
    pruned_bytes     INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE chunks (
    id      INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES results(item_id) ON DELETE CASCADE,
    offset  INTEGER NOT NULL,
    len     INTEGER NOT NULL,
    stream  INTEGER NOT NULL,
    data    BLOB NOT NULL
);
-- (offset, len) in the index: a slice read finds its chunks without
-- touching the data of the others.
CREATE UNIQUE INDEX chunks_by_offset ON chunks(item_id, offset, len, stream);
";

/// Version 2: a running result names its writer process ("PID:START", START
/// being its start time in clock ticks from `/proc/PID/stat`), so `gc` can
/// tell a result whose writer died from one still streaming.
const V2: &str = "ALTER TABLE results ADD COLUMN writer TEXT;";

/// Version 3: the items that still hold output, oldest first, for
/// retention. Without it each pruned result meant a scan past every item
/// pruned before it (quadratic in a large `gc`).
const V3: &str = "CREATE INDEX items_with_payload ON items(id) WHERE payload_bytes > 0;";

/// Forward migrations; `MIGRATIONS[i]` upgrades version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3];

/// Refuses a non-empty file that is not an SQLite database, before SQLite
/// opens it (SQLite would otherwise report it only at the first query).
pub(crate) fn check_file(path: &Path) -> Result<()> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StoreError::Open {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut head = Vec::with_capacity(HEADER_BYTES);
    (&mut file)
        .take(HEADER_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    if head.is_empty() {
        return Ok(());
    }
    if !head.starts_with(SQLITE_MAGIC) {
        return Err(StoreError::NotADatabase {
            path: path.to_path_buf(),
            detail: "its first bytes are not \"SQLite format 3\"".into(),
        });
    }
    // Header fields SQLite reads lazily: a database with no tables opens
    // and identifies as empty whatever they hold, and fails only at the
    // first write, after WAL mode has rewritten the header. So they are
    // checked before anything is written.
    let field = |at: usize| {
        head.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let bad = [
        // Schema format 1 to 4 (0 in a database never written).
        (field(44).is_some_and(|v| v > 4), "schema format"),
        // Text encoding 1 to 3: UTF-8, UTF-16le, UTF-16be (0 likewise).
        (field(56).is_some_and(|v| v > 3), "text encoding"),
    ];
    if let Some((_, what)) = bad.iter().find(|(is_bad, _)| *is_bad) {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("its header's {what} is not one SQLite writes"),
        });
    }
    Ok(())
}

/// The SQLite database header, whose fields [`check_file`] checks.
const HEADER_BYTES: usize = 100;

/// Refuses another program's database and a newer schema. Reads only.
pub(crate) fn identify(conn: &Connection, path: &Path) -> Result<()> {
    check_identity(conn, path).map(|_| ())
}

/// The file's schema version, after checking that it is ours (or empty)
/// and not newer than this build.
fn check_identity(conn: &Connection, path: &Path) -> Result<i64> {
    let sql = |e| StoreError::from_sqlite(path, e);
    let app_id: i64 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(sql)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sql)?;
    let app_id = app_id as u32;
    if app_id == 0 {
        let objects: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(sql)?;
        // A schema version with none of its tables is another program's
        // database too (ours sets the id in the migration that creates
        // them); migrating it would start past the tables it lacks.
        if objects > 0 || version != 0 {
            return Err(StoreError::Foreign {
                path: path.to_path_buf(),
                found: 0,
                expected: APPLICATION_ID,
            });
        }
    } else if app_id != APPLICATION_ID {
        return Err(StoreError::Foreign {
            path: path.to_path_buf(),
            found: app_id,
            expected: APPLICATION_ID,
        });
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    // A store to create or migrate, unless the file is damaged (a truncated
    // or garbled database can read as empty or as an old store). Opening
    // it writes (WAL mode rewrites the header, then the migration), so it
    // is checked first: once per creation or upgrade, never on the open of
    // a current store.
    if version < SCHEMA_VERSION {
        let verdict: String = conn
            .pragma_query_value(None, "quick_check", |r| r.get(0))
            .map_err(sql)?;
        if verdict != "ok" {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("PRAGMA quick_check: {verdict}"),
            });
        }
    }
    Ok(version)
}

/// Migrates the store to [`SCHEMA_VERSION`], checking its identity again
/// under the write lock (another process may have migrated it meanwhile).
pub(crate) fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    let sql = |e| StoreError::from_sqlite(path, e);
    let tx =
        rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate).map_err(sql)?;
    let version = check_identity(&tx, path)?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    for step in MIGRATIONS.iter().skip(version.max(0) as usize) {
        tx.execute_batch(step).map_err(sql)?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID as i64)
        .map_err(sql)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(sql)?;
    tx.commit().map_err(sql)
}
