//! Hosts and targets: the one grammar for a host, shared by allow-list
//! entries and by what a tool asks for (a CONNECT authority, a URL's host,
//! a `Host` header, a SOCKS5 domain), so a name means the same on both sides.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use crate::error::AllowErrorKind;

/// The longest DNS name, in its dotted text form without the trailing dot
/// (RFC 1035: 255 octets on the wire, 253 characters as text).
const MAX_NAME_LEN: usize = 253;

/// The longest label between two dots (RFC 1035).
const MAX_LABEL_LEN: usize = 63;

/// A host: a DNS name, or an IP address.
///
/// A name is stored in lower case, without a trailing dot, and must be ASCII
/// (the punycode `xn--` form of an internationalised name is kept as it is).
/// An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) is stored as the IPv4
/// address it maps, so both spellings are one host.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name, resolved by the proxy.
    Name(String),
    /// An IP literal, never resolved.
    Ip(IpAddr),
}

impl Host {
    /// Parses a host without a port: a name, an IPv4 address, or an IPv6
    /// address in brackets (`[::1]`).
    pub fn parse(text: &str) -> Result<Host, AllowErrorKind> {
        if let Some(inner) = text.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(AllowErrorKind::BadIpv6)?;
            return inner
                .parse::<Ipv6Addr>()
                .map(|ip| Host::Ip(IpAddr::V6(ip).to_canonical()))
                .map_err(|_| AllowErrorKind::BadIpv6);
        }
        if text.contains(':') {
            return Err(if text.parse::<Ipv6Addr>().is_ok() {
                AllowErrorKind::UnbracketedIpv6
            } else {
                AllowErrorKind::BadChar { ch: ':' }
            });
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        parse_name(text).map(Host::Name)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// Where a tool asks to go: a host and a port.
///
/// Displayed as `host:port`, with an IPv6 address in brackets; that is the
/// form every refusal message names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// The host, as asked for.
    pub host: Host,
    /// The TCP port.
    pub port: u16,
}

impl Target {
    /// Parses an authority `host:port` (a CONNECT target); the port is
    /// required.
    pub fn parse(authority: &str) -> Result<Target, AllowErrorKind> {
        match split_port(authority)? {
            (host, Some(port)) => Ok(Target {
                host: Host::parse(host)?,
                port,
            }),
            (_, None) => Err(AllowErrorKind::MissingPort),
        }
    }

