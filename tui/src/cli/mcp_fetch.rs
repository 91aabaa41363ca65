//! `bulkhead mcp fetch -- CMD…`, and the preparation `mcp wrap` does
//! before it starts a server: what the command needs to read, and its
//! package fetched into bulkhead's cache when it is a package launcher
//! (`bulkhead_mcp::prepare`).

use std::path::Path;

use bulkhead_config::Config;
use bulkhead_host::{HostConfig, ToolHost};
use bulkhead_launch::LaunchEnv;
use bulkhead_mcp::{FetchOptions, PrepareError, Prepared, prepare};

use crate::cli::{EXIT_USAGE, FetchArgs};

/// Exit code of a fetch that failed (the registry, the installer).
const EXIT_FETCH: u8 = 5;

/// Prepares `command` for a wrapped server, saying on stderr what it
/// fetched and inferred. `Err` carries the exit code, the error printed.
pub async fn prepare_server(
    command: &[String],
    config: Option<&Path>,
    options: &FetchOptions,
) -> Result<Prepared, u8> {
    let config = Config::load(config).map_err(|e| {
        eprintln!("bulkhead: {e}");
        EXIT_USAGE
    })?;
    let env = LaunchEnv::from_process().map_err(|e| {
        eprintln!("bulkhead: cannot read the current directory: {e}");
        EXIT_USAGE
    })?;
    let host = ToolHost::new(HostConfig {
        worker_from_config: config.worker.clone(),
        ..HostConfig::default()
    })
    .map_err(|e| {
        eprintln!("bulkhead: {e}");
        EXIT_USAGE
    })?;
    match prepare(&host, command, &env, options).await {
        Ok(p) => Ok(p),
        Err(e) => {
            eprintln!("bulkhead: {e}");
            Err(match e {
                PrepareError::Launch(_) | PrepareError::Unsupported(_) | PrepareError::NoCache => {
                    EXIT_USAGE
                }
                _ => EXIT_FETCH,
            })
        }
    }
}

/// The one stderr line `mcp wrap` prints about a package it runs.
pub fn package_line(prepared: &Prepared) -> Option<String> {
    let p = prepared.package.as_ref()?;
    let how = if p.fetched_now {
        "fetched into"
    } else {
        "from"
    };
    Some(format!(
        "bulkhead: mcp wrap: {p} ({how} {}, read-only to the server)",
        p.dir.display()
    ))
}

pub async fn fetch(args: FetchArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    let options = FetchOptions {
        update: args.update,
        ..FetchOptions::default()
    };
    let prepared = match prepare_server(&args.command, config, &options).await {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    if args.json {
        let json = serde_json::json!({
            "package": prepared.package.as_ref().map(|p| serde_json::json!({
                "installer": p.installer,
                "name": p.name,
                "version": p.version,
                "dir": p.dir,
                "fetched_now": p.fetched_now,
            })),
            "command": prepared.argv,
            "read": prepared.read,
            "path_prepend": prepared.path_prepend,
            "notes": prepared.notes,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(0);
    }
    match &prepared.package {
        Some(p) if p.fetched_now => println!("fetched {p} into {}", p.dir.display()),
        Some(p) => println!("{p} is in the cache: {}", p.dir.display()),
        None => println!("no package to fetch: the command runs as it is"),
    }
    println!("runs: {}", prepared.argv.join(" "));
    for r in &prepared.read {
        println!("reads: {}", r.display());
    }
    for n in &prepared.notes {
        println!("note: {n}");
    }
    Ok(0)
}
