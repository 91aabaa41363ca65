//! `bulkhead mcp call --url`: bulkhead as an MCP client of a remote
//! (Streamable HTTP) server, reached from a worker like any server.

use std::collections::BTreeMap;

use bulkhead_config::Config;
use bulkhead_config::servers::{ServerEntry, ServerSettings};
use bulkhead_host::{HostConfig, ToolHost};
use serde_json::{Value, json};

use crate::GatewayError;
use crate::gateway::READY_TIMEOUT;
use crate::session::{McpError, ServerSession};

/// Initializes a session with the server at `url` under `policy`, then
/// lists its tools (`tool` is `None`) or calls `tool` with `arguments`.
pub async fn call_remote(
    config: &Config,
    url: &str,
    policy: &str,
    tool: Option<&str>,
    arguments: Value,
) -> Result<Value, GatewayError> {
    let mut with_remote = config.clone();
    with_remote.servers.insert(
        "remote".into(),
        ServerSettings {
            policy: Some(policy.to_owned()),
            ..Default::default()
        },
    );
    let entry: ServerEntry = serde_json::from_value(json!({ "url": url }))
        .map_err(|e| GatewayError::Config(format!("--url {url}: {e}")))?;
    let servers = BTreeMap::from([("remote".to_owned(), entry)]);
    let mut specs = bulkhead_config::specs(&with_remote, &servers, None)
        .map_err(|e| GatewayError::Config(e.to_string()))?;
    let spec = match specs.len() {
        1 => specs.remove(0),
        n => {
            return Err(GatewayError::Server(format!(
                "one server expected from --url, got {n}"
            )));
        }
    };
    let host = ToolHost::new(HostConfig {
        worker_from_config: config.worker.clone(),
        ..HostConfig::default()
    })?;
    let session = ServerSession::spawn(host, spec);
    tokio::time::timeout(READY_TIMEOUT, session.ready())
        .await
        .unwrap_or_else(|_| Err(McpError("no answer to initialize".into())))
        .map_err(|e| GatewayError::Server(e.to_string()))?;
    match tool {
        None => Ok(json!({"tools": session.status().tools})),
        Some(tool) => session
            .request("tools/call", json!({"name": tool, "arguments": arguments}))
            .await
            .map_err(|e| GatewayError::Server(e.to_string())),
    }
}
