//! `bulkhead mcp wrap --url URL`: the arguments of the worker tool
//! `mcp_http`, which reaches a remote MCP server from inside a worker, and
//! the checks the call's policy must pass first.
//!
//! The policy is never widened here: a remote server needs the network,
//! and a policy without it is a usage error that says which to pick.

use bulkhead_host::HostConfig;
use bulkhead_ipc::NetworkMode;

use crate::cli::WrapArgs;
use crate::cli::policy_args::Chosen;

/// The worker tool that relays to a remote server.
pub const TOOL: &str = "mcp_http";

/// `mcp_http`'s arguments for `url`. Errors are usage errors, naming the
/// flag at fault. With `--bearer-env VAR`, `VAR` joins the call's
/// environment allowlist: the worker reads the token there, so it never
/// appears in the call's arguments (which logs and reports may show).
pub fn args_json(
    args: &WrapArgs,
    url: &str,
    chosen: &mut Chosen,
    host: &mut HostConfig,
) -> Result<String, String> {
    let network = chosen
        .policy
        .sandbox
        .as_ref()
        .map_or(NetworkMode::Full, |s| s.network);
    let policy = &chosen.policy.name;
    match network {
        // `proxied`: the worker's HTTP client goes through the host's
        // proxy, whose allow-list must name the server.
        NetworkMode::Full | NetworkMode::Proxied => {}
        NetworkMode::None => {
            return Err(format!(
                "--url: policy {policy} has network none, and a remote MCP server is reached \
                 over the network. Pick a policy with network: --policy trusted, or a config \
                 policy with network = \"full\". bulkhead does not widen a policy by itself."
            ));
        }
        NetworkMode::Loopback => {
            return Err(format!(
                "--url: policy {policy} has network loopback, which gives the worker a loopback \
                 of its own, where no server is listening. Pick a policy with network = \"full\" \
                 (e.g. --policy trusted). bulkhead does not widen a policy by itself."
            ));
        }
    }
    let mut headers = serde_json::Map::new();
    for h in &args.headers {
        let Some((name, value)) = h.split_once(':') else {
            return Err(format!("--header {h:?}: expected 'Name: value'"));
        };
        headers.insert(name.trim().to_owned(), value.trim().into());
    }
    if let Some(var) = &args.bearer_env {
        if std::env::var_os(var).is_none_or(|v| v.is_empty()) {
            return Err(format!("--bearer-env {var}: the variable is not set"));
        }
        match &mut chosen.policy.env_allowlist {
            Some(names) => names.push(var.clone()),
            None => host.env_allowlist.push(var.clone()),
        }
    }
    Ok(serde_json::json!({
        "url": url,
        "headers": headers,
        "bearer_env": args.bearer_env,
        "max_message_bytes": args.max_message,
        "max_result_bytes": args.max_result,
        "call_timeout_ms": args.call_timeout.as_millis() as u64,
    })
    .to_string())
}
