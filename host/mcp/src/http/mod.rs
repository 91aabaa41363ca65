//! `bulkhead mcp serve --http ADDR`: the [`Gateway`] over MCP's Streamable
//! HTTP transport (spec 2025-06-18 and 2025-11-25).
//!
//! A POSTed request is answered with one JSON body, unless a server sends
//! notifications (progress, logging) or requests (sampling, elicitation,
//! roots) for it before its answer and the client accepts
//! `text/event-stream`: then the answer is an SSE stream that carries
//! them, then the answer, and ends. `GET /mcp` opens the session's stream
//! for what belongs to no request (list changes, resource updates,
//! logging between calls), with event ids a client may resume from
//! (`Last-Event-ID`); `DELETE /mcp` ends the session. Which notification
//! goes where is `hub`'s rule.
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
//! Every stream is bounded, in events (`hub::SSE_QUEUE`) and in bytes
//! unread, per stream and for the whole gateway (`budget`): a client that
//! does not read makes its writer wait (`hub::SLOW_CLIENT_TIMEOUT`), then
//! the stream is closed; a server's notifications wait for that under a
//! byte bound of their own, past which they are dropped (`notes`); and a
//! connection whose client takes nothing of what is written to it for as
//! long is closed (`conn`). At most `MAX_CONNECTIONS` are served at once.

mod body;
mod budget;
mod conn;
mod hub;
mod notes;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{
    ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HOST, HeaderValue, ORIGIN,
};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use tokio::sync::mpsc;

use crate::gateway::{Gateway, MAX_CLIENT_MESSAGE};
use crate::in_flight::InFlight;
use crate::note_queue::Flush;
use body::{Body, sse_event};
use budget::{Charged, queue};
use hub::{FlightGuard, Hub, SLOW_CLIENT_TIMEOUT, SSE_QUEUE};

const SESSION_HEADER: &str = "mcp-session-id";

/// Client connections served at once; more wait to be accepted. Each
/// holds hyper's buffers and at most one stream's queue (whose bytes
/// `budget::GATEWAY_BYTES` bounds for all streams together), so this
/// bounds what many clients (or one opening connection after connection)
/// can make the gateway hold. A session needs one for its GET stream and one
/// per POST in flight; `hub::MAX_SESSIONS` sessions are kept, most of
/// them idle.
const MAX_CONNECTIONS: usize = 1024;

struct Guard {
    hosts: Vec<String>,
    origins: Vec<String>,
    token: Option<String>,
    hub: Arc<Hub>,
    /// How far each server's notifications have got, by server index.
    routed: Vec<Arc<crate::note_queue::Routed>>,
    /// Client requests in flight, for their clients' cancels.
    in_flight: Arc<InFlight>,
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
    let hub = Arc::new(Hub::default());
    // Each server's notifications, routed to the clients as they come.
    let routed: Vec<_> = (gateway.sessions.iter().enumerate())
        .map(|(i, session)| notes::spawn(hub.clone(), i, session))
        .collect();
    // Servers' requests, to the client whose call caused them.
    for (i, session) in gateway.sessions.iter().enumerate() {
        let hub = hub.clone();
        session.set_request_handler(Arc::new(move |msg: Value| {
            let hub = hub.clone();
            Box::pin(async move { hub.server_request(i, msg).await })
        }));
    }
    let guard = Arc::new(Guard {
        hosts,
        origins,
        token,
        hub: hub.clone(),
        routed,
        in_flight: Arc::default(),
    });
    eprintln!("bulkhead: mcp serve: listening on http://{bound}/mcp");
    gateway.faults_over_http();
    // `bulkhead mcp status` reads it; closed and removed on return.
    let _control = crate::control::start(gateway.status_source(), format!("http://{bound}/mcp"));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        // The semaphore is never closed, so this never fails.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let (stream, _) = listener.accept().await?;
        let gateway = gateway.clone();
        let guard = guard.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let gateway = gateway.clone();
                let guard = guard.clone();
                async move { Ok::<_, Infallible>(handle(req, gateway, &guard).await) }
            });
            // A client that takes nothing of what it is sent loses the
            // connection after the same wait as a stream's.
            let io =
                hyper_util::rt::TokioIo::new(conn::WriteDeadline::new(stream, SLOW_CLIENT_TIMEOUT));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
            drop(slot);
        });
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Body::full(text.to_owned()));
    *r.status_mut() = status;
    r
}

