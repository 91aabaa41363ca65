//! The request head: read into one fixed buffer, parsed in place, and
//! turned into what to do (tunnel, or forward a rewritten head) or an HTTP
//! error.
//!
//! **Architecture Invariant:** nothing here allocates by what the peer
//! sends: the head is read into one buffer of [`MAX_HEAD`] bytes and parsed
//! with a fixed array of [`MAX_HEADERS`] headers; what is built from it (the
//! rewritten head, a message) is at most the head's size plus a constant.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::AllowErrorKind;
use crate::host::{Target, quote};

/// The largest request head, in bytes. Real heads are well under 8 KiB
/// (nginx's default `large_client_header_buffers` line is 8 KiB; common
/// servers refuse heads over 8 to 16 KiB), and a proxy request carries no
/// cookies for the proxy; 16 KiB takes any honest one and bounds the buffer
/// every connection holds while its head arrives.
pub const MAX_HEAD: usize = 16 * 1024;

/// The most header lines in a head. Browsers send about 20; 64 takes any
/// honest request, and the array (64 × 32 bytes) lives on the stack.
pub const MAX_HEADERS: usize = 64;

/// The most times one head is parsed while it arrives: once per read that
/// ends a line, and an honest head has at most the request line,
/// [`MAX_HEADERS`] header lines, the blank line, and a stray empty line or
/// two before the request (RFC 9112 section 2.2). It holds the parsing of a
/// head to about 70 passes over [`MAX_HEAD`] bytes, however it is sliced.
const MAX_PARSES: usize = MAX_HEADERS + 4;

/// The longest stretch of peer text quoted in a message: enough to show a
/// 253-character name, short enough that messages stay small.
const QUOTE: usize = 260;

/// Headers that describe one hop, not the request: never forwarded (with
/// any header the `Connection` header names). `Transfer-Encoding` is kept
/// on purpose: the body is copied as it comes, so its framing must reach
/// the server with it.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
];

/// Headers that frame the body or name the host: kept even when the
/// `Connection` header names them, so the server reads the body as sent.
const NEVER_DROPPED: [&str; 3] = ["host", "content-length", "transfer-encoding"];

/// The last line of a forwarded head: one request per connection.
const CLOSE: &[u8] = b"Connection: close\r\n\r\n";

/// The HTTP statuses the proxy answers with itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    BadRequest,
    Forbidden,
    RequestTimeout,
    HeadTooLarge,
    BadGateway,
    Unavailable,
    GatewayTimeout,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Status::BadRequest => "400 Bad Request",
            Status::Forbidden => "403 Forbidden",
            Status::RequestTimeout => "408 Request Timeout",
            Status::HeadTooLarge => "431 Request Header Fields Too Large",
            Status::BadGateway => "502 Bad Gateway",
            Status::Unavailable => "503 Service Unavailable",
            Status::GatewayTimeout => "504 Gateway Timeout",
        }
    }
}

/// A complete response with `message` as its plain-text body.
pub(crate) fn response(status: Status, message: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{message}\n",
        status.line(),
        message.len() + 1,
    )
    .into_bytes()
}

/// The answer to a CONNECT once the tunnel is up.
pub(crate) const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

/// What a connection opened with.
#[derive(Debug)]
pub(crate) enum Opening {
    /// The client closed (or broke) before sending a byte.
    Closed,
    /// A first byte of 5: a SOCKS5 greeting, and the bytes read so far.
    Socks(Vec<u8>),
    /// An HTTP proxy request.
    Http(Request),
}

/// An HTTP proxy request the proxy will serve if the target is allowed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) kind: Kind,
    pub(crate) target: Target,
    /// What to send the target first: for a plain request its rewritten
    /// head; then whatever the client sent past its head.
    pub(crate) first_bytes: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `CONNECT host:port`: a tunnel.
    Connect,
    /// `METHOD http://host[:port]/path`: one request, forwarded.
    Forward,
}

/// Why a request is not served, and how to answer it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) status: Status,
    pub(crate) target: Option<Target>,
    pub(crate) reason: String,
}

fn reject(status: Status, target: Option<&Target>, reason: String) -> Rejection {
    Rejection {
        status,
        target: target.cloned(),
        reason,
    }
}

fn bad(reason: String) -> Rejection {
    reject(Status::BadRequest, None, reason)
}

/// Reads until a complete head (or a SOCKS5 greeting's first byte) is in,
/// at most [`MAX_HEAD`] bytes. The caller bounds the time.
pub(crate) async fn read_opening(
    stream: &mut (impl AsyncRead + Unpin),
) -> Result<Opening, Rejection> {
    let mut buf = vec![0; MAX_HEAD];
    let mut filled = 0;
    let mut parses = 0;
    loop {
        let n = match stream.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) if filled == 0 => return Ok(Opening::Closed),
            Ok(0) | Err(_) => {
                return Err(bad(
                    "not valid HTTP: the client closed before the head was complete".into(),
                ));
            }
            Ok(n) => n,
        };
        let fresh = filled..filled + n;
        filled += n;
        match buf[0] {
            0x05 => {
                buf.truncate(filled);
                return Ok(Opening::Socks(buf));
            }
            0x16 => {
                return Err(bad(
                    "not valid HTTP: a TLS handshake; the proxy speaks plain HTTP \
                                (give the tool an http:// proxy URL)"
                        .into(),
                ));
            }
            _ => {}
        }
        // Parse only when a line may have ended (or the buffer is full), and
        // at most MAX_PARSES times: a peer sending a byte at a time costs
        // one parse per line, not one per byte.
        if buf[fresh].contains(&b'\n') || filled == MAX_HEAD {
            parses += 1;
            if parses > MAX_PARSES {
                return Err(bad(
                    "not valid HTTP: too many lines without the end of the head".into(),
                ));
            }
            match parse(&buf[..filled])? {
                Some(request) => return Ok(Opening::Http(request)),
                None if filled == MAX_HEAD => {
                    return Err(reject(
                        Status::HeadTooLarge,
                        None,
                        format!("the request head is over {MAX_HEAD} bytes"),
                    ));
                }
                None => {}
            }
        }
    }
}

