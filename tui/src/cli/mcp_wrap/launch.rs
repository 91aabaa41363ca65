//! Starting a wrapped server's call: its package prepared, its policy
//! chosen and resolved, its worker's request built (once, so that a
//! restart starts the same call again).

use std::path::Path;

use bulkhead_host::{CallHandle, CallRequest, HostConfig, ToolHost};
use bulkhead_mcp::{FetchOptions, Prepared};

use super::{NO_SESSION_LIMIT, relay_faults};
use crate::cli::mcp_diagnose::PolicyFacts;
use crate::cli::policy_args::{Extra, Use, choose};
use crate::cli::{EXIT_USAGE, WrapArgs};

/// A wrapped server's call, started: what `mcp wrap` relays to its client
/// and `mcp check` talks to.
pub(crate) struct Launched {
    pub host: ToolHost,
    pub call: CallHandle,
    /// What the server runs under, for diagnoses.
    pub policy: PolicyFacts,
}

/// Starts the server of `args` as `mcp wrap` runs it: its package
/// prepared, its policy chosen and resolved, its worker started in stream
/// mode. `Ok(Err(code))`: a usage error, already printed.
pub(crate) async fn launch(
    args: &WrapArgs,
    config: Option<&Path>,
) -> anyhow::Result<Result<Launched, u8>> {
    Ok(ready(args, config).await?.map(|r| Launched {
        call: r.host.call(r.request),
        host: r.host,
        policy: r.policy,
    }))
}

/// A wrapped server's call, ready to start (and to start again).
pub(super) struct Ready {
    pub host: ToolHost,
    pub request: CallRequest,
    pub policy: PolicyFacts,
}

/// What [`launch`] starts, not started yet.
pub(super) async fn ready(
    args: &WrapArgs,
    config: Option<&Path>,
) -> anyhow::Result<Result<Ready, u8>> {
    // A remote server is reached through the egress proxy, which must let
    // its own host and port through.
    let needs_host = match args.url.as_deref().map(bulkhead_egress::AllowRule::for_url) {
        None => None,
        Some(Ok(rule)) => Some(rule),
        Some(Err(e)) => {
            eprintln!("bulkhead: --url {e}");
            return Ok(Err(EXIT_USAGE));
        }
    };
    // What the command needs to read, and its package fetched once into
    // bulkhead's cache when it is a package launcher (`npx -y PKG`, …).
    let prepared = if args.url.is_some() {
        Prepared::default()
    } else {
        let options = FetchOptions {
            offline: args.no_fetch,
            ..FetchOptions::default()
        };
        match crate::cli::mcp_fetch::prepare_server(&args.command, config, &options).await {
            Ok(p) => p,
            Err(code) => return Ok(Err(code)),
        }
    };
    if let Some(line) = crate::cli::mcp_fetch::package_line(&prepared) {
        eprintln!("{line}");
    }
    let extra = Extra {
        timeout: Some(args.session_timeout.unwrap_or(NO_SESSION_LIMIT)),
        // Nothing is kept: every message is passed on (stream mode).
        max_output: Some(u64::MAX),
        install_dirs: prepared.read.clone(),
        needs_host,
    };
    let mut chosen = match choose(&args.sandbox, extra, Use::Mcp, config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bulkhead: {e}");
            return Ok(Err(EXIT_USAGE));
        }
    };
    let mut host_config = HostConfig {
        memory_mechanism: args.sandbox.memory_mechanism,
        worker_from_config: chosen.worker.clone(),
        ..HostConfig::default()
    };
    // A remote server (`--url`) is the same session through another tool.
    // Stream faults act in the stdio relay, on the server's output; the
    // remote relay applies none, so there they are refused.
    let stream_faults = match relay_faults::of(&args.inject.specs) {
        Ok(f) if args.url.is_some() && !f.is_empty() => {
            eprintln!(
                "bulkhead: --inject {}: cannot apply here: stream faults act on a stdio \
                 server's output; with --url use the MCP or process faults",
                f[0].spec_fault
            );
            return Ok(Err(EXIT_USAGE));
        }
        Ok(f) => f,
        Err(e) => {
            eprintln!("bulkhead: {e}");
            return Ok(Err(EXIT_USAGE));
        }
    };
    let (tool, args_json) = match &args.url {
        Some(url) => {
            match crate::cli::mcp_remote::args_json(args, url, &mut chosen, &mut host_config) {
                Ok(a) => (crate::cli::mcp_remote::TOOL, a),
                Err(e) => {
                    eprintln!("bulkhead: {e}");
                    return Ok(Err(EXIT_USAGE));
                }
            }
        }
        None => (
            "mcp_stdio",
            serde_json::json!({
                "command": prepared.argv,
                "env": prepared
                    .path_var(std::env::var("PATH").ok().as_deref())
                    .map(|path| serde_json::json!({ "PATH": path }))
                    .unwrap_or_else(|| serde_json::json!({})),
                "max_message_bytes": args.max_message,
                "max_result_bytes": args.max_result,
                "call_timeout_ms": args.call_timeout.as_millis() as u64,
                "inject": stream_faults,
            })
            .to_string(),
        ),
    };
    let policy = PolicyFacts::of(&chosen.policy);
    let host = ToolHost::new(host_config)?;
    let mut request = CallRequest::new(tool, args_json)
        .limits(chosen.limits)
        .cwd(chosen.cwd)
        .policy(chosen.policy)
        .stream_output(true);
    // Process faults act on the server's worker, as under `run`; the MCP
    // faults are the relay's (`mcp_inject`).
    request.inject = args.inject.process_faults();
    request.inject_seed = args.inject.seed;
    Ok(Ok(Ready {
        host,
        request,
        policy,
    }))
}
