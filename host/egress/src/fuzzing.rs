//! The proxy's parsers of what a client sends first (an HTTP request head
//! or a SOCKS5 greeting and request), reachable from the fuzz targets and
//! their replay test (`tests/src/fuzz_checks/egress.rs`) without a socket.
//! Hidden, not part of the API: the verdicts are flattened to plain data.

use tokio::io::{AsyncRead, AsyncWrite};

use crate::head::{self, Kind, Opening};

/// What the proxy made of a connection's opening bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The client sent nothing.
    Closed,
    /// A SOCKS5 greeting; the bytes read so far.
    Socks(Vec<u8>),
    /// An HTTP request to serve: CONNECT or forwarded, its target as
    /// `host:port`, and what goes to the target first.
    Http {
        connect: bool,
        target: String,
        first_bytes: Vec<u8>,
    },
    /// A refusal: its status as `Debug` text, the target if known, why.
    Refused {
        status: String,
        target: Option<String>,
        reason: String,
    },
}

fn refused(r: head::Rejection) -> Verdict {
    Verdict::Refused {
        status: format!("{:?}", r.status),
        target: r.target.map(|t| t.to_string()),
        reason: r.reason,
    }
}

/// `read_opening`: reads a head from `stream` as a connection does.
pub async fn read_opening(stream: &mut (impl AsyncRead + Unpin)) -> Verdict {
    match head::read_opening(stream).await {
        Ok(Opening::Closed) => Verdict::Closed,
        Ok(Opening::Socks(buf)) => Verdict::Socks(buf),
        Ok(Opening::Http(request)) => http(request),
        Err(r) => refused(r),
    }
}

/// `parse`: one parse of a buffer; `None` while the head is incomplete.
pub fn parse_head(buf: &[u8]) -> Option<Verdict> {
    match head::parse(buf) {
        Ok(None) => None,
        Ok(Some(request)) => Some(http(request)),
        Err(r) => Some(refused(r)),
    }
}

fn http(request: head::Request) -> Verdict {
    Verdict::Http {
        connect: request.kind == Kind::Connect,
        target: request.target.to_string(),
        first_bytes: request.first_bytes,
    }
}

/// A SOCKS5 opening, after its first bytes `buf`: the target and the bytes
/// past the request, or the reply code (if one is sent) and the reason.
pub async fn socks_request(
    client: &mut (impl AsyncRead + AsyncWrite + Unpin),
    buf: Vec<u8>,
) -> Result<(String, Vec<u8>), (Option<u8>, String)> {
    crate::socks::read_request(client, buf)
        .await
        .map(|(target, rest)| (target.to_string(), rest))
        .map_err(|r| (r.reply, r.reason))
}
