//! What can go wrong talking to a model API. No variant carries the API key
//! or a request header; URLs are stripped from transport errors (a
//! `base_url` may carry a key in its query).

use std::fmt;
use std::time::Duration;

/// Which timeout fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// No TCP/TLS connection within `connect_timeout`.
    Connect,
    /// Connected, but no response headers within `response_timeout`.
    Response,
    /// The stream went quiet for `idle_timeout` between two reads.
    Idle,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connecting",
            Self::Response => "waiting for the response headers",
            Self::Idle => "waiting for the next bytes of the stream",
        })
    }
}

/// Which cap was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapKind {
    /// One server-sent event (`max_event_bytes`).
    Event,
    /// The whole response body (`max_response_bytes`).
    Response,
}

impl fmt::Display for CapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Event => "one streamed event",
            Self::Response => "the whole response",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The API answered with an error status; `message` is the provider's
    /// own error message (or the start of the body if it sent no JSON).
    #[error("the model API answered HTTP {status}: {message}")]
    Http {
        status: u16,
        message: String,
        /// How long the server asked us to wait (`Retry-After`), if it did.
        retry_after: Option<Duration>,
    },
    /// The provider sent an error inside the stream (OpenAI `{"error":…}`,
    /// Anthropic `event: error`), after a 200 status.
    #[error("the model API reported an error mid-stream: {message}")]
    Stream {
        /// The provider's error type, e.g. `overloaded_error`.
        kind: Option<String>,
        message: String,
    },
    #[error("timed out {0} (model API)")]
    Timeout(TimeoutKind),
    #[error(
        "the model API sent more than {limit} bytes in {kind}; the cap is set by the model limits"
    )]
    CapExceeded { kind: CapKind, limit: usize },
    #[error("cancelled")]
    Cancelled,
    /// The server broke the wire format; the text names what was wrong.
    #[error("the model API broke its protocol: {0}")]
    Protocol(String),
    /// The connection failed or dropped (no status to report).
    #[error("cannot reach the model API: {0}")]
    Transport(String),
    /// The client could not be set up (bad `base_url`, bad key text, …).
    #[error("model client configuration: {0}")]
    Config(String),
}

impl ModelError {
    /// A 429 or 5xx, or a failure to connect: worth trying again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Http { status, .. } => *status == 429 || (500..600).contains(status),
            Self::Timeout(TimeoutKind::Connect) => true,
            Self::Transport(_) => true,
            _ => false,
        }
    }
}

impl ModelError {
    /// A reqwest error as text with its causes, without the URL.
    pub(crate) fn from_transport(e: reqwest::Error) -> ModelError {
        if e.is_connect() && e.is_timeout() {
            return ModelError::Timeout(TimeoutKind::Connect);
        }
        let e = e.without_url();
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        ModelError::Transport(text)
    }
}
