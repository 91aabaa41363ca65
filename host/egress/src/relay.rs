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
pub(crate) async fn relay(
    mut client: UnixStream,
    mut target: TcpStream,
    first: Vec<u8>,
    log: &EgressLog,
) {
    if !first.is_empty() {
        if target.write_all(&first).await.is_err() {
            return;
        }
        log.add_up(first.len());
    }
    drop(first);
    let (client_read, client_write) = client.split();
    let (target_read, target_write) = target.split();
    let up = pump(client_read, target_write, |n| log.add_up(n));
    let down = pump(target_read, client_write, |n| log.add_down(n));
    // The first error ends both directions; an end of stream ends only its own.
    let _ = tokio::try_join!(up, down);
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