/// Parses a head; `Ok(None)` while it is incomplete.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<Request>, Rejection> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(reject(
                Status::HeadTooLarge,
                None,
                format!("the request head has more than {MAX_HEADERS} header lines"),
            ));
        }
        Err(e) => return Err(bad(format!("not valid HTTP: {e}"))),
    };
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Err(bad("not valid HTTP: an incomplete request line".into()));
    };
    let rest = &buf[len..];
    if method == "CONNECT" {
        let target =
            Target::parse(path).map_err(|e| bad(bad_target("CONNECT target", path, &e)))?;
        return Ok(Some(Request {
            kind: Kind::Connect,
            target,
            first_bytes: rest.to_vec(),
        }));
    }
    forward(method, path, version, req.headers, rest).map(Some)
}

fn bad_target(what: &str, text: &str, kind: &AllowErrorKind) -> String {
    format!("not a valid {what} `{}`: {kind}", quote(text, QUOTE))
}

/// A plain request in absolute form: checked, and its head rewritten for
/// the server (origin form, no hop-by-hop headers, `Connection: close`).
fn forward(
    method: &str,
    url: &str,
    version: u8,
    headers: &[httparse::Header<'_>],
    rest: &[u8],
) -> Result<Request, Rejection> {
    let (authority, path) = split_url(url)?;
    let target = Target::parse_with_default(authority, 80)
        .map_err(|e| bad(bad_target("URL host", authority, &e)))?;
    let mut hosts = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"));
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => {
            return Err(reject(
                Status::BadRequest,
                Some(&target),
                "more than one Host header".into(),
            ));
        }
        (Some(header), None) => {
            let value = std::str::from_utf8(header.value)
                .unwrap_or("\u{fffd}")
                .trim();
            let named = Target::parse_with_default(value, 80).map_err(|e| {
                reject(
                    Status::BadRequest,
                    Some(&target),
                    bad_target("Host header", value, &e),
                )
            })?;
            if named != target {
                return Err(reject(
                    Status::BadRequest,
                    Some(&target),
                    format!("the Host header names {named}, not the URL's host"),
                ));
            }
        }
        (None, _) => {}
    }
    let dropped = connection_tokens(headers);
    let kept: Vec<&httparse::Header<'_>> = headers
        .iter()
        .filter(|header| {
            let name = header.name.to_ascii_lowercase();
            let hop = HOP_BY_HOP.contains(&name.as_str())
                || (dropped.contains(&name) && !NEVER_DROPPED.contains(&name.as_str()));
            name != "host" && !hop
        })
        .collect();
    // The rewritten head can be longer than the one read (`name:value`
    // and bare `\n` lines come back as `name: value\r\n`), so its buffer
    // is sized exactly, once: a guess that fell short was a doubling of it
    // on top of the read buffer.
    let request_line = [method, " ", &path, " HTTP/1.x\r\nHost: ", authority, "\r\n"];
    let need = request_line.iter().map(|s| s.len()).sum::<usize>()
        + kept
            .iter()
            .map(|h| h.name.len() + 2 + h.value.len() + 2)
            .sum::<usize>()
        + CLOSE.len()
        + rest.len();
    let mut head = Vec::with_capacity(need);
    for part in [method, " ", &path, " HTTP/1."] {
        head.extend_from_slice(part.as_bytes());
    }
    head.push(b'0' + version);
    for part in ["\r\nHost: ", authority, "\r\n"] {
        head.extend_from_slice(part.as_bytes());
    }
    for header in kept {
        head.extend_from_slice(header.name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(header.value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(CLOSE);
    head.extend_from_slice(rest);
    Ok(Request {
        kind: Kind::Forward,
        target,
        first_bytes: head,
    })
}

/// Splits `http://authority/path?query#fragment` into the authority and
/// the origin-form target (`/path?query`, `/` when empty; the fragment is
/// not sent).
fn split_url(url: &str) -> Result<(&str, String), Rejection> {
    let scheme_end = url.find("://").map(|i| i + 3);
    let Some(rest) = scheme_end
        .filter(|&i| url[..i].eq_ignore_ascii_case("http://"))
        .map(|i| &url[i..])
    else {
        let shown = quote(url, QUOTE);
        return Err(bad(
            if scheme_end.is_some_and(|i| url[..i].eq_ignore_ascii_case("https://")) {
                format!("`{shown}` is an https:// URL in a plain request; send CONNECT for https")
            } else {
                format!("not a proxy request: `{shown}` is not an absolute http:// URL")
            },
        ));
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(bad("the URL carries a user name (`…@`)".into()));
    }
    let tail = tail.split('#').next().unwrap_or_default();
    let path = if tail.starts_with('/') {
        tail.to_owned()
    } else {
        format!("/{tail}")
    };
    Ok((authority, path))
}

/// The header names listed in `Connection` and `Proxy-Connection`, lower
/// case: hop-by-hop for this request.
fn connection_tokens(headers: &[httparse::Header<'_>]) -> Vec<String> {
    headers
        .iter()
        .filter(|h| {
            h.name.eq_ignore_ascii_case("connection")
                || h.name.eq_ignore_ascii_case("proxy-connection")
        })
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .flat_map(|value| value.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
        .collect()
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
