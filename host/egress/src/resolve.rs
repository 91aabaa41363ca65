//! Name resolution, injectable: the system's resolver in the host, a fixed
//! table in tests and benches.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

/// The most addresses kept from one resolution. Every kept address is
/// checked and may be tried; a name with more (round-robin pools publish
/// 8 or so) loses only fallbacks, and a hostile answer cannot grow the list.
pub const MAX_ADDRESSES: usize = 16;

/// What [`Resolve::resolve`] returns.
pub type ResolveFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>>;

/// Resolves a name the allow list let through to the addresses to try.
///
/// The proxy bounds the call with its resolve timeout, keeps at most
/// [`MAX_ADDRESSES`] of the answer, gives each the requested port, and
/// checks every one before trying any. `localhost` and IP literals never
/// reach a resolver.
pub trait Resolve: Send + Sync {
    /// The addresses of `name` (lower case, no trailing dot) for `port`.
    fn resolve<'a>(&'a self, name: &'a str, port: u16) -> ResolveFuture<'a>;
}

/// The system's resolver (`getaddrinfo` through [`tokio::net::lookup_host`],
/// which runs it on tokio's blocking pool).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(&'a self, name: &'a str, port: u16) -> ResolveFuture<'a> {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name, port)).await?;
            Ok(found.take(MAX_ADDRESSES).collect())
        })
    }
}

/// A fixed table of names, for tests and benches: no DNS is asked, and a
/// name not in the table does not resolve.
#[derive(Clone, Debug, Default)]
pub struct StaticResolver {
    table: HashMap<String, Vec<IpAddr>>,
}

impl StaticResolver {
    /// An empty table.
    pub fn new() -> StaticResolver {
        StaticResolver::default()
    }

    /// Adds `name` (matched in lower case) with these addresses.
    pub fn with(
        mut self,
        name: &str,
        addresses: impl IntoIterator<Item = IpAddr>,
    ) -> StaticResolver {
        self.table
            .insert(name.to_ascii_lowercase(), addresses.into_iter().collect());
        self
    }
}

impl Resolve for StaticResolver {
    fn resolve<'a>(&'a self, name: &'a str, port: u16) -> ResolveFuture<'a> {
        let found = self
            .table
            .get(name)
            .map(|ips| ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect());
        Box::pin(async move {
            found
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such name in the table"))
        })
    }
}
