//! Network `proxied`: the tool's HTTP and HTTPS leave its network
//! namespace only through the host's proxy, which applies the policy's
//! allow-list.
//!
//! The host runs the proxy outside the sandbox, on a Unix socket at a path
//! it names in [`EgressRelay`]. Inside the namespace, where only `lo`
//! exists, the worker listens on `127.0.0.1:port` and relays every
//! connection to that socket (`relay`), and the tool's proxy variables
//! point at the relay ([`PROXY_VARS`]). A client that ignores them has
//! nowhere to go: no other address is routable from the namespace.
//!
//! [`start`] runs in [`super::begin`], after the network namespace is made
//! and while the worker is still single-threaded: the listener must be
//! bound inside the namespace, the environment may only be changed while no
//! other thread can read it, and the relay thread must exist before a PID
//! namespace forbids new threads.
//!
//! # Caveats
//! - The relay thread is started before capabilities are dropped and
//!   before Landlock, like the worker's two service threads: it keeps the
//!   user namespace's capabilities and no Landlock domain, and runs no tool
//!   code. That is also why the proxy's socket needs no Landlock rule (and
//!   Landlock up to the ABI bulkhead asks for does not govern `connect` to
//!   a named Unix socket anyway). seccomp covers the thread (TSYNC).
//! - The tool may connect to the proxy's socket path itself, if its
//!   directory lets the tool's uid in: it reaches the same proxy and the
//!   same allow-list, so that is no way around it.
//! - The relay's sockets count against the worker's `RLIMIT_NOFILE`, which
//!   an in-worker tool (`mcp_http`) shares; a spawned tool has its own.

mod relay;
#[cfg(test)]
mod tests;

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::unix::fs::FileTypeExt;

use bulkhead_ipc::EgressRelay;

/// Variables set to the relay's URL. curl, wget, git, pip (requests), uv,
/// Go and reqwest read the upper- or lower-case pair; `ALL_PROXY` catches
/// clients that read only it; npm ignores `HTTP(S)_PROXY` in some versions
/// and reads its own config keys, which it also takes from the
/// environment.
pub const PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "npm_config_proxy",
    "npm_config_https_proxy",
];

/// Variables removed: a bypass list would send `localhost` (or anything
/// else it names) direct, to the namespace's own loopback, where nothing
/// the host runs is listening. Through the proxy, the allow-list decides.
pub const BYPASS_VARS: &[&str] = &["NO_PROXY", "no_proxy", "npm_config_noproxy"];

/// Node's built-in `fetch` (and, in later releases, `http`/`https`) reads
/// the proxy variables only when this is set (Node 22.21 on; older
/// versions ignore it), and many MCP servers are Node programs that use
/// `fetch`.
pub const NODE_OPT_IN: (&str, &str) = ("NODE_USE_ENV_PROXY", "1");

/// The relay, running.
#[derive(Debug)]
pub struct Started {
    /// The port bound on the namespace's `127.0.0.1`.
    pub port: u16,
    /// `http://127.0.0.1:PORT`, what the tool's variables say.
    pub url: String,
}

/// Binds the relay on the namespace's `127.0.0.1`, points the process's
/// environment (which every tool process inherits) at it, and starts the
/// relay thread. Must run inside the new network namespace with `lo` up,
/// while the worker is single-threaded. `Err` says why the tool has no
/// egress; it still has its private loopback, and nothing else.
pub fn start(egress: Option<&EgressRelay>) -> Result<Started, String> {
    let Some(egress) = egress else {
        return Err(
            "the host named no proxy for network proxied: only the private \
                    loopback is reachable"
                .into(),
        );
    };
    let target = relay::Target::new(&egress.socket_path)?;
    match std::fs::metadata(&egress.socket_path) {
        Ok(m) if m.file_type().is_socket() => {}
        Ok(_) => return Err(format!("{} is not a socket", egress.socket_path)),
        Err(e) => return Err(format!("the proxy's socket {}: {e}", egress.socket_path)),
    }
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, egress.port))
        .map_err(|e| format!("bind 127.0.0.1:{} for the relay: {e}", egress.port))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("the relay's address: {e}"))?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    // SAFETY: `begin` runs before the worker starts any thread, and the
    // relay thread starts below; nothing reads the environment meanwhile.
    unsafe { point_environment_at(&url) };
    if let Err(e) = relay::spawn(listener, target, relay::BOUNDS) {
        // SAFETY: as above; the thread did not start.
        unsafe { clear_environment() };
        return Err(format!("start the relay thread: {e}"));
    }
    Ok(Started { port, url })
}

/// What the report says of a running relay.
pub fn describe(started: &Started) -> String {
    format!(
        "network proxied: 127.0.0.1:{} in the namespace relays to the host's proxy, at most {} \
         connections at once, {} KiB buffered each way; {} set to {}, {}={}; {} removed",
        started.port,
        relay::BOUNDS.max_connections,
        relay::BOUNDS.buffer_bytes >> 10,
        PROXY_VARS.join(" "),
        started.url,
        NODE_OPT_IN.0,
        NODE_OPT_IN.1,
        BYPASS_VARS.join(" "),
    )
}

/// Sets the proxy variables on `cmd`, over whatever the tool's own
/// arguments put there (an MCP server's configured `env`), so no call can
/// send its traffic around the relay by configuration.
pub fn apply_to(cmd: &mut std::process::Command, url: &str) {
    for name in PROXY_VARS {
        cmd.env(name, url);
    }
    cmd.env(NODE_OPT_IN.0, NODE_OPT_IN.1);
    for name in BYPASS_VARS {
        cmd.env_remove(name);
    }
}

/// # Safety
/// No other thread may read or write the environment meanwhile.
unsafe fn point_environment_at(url: &str) {
    // SAFETY: the caller's promise.
    unsafe {
        for name in PROXY_VARS {
            std::env::set_var(name, url);
        }
        std::env::set_var(NODE_OPT_IN.0, NODE_OPT_IN.1);
        for name in BYPASS_VARS {
            std::env::remove_var(name);
        }
    }
}

/// # Safety
/// As [`point_environment_at`].
unsafe fn clear_environment() {
    // SAFETY: the caller's promise.
    unsafe {
        for name in PROXY_VARS {
            std::env::remove_var(name);
        }
        std::env::remove_var(NODE_OPT_IN.0);
    }
}
