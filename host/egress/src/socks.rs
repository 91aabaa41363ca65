//! SOCKS5 (RFC 1928) on the same socket as HTTP, told apart by the first
//! byte (5): CONNECT only, no authentication, the same allow list and
//! address rules as HTTP. A domain name is resolved here (what `socks5h://`
//! asks for); an address type 1 or 4 is an IP literal and must be listed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::time::{Instant, timeout, timeout_at};

use crate::config::ProxyConfig;
use crate::host::{Host, Target, quote};
use crate::log::EgressLog;
use crate::open::{Denial, open};
use crate::relay::relay;

const VERSION: u8 = 5;
const NO_AUTHENTICATION: u8 = 0;
const NO_ACCEPTABLE_METHOD: u8 = 0xff;
const CONNECT: u8 = 1;

/// Reply codes (RFC 1928 section 6).
const SUCCEEDED: u8 = 0;
const GENERAL_FAILURE: u8 = 1;
const NOT_ALLOWED: u8 = 2;
const HOST_UNREACHABLE: u8 = 4;
const COMMAND_NOT_SUPPORTED: u8 = 7;
const ADDRESS_TYPE_NOT_SUPPORTED: u8 = 8;

/// A refused opening: the reply code to send (none before the method is
/// agreed), the target if one was read, and why.
pub(crate) struct Refusal {
    pub(crate) reply: Option<u8>,
    pub(crate) target: Option<Target>,
    pub(crate) reason: String,
}

fn refusal(reply: Option<u8>, target: Option<Target>, reason: impl Into<String>) -> Refusal {
    Refusal {
        reply,
        target,
        reason: reason.into(),
    }
}

/// Serves one SOCKS5 connection whose first bytes are `buf`; its request
/// must be in by `deadline` (the head timeout from the connection's start).
pub(crate) async fn serve(
    mut client: UnixStream,
    buf: Vec<u8>,
    config: &ProxyConfig,
    log: &EgressLog,
    deadline: Instant,
) {
    let opening = match timeout_at(deadline, read_request(&mut client, buf)).await {
        Ok(Ok(opening)) => opening,
        Ok(Err(refused)) => {
            log.refused(refused.target.as_ref(), &refused.reason);
            if let Some(code) = refused.reply {
                let _ = timeout(config.head_timeout, client.write_all(&reply(code))).await;
            }
            return;
        }
        Err(_) => {
            log.refused(
                None,
                &format!(
                    "no complete SOCKS5 request within {:?}",
                    config.head_timeout
                ),
            );
            return;
        }
    };
    let (target, rest) = opening;
    let upstream = match open(config, &target).await {
        Ok(upstream) => upstream,
        Err(denial) => {
            let code = match denial {
                Denial::Refused(reason) => {
                    log.refused(Some(&target), &reason);
                    NOT_ALLOWED
                }
                Denial::Failed { reason, .. } => {
                    log.failed(&target, &reason);
                    HOST_UNREACHABLE
                }
            };
            let _ = timeout(config.head_timeout, client.write_all(&reply(code))).await;
            return;
        }
    };
    log.allowed();
    if client.write_all(&reply(SUCCEEDED)).await.is_ok() {
        relay(client, upstream, rest, log).await;
    }
}

/// A reply with the bound address left as 0.0.0.0:0 (clients ignore it for
/// CONNECT, and the proxy's own address is none of the tool's business).
fn reply(code: u8) -> [u8; 10] {
    [VERSION, code, 0, 1, 0, 0, 0, 0, 0, 0]
}

/// Reads the greeting and the request: the target, and any bytes the
/// client sent past the request. At most 2 + 255 + 4 + 1 + 255 + 2 bytes
/// are read beyond what `buf` already holds.
pub(crate) async fn read_request(
    client: &mut (impl AsyncRead + AsyncWrite + Unpin),
    mut buf: Vec<u8>,
) -> Result<(Target, Vec<u8>), Refusal> {
    let broken = || refusal(None, None, "not valid SOCKS5: the client closed early");
    fill(client, &mut buf, 2).await.map_err(|_| broken())?;
    let methods_end = 2 + usize::from(buf[1]);
    fill(client, &mut buf, methods_end)
        .await
        .map_err(|_| broken())?;
    if !buf[2..methods_end].contains(&NO_AUTHENTICATION) {
        let _ = client.write_all(&[VERSION, NO_ACCEPTABLE_METHOD]).await;
        return Err(refusal(
            None,
            None,
            "a SOCKS5 client that offers no method without authentication",
        ));
    }
    client
        .write_all(&[VERSION, NO_AUTHENTICATION])
        .await
        .map_err(|_| broken())?;
    let start = methods_end;
    fill(client, &mut buf, start + 5)
        .await
        .map_err(|_| broken())?;
    let [version, command, _, address_type, first] = [0, 1, 2, 3, 4].map(|i| buf[start + i]);
    if version != VERSION {
        return Err(refusal(
            Some(GENERAL_FAILURE),
            None,
            format!("not valid SOCKS5: version {version}"),
        ));
    }
    let (host_start, host_len) = match address_type {
        1 => (start + 4, 4),
        3 => (start + 5, usize::from(first)),
        4 => (start + 4, 16),
        other => {
            return Err(refusal(
                Some(ADDRESS_TYPE_NOT_SUPPORTED),
                None,
                format!("not valid SOCKS5: address type {other}"),
            ));
        }
    };
    let end = host_start + host_len + 2;
    fill(client, &mut buf, end).await.map_err(|_| broken())?;
    let raw = &buf[host_start..host_start + host_len];
    let port = u16::from_be_bytes([buf[end - 2], buf[end - 1]]);
    let host = match address_type {
        1 => Ok(Host::Ip(IpAddr::V4(Ipv4Addr::from(
            <[u8; 4]>::try_from(raw).unwrap_or_default(),
        )))),
        4 => {
            let ip = Ipv6Addr::from(<[u8; 16]>::try_from(raw).unwrap_or_default());
            Ok(Host::Ip(IpAddr::V6(ip).to_canonical()))
        }
        _ => {
            let text = String::from_utf8_lossy(raw);
            Host::parse(&text)
                .map_err(|e| format!("not a valid SOCKS5 host `{}`: {e}", quote(&text, 260)))
        }
    };
    let host = host.map_err(|reason| refusal(Some(GENERAL_FAILURE), None, reason))?;
    let target = Target { host, port };
    if command != CONNECT {
        let reason = format!("SOCKS5 command {command} is not supported (only CONNECT)");
        return Err(refusal(Some(COMMAND_NOT_SUPPORTED), Some(target), reason));
    }
    if port == 0 {
        return Err(refusal(Some(GENERAL_FAILURE), Some(target), "port 0"));
    }
    Ok((target, buf.split_off(end)))
}

/// Reads until `buf` holds at least `need` bytes, never reading past `need`.
async fn fill(
    client: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    need: usize,
) -> std::io::Result<()> {
    let mut chunk = [0; 256];
    while buf.len() < need {
        let want = (need - buf.len()).min(chunk.len());
        match client.read(&mut chunk[..want]).await? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Ok(())
}