fn rpc_error(status: StatusCode, code: i64, message: &str) -> Response<Body> {
    let body = json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}});
    let mut r = Response::new(Body::full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

async fn handle(req: Request<Incoming>, gateway: Arc<Gateway>, guard: &Guard) -> Response<Body> {
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
    let accepts_sse = header(ACCEPT.as_str()).is_some_and(|a| a.contains("text/event-stream"));
    match *req.method() {
        Method::POST => {}
        // The session id is the only thing that names a session, so
        // another client's id is as unknown as a made-up one: 404.
        Method::DELETE => {
            return match session {
                Some(s) if guard.hub.close(&s) => {
                    gateway.held.session_ended(&s);
                    plain(StatusCode::OK, "")
                }
                _ => plain(StatusCode::NOT_FOUND, "bulkhead: no such session"),
            };
        }
        Method::GET => {
            if !accepts_sse {
                return plain(
                    StatusCode::NOT_ACCEPTABLE,
                    "bulkhead: GET /mcp is an SSE stream; accept text/event-stream",
                );
            }
            let last = header("last-event-id").and_then(|v| v.trim().parse::<u64>().ok());
            let stream = session.and_then(|s| guard.hub.stream(&s, last));
            return match stream {
                Some(body) => sse_response(body),
                None => plain(StatusCode::NOT_FOUND, "bulkhead: no such session"),
            };
        }
        _ => {
            return plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "bulkhead: POST, GET or DELETE /mcp",
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
    let known = session.as_ref().filter(|s| guard.hub.contains(s)).cloned();
    if !is_initialize && known.is_none() {
        // The spec: a request with an ended or unknown session is 404
        // (the client then starts a new one); one with none is 400.
        let status = if session.is_some() {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        return rpc_error(
            status,
            -32000,
            "missing or unknown Mcp-Session-Id; initialize first",
        );
    }
    if msg.get("method").is_none()
        && let Some(sid) = &known
    {
        // An answer to a server's request (or to nothing we asked).
        guard.hub.answer(sid, &msg);
        return plain(StatusCode::ACCEPTED, "");
    }
    // Notifications: accepted, nothing to answer (a cancel lets go of a
    // request an injected fault left unanswered).
    let Some(id) = msg
        .get("id")
        .cloned()
        .filter(|_| msg.get("method").is_some())
    else {
        if let Some(sid) = &known {
            gateway.held.cancelled(sid, &msg);
            guard.in_flight.notified(sid, &msg);
        }
        return plain(StatusCode::ACCEPTED, "");
    };
    if is_initialize {
        let sid = new_session_id();
        guard
            .hub
            .open(sid.clone(), msg["params"]["capabilities"].clone());
        let answer = gateway.handle(id, &msg).await;
        let mut r = json_response(&answer);
        if let Ok(v) = HeaderValue::from_str(&sid) {
            r.headers_mut().insert(SESSION_HEADER, v);
        }
        return r;
    }
    let sid = known.unwrap_or_default();
    let token = Some(msg["params"]["_meta"]["progressToken"].clone()).filter(|t| !t.is_null());
    let reach = gateway.target(&msg);
    // The notifications each server reached sent before its answer go out
    // before the answer: they travel apart from it (`notes`).
    let before_answer = Flush::new(&gateway.sessions, &guard.routed, |i| reach.includes(i));
    let (flight, notes) = guard.hub.flight(&sid, reach, token, accepts_sse);
    let mut msg = msg;
    if let Some(ours) = &flight.progress_token {
        msg["params"]["_meta"]["progressToken"] = ours.clone();
    }
    let hub = guard.hub.clone();
    let (ticket, cancelled) = guard.in_flight.start(&sid, &id);
    let answer = tokio::spawn(async move {
        let _ticket = ticket;
        tokio::select! {
            // A request an injected fault holds, which the same cancel lets
            // go, ends as such a request does.
            biased;
            a = crate::held::http_answer(&gateway, &sid, id.clone(), &msg, |s| {
                hub.close(s);
            }) => a,
            // Cancelled by its client: an SSE stream ends without an answer
            // (a cancelled request gets none); a client that takes only
            // JSON must get a body, and gets the error of a cancelled
            // request, which it no longer waits for.
            Ok(()) = cancelled => (!accepts_sse).then(|| {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32800, "message": "the request was cancelled by its client"}})
            }),
        }
    });
    answer_post(flight, notes, answer, accepts_sse, before_answer).await
}

/// The answer, or `None`: none comes (an injected fault), and the POST's
/// stream is cut.
type Answer = tokio::task::JoinHandle<Option<Value>>;

fn joined(a: Result<Option<Value>, tokio::task::JoinError>) -> Option<Value> {
    a.unwrap_or_else(|e| {
        Some(json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32603, "message": format!("the gateway failed: {e}")}}))
    })
}

