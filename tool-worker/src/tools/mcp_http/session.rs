//! The HTTP side of one MCP session: the `reqwest` client, the headers
//! every request carries, and the session id and protocol version the
//! server settles (MCP Streamable HTTP, spec 2025-06-18).

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

/// The session id header: from the server's `initialize` answer, echoed on
/// every later request.
pub(super) const SESSION_HEADER: &str = "mcp-session-id";
const PROTOCOL_HEADER: &str = "mcp-protocol-version";

/// Connecting takes longer than this only to a server that is not there;
/// the client then gets its error instead of waiting for the call timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct Settled {
    session_id: Option<HeaderValue>,
    protocol: Option<HeaderValue>,
}

pub(super) struct Session {
    pub(super) client: reqwest::Client,
    pub(super) url: reqwest::Url,
    /// The user's headers and the bearer token.
    headers: HeaderMap,
    settled: Mutex<Settled>,
}

/// What the tool's arguments say about the connection.
pub(super) struct Connect<'a> {
    pub(super) url: &'a str,
    pub(super) headers: &'a std::collections::BTreeMap<String, String>,
    /// The bearer token, read from the worker's environment.
    pub(super) bearer: Option<String>,
}

impl Session {
    /// Errors name the argument at fault.
    pub(super) fn new(c: &Connect<'_>) -> Result<Self, String> {
        let url = reqwest::Url::parse(c.url).map_err(|e| format!("url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("url: {}: only http and https", url.scheme()));
        }
        let mut headers = HeaderMap::new();
        for (k, v) in c.headers {
            let name =
                HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("headers: {k:?}: {e}"))?;
            let value =
                HeaderValue::from_str(v).map_err(|e| format!("headers: {k:?}: value: {e}"))?;
            headers.insert(name, value);
        }
        if let Some(token) = &c.bearer {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| "bearer_env: the token is not a valid header value".to_owned())?;
            // Kept out of reqwest's debug output.
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        // rustls needs a crypto provider; reqwest is built without one to
        // skip aws-lc's C build (see Cargo.toml). Err: already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            // A redirect would carry the user's headers (an API key in
            // `--header`) to wherever the server points, and turn a POST
            // into a GET on 301/302. An MCP endpoint has one URL: say so.
            .redirect(reqwest::redirect::Policy::none());
        // Under network `proxied` every request goes to the egress relay,
        // named here rather than left to reqwest's reading of the
        // environment, which a `NO_PROXY` or a CGI `REQUEST_METHOD` would
        // bend. An explicit proxy also turns that reading off.
        if let Some(relay) = crate::sandbox::egress_proxy() {
            let proxy =
                reqwest::Proxy::all(relay).map_err(|e| format!("the egress relay {relay}: {e}"))?;
            builder = builder.proxy(proxy);
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            client,
            url,
            headers,
            settled: Mutex::default(),
        })
    }

    fn settled(&self) -> MutexGuard<'_, Settled> {
        // Two header values; still meaningful after a panic elsewhere.
        self.settled.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Headers for a request now: the user's, then the session's.
    fn request_headers(&self) -> HeaderMap {
        let mut h = self.headers.clone();
        let s = self.settled();
        if let Some(id) = &s.session_id {
            h.insert(SESSION_HEADER, id.clone());
        }
        if let Some(v) = &s.protocol {
            h.insert(PROTOCOL_HEADER, v.clone());
        }
        h
    }

    pub(super) fn post(&self, body: Vec<u8>) -> reqwest::RequestBuilder {
        self.client
            .post(self.url.clone())
            .headers(self.request_headers())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .body(body)
    }

    /// Resumes a broken stream after event `last_id`.
    pub(super) fn resume(&self, last_id: &str) -> reqwest::RequestBuilder {
        self.client
            .get(self.url.clone())
            .headers(self.request_headers())
            .header(ACCEPT, "text/event-stream")
            .header("last-event-id", last_id)
    }

    /// Ends the session on the server, if it gave one (the spec's DELETE).
    pub(super) fn delete(&self) -> Option<reqwest::RequestBuilder> {
        self.settled().session_id.as_ref()?;
        Some(
            self.client
                .delete(self.url.clone())
                .headers(self.request_headers()),
        )
    }

    /// Keeps the session id of the first answer that carries one.
    pub(super) fn note_session(&self, headers: &HeaderMap) {
        if let Some(id) = headers.get(SESSION_HEADER) {
            let mut s = self.settled();
            if s.session_id.is_none() {
                s.session_id = Some(id.clone());
            }
        }
    }

    pub(super) fn set_protocol(&self, version: &str) {
        if let Ok(v) = HeaderValue::from_str(version) {
            self.settled().protocol = Some(v);
        }
    }
}