    /// Parses an authority whose port may be left out (a URL's or a `Host`
    /// header's), taking `default_port` then.
    pub(crate) fn parse_with_default(
        authority: &str,
        default_port: u16,
    ) -> Result<Target, AllowErrorKind> {
        let (host, port) = split_port(authority)?;
        Ok(Target {
            host: Host::parse(host)?,
            port: port.unwrap_or(default_port),
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Splits `host[:port]` into the host and the port, if one is given. An
/// IPv6 host must be in brackets; a bare IPv6 address is refused rather than
/// guessed at (`::1:443` is a whole address, not `::1` and 443).
pub(crate) fn split_port(text: &str) -> Result<(&str, Option<u16>), AllowErrorKind> {
    let (host, port) = if text.starts_with('[') {
        match text.find(']') {
            Some(end) => {
                let (host, rest) = text.split_at(end + 1);
                match rest.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None if rest.is_empty() => (host, None),
                    None => return Err(AllowErrorKind::BadIpv6),
                }
            }
            None => return Err(AllowErrorKind::BadIpv6),
        }
    } else {
        match text.matches(':').count() {
            0 => (text, None),
            1 => text
                .split_once(':')
                .map_or((text, None), |(h, p)| (h, Some(p))),
            _ if text.parse::<Ipv6Addr>().is_ok() => {
                return Err(AllowErrorKind::UnbracketedIpv6);
            }
            _ => return Err(AllowErrorKind::BadChar { ch: ':' }),
        }
    };
    if host.is_empty() {
        return Err(AllowErrorKind::EmptyHost);
    }
    let port = port.map(parse_port).transpose()?;
    Ok((host, port))
}

/// A port: 1 to 5 decimal digits, 1 to 65535 (no sign, no spaces).
fn parse_port(text: &str) -> Result<u16, AllowErrorKind> {
    let bad = || AllowErrorKind::BadPort {
        port: text.chars().take(16).collect(),
    };
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(port) => Ok(port),
    }
}

/// Checks and normalises a DNS name: ASCII letters, digits, `-` and `_`
/// in labels of 1 to 63 characters, at most 253 in all; lower-cased, one
/// trailing dot dropped. A name whose last label is a number (`127.1`,
/// `0x7f000001`) is refused: the system resolver would read it as an IPv4
/// address, so it is an address in disguise.
pub(crate) fn parse_name(text: &str) -> Result<String, AllowErrorKind> {
    let name = text.strip_suffix('.').unwrap_or(text);
    if name.is_empty() {
        return Err(AllowErrorKind::EmptyHost);
    }
    if !name.is_ascii() {
        return Err(AllowErrorKind::NotAscii);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(AllowErrorKind::NameTooLong);
    }
    if let Some(ch) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(AllowErrorKind::BadChar { ch });
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(AllowErrorKind::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(AllowErrorKind::LabelTooLong);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(AllowErrorKind::HyphenAtLabelEdge);
        }
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if is_numeric_label(last) {
        return Err(AllowErrorKind::NumericName);
    }
    Ok(name.to_ascii_lowercase())
}

/// A label the IPv4 parsers of C libraries would take as a number: decimal,
/// or `0x` hexadecimal (the WHATWG URL standard's "ends in a number").
fn is_numeric_label(label: &str) -> bool {
    let hex = label
        .strip_prefix("0x")
        .or_else(|| label.strip_prefix("0X"));
    match hex {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_hexdigit()),
        None => label.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// Text from a peer, made safe to put in a message: at most `max` characters,
/// with control and non-ASCII characters escaped.
pub(crate) fn quote(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_cased_and_lose_one_trailing_dot() {
        assert_eq!(
            Host::parse("API.GitHub.com."),
            Ok(Host::Name("api.github.com".into()))
        );
        assert_eq!(Host::parse("a..b"), Err(AllowErrorKind::EmptyLabel));
        assert_eq!(Host::parse("x.com.."), Err(AllowErrorKind::EmptyLabel));
    }

    #[test]
    fn numbers_in_disguise_are_refused() {
        for text in ["127.1", "0x7f000001", "a.0x1F", "1.2.3"] {
            assert_eq!(
                Host::parse(text),
                Err(AllowErrorKind::NumericName),
                "{text}"
            );
        }
        assert_eq!(
            Host::parse("1a.example"),
            Ok(Host::Name("1a.example".into()))
        );
    }

    #[test]
    fn mapped_ipv6_is_the_ipv4_it_maps() {
        assert_eq!(Host::parse("[::ffff:127.0.0.1]"), Host::parse("127.0.0.1"));
    }

    #[test]
    fn targets_need_a_port_and_brackets_for_ipv6() {
        let t = Target::parse("[::1]:443").expect("valid");
        assert_eq!(t.to_string(), "[::1]:443");
        assert_eq!(Target::parse("x.com"), Err(AllowErrorKind::MissingPort));
        assert_eq!(
            Target::parse("::1:443"),
            Err(AllowErrorKind::UnbracketedIpv6)
        );
        assert!(matches!(
            Target::parse("x.com:0"),
            Err(AllowErrorKind::BadPort { .. })
        ));
        assert!(matches!(
            Target::parse("x.com:+80"),
            Err(AllowErrorKind::BadPort { .. })
        ));
        assert!(matches!(
            Target::parse("x.com:65536"),
            Err(AllowErrorKind::BadPort { .. })
        ));
    }

    #[test]
    fn quote_escapes_and_cuts() {
        assert_eq!(quote("a\r\nb", 10), "a\\r\\nb");
        assert_eq!(quote("abcdef", 3), "abc…");
    }
}