/// A POST that gets no answer: an SSE stream that ends at once, or for a
/// client that takes only JSON, the session's end.
fn cut(accepts_sse: bool) -> Response<Body> {
    if accepts_sse {
        let (_, rx) = mpsc::channel::<Charged>(1);
        return sse_response(Body::Stream {
            prefix: Default::default(),
            rx,
        });
    }
    plain(
        StatusCode::NOT_FOUND,
        "bulkhead: no answer: the request was cancelled or its session ended",
    )
}

/// The answer as one JSON body if it comes before anything else for the
/// request; otherwise (and if the client takes SSE) a stream of what came
/// first, then the answer. Either way, the notifications the servers sent
/// before their answer (`before_answer`) go out before it.
async fn answer_post(
    flight: FlightGuard,
    mut notes: mpsc::Receiver<Charged>,
    mut answer: Answer,
    accepts_sse: bool,
    before_answer: Flush,
) -> Response<Body> {
    // The first notification, and the answer if it is already here.
    let (first, ready) = tokio::select! {
        biased;
        Some(note) = notes.recv(), if accepts_sse => (note, None),
        a = &mut answer => {
            let a = joined(a);
            if accepts_sse {
                before_answer.wait().await;
            }
            match notes.try_recv() {
                Ok(note) if accepts_sse => (note, Some(a)),
                _ => return match a {
                    Some(a) => json_response(&a),
                    None => cut(accepts_sse),
                },
            }
        },
    };
    let (tx, rx) = mpsc::channel::<Charged>(SSE_QUEUE);
    tokio::spawn(async move {
        // The flight stays registered until the answer has gone out.
        let flight = flight;
        // A client that stops reading for SLOW_CLIENT_TIMEOUT loses the
        // stream (dropping `tx` ends it): never unbounded buffering. The
        // notes were charged to the stream's budget when they were
        // queued; the answer is charged here.
        let send = |note: Charged| {
            let tx = tx.clone();
            async move { tx.send_timeout(note, SLOW_CLIENT_TIMEOUT).await.is_ok() }
        };
        if !send(first).await {
            return;
        }
        let a = match ready {
            // Waited for before the stream began.
            Some(a) => a,
            None => {
                let a = loop {
                    tokio::select! {
                        biased;
                        Some(note) = notes.recv() => {
                            if !send(note).await {
                                return;
                            }
                        }
                        a = &mut answer => break joined(a),
                    }
                };
                before_answer.wait().await;
                a
            }
        };
        while let Ok(note) = notes.try_recv() {
            if !send(note).await {
                return;
            }
        }
        if let Some(a) = a {
            let _ = queue(&tx, &flight.budget, sse_event(None, &a)).await;
        }
    });
    sse_response(Body::Stream {
        prefix: Default::default(),
        rx,
    })
}

fn json_response(answer: &Value) -> Response<Body> {
    let mut r = Response::new(Body::full(answer.to_string()));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn sse_response(body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
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
