//! What is wrong with an allow-list entry.

use std::net::IpAddr;

/// A malformed allow-list entry: the entry as given, and what is wrong.
///
/// Displayed as ``invalid allow-list entry `ENTRY`: WHAT``, for example
/// ``invalid allow-list entry `https://x.com`: a scheme (`https://`) is
/// given; write the host alone, as in `x.com` or `x.com:443` ``.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid allow-list entry `{entry}`: {kind}")]
pub struct AllowError {
    pub(crate) entry: String,
    pub(crate) kind: AllowErrorKind,
}

impl AllowError {
    /// The entry as it was given.
    pub fn entry(&self) -> &str {
        &self.entry
    }

    /// What is wrong with it.
    pub fn kind(&self) -> &AllowErrorKind {
        &self.kind
    }
}

/// What is wrong with an allow-list entry (or with a host a tool asked for,
/// which follows the same grammar).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AllowErrorKind {
    /// Nothing but spaces.
    #[error("the entry is empty")]
    Empty,
    /// `https://x.com`: a URL, not a host.
    #[error(
        "a scheme (`{scheme}://`) is given; write the host alone, as in `{rest}` or `{rest}:443`"
    )]
    SchemeGiven {
        /// The scheme, as given.
        scheme: String,
        /// What follows `://`, up to any path.
        rest: String,
    },
    /// `x.com/path`, `x.com?q`, `x.com#f`.
    #[error("a path, query or fragment is given; write HOST or HOST:PORT")]
    PathGiven,
    /// `user@x.com`.
    #[error("a user name (`…@`) is given; write HOST or HOST:PORT")]
    UserInfoGiven,
    /// `:443`, or `.` alone.
    #[error("no host is given")]
    EmptyHost,
    /// A port that is not 1 to 65535 in decimal digits.
    #[error("`{port}` is not a port (a number from 1 to 65535)")]
    BadPort {
        /// The port text, as given (cut at 16 characters).
        port: String,
    },
    /// A target without the port it needs (a CONNECT authority).
    #[error("no port is given")]
    MissingPort,
    /// `*` alone.
    #[error("`*` alone would allow every host; name the hosts, or use a network policy of `full`")]
    LoneWildcard,
    /// `api.*.com`, `a*.b.com`, `*x.com`, `**.x.com`.
    #[error("`*` may only open the name, as in `*.example.com`")]
    WildcardNotLeading,
    /// `*.com`.
    #[error(
        "`*.{base}` is too broad: a wildcard needs at least two labels after it, as in `*.example.com`"
    )]
    WildcardTooBroad {
        /// What follows `*.`.
        base: String,
    },
    /// `*.1.2.3.4` or `*.[::1]`.
    #[error("a wildcard cannot precede an IP address")]
    WildcardOnAddress,
    /// `::1` or `::1:443` without brackets.
    #[error("an IPv6 address needs brackets, as in `[::1]` or `[::1]:443`")]
    UnbracketedIpv6,
    /// `[x]` where `x` is not an IPv6 address, or a bracket left open.
    #[error("not an IPv6 address in brackets (`[::1]`, no zone)")]
    BadIpv6,
    /// A name with non-ASCII characters.
    #[error("the name is not ASCII; give its punycode form (`xn--…`)")]
    NotAscii,
    /// A character that cannot be in a host name.
    #[error("`{}` cannot be in a host name", .ch.escape_default())]
    BadChar {
        /// The first such character.
        ch: char,
    },
    /// `a..b`, `.a`.
    #[error("a label is empty (two dots in a row, or a leading dot)")]
    EmptyLabel,
    /// A label over 63 characters.
    #[error("a label is longer than 63 characters")]
    LabelTooLong,
    /// A name over 253 characters.
    #[error("the name is longer than 253 characters")]
    NameTooLong,
    /// `-a.com`, `a-.com`.
    #[error("a label starts or ends with `-`")]
    HyphenAtLabelEdge,
    /// `127.1`, `0x7f000001`: read as an IPv4 address by the system's parsers.
    #[error(
        "the name ends in a number but is not an IP address; write IPv4 addresses as four decimal numbers"
    )]
    NumericName,
    /// `0.0.0.0`, `224.0.0.1`, `255.255.255.255`, `[::]`, `[ff02::1]`.
    #[error("`{ip}` is not an address to connect to (unspecified, multicast or broadcast)")]
    UnusableAddress {
        /// The address.
        ip: IpAddr,
    },
}

/// A URL whose server cannot be made into an allow-list rule
/// ([`crate::AllowRule::for_url`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{url:?}: {reason}")]
pub struct UrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}
