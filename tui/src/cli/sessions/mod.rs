//! `bulkhead sessions …` and the store behind `run --session`.
//!
//! Every command reads the store in pages or slices: `list` a page of
//! sessions at a time, `show` one page of items, `export` one item and one
//! 64 KiB slice of output at a time, written out before the next is read.

mod export;
mod list;
mod maintain;
pub mod record;
mod show;
mod time;

use std::path::{Path, PathBuf};

use anyhow::Context;
use bulkhead_config::Config;
use bulkhead_store::{Retention, Store, StoreOptions, default_store_path};

use crate::cli::{SessionsArgs, SessionsCommand};

/// The store file: `--store`, else `$BULKHEAD_STORE`, else the config's
/// `[store] path`, else the XDG data dir.
pub fn store_path(flag: Option<&Path>, set: &Config) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(bulkhead_store::STORE_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = set.store.path() {
        return Ok(p);
    }
    default_store_path().context(
        "no place for the session store: neither $XDG_DATA_HOME nor $HOME is set (pass --store PATH)",
    )
}

/// Opens the store the flags and config name, with the config's limits.
pub fn open_store(
    flag: Option<&Path>,
    config: Option<&Path>,
) -> anyhow::Result<(Store, Retention)> {
    let set = Config::load(config)?;
    let retention = set.store.retention().map_err(anyhow::Error::msg)?;
    let path = store_path(flag, &set)?;
    let store = Store::open_with(
        &path,
        StoreOptions {
            retention,
            ..StoreOptions::default()
        },
    )?;
    Ok((store, retention))
}

pub fn sessions(
    args: SessionsArgs,
    store_flag: Option<&Path>,
    config: Option<&Path>,
) -> anyhow::Result<u8> {
    let (store, retention) = open_store(store_flag, config)?;
    let mut out = std::io::stdout().lock();
    match args.command {
        SessionsCommand::List { json } => list::list(&store, json, &mut out),
        SessionsCommand::Show { id, items, json } => show::show(&store, id, items, json, &mut out),
        SessionsCommand::Export { id, format } => export::export(&store, id, format, &mut out),
        SessionsCommand::Rm { id } => maintain::rm(&store, id),
        SessionsCommand::Gc { json } => maintain::gc(&store, &retention, json, &mut out),
        SessionsCommand::Vacuum => maintain::vacuum(&store, &retention),
        SessionsCommand::Stats { json } => maintain::stats(&store, &retention, json, &mut out),
    }?;
    Ok(0)
}

/// A write to stdout that failed because the reader went away (`| head`)
/// ends the command quietly; any other error is reported.
fn output_result(r: std::io::Result<()>) -> anyhow::Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}

/// `value` as one JSON line on `out`.
fn json_line(out: &mut impl std::io::Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    output_result(
        serde_json::to_writer(&mut *out, value)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out)),
    )
}
