//! A local model API for tests: a small hyper server that answers each
//! request with the next canned [`Reply`] from a queue, speaking the real
//! wire formats of OpenAI Chat Completions and Anthropic Messages (SSE
//! shaped like recorded streams), and keeps every request it received.
//!
//! # Scripting a conversation
//!
//! ```ignore
//! use bulkhead_model::ProviderKind;
//! use bulkhead_tests::model_server::{ModelServer, Turn};
//!
//! let server = ModelServer::start().await;
//! let p = ProviderKind::OpenAi; // or Anthropic: same script, other format
//! // Turn 1: the model calls a tool (arguments split over three deltas).
//! server.push(Turn::new().call("call_1", "search", &[r#"{"pat"#, r#"tern":"#, r#""x"}"#]).reply(p));
//! // Turn 2: it answers in text.
//! server.push(Turn::new().text(&["Found ", "it."]).usage(1200, 7).reply(p));
//! // … point a ModelClient at server.base_url() and run the loop …
//! let bodies = server.requests(); // one per request, in order
//! assert!(bodies[1].body.len() < 64 << 10);
//! ```
//!
//! A request that finds the queue empty gets HTTP 500 with an OpenAI-shaped
//! error saying so, so a loop that asks once too often fails loudly.
//! Failures are replies too: [`Reply::status`] (429 with `Retry-After`,
//! 500, …), [`Reply::stream`] with [`StreamEnd::Drop`] (connection cut
//! mid-stream) or [`StreamEnd::Hang`] (idle), and [`Reply::Endless`].

pub mod anthropic;
pub mod openai;
mod turn;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bulkhead_model::{
    ApiKey, ChatRequest, Message, ModelClient, ModelConfig, ModelError, ModelEvent, ModelLimits,
    ModelStream, ProviderKind,
};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Channel, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

pub use turn::Turn;

/// A request body larger than this is refused with 413: far above any test
/// context, and it keeps a runaway client from filling the test's memory.
const MAX_REQUEST_BYTES: usize = 256 << 20;

/// How long [`StreamEnd::Hang`] keeps a stream open without a byte: longer
/// than any idle timeout a test sets; the stream ends sooner if the client
/// goes away.
const HANG: Duration = Duration::from_secs(3600);

/// How a [`Reply::Stream`] ends after its chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The body ends properly.
    Finish,
    /// The connection is cut without ending the chunked body.
    Drop,
    /// The stream stays open, silent.
    Hang,
}

/// One canned answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 `text/event-stream`; each chunk is written as its own write, so
    /// a chunk boundary may fall anywhere in an event.
    Stream { chunks: Vec<Bytes>, end: StreamEnd },
    /// Any status, headers and body (errors, `Retry-After`, …).
    Status {
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    /// 200 `text/event-stream`: `head`, then `chunk` repeated until the
    /// client leaves.
    Endless { head: Vec<Bytes>, chunk: Bytes },
}

impl Reply {
    pub fn stream(chunks: Vec<Bytes>, end: StreamEnd) -> Self {
        Self::Stream { chunks, end }
    }

    /// A status with a JSON body and extra headers.
    pub fn status(status: u16, headers: &[(&str, &str)], body: &str) -> Self {
        Self::Status {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: Bytes::from(body.to_owned()),
        }
    }
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Header names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics if it is not: a test helper).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

#[derive(Default)]
struct State {
    replies: VecDeque<Reply>,
    received: Vec<Received>,
}

/// The server; it stops when dropped.
pub struct ModelServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl ModelServer {
    /// Listens on 127.0.0.1, on a free port. Call inside a tokio runtime.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(req, &state).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    /// The API root to give a client: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues the answer to a later request (first in, first out).
    pub fn push(&self, reply: Reply) {
        lock(&self.state).replies.push_back(reply);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }

    /// Replies queued and not yet used.
    pub fn pending(&self) -> usize {
        lock(&self.state).replies.len()
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

type Body = BoxBody<Bytes, std::io::Error>;

async fn handle(req: Request<Incoming>, state: &Mutex<State>) -> Response<Body> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match Limited::new(req.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return full(
                413,
                &[],
                Bytes::from(format!("model_server: request body: {e}")),
            );
        }
    };
    let reply = {
        let mut s = lock(state);
        s.received.push(Received {
            method,
            path,
            headers,
            body,
        });
        s.replies.pop_front()
    };
    match reply {
        None => full(
            500,
            &[],
            Bytes::from_static(
                br#"{"error":{"message":"model_server: no reply queued for this request","type":"test_error"}}"#,
            ),
        ),
        Some(Reply::Status {
            status,
            headers,
            body,
        }) => {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            full(status, &headers, body)
        }
        Some(Reply::Stream { chunks, end }) => sse(move |mut tx| async move {
            for chunk in chunks {
                if tx.send_data(chunk).await.is_err() {
                    return;
                }
            }
            match end {
                StreamEnd::Finish => {}
                StreamEnd::Drop => {
                    // Abort only once hyper has taken the last chunk (and
                    // written it out in the same pass), else the abort
                    // would overtake the chunks still queued.
                    while tx.capacity() < tx.max_capacity() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    tx.abort(std::io::Error::other("model_server: dropped"));
                }
                StreamEnd::Hang => {
                    tokio::time::sleep(HANG).await;
                    drop(tx);
                }
            }
        }),
        Some(Reply::Endless { head, chunk }) => sse(move |mut tx| async move {
            for h in head {
                if tx.send_data(h).await.is_err() {
                    return;
                }
            }
            while tx.send_data(chunk.clone()).await.is_ok() {}
        }),
    }
}

fn full(status: u16, headers: &[(&str, &str)], body: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(body).map_err(|e: Infallible| match e {}).boxed());
    *r.status_mut() = StatusCode::from_u16(status).expect("a valid status code");
    r.headers_mut().insert(
        "content-type",
        "application/json".parse().expect("header value"),
    );
    for (k, v) in headers {
        r.headers_mut().insert(
            hyper::header::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            v.parse().expect("header value"),
        );
    }
    r
}

/// A 200 SSE response whose body `write` produces, in its own task.
fn sse<F, Fut>(write: F) -> Response<Body>
where
    F: FnOnce(http_body_util::channel::Sender<Bytes, std::io::Error>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, body) = Channel::new(1);
    tokio::spawn(write(tx));
    let mut r = Response::new(body.boxed());
    r.headers_mut().insert(
        "content-type",
        "text/event-stream".parse().expect("header value"),
    );
    r
}

/// One SSE event: an optional `event:` line and one `data:` line.
pub fn sse_event(event: Option<&str>, data: &str) -> Bytes {
    let mut s = String::new();
    if let Some(e) = event {
        s.push_str("event: ");
        s.push_str(e);
        s.push('\n');
    }
    s.push_str("data: ");
    s.push_str(data);
    s.push_str("\n\n");
    Bytes::from(s)
}

/// Limits for tests: tiny backoff (so retries do not slow the suite), the
/// default caps and generous timeouts (so no test races the clock).
pub fn test_limits() -> ModelLimits {
    ModelLimits {
        backoff_base: Duration::from_millis(10),
        max_backoff: Duration::from_secs(2),
        ..ModelLimits::default()
    }
}

/// A client for `server` in `provider`'s format, with key `test-key`.
pub fn client(server: &ModelServer, provider: ProviderKind, limits: ModelLimits) -> ModelClient {
    ModelClient::new(ModelConfig {
        provider,
        base_url: server.base_url(),
        api_key: Some(ApiKey::new(TEST_KEY)),
        limits,
    })
    .expect("model client")
}

/// The key [`client`] sends.
pub const TEST_KEY: &str = "sk-test-SECRET-4242";

/// Reads `stream` to its end: the events, and the error it ended in.
pub async fn collect(stream: &mut ModelStream) -> (Vec<ModelEvent>, Option<ModelError>) {
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(e) => events.push(e),
            Err(e) => return (events, Some(e)),
        }
    }
    (events, None)
}

/// The text of the `TextDelta`s in `events`, joined.
pub fn text_of(events: &[ModelEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ModelEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

/// A request for `messages` with no system prompt and no tools, to model
/// `m`, at most 100 tokens: enough for tests of the transport.
pub fn plain_request(messages: &[Message]) -> ChatRequest<'_> {
    ChatRequest {
        model: "m",
        system: None,
        messages,
        tools: &[],
        max_tokens: 100,
        temperature: None,
    }
}
