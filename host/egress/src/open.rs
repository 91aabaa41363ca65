//! From an allowed target to a connected socket: the allow list's grant,
//! name resolution (here and nowhere else), the address check, and the
//! connect, each under its timeout.
//!
//! **Architecture Invariant:** the proxy connects only to addresses it has
//! checked itself. A name is resolved once, every address kept is checked,
//! and the socket is opened to one of those very addresses: nothing is
//! resolved again between the check and the connect, so a name cannot
//! change its answer in between (DNS rebinding).

use std::net::SocketAddr;

use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::addr::non_public;
use crate::allow::{Grant, LOCALHOST};
use crate::config::ProxyConfig;
use crate::host::{Host, Target};
use crate::resolve::MAX_ADDRESSES;

/// Why no connection was made.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Denial {
    /// The policy says no: the allow list, or where the name resolves.
    Refused(String),
    /// The policy said yes, but the target could not be reached.
    Failed {
        reason: String,
        /// Whether a timeout ran out (a gateway timeout, not a bad gateway).
        timed_out: bool,
    },
}

fn failed(reason: String) -> Denial {
    Denial::Failed {
        reason,
        timed_out: false,
    }
}

/// Checks `target`, resolves it if it is a name, and connects.
pub(crate) async fn open(config: &ProxyConfig, target: &Target) -> Result<TcpStream, Denial> {
    let addresses = addresses(config, target).await?;
    let attempts = async {
        let mut last = None;
        for addr in &addresses {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(format!("could not connect to {}: {e}", Host::Ip(addr.ip()))),
            }
        }
        Err(last.unwrap_or_else(|| "no address to connect to".to_owned()))
    };
    match timeout(config.connect_timeout, attempts).await {
        Ok(Ok(stream)) => {
            // Relayed bytes go out as they come; the tool does its own batching.
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(reason)) => Err(failed(reason)),
        Err(_) => Err(Denial::Failed {
            reason: format!("no connection within {:?}", config.connect_timeout),
            timed_out: true,
        }),
    }
}

/// The addresses to try for `target`, every one checked.
pub(crate) async fn addresses(
    config: &ProxyConfig,
    target: &Target,
) -> Result<Vec<SocketAddr>, Denial> {
    let port = target.port;
    let name = match (
        config.allow.grant(target).map_err(Denial::Refused)?,
        &target.host,
    ) {
        (Grant::Literal(ip), _) => return Ok(vec![SocketAddr::new(ip, port)]),
        (Grant::Localhost, _) => {
            return Ok(LOCALHOST
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect());
        }
        (Grant::Resolve, Host::Name(name)) => name,
        (Grant::Resolve, Host::Ip(_)) => {
            return Err(Denial::Refused(
                "an IP literal not in the allow list".to_owned(),
            ));
        }
    };
    let found = match timeout(config.resolve_timeout, config.resolver.resolve(name, port)).await {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return Err(failed(format!("the name did not resolve: {e}"))),
        Err(_) => {
            return Err(Denial::Failed {
                reason: format!(
                    "the name did not resolve within {:?}",
                    config.resolve_timeout
                ),
                timed_out: true,
            });
        }
    };
    let found: Vec<SocketAddr> = found
        .into_iter()
        .take(MAX_ADDRESSES)
        .map(|addr| SocketAddr::new(addr.ip().to_canonical(), port))
        .collect();
    if found.is_empty() {
        return Err(failed("the name resolves to no address".to_owned()));
    }
    for addr in &found {
        match non_public(addr.ip()) {
            Some(kind) if !config.allow.names_address(*addr) => {
                return Err(Denial::Refused(format!("resolves to {kind} {}", addr.ip())));
            }
            _ => {}
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::allow::AllowList;
    use crate::resolve::StaticResolver;

    fn config(entries: &[&str], resolver: StaticResolver) -> ProxyConfig {
        let mut config = ProxyConfig::new(AllowList::parse(entries).expect("valid list"));
        config.resolver = Arc::new(resolver);
        config
    }

    async fn check(config: &ProxyConfig, target: &str) -> Result<Vec<String>, Denial> {
        let target = Target::parse(target).expect("target");
        let found = addresses(config, &target).await?;
        Ok(found.iter().map(ToString::to_string).collect())
    }

    fn ip(text: &str) -> std::net::IpAddr {
        text.parse().expect("ip")
    }

    #[tokio::test]
    async fn names_resolve_here_and_only_to_checked_addresses() {
        let resolver = StaticResolver::new()
            .with("public.x.test", [ip("93.184.215.14"), ip("::ffff:1.1.1.1")])
            .with("evil.x.test", [ip("93.184.215.14"), ip("10.0.0.5")])
            .with("loop.x.test", [ip("127.0.0.1")])
            .with("meta.x.test", [ip("169.254.169.254")])
            .with("mapped.x.test", [ip("::ffff:127.0.0.1")])
            .with("empty.x.test", []);
        let c = config(&["*.x.test", "127.0.0.1:8080"], resolver);
        assert_eq!(
            check(&c, "public.x.test:443").await,
            Ok(vec!["93.184.215.14:443".into(), "1.1.1.1:443".into()])
        );
        let refused = |reason: &str| Err(Denial::Refused(reason.to_owned()));
        assert_eq!(
            check(&c, "evil.x.test:443").await,
            refused("resolves to a private address 10.0.0.5")
        );
        assert_eq!(
            check(&c, "loop.x.test:443").await,
            refused("resolves to a loopback address 127.0.0.1")
        );
        assert_eq!(
            check(&c, "meta.x.test:80").await,
            refused("resolves to a link-local address 169.254.169.254")
        );
        assert_eq!(
            check(&c, "mapped.x.test:80").await,
            refused("resolves to a loopback address 127.0.0.1")
        );
        // The list names 127.0.0.1:8080 itself, so a name may lead there.
        assert_eq!(
            check(&c, "loop.x.test:8080").await,
            Ok(vec!["127.0.0.1:8080".into()])
        );
        assert!(matches!(
            check(&c, "empty.x.test:1").await,
            Err(Denial::Failed {
                timed_out: false,
                ..
            })
        ));
        assert!(matches!(
            check(&c, "none.x.test:1").await,
            Err(Denial::Failed {
                timed_out: false,
                ..
            })
        ));
        assert_eq!(
            check(&c, "other.example:1").await,
            refused("not in the allow list")
        );
        assert_eq!(
            check(&c, "[::1]:1").await,
            refused("an IP literal not in the allow list")
        );
    }

    #[tokio::test]
    async fn localhost_and_literals_never_reach_the_resolver() {
        let c = config(&["localhost:9", "10.0.0.5:22"], StaticResolver::new());
        assert_eq!(
            check(&c, "localhost:9").await,
            Ok(vec!["127.0.0.1:9".into(), "[::1]:9".into()])
        );
        assert_eq!(
            check(&c, "10.0.0.5:22").await,
            Ok(vec!["10.0.0.5:22".into()])
        );
    }
}
