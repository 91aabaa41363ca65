//! `bulkhead mcp status` reading running gateways: each `mcp serve` has a
//! control socket (`bulkhead_mcp::control`); this finds them (or takes the
//! one `--gateway` names), asks each for its servers' live figures, and
//! prints them. Nothing is started.

use std::path::PathBuf;

use bulkhead_host::units::format_size;
use bulkhead_mcp::ServerState;
use bulkhead_mcp::control::{self, ControlError, Found, GatewayStatus, LiveServer};
use serde_json::{Value, json};

use super::EXIT_SERVER;
use crate::cli::{EXIT_USAGE, StatusArgs};

/// Exit code when no running gateway was found.
const EXIT_NO_GATEWAY: u8 = 3;

/// Exit code when a gateway's socket exists but its status could not be
/// read.
const EXIT_UNREADABLE: u8 = 1;

pub async fn live(args: &StatusArgs) -> anyhow::Result<u8> {
    let dir = control::socket_dir();
    let found: Vec<(PathBuf, Result<GatewayStatus, ControlError>)> = match &args.gateway {
        Some(which) => {
            let path = match gateway_path(which, dir.as_ref().ok()) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("bulkhead: --gateway {which}: {e}");
                    return Ok(EXIT_USAGE);
                }
            };
            let status = control::query(&path).await;
            if let Err(ControlError::Gone(_)) = status {
                eprintln!(
                    "bulkhead: mcp status: no running gateway at {} (no such socket)",
                    path.display()
                );
                if args.json {
                    println!("[]");
                }
                return Ok(EXIT_NO_GATEWAY);
            }
            vec![(path, status)]
        }
        None => {
            let dir = match dir {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("bulkhead: mcp status: {e}");
                    return Ok(EXIT_USAGE);
                }
            };
            let mut live = Vec::new();
            for f in control::discover(&dir).await? {
                match f {
                    Found::Stale(path) => eprintln!(
                        "bulkhead: mcp status: removed {}: its gateway is not running",
                        path.display()
                    ),
                    Found::Gateway(path, status) => live.push((path, status)),
                }
            }
            if live.is_empty() {
                eprintln!(
                    "bulkhead: mcp status: no running gateway (no control socket in {}); `bulkhead mcp status --probe` starts the configured servers and checks them",
                    dir.display()
                );
                if args.json {
                    println!("[]");
                }
                return Ok(EXIT_NO_GATEWAY);
            }
            live
        }
    };
    if args.json {
        let doc: Vec<Value> = found.iter().map(|(p, s)| as_json(p, s)).collect();
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for (i, (path, status)) in found.iter().enumerate() {
            if i > 0 {
                println!();
            }
            print_gateway(path, status);
        }
    }
    let unreadable = found.iter().any(|(_, s)| s.is_err());
    let failed = found.iter().any(|(_, s)| {
        s.as_ref()
            .is_ok_and(|g| g.servers.iter().any(|s| s.state == ServerState::Failed))
    });
    Ok(if unreadable {
        EXIT_UNREADABLE
    } else if failed {
        EXIT_SERVER
    } else {
        0
    })
}

/// `--gateway PID|NAME|PATH`: a pid or a name (`mcp serve --name`) is a
/// socket in the control directory; anything with a `/` a socket's path.
fn gateway_path(which: &str, dir: Option<&PathBuf>) -> Result<PathBuf, String> {
    if which.contains('/') {
        return Ok(PathBuf::from(which));
    }
    if which.is_empty() {
        return Err("give a pid, a gateway's name or a socket's path".into());
    }
    let dir = dir.ok_or("no control directory: set XDG_RUNTIME_DIR or HOME")?;
    Ok(dir.join(format!("{which}.sock")))
}

fn as_json(path: &std::path::Path, status: &Result<GatewayStatus, ControlError>) -> Value {
    let socket = path.display().to_string();
    match status {
        Ok(g) => {
            let mut v = serde_json::to_value(g).unwrap_or_else(|e| json!({"error": e.to_string()}));
            v["socket"] = json!(socket);
            v
        }
        Err(e) => json!({"socket": socket, "error": e.to_string()}),
    }
}

fn print_gateway(path: &std::path::Path, status: &Result<GatewayStatus, ControlError>) {
    let g = match status {
        Ok(g) => g,
        Err(e) => {
            println!("gateway at {}: cannot read its status: {e}", path.display());
            return;
        }
    };
    println!(
        "gateway {} · {} · up {} · bulkhead {} · {}",
        g.pid,
        g.transport,
        duration(g.uptime_ms),
        g.version,
        path.display()
    );
    if g.control_refused > 0 {
        println!(
            "  {} control connection(s) from another user refused",
            g.control_refused
        );
    }
    if g.servers.is_empty() {
        println!("  no MCP servers (built-in tools only)");
        return;
    }
    println!(
        "  {:<20} {:<10} {:>8} {:>9} {:>9} {:>7} {:>6} {:>7} {:>8}",
        "server", "state", "restarts", "RSS", "peak RSS", "calls", "errors", "refused", "uptime"
    );
    for s in &g.servers {
        print_server(s);
    }
}

fn print_server(s: &LiveServer) {
    let state = serde_json::to_value(&s.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    println!(
        "  {:<20} {:<10} {:>8} {:>9} {:>9} {:>7} {:>6} {:>7} {:>8}",
        s.name,
        state,
        s.restarts,
        if s.worker_pid.is_some() {
            format_size(s.rss_bytes)
        } else {
            "-".into()
        },
        format_size(s.peak_rss_bytes),
        s.calls,
        s.errors,
        s.egress_refused,
        s.uptime_ms.map_or_else(|| "-".into(), duration),
    );
    let pad = "    ";
    if let Some(why) = &s.last_error
        && s.state != ServerState::Ready
    {
        println!("{pad}why: {why}");
    }
    if !s.refused_hosts.is_empty() {
        println!("{pad}egress refused to: {}", s.refused_hosts.join(", "));
    }
    if s.injected > 0 {
        println!("{pad}faults injected: {}", s.injected);
    }
    if !s.not_enforced.is_empty() {
        println!("{pad}NOT ENFORCED: {}", s.not_enforced.join(", "));
    }
    if let Some(pid) = s.worker_pid {
        println!(
            "{pad}worker pid {pid} · policy {} · {} tools",
            s.policy, s.tools
        );
    }
}

/// `3h02m`, `4m05s`, `12.3s`.
fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}.{}s", secs, ms % 1000 / 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(12_345), "12.3s");
        assert_eq!(duration(245_000), "4m05s");
        assert_eq!(duration(3 * 3_600_000 + 120_000), "3h02m");
    }

    #[test]
    fn a_pid_or_name_is_a_socket_in_the_directory_and_a_path_itself() {
        let dir = PathBuf::from("/run/user/1000/bulkhead/gateways");
        assert_eq!(
            gateway_path("4242", Some(&dir)).unwrap(),
            dir.join("4242.sock")
        );
        assert_eq!(
            gateway_path("work", Some(&dir)).unwrap(),
            dir.join("work.sock")
        );
        assert_eq!(
            gateway_path("/tmp/g.sock", Some(&dir)).unwrap(),
            PathBuf::from("/tmp/g.sock")
        );
        assert!(gateway_path("", Some(&dir)).is_err());
        assert!(gateway_path("4242", None).is_err());
    }
}
