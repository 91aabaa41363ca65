//! The allow list: which hosts and ports a tool may reach (`--allow-net
//! HOST[:PORT]`, repeatable), parsed once into rules and matched against
//! every target.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use crate::error::{AllowError, AllowErrorKind, UrlError};
use crate::host::{self, Host, Target};

/// One allow-list entry: a host pattern and a port, or any port.
///
/// The grammar is in the crate documentation ([`crate`]). A rule displays in
/// its normal form (lower case, no trailing dot, no port when any port is
/// allowed): `*.example.com`, `api.github.com:443`, `[::1]:8080`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AllowRule {
    pattern: Pattern,
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Pattern {
    /// Exactly this name.
    Name(String),
    /// Any name ending in `.` and this base, never the base itself.
    Subdomains(String),
    /// Exactly this address, reached without any name resolution.
    Ip(IpAddr),
    /// The name `localhost`: this machine's 127.0.0.1 and ::1.
    Localhost,
}

/// The addresses `localhost` stands for: never asked of a resolver
/// (RFC 6761 lets a proxy answer it itself), in the order they are tried.
pub(crate) const LOCALHOST: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

impl AllowRule {
    /// The rule that allows exactly the server of an `http://` or
    /// `https://` URL: its host on its port (80 or 443 when the URL names
    /// none). The error names the URL and what is wrong with it.
    pub fn for_url(url: &str) -> Result<AllowRule, UrlError> {
        let fail = |reason: String| UrlError {
            url: url.to_owned(),
            reason,
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| fail("not an http:// or https:// URL".into()))?;
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "http" => 80,
            "https" => 443,
            other => return Err(fail(format!("the scheme {other:?} is not http or https"))),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host_port = authority.rsplit('@').next().unwrap_or(authority);
        let has_port = match host_port.rfind(']') {
            Some(end) => host_port[end..].contains(':'),
            None => host_port.contains(':'),
        };
        let entry = if has_port {
            host_port.to_owned()
        } else {
            format!("{host_port}:{default_port}")
        };
        entry
            .parse::<AllowRule>()
            .map_err(|e| fail(e.kind().to_string()))
    }

    /// The port this rule allows, or `None` for any port.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Whether this rule lets `target` through (before any name is
    /// resolved: an allowed name may still be refused for where it resolves).
    pub fn matches(&self, target: &Target) -> bool {
        self.port.is_none_or(|port| port == target.port) && self.matches_host(&target.host)
    }

    fn matches_host(&self, host: &Host) -> bool {
        match (&self.pattern, host) {
            (Pattern::Name(name), Host::Name(asked)) => name == asked,
            (Pattern::Subdomains(base), Host::Name(asked)) => asked
                .strip_suffix(base.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            (Pattern::Localhost, Host::Name(asked)) => asked == "localhost",
            (Pattern::Ip(ip), Host::Ip(asked)) => ip == asked,
            _ => false,
        }
    }

    /// Whether this rule names `addr` itself: the literal address, or a
    /// `localhost` rule for 127.0.0.1 or ::1; on a matching port either way.
    fn names_address(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip().to_canonical();
        self.port.is_none_or(|port| port == addr.port())
            && match &self.pattern {
                Pattern::Ip(rule) => *rule == ip,
                Pattern::Localhost => LOCALHOST.contains(&ip),
                Pattern::Name(_) | Pattern::Subdomains(_) => false,
            }
    }

    fn grant(&self) -> Grant {
        match self.pattern {
            Pattern::Name(_) | Pattern::Subdomains(_) => Grant::Resolve,
            Pattern::Ip(ip) => Grant::Literal(ip),
            Pattern::Localhost => Grant::Localhost,
        }
    }
}

impl FromStr for AllowRule {
    type Err = AllowError;

