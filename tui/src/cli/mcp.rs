//! `bulkhead mcp serve`, `mcp status` and `mcp call`: the command-line
//! side of `bulkhead_mcp`'s gateway and client. `mcp wrap` is in
//! `mcp_wrap`.

use std::path::Path;

use bulkhead_config::Config;
use bulkhead_mcp::{
    Gateway, GatewayError, HttpOptions, READY_TIMEOUT, ServerSession, ServerState, call_remote,
    serve_http, serve_stdio, start_sessions,
};
use serde_json::Value;

use crate::cli::{CallArgs, EXIT_USAGE, ServeArgs, StatusArgs};

/// Exit code of `mcp status` and `mcp call` when a server failed.
const EXIT_SERVER: u8 = 5;

/// A configuration error is the user's to fix (exit 2); anything else is
/// bulkhead's (anyhow, exit 1).
fn usage_or(e: GatewayError) -> anyhow::Result<u8> {
    match e {
        GatewayError::Config(_) | GatewayError::Policy(_) | GatewayError::Host(_) => {
            eprintln!("bulkhead: {e}");
            Ok(EXIT_USAGE)
        }
        GatewayError::Server(_) => {
            eprintln!("bulkhead: {e}");
            Ok(EXIT_SERVER)
        }
        other => Err(other.into()),
    }
}

fn load(config: Option<&Path>) -> Result<Config, u8> {
    Config::load(config).map_err(|e| {
        eprintln!("bulkhead: {e}");
        EXIT_USAGE
    })
}

pub async fn serve(args: ServeArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    let config = match load(config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let gateway =
        match Gateway::start(&config, args.servers.as_deref(), args.expose.as_deref()).await {
            Ok(g) => g,
            Err(e) => return usage_or(e),
        };
    let Some(addr) = args.http else {
        serve_stdio(gateway).await?;
        return Ok(0);
    };
    let token = match &args.token_env {
        Some(var) => match std::env::var(var) {
            Ok(t) if !t.is_empty() => Some(t),
            _ => {
                eprintln!("bulkhead: --token-env {var}: the variable is not set");
                return Ok(EXIT_USAGE);
            }
        },
        None => None,
    };
    let options = HttpOptions {
        addr,
        token,
        extra_origins: args.allow_origin,
    };
    serve_http(gateway, options).await?;
    Ok(0)
}

pub async fn status(args: StatusArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    let config = match load(config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let (_host, sessions) = match start_sessions(&config, args.servers.as_deref()).await {
        Ok(s) => s,
        Err(e) => return usage_or(e),
    };
    for s in &sessions {
        let _ = tokio::time::timeout(READY_TIMEOUT, s.ready()).await;
    }
    let statuses: Vec<_> = sessions.iter().map(ServerSession::status).collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&statuses)?);
    } else if statuses.is_empty() {
        println!(
            "no MCP servers configured (give --servers FILE, or [mcp] servers_file in the config)"
        );
    } else {
        println!(
            "{:<20} {:<10} {:<10} {:>5} {:>8} {:>9} {:>10}  last error / stderr",
            "server", "state", "policy", "tools", "restarts", "peak RSS", "egress a/r"
        );
        for s in &statuses {
            let note = s
                .last_error
                .clone()
                .or_else(|| s.stderr_tail.lines().last().map(str::to_owned))
                .unwrap_or_default();
            println!(
                "{:<20} {:<10} {:<10} {:>5} {:>8} {:>9} {:>10}  {note}",
                s.name,
                format!("{:?}", s.state).to_lowercase(),
                s.policy,
                s.tools.len(),
                s.restarts,
                bulkhead_host::units::format_size(s.peak_rss_bytes),
                // Allowed / refused connections of its egress proxy.
                format!("{}/{}", s.egress_allowed, s.egress_refused),
            );
            if !s.not_enforced.is_empty() {
                println!("{:<20} NOT ENFORCED: {}", "", s.not_enforced.join(", "));
            }
            if let Some(refusal) = &s.last_egress_refusal {
                println!("{:<20} last {refusal}", "");
            }
            if let Some(package) = &s.package {
                println!("{:<20} runs {package} from bulkhead's package cache", "");
            }
        }
    }
    let failed = statuses.iter().any(|s| s.state == ServerState::Failed);
    Ok(if failed { EXIT_SERVER } else { 0 })
}

/// `bulkhead mcp call --url URL [TOOL [ARGS]]`: bulkhead as an MCP client
/// of a remote server, reached from a worker like any server.
pub async fn call(args: CallArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    let arguments: Value = match serde_json::from_str(&args.args_json) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            eprintln!("bulkhead: ARGS_JSON must be a JSON object");
            return Ok(EXIT_USAGE);
        }
    };
    let config = match load(config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    match call_remote(
        &config,
        &args.url,
        &args.policy,
        args.tool.as_deref(),
        arguments,
    )
    .await
    {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(0)
        }
        Err(GatewayError::Server(e)) => {
            eprintln!("bulkhead: mcp call: {e}");
            Ok(EXIT_SERVER)
        }
        Err(e) => usage_or(e),
    }
}
