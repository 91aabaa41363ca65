//! Copying both ways between the tool and its target, through one fixed
//! buffer per direction, counting the bytes as they go.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::log::EgressLog;

/// Each direction's copy buffer, in bytes. 16 KiB moves bulk data in few
/// system calls (tokio's own `copy` uses 8 KiB) and makes a tunnel's memory
/// 32 KiB whatever flows through it.
pub const RELAY_BUFFER: usize = 16 * 1024;

/// Sends `first` to the target, then copies both ways until both sides have
/// finished sending (a side's end is passed on as a half close) or either
/// side fails.
pub(crate) async fn relay(client: UnixStream, target: TcpStream, first: Vec<u8>, log: &EgressLog) {
    relay_with(client, target, first, log, false).await;
}

/// [`relay`] for a forwarded plain-HTTP request: the proxy sent the server
/// `Connection: close`, and passes the response on with `Connection: close`
/// too, so that a client that keeps connections alive does not send its
/// next request down a connection the proxy no longer reads as requests.
pub(crate) async fn relay_forward(
    client: UnixStream,
    target: TcpStream,
    first: Vec<u8>,
    log: &EgressLog,
) {
    relay_with(client, target, first, log, true).await;
}

async fn relay_with(
    mut client: UnixStream,
    mut target: TcpStream,
    first: Vec<u8>,
    log: &EgressLog,
    close_response: bool,
) {
    if !first.is_empty() {
        if target.write_all(&first).await.is_err() {
            return;
        }
        log.add_up(first.len());
    }
    drop(first);
    let (client_read, mut client_write) = client.split();
    let (mut target_read, target_write) = target.split();
    let up = pump(client_read, target_write, |n| log.add_up(n));
    let down = async {
        if close_response {
            let head = read_response_head(&mut target_read).await?;
            let rewritten = close_response_head(&head);
            client_write
                .write_all(rewritten.as_deref().unwrap_or(&head))
                .await?;
            log.add_down(head.len());
        }
        pump(target_read, client_write, |n| log.add_down(n)).await
    };
    // The first error ends both directions; an end of stream ends only its own.
    let _ = tokio::try_join!(up, down);
}

/// Reads from `from` until a response head is complete, at most
/// [`crate::MAX_HEAD`] bytes; what follows the head in the last read comes
/// with it. A longer head, or the end of the stream, returns what was read.
async fn read_response_head<R: AsyncRead + Unpin>(from: &mut R) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; crate::MAX_HEAD];
    let mut len = 0;
    while len < buf.len() {
        let n = from.read(&mut buf[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// `bytes` (a response head and maybe body bytes after it) with the head's
/// `Connection`, `Keep-Alive` and `Proxy-Connection` headers replaced by
/// `Connection: close`; `None` when the head is incomplete or not HTTP,
/// which is then passed on as it is.
fn close_response_head(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut headers = [httparse::EMPTY_HEADER; crate::MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(end) = response.parse(bytes).ok()? else {
        return None;
    };
    let status_end = bytes.windows(2).position(|w| w == b"\r\n")?;
    let mut out = Vec::with_capacity(bytes.len() + 32);
    out.extend_from_slice(&bytes[..status_end + 2]);
    for h in response.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "connection" | "keep-alive" | "proxy-connection"
        ) {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(&bytes[end..]);
    Some(out)
}

async fn pump<R, W>(mut from: R, mut to: W, count: impl Fn(usize)) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0; RELAY_BUFFER];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            // The other side may be gone already; its direction will say so.
            let _ = to.shutdown().await;
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        count(n);
    }
}

#[cfg(test)]
mod tests {
    use super::close_response_head;

    #[test]
    fn a_response_is_passed_on_with_connection_close() {
        let response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nok";
        let out = close_response_head(response).expect("a complete head");
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        );
        assert_eq!(close_response_head(b"HTTP/1.1 200 OK\r\nContent-Le"), None);
    }
}
