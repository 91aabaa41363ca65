//! One connection from the tool: its opening read under the head timeout,
//! then a tunnel, a forwarded request, SOCKS5, or an HTTP error.

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::time::{Instant, timeout, timeout_at};

use crate::config::ProxyConfig;
use crate::head::{self, ESTABLISHED, Kind, Opening, Status, read_opening};
use crate::log::EgressLog;
use crate::open::{Denial, open};
use crate::relay::{relay, relay_forward};
use crate::socks;

/// Serves one connection to its end.
pub(crate) async fn serve(mut client: UnixStream, config: &ProxyConfig, log: &EgressLog) {
    // One deadline for the whole opening, however it is read (a timeout too
    // large to add is as good as none: about 30 years).
    let now = Instant::now();
    let deadline = now
        .checked_add(config.head_timeout)
        .unwrap_or_else(|| now + std::time::Duration::from_secs(30 * 365 * 86_400));
    let request = match timeout_at(deadline, read_opening(&mut client)).await {
        Ok(Ok(Opening::Http(request))) => request,
        Ok(Ok(Opening::Socks(buf))) => {
            return socks::serve(client, buf, config, log, deadline).await;
        }
        Ok(Ok(Opening::Closed)) => return,
        Ok(Err(rejection)) => {
            let message = log.refused(rejection.target.as_ref(), &rejection.reason);
            return answer(&mut client, config, rejection.status, &message).await;
        }
        Err(_) => {
            let reason = format!("no complete request head within {:?}", config.head_timeout);
            let message = log.refused(None, &reason);
            return answer(&mut client, config, Status::RequestTimeout, &message).await;
        }
    };
    let upstream = match open(config, &request.target).await {
        Ok(upstream) => upstream,
        Err(Denial::Refused(reason)) => {
            let message = log.refused(Some(&request.target), &reason);
            return answer(&mut client, config, Status::Forbidden, &message).await;
        }
        Err(Denial::Failed { reason, timed_out }) => {
            let message = log.failed(&request.target, &reason);
            let status = if timed_out {
                Status::GatewayTimeout
            } else {
                Status::BadGateway
            };
            return answer(&mut client, config, status, &message).await;
        }
    };
    log.allowed();
    if request.kind == Kind::Connect && client.write_all(ESTABLISHED).await.is_err() {
        return;
    }
    match request.kind {
        Kind::Connect => relay(client, upstream, request.first_bytes, log).await,
        Kind::Forward => relay_forward(client, upstream, request.first_bytes, log).await,
    }
}

/// Sends an error response and closes, giving a client that does not read
/// no more than the head timeout.
async fn answer(client: &mut UnixStream, config: &ProxyConfig, status: Status, message: &str) {
    let response = head::response(status, message);
    let _ = timeout(config.head_timeout, async {
        client.write_all(&response).await?;
        client.shutdown().await
    })
    .await;
}

/// Refuses a connection over the cap without a task: one non-blocking write
/// of a 503 (it fits any socket buffer, and a client that is not reading
/// loses it), then the socket is closed.
pub(crate) fn refuse_busy(client: UnixStream, log: &EgressLog, cap: usize) {
    let reason = format!("too many connections at once (the cap is {cap})");
    let message = log.refused(None, &reason);
    let _ = client.try_write(&head::response(Status::Unavailable, &message));
}
