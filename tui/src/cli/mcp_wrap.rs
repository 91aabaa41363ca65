//! `bulkhead mcp wrap [FLAGS] -- CMD ARGS…`: a stdio MCP server that
//! proxies to `CMD`, which runs sandboxed and capped in a worker. With
//! `--url URL` it proxies to a remote server instead, reached from a worker
//! (`mcp_remote.rs`).
//!
//! The client's bytes go to the server unchanged; the server's messages
//! come back through the worker's relay (`mcp_stdio`), which caps each one
//! before parsing it. This process holds no more than the credit windows
//! of either direction: it reads stdin only when the server has taken what
//! came before, and takes output only as fast as it writes it to stdout.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use bulkhead_host::{CallEvent, CallRequest, HostConfig, Outcome, ToolHost};
use bulkhead_ipc::{StreamId, ToolExit};
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use crate::cli::policy_args::{Extra, Use, choose};
use crate::cli::{EXIT_USAGE, WrapArgs};

/// A session has no wall-clock limit unless `--session-timeout` sets one;
/// ten years stands for "none" where the host wants a deadline.
const NO_SESSION_LIMIT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// One read of the client's stdin: one input chunk.
const STDIN_READ_BYTES: usize = bulkhead_ipc::MAX_CHUNK_BYTES;

pub async fn wrap(args: WrapArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    let extra = Extra {
        timeout: Some(args.session_timeout.unwrap_or(NO_SESSION_LIMIT)),
        // Nothing is kept: every message is passed on (stream mode).
        max_output: Some(u64::MAX),
        install_dirs: bulkhead_config::launch::install_dirs(&args.command),
    };
    let mut chosen = match choose(&args.sandbox, extra, Use::Mcp, config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bulkhead: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let mut host_config = HostConfig {
        memory_mechanism: args.sandbox.memory_mechanism,
        worker_from_config: chosen.worker.clone(),
        ..HostConfig::default()
    };
    // A remote server (`--url`) is the same session through another tool.
    let (tool, args_json) = match &args.url {
        Some(url) => {
            match crate::cli::mcp_remote::args_json(&args, url, &mut chosen, &mut host_config) {
                Ok(a) => (crate::cli::mcp_remote::TOOL, a),
                Err(e) => {
                    eprintln!("bulkhead: {e}");
                    return Ok(EXIT_USAGE);
                }
            }
        }
        None => (
            "mcp_stdio",
            serde_json::json!({
                "command": args.command,
                "max_message_bytes": args.max_message,
                "max_result_bytes": args.max_result,
                "call_timeout_ms": args.call_timeout.as_millis() as u64,
            })
            .to_string(),
        ),
    };
    let host = ToolHost::new(host_config)?;
    let mut call = host.call(
        CallRequest::new(tool, args_json)
            .limits(chosen.limits)
            .cwd(chosen.cwd)
            .policy(chosen.policy)
            .stream_output(true),
    );
    feed_stdin(call.input());

    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let mut code = 0u8;
    while let Some(event) = call.next_event().await {
        match event {
            CallEvent::Started(enforcement) => {
                let line = serde_json::json!({
                    "policy": enforcement.policy,
                    "explained": enforcement.policy_explained,
                    "sandbox": enforcement.sandbox,
                    "worker": enforcement.worker.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                    "not_enforced": enforcement.not_enforced().map(|m| &m.mechanism).collect::<Vec<_>>(),
                });
                let mut text = format!("bulkhead: mcp wrap: sandbox {line}\n");
                for m in enforcement.not_enforced() {
                    text.push_str(&format!(
                        "bulkhead: policy {}: NOT ENFORCED: {}: {}\n",
                        enforcement.policy, m.mechanism, m.detail
                    ));
                }
                let _ = stderr.write_all(text.as_bytes()).await;
            }
            CallEvent::Output {
                stream: StreamId::Stdout,
                data,
            } => {
                if stdout.write_all(&data).await.is_err() || stdout.flush().await.is_err() {
                    // The client is gone: so is the session.
                    call.cancel();
                }
            }
            CallEvent::Output {
                stream: StreamId::Stderr,
                data,
            } => {
                let _ = stderr.write_all(&data).await;
            }
            CallEvent::Finished(report) => {
                let why = match &report.outcome {
                    Outcome::Completed | Outcome::Truncated { .. } => {
                        if let Some(ToolExit::Code(c)) = report.exit {
                            code = u8::try_from(c).unwrap_or(1);
                        }
                        format!("the server ended ({:?})", report.exit)
                    }
                    Outcome::Killed { reason } => {
                        code = 4;
                        format!("killed: {reason}")
                    }
                    Outcome::Failed { error } => {
                        code = 5;
                        format!("failed: {error}")
                    }
                };
                let summary = serde_json::json!({
                    "outcome": report.outcome.status(),
                    "why": why,
                    "relay": report.summary,
                    "host_peak_rss_bytes": crate::cli::run::host_peak_rss_bytes(),
                });
                let _ = stderr
                    .write_all(format!("bulkhead: mcp wrap: ended {summary}\n").as_bytes())
                    .await;
            }
        }
    }
    let _ = stdout.flush().await;
    Ok(code)
}

/// Reads the client's stdin on a plain thread and feeds the call. Not a
/// tokio blocking task: a read blocked on a client that keeps stdin open
/// must not hold the runtime's shutdown when the server has ended.
fn feed_stdin(input: bulkhead_host::InputSender) {
    let handle = tokio::runtime::Handle::current();
    let spawned = std::thread::Builder::new()
        .name("mcp-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = vec![0u8; STDIN_READ_BYTES];
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => 0,
                    Ok(n) => n,
                };
                let sent = if n == 0 {
                    handle.block_on(input.close())
                } else {
                    handle.block_on(input.send(Bytes::copy_from_slice(&buf[..n])))
                };
                if n == 0 || sent.is_err() {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        eprintln!("bulkhead: cannot start the stdin reader: {e}");
    }
}
