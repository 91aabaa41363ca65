//! The client's side: find the control sockets of running gateways and
//! read their status (`bulkhead mcp status`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::ControlError;
use super::answer::GatewayStatus;
use super::dir::{remove_if_stale, sockets};
use super::server::MAX_ANSWER;

/// How long to wait for a gateway's answer. It is built from figures the
/// gateway holds (no server is asked), so a live gateway answers at once;
/// a stopped (SIGSTOP) one must not hang `status`.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A socket found in the control directory.
#[derive(Debug)]
pub enum Found {
    /// A live gateway's status, or why it could not be read.
    Gateway(PathBuf, Result<GatewayStatus, ControlError>),
    /// A killed gateway's socket, now removed.
    Stale(PathBuf),
}

/// Every control socket in `dir`: the live gateways' status, and the stale
/// sockets removed on the way.
pub async fn discover(dir: &Path) -> Result<Vec<Found>, ControlError> {
    let mut found = Vec::new();
    for path in sockets(dir)? {
        match query(&path).await {
            Err(ControlError::Socket(..)) if remove_if_stale(&path).unwrap_or(false) => {
                found.push(Found::Stale(path));
            }
            // Gone between the listing and the connect: it exited.
            Err(ControlError::Gone(_)) => {}
            other => found.push(Found::Gateway(path, other)),
        }
    }
    Ok(found)
}

/// Asks the gateway at `path` for its status.
pub async fn query(path: &Path) -> Result<GatewayStatus, ControlError> {
    let socket_err = |e: std::io::Error| ControlError::Socket(path.to_owned(), e.to_string());
    let talk = async {
        let mut stream = UnixStream::connect(path).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ControlError::Gone(path.to_owned())
            } else {
                socket_err(e)
            }
        })?;
        // A gateway that refuses the peer closes at once: the write or the
        // read then fails, and that is "closed without answering".
        let mut answer = Vec::new();
        match stream.write_all(b"status\n").await {
            Err(e) if closed(&e) => return Ok(answer),
            other => other.map_err(socket_err)?,
        }
        // Capped before it is allocated: at most one answer's cap, plus the
        // one byte that tells an oversized answer.
        match (&mut stream)
            .take(MAX_ANSWER as u64 + 1)
            .read_to_end(&mut answer)
            .await
        {
            Err(e) if closed(&e) => {}
            other => {
                other.map_err(socket_err)?;
            }
        }
        Ok(answer)
    };
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, talk)
        .await
        .map_err(|_| ControlError::Answer(path.to_owned(), "no answer in time".into()))??;
    parse_answer(path, &answer)
}

fn closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
    )
}

fn parse_answer(path: &Path, answer: &[u8]) -> Result<GatewayStatus, ControlError> {
    let bad = |why: String| ControlError::Answer(path.to_owned(), why);
    if answer.len() > MAX_ANSWER {
        return Err(bad(format!("the answer is over {MAX_ANSWER} bytes")));
    }
    if answer.is_empty() {
        return Err(bad("the gateway closed the connection without answering (another user's gateway, or too many connections)".into()));
    }
    let value: Value = serde_json::from_slice(answer).map_err(|e| bad(format!("not JSON: {e}")))?;
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        return Err(bad(error.to_owned()));
    }
    serde_json::from_value(value).map_err(|e| bad(format!("not a gateway status: {e}")))
}
