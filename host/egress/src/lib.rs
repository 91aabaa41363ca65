//! bulkhead's egress proxy: a tool's only way out of its sandbox when its
//! network policy is an allow list (`--allow-net HOST[:PORT]`, repeatable).
//!
//! # Model
//!
//! A tool with an allow list runs in its own network namespace whose only
//! route is a relay (inside the sandbox, not in this crate): each TCP
//! connection the tool makes to `127.0.0.1:PORT` in the namespace becomes a
//! connection to a Unix socket that this proxy serves in the host process,
//! outside the sandbox. The tool sees an ordinary HTTP proxy
//! (`http_proxy`/`https_proxy`) that also speaks SOCKS5 (`ALL_PROXY=socks5h://`).
//! There is one proxy per call, with its own [`EgressLog`].
//!
//! Per connection, the proxy reads the opening (an HTTP request head, or a
//! SOCKS5 request), and then:
//!
//! - `CONNECT host:port` (and SOCKS5 CONNECT): checks the target against the
//!   [`AllowList`], resolves a name itself, checks every address, connects,
//!   answers `200 Connection established`, and copies bytes both ways.
//! - `METHOD http://host[:port]/path` (absolute form): the same checks on
//!   the URL's host, which the `Host` header must agree with; the head is
//!   rewritten to origin form without hop-by-hop or proxy headers, with
//!   `Connection: close`, and sent on; then bytes are copied both ways.
//! - Anything else is answered with an HTTP error and recorded as refused.
//!
//! # The allow list
//!
//! ```text
//! ENTRY = HOST [ ":" PORT ]          surrounding spaces are ignored
//! HOST  = NAME                       exactly this name: api.github.com
//!       | "*." NAME                  any subdomain of NAME, at any depth, NOT NAME
//!                                    itself: *.example.com matches a.example.com
//!                                    and a.b.example.com, not example.com
//!       | "localhost"                this machine's 127.0.0.1 and ::1
//!       | IPV4                       exactly this address: 127.0.0.1
//!       | "[" IPV6 "]"               exactly this address: [::1]
//! PORT  = 1 to 65535, decimal        absent: any port
//! NAME  = labels of ASCII letters, digits, "-" and "_", 1 to 63 characters,
//!         joined by ".", 253 at most; case-insensitive; one trailing "."
//!         ignored; punycode (xn--) as is, never converted
//! ```
//!
//! A port left out means any port, as in Deno's `--allow-net`, Anthropic's
//! sandbox-runtime and Codex's network proxy (whose lists take no port);
//! write `api.github.com:443` to allow one. Refused as malformed, each with
//! its own [`AllowErrorKind`]: an empty entry, a scheme (`https://x`), a
//! path, query or fragment, a user name, a bad or zero port, `*` alone or
//! anywhere but as the first label, a wildcard over a single label (`*.com`)
//! or an address, an IPv6 address without brackets, a non-ASCII name, a
//! name ending in a number (`127.1`, which C resolvers read as an address),
//! and an address no one connects to (unspecified, multicast, broadcast).
//!
//! # Where a name may lead
//!
//! A name allowed by a name or wildcard rule is resolved by the proxy (the
//! [`Resolve`] in the [`ProxyConfig`]), and the connection is refused if any
//! address it resolves to is not public: loopback (127/8, ::1), private
//! (10/8, 172.16/12, 192.168/16, fc00::/7), shared (100.64/10), link-local
//! (169.254/16, fe80::/10), unspecified, multicast, broadcast or reserved
//! (the full list is on the refusal's reason below). So `--allow-net
//! evil.example` cannot be turned into a way to the host's own services by
//! a DNS answer of 127.0.0.1 (DNS rebinding). The exception is an address
//! the list names itself, as an IP rule or as `localhost` (127.0.0.1 and
//! ::1) on a matching port: the tool could reach it anyway. An IP literal
//! target must be listed as that literal; `localhost` is answered by the
//! proxy without a resolver.
//!
//! # What is recorded
//!
//! Every connection the proxy answers is counted in the [`EgressLog`] as
//! allowed, refused or failed, with the bytes relayed each way (one closed
//! before sending a byte asked nothing, and is not counted). Every
//! refusal and failure has a message, and the first [`MAX_MESSAGES`]
//! distinct ones are kept with a count:
//!
//! - `egress to HOST:PORT refused: REASON`, where REASON is one of
//!   `not in the allow list`, `port N is not in the allow list for this
//!   host`, `an IP literal not in the allow list`, `resolves to a private
//!   address 10.0.0.5` (or `a loopback`, `a link-local`, `a shared
//!   (carrier-grade NAT)`, `an unspecified`, `a multicast`, `a broadcast`,
//!   `a reserved address`), `the Host header names H:P, not the URL's
//!   host`, `more than one Host header`, `SOCKS5 command N is not supported
//!   (only CONNECT)`;
//! - `egress refused: REASON` when no target was understood: `not valid
//!   HTTP: …`, `the request head is over 16384 bytes`, `the request head
//!   has more than 64 header lines`, `not valid HTTP: too many lines
//!   without the end of the head`, `no complete request head within 10s`,
//!   `not a proxy request: … is not an absolute http:// URL`, `not a valid
//!   CONNECT target …`, `too many connections at once (the cap is 128)`,
//!   `not valid SOCKS5: …`;
//! - `egress to HOST:PORT failed: REASON` when the list allowed the target
//!   but it could not be reached: `the name did not resolve: …`, `the name
//!   resolves to no address`, `could not connect to ADDR: …`, `no connection
//!   within 10s`.
//!
//! HTTP answers: 403 for a policy refusal, 400 for a request the proxy does
//! not take (including a `Host` mismatch), 431 for a head over the caps,
//! 408 for a head too slow, 503 over the connection cap, 502 and 504 for a
//! failure. The message is the body.
//!
//! # Bounds
//!
//! Host memory is bounded by the configuration, never by what a peer sends:
//! at most [`ProxyConfig::max_connections`] connections (default
//! [`DEFAULT_MAX_CONNECTIONS`]); each holds a head buffer of [`MAX_HEAD`]
//! bytes parsed with at most [`MAX_HEADERS`] headers, then two relay
//! buffers of [`RELAY_BUFFER`] bytes; a name keeps at most [`MAX_ADDRESSES`]
//! addresses; the log at most [`MAX_MESSAGES`] messages of at most
//! [`MAX_MESSAGE_LEN`] bytes. Time is bounded by the head, resolve and
//! connect timeouts; an established tunnel lasts as long as its two ends
//! keep it open, or until the proxy stops.
//!
//! **Architecture Invariant:** names are resolved only here, in the host,
//! by the proxy's [`Resolve`]; never inside the sandbox, and never again
//! between the address check and the connect.
//!
//! **Architecture Invariant:** every parse is capped before it allocates:
//! the head is read into one fixed buffer and parsed in place; SOCKS5
//! fields are read by their length bytes (at most 255); resolver answers
//! are cut to [`MAX_ADDRESSES`]; messages to [`MAX_MESSAGE_LEN`].
//!
//! # Caveats
//!
//! - A name is checked at connect time: the addresses it resolved to then
//!   are the ones used, and nothing re-checks a long-lived tunnel.
//! - TLS is not inspected. A tunnel to an allowed `CONNECT` name carries
//!   whatever the tool sends, and the TLS SNI (or the `Host` inside) may
//!   name another host served at the same addresses (domain fronting).
//! - One request per plain-HTTP connection: the proxy sends `Connection:
//!   close`, then copies bytes as they come; a second request pipelined on
//!   the same connection goes, unchecked, to the same target.
//! - A refusal for where a name resolves refuses the whole name, even if
//!   only one of its addresses is not public.
//! - Established tunnels have no idle timeout; the connection cap bounds
//!   how many a tool can hold.
//! - SOCKS5 has no authentication and no UDP ASSOCIATE or BIND.
//! - The system resolver cannot be cancelled: a lookup past the resolve
//!   timeout is refused at once, but its blocking thread (tokio's pool) runs
//!   until the system resolver gives up. A proxy has at most
//!   `max_connections` lookups in flight.
//! - An error response is written, then the socket is closed with whatever
//!   the client sent past the part the proxy read unread; the client may
//!   see a reset after the response.
//! - The proxy does not keep the tool from sending data to an allowed host:
//!   an allow list limits where data can go, not what.
//!
//! # Example
//!
//! ```
//! use bulkhead_egress::{AllowList, Target};
//!
//! let list = AllowList::parse(["api.github.com:443", "*.pypi.org", "localhost:8080"])?;
//! assert!(list.allows(&Target::parse("files.pypi.org:443")?));
//! assert!(!list.allows(&Target::parse("pypi.org:443")?)); // not the apex
//! assert!(!list.allows(&Target::parse("api.github.com:22")?));
//! let bad = AllowList::parse(["https://api.github.com"]).unwrap_err();
//! assert!(bad.to_string().starts_with("invalid allow-list entry `https://api.github.com`"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Serving a call's proxy, and reading what it did:
//!
//! ```no_run
//! # async fn run(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
//! use bulkhead_egress::{AllowList, EgressLog, EgressProxy, ProxyConfig};
//!
//! let config = ProxyConfig::new(AllowList::parse(["api.github.com:443"])?);
//! let log = EgressLog::new();
//! let proxy = EgressProxy::bind(dir.join("egress.sock"), config, log.clone())?;
//! // ... run the tool, whose relay connects to dir/egress.sock ...
//! proxy.shutdown().await;
//! for message in log.report().messages {
//!     eprintln!("{} (×{})", message.text, message.count);
//! }
//! # Ok(())
//! # }
//! ```

mod addr;
mod allow;
mod config;
mod conn;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod head;
mod host;
mod log;
mod open;
mod proxy;
mod relay;
mod resolve;
mod socks;

pub use allow::{AllowList, AllowRule};
pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEAD_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_RESOLVE_TIMEOUT, ProxyConfig,
};
pub use error::{AllowError, AllowErrorKind, UrlError};
pub use head::{MAX_HEAD, MAX_HEADERS};
pub use host::{Host, Target};
pub use log::{EgressLog, EgressReport, LoggedMessage, MAX_MESSAGE_LEN, MAX_MESSAGES};
pub use proxy::{EgressProxy, serve, serve_until};
pub use relay::RELAY_BUFFER;
pub use resolve::{MAX_ADDRESSES, Resolve, ResolveFuture, StaticResolver, SystemResolver};
