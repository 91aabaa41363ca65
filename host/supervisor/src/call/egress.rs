//! A call's egress proxy: started before the worker when the call's
//! policy has an allow list, shut down after every process of the call is
//! dead.
//!
//! The proxy listens on a Unix socket in a private dir of the call (0700,
//! in the host's private folder), which the worker's relay connects to
//! from inside the tool's network namespace. Its log is the one record of
//! what the call reached and what it was refused.

use std::io;

use bulkhead_egress::{AllowList, EgressLog, EgressProxy, EgressReport, ProxyConfig};
use bulkhead_ipc::EgressRelay;

use crate::private_tmp::PrivateTmp;

/// The socket's file name in its dir. Short: a Unix socket path must fit
/// in 108 bytes, and the dir already takes the temp dir's path.
const SOCKET_NAME: &str = "proxy.sock";

/// The port the relay listens on inside the tool's namespace. A fixed,
/// well-known proxy port: the namespace is the tool's own, so it collides
/// with nothing, and a tool that hard-codes a proxy port most likely
/// expects this one.
const RELAY_PORT: u16 = 3128;

/// One call's running proxy.
pub(crate) struct CallEgress {
    proxy: EgressProxy,
    log: EgressLog,
    /// Removed (with the socket) when this is dropped, after the proxy.
    _dir: PrivateTmp,
}

impl CallEgress {
    /// Starts the proxy for call `call_id` with `allow`; returns it and the
    /// relay the worker must run.
    pub(crate) fn start(call_id: u64, allow: AllowList) -> io::Result<(Self, EgressRelay)> {
        let dir = PrivateTmp::create_for(call_id, "egress")?;
        let socket = dir.path().join(SOCKET_NAME);
        let socket_path = socket
            .to_str()
            .ok_or_else(|| io::Error::other("the temp dir's path is not UTF-8"))?
            .to_owned();
        let log = EgressLog::new();
        let proxy = EgressProxy::bind(&socket, ProxyConfig::new(allow), log.clone())?;
        let relay = EgressRelay {
            socket_path,
            port: RELAY_PORT,
        };
        Ok((
            Self {
                proxy,
                log,
                _dir: dir,
            },
            relay,
        ))
    }

    /// What the proxy did so far.
    pub(crate) fn report(&self) -> EgressReport {
        self.log.report()
    }

    /// Closes every connection and the socket; the final report.
    pub(crate) async fn finish(self) -> EgressReport {
        let CallEgress { proxy, log, _dir } = self;
        proxy.shutdown().await;
        log.report()
    }
}
