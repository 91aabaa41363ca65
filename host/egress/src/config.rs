//! [`ProxyConfig`]: every bound on a proxy's memory and time, in one place.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::allow::AllowList;
use crate::resolve::{Resolve, SystemResolver};

/// The default cap on a proxy's connections at once. A tool with 128
/// connections open is a crawler or a leak, not an agent's helper; at about
/// 48 KiB each at most (a head buffer, then two relay buffers) the cap holds
/// a proxy to about 6 MiB of buffers.
pub const DEFAULT_MAX_CONNECTIONS: usize = 128;

/// The default time a client has to send its whole request head (or SOCKS5
/// request). Clients send it at once; 10 s allows a loaded machine and
/// frees a connection slot from a client that never will.
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The default time a name has to resolve. The system resolver retries
/// over 5 s per server; 10 s lets one retry succeed, and a tool waits no
/// longer than that for a dead resolver.
pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The default time to connect, all of a name's addresses together. A
/// reachable host answers within a few round trips; 10 s covers a slow
/// path, and a tool does not hang for the minutes of the kernel's own SYN
/// retries (about 2 min on Linux).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A proxy's configuration. Every bound on its memory and time is here:
/// nothing a peer sends raises them.
#[derive(Clone)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// Where the tool may go.
    pub allow: AllowList,
    /// How names are resolved: [`SystemResolver`] unless set.
    pub resolver: Arc<dyn Resolve>,
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// The time for a whole request head or SOCKS5 request, and for
    /// sending an error response.
    pub head_timeout: Duration,
    /// The time for resolving a name.
    pub resolve_timeout: Duration,
    /// The time for connecting to the target.
    pub connect_timeout: Duration,
}

impl ProxyConfig {
    /// A configuration with this allow list, the system resolver and the
    /// default bounds.
    pub fn new(allow: AllowList) -> ProxyConfig {
        ProxyConfig {
            allow,
            resolver: Arc::new(SystemResolver),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            head_timeout: DEFAULT_HEAD_TIMEOUT,
            resolve_timeout: DEFAULT_RESOLVE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("allow", &self.allow)
            .field("max_connections", &self.max_connections)
            .field("head_timeout", &self.head_timeout)
            .field("resolve_timeout", &self.resolve_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}
