//! `bulkhead mcp serve`, `mcp status` and `mcp call`: the command-line
//! side of `bulkhead_mcp`'s gateway and client. `mcp wrap` is in
//! `mcp_wrap`.

use std::path::Path;

use bulkhead_config::Config;
use bulkhead_mcp::{
    Gateway, GatewayError, HttpOptions, READY_TIMEOUT, ServeFaults, ServerSession, ServerState,
    call_remote, serve_http, serve_stdio, start_sessions,
};
use serde_json::Value;

use crate::cli::{CallArgs, EXIT_USAGE, ServeArgs, StatusArgs};

#[path = "mcp/live_status.rs"]
mod live_status;

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

/// `--inject SERVER:SPEC` of `mcp serve`.
#[derive(Debug, Clone)]
pub struct ServerFault {
    pub server: String,
    pub spec: bulkhead_faults::FaultSpec,
}

/// `SERVER:FAULT[:ARG][@TRIGGER]`: the server is what comes before the
/// first `:` (a server's name has none that `mcp serve` can inject into).
pub fn server_fault(s: &str) -> Result<ServerFault, String> {
    let Some((server, spec)) = s.split_once(':').filter(|(n, _)| !n.is_empty()) else {
        return Err(format!(
            "\"{s}\": write SERVER:FAULT[:ARG][@TRIGGER], e.g. everything:error@on:tools/call"
        ));
    };
    let spec = spec
        .parse()
        .map_err(|e: bulkhead_faults::ParseError| format!("server \"{server}\": {e}"))?;
    Ok(ServerFault {
        server: server.to_owned(),
        spec,
    })
}

pub fn chaos_spec(s: &str) -> Result<bulkhead_mcp::chaos::ChaosSpec, String> {
    s.parse()
        .map_err(|e: bulkhead_mcp::chaos::ChaosError| e.to_string())
}

/// The faults `mcp serve` injects, from its flags; the seed printed when
/// one was drawn from the clock, so the run can be repeated.
fn serve_faults(args: &ServeArgs) -> ServeFaults {
    let mut faults = ServeFaults {
        seed: args
            .inject_seed
            .unwrap_or_else(bulkhead_faults::seed_from_clock),
        chaos: args.chaos.clone(),
        ..ServeFaults::default()
    };
    let draws = args
        .inject
        .iter()
        .any(|f| matches!(f.spec.trigger, bulkhead_faults::Trigger::Probability(_)));
    if draws && args.inject_seed.is_none() {
        eprintln!(
            "bulkhead: inject seed {} (repeat with --inject-seed {})",
            faults.seed, faults.seed
        );
    }
    for f in &args.inject {
        faults
            .inject
            .entry(f.server.clone())
            .or_default()
            .push(f.spec.clone());
    }
    if let Some(chaos) = &args.chaos {
        eprintln!("bulkhead: mcp serve: chaos {chaos}");
    }
    faults
}

pub async fn serve(args: ServeArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    let config = match load(config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if let Some(name) = &args.name
        && let Err(e) = bulkhead_mcp::control::set_gateway_name(name)
    {
        eprintln!("bulkhead: --name: {e}");
        return Ok(EXIT_USAGE);
    }
    let faults = serve_faults(&args);
    let started = Gateway::start_with_faults(
        &config,
        args.servers.as_deref(),
        args.expose.as_deref(),
        &faults,
    )
    .await;
    let gateway = match started {
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

/// `mcp status`: the running gateways' live figures; with `--probe` (or
/// a `--servers` file, which only probing reads), the configured servers
/// started here and checked.
pub async fn status(args: StatusArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    if !args.probe && args.servers.is_none() {
        return live_status::live(&args).await;
    }
    eprintln!(
        "bulkhead: mcp status: probing: starting the configured servers to check them (not reading a running gateway)"
    );
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
