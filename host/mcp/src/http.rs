//! `bulkhead mcp serve --http ADDR`: the [`Gateway`] over MCP's Streamable HTTP
//! transport (spec 2025-06-18), answering each POSTed request with one JSON
//! response.
//!
//! Guards, in the order they are checked:
//! - `Host` must name the address we listen on (DNS-rebinding protection:
//!   a web page that points a hostname of its own at 127.0.0.1 sends its
//!   own name here);
//! - `Origin`, when a browser sends one, must be that address too (or one
//!   given with `--allow-origin`);
//! - the bearer token, when `--token-env` names one;
//! - the body is read under the message cap before it is parsed.
//!
//! # Caveats
//! - No server-to-client stream: `GET` answers 405, as the spec allows,
//!   and answers are JSON, not SSE, so the servers' notifications (which
//!   the stdio gateway passes on) are not sent over HTTP.
//! - Sessions are ids only: the gateway keeps no per-session state beyond
//!   knowing the id.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue, ORIGIN};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::gateway::{Gateway, MAX_CLIENT_MESSAGE};

const SESSION_HEADER: &str = "mcp-session-id";

struct Guard {
    hosts: Vec<String>,
    origins: Vec<String>,
    token: Option<String>,
    sessions: Mutex<HashSet<String>>,
}

/// Where and for whom `serve_http` listens.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// The address to listen on; port 0 picks one.
    pub addr: SocketAddr,
    /// Require `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Origins accepted besides the listening address's own.
    pub extra_origins: Vec<String>,
}

/// Serves `gateway` over Streamable HTTP until the process ends.
pub async fn serve_http(gateway: Arc<Gateway>, options: HttpOptions) -> std::io::Result<()> {
    let HttpOptions {
        addr,
        token,
        extra_origins,
    } = options;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let port = bound.port();
    let mut hosts = vec![bound.to_string()];
    if bound.ip().is_loopback() {
        hosts.extend([
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
        ]);
    }
    let mut origins: Vec<String> = hosts.iter().map(|h| format!("http://{h}")).collect();
    origins.extend(extra_origins);
    let guard = Arc::new(Guard {
        hosts,
        origins,
        token,
        sessions: Mutex::new(HashSet::new()),
    });
    eprintln!("bulkhead: mcp serve: listening on http://{bound}/mcp");
    loop {
        let (stream, _) = listener.accept().await?;
        let gateway = gateway.clone();
        let guard = guard.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let gateway = gateway.clone();
                let guard = guard.clone();
                async move { Ok::<_, Infallible>(handle(req, &gateway, &guard).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text.to_owned())));
    *r.status_mut() = status;
    r
}

fn rpc_error(status: StatusCode, code: i64, message: &str) -> Response<Full<Bytes>> {
    let body = json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}});
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

async fn handle(req: Request<Incoming>, gateway: &Gateway, guard: &Guard) -> Response<Full<Bytes>> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if !header(HOST.as_str()).is_some_and(|h| guard.hosts.iter().any(|a| a.eq_ignore_ascii_case(h)))
    {
        return plain(
            StatusCode::FORBIDDEN,
            "bulkhead: Host does not name this server (DNS rebinding?)",
        );
    }
    if let Some(origin) = header(ORIGIN.as_str())
        && !guard.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    {
        return plain(StatusCode::FORBIDDEN, "bulkhead: Origin not allowed");
    }
    if let Some(token) = &guard.token {
        let wanted = format!("Bearer {token}");
        if header(AUTHORIZATION.as_str()) != Some(wanted.as_str()) {
            return plain(
                StatusCode::UNAUTHORIZED,
                "bulkhead: a bearer token is required",
            );
        }
    }
    if req.uri().path() != "/mcp" {
        return plain(StatusCode::NOT_FOUND, "bulkhead: the MCP endpoint is /mcp");
    }
    let session = header(SESSION_HEADER).map(str::to_owned);
    match *req.method() {
        Method::POST => {}
        Method::DELETE => {
            return match session {
                Some(s) if lock(&guard.sessions).remove(&s) => plain(StatusCode::OK, ""),
                _ => plain(StatusCode::NOT_FOUND, "bulkhead: no such session"),
            };
        }
        // No stream of the server's own: the spec's answer is 405.
        _ => {
            return plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "bulkhead: POST JSON-RPC messages to /mcp",
            );
        }
    }
    let body = match Limited::new(req.into_body(), MAX_CLIENT_MESSAGE)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return rpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                -32600,
                &format!(
                    "request body over the {MAX_CLIENT_MESSAGE}-byte limit or unreadable: {e}"
                ),
            );
        }
    };
    let msg: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return rpc_error(StatusCode::BAD_REQUEST, -32700, &format!("not JSON: {e}")),
    };
    let is_initialize = msg["method"] == "initialize";
    if !is_initialize
        && !session
            .as_ref()
            .is_some_and(|s| lock(&guard.sessions).contains(s))
    {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            -32000,
            "missing or unknown Mcp-Session-Id; initialize first",
        );
    }
    // Notifications and responses: accepted, nothing to answer.
    let Some(id) = msg
        .get("id")
        .cloned()
        .filter(|_| msg.get("method").is_some())
    else {
        return plain(StatusCode::ACCEPTED, "");
    };
    let answer = gateway.handle(id, &msg).await;
    let mut r = Response::new(Full::new(Bytes::from(answer.to_string())));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if is_initialize {
        let sid = new_session_id();
        if let Ok(v) = HeaderValue::from_str(&sid) {
            r.headers_mut().insert(SESSION_HEADER, v);
        }
        lock(&guard.sessions).insert(sid);
    }
    r
}

fn lock(m: &Mutex<HashSet<String>>) -> std::sync::MutexGuard<'_, HashSet<String>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// 128 random bits as hex, from the kernel (`/dev/urandom` exists on
/// every Unix bulkhead builds for).
fn new_session_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // Practically never; a time-based id still separates sessions.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        return format!("{t:032x}");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