    fn from_str(entry: &str) -> Result<AllowRule, AllowError> {
        parse_rule(entry.trim()).map_err(|kind| AllowError {
            entry: entry.to_owned(),
            kind,
        })
    }
}

fn parse_rule(entry: &str) -> Result<AllowRule, AllowErrorKind> {
    if entry.is_empty() {
        return Err(AllowErrorKind::Empty);
    }
    if let Some((scheme, rest)) = entry.split_once("://") {
        let rest = rest.split(['/', '?', '#']).next().unwrap_or_default();
        return Err(AllowErrorKind::SchemeGiven {
            scheme: host::quote(scheme, 16),
            rest: host::quote(rest, 64),
        });
    }
    if entry.contains(['/', '?', '#']) {
        return Err(AllowErrorKind::PathGiven);
    }
    if entry.contains('@') {
        return Err(AllowErrorKind::UserInfoGiven);
    }
    let (host_text, port) = host::split_port(entry)?;
    let pattern = if host_text == "*" {
        return Err(AllowErrorKind::LoneWildcard);
    } else if let Some(base) = host_text.strip_prefix("*.") {
        if base.contains('*') {
            return Err(AllowErrorKind::WildcardNotLeading);
        }
        match Host::parse(base) {
            Ok(Host::Name(base)) if base.contains('.') => Pattern::Subdomains(base),
            Ok(Host::Name(base)) => return Err(AllowErrorKind::WildcardTooBroad { base }),
            Ok(Host::Ip(_)) | Err(AllowErrorKind::NumericName) => {
                return Err(AllowErrorKind::WildcardOnAddress);
            }
            Err(kind) => return Err(kind),
        }
    } else if host_text.contains('*') {
        return Err(AllowErrorKind::WildcardNotLeading);
    } else {
        match Host::parse(host_text)? {
            Host::Name(name) if name == "localhost" => Pattern::Localhost,
            Host::Name(name) => Pattern::Name(name),
            Host::Ip(ip) if is_unusable(ip) => return Err(AllowErrorKind::UnusableAddress { ip }),
            Host::Ip(ip) => Pattern::Ip(ip),
        }
    };
    Ok(AllowRule { pattern, port })
}

/// Addresses a rule may not name: connecting to them means nothing, or
/// (0.0.0.0 on Linux) means this machine under another name.
fn is_unusable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    }
}

impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pattern {
            Pattern::Name(name) => f.write_str(name)?,
            Pattern::Subdomains(base) => write!(f, "*.{base}")?,
            Pattern::Ip(ip) => write!(f, "{}", Host::Ip(*ip))?,
            Pattern::Localhost => f.write_str("localhost")?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// What a matching rule lets the proxy do with a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Grant {
    /// Resolve the name; connect only to public addresses, or to addresses
    /// the list names itself.
    Resolve,
    /// Connect to exactly this address.
    Literal(IpAddr),
    /// Connect to this machine's loopback ([`LOCALHOST`]).
    Localhost,
}

/// The hosts and ports a tool may reach. An empty list allows nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    rules: Vec<AllowRule>,
}

impl AllowList {
    /// Parses every entry; the first malformed one is the error.
    pub fn parse<I, S>(entries: I) -> Result<AllowList, AllowError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let rules = entries
            .into_iter()
            .map(|entry| entry.as_ref().parse())
            .collect::<Result<Vec<AllowRule>, AllowError>>()?;
        Ok(AllowList { rules })
    }

    /// A list of these rules.
    pub fn new(rules: Vec<AllowRule>) -> AllowList {
        AllowList { rules }
    }

    /// The rules, in the order given.
    pub fn rules(&self) -> &[AllowRule] {
        &self.rules
    }

    /// Whether the list allows nothing.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether some rule lets `target` through (before name resolution).
    pub fn allows(&self, target: &Target) -> bool {
        self.rules.iter().any(|rule| rule.matches(target))
    }

    /// What the first matching rule lets the proxy do, or why none matches.
    pub(crate) fn grant(&self, target: &Target) -> Result<Grant, String> {
        if let Some(rule) = self.rules.iter().find(|rule| rule.matches(target)) {
            return Ok(rule.grant());
        }
        if self
            .rules
            .iter()
            .any(|rule| rule.matches_host(&target.host))
        {
            return Err(format!(
                "port {} is not in the allow list for this host",
                target.port
            ));
        }
        Err(match target.host {
            Host::Ip(_) => "an IP literal not in the allow list".to_owned(),
            Host::Name(_) => "not in the allow list".to_owned(),
        })
    }

    /// Whether the list names this address itself (see
    /// [`AllowRule::matches`]): then a name may resolve to it even when it
    /// is loopback or private, since the tool could reach it anyway.
    pub(crate) fn names_address(&self, addr: SocketAddr) -> bool {
        self.rules.iter().any(|rule| rule.names_address(addr))
    }
}

impl FromIterator<AllowRule> for AllowList {
    fn from_iter<I: IntoIterator<Item = AllowRule>>(rules: I) -> AllowList {
        AllowList {
            rules: rules.into_iter().collect(),
        }
    }
}

#[cfg(test)]
#[path = "allow_tests.rs"]
mod tests;
