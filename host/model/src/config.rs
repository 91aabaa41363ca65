//! How to reach a model: provider, endpoint, key, and the limits every
//! request runs under.

use std::fmt;
use std::time::Duration;

use super::ModelError;

/// Which wire format the endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
// `lowercase`, not `snake_case`: config files say `openai`, not `open_ai`.
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI Chat Completions (`POST {base_url}/chat/completions`): OpenAI,
    /// Ollama, llama.cpp's server, vLLM, LM Studio, OpenRouter.
    OpenAi,
    /// Anthropic Messages (`POST {base_url}/messages`).
    Anthropic,
}

impl ProviderKind {
    /// The name config files and `--provider` use.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }

    /// The provider's public endpoint, used when no `base_url` is given.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Self::OpenAi => "https://api.openai.com/v1",
            Self::Anthropic => "https://api.anthropic.com/v1",
        }
    }

    /// The environment variable the key is read from by default.
    pub fn default_key_env(self) -> &'static str {
        match self {
            Self::OpenAi => "OPENAI_API_KEY",
            Self::Anthropic => "ANTHROPIC_API_KEY",
        }
    }
}

impl std::str::FromStr for ProviderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "openai" => Ok(Self::OpenAi),
            "anthropic" => Ok(Self::Anthropic),
            other => Err(format!(
                "unknown provider \"{other}\"; the providers are openai, anthropic"
            )),
        }
    }
}

/// An API key. Its `Debug` prints `ApiKey(<redacted>)`, it has no
/// `Display`, and the header carrying it is marked sensitive, so it reaches
/// no log and no error.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key from environment variable `var`; `None` if it is unset or
    /// empty.
    pub fn from_env(var: &str) -> Option<Self> {
        std::env::var(var)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .map(|k| Self(k.trim().to_owned()))
    }

    /// The key itself, for the request's header. Never log or print it:
    /// `Debug` shows a placeholder for this reason.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Bounds on one request. The defaults are explained field by field; every
/// one bounds either memory (the caps) or how long a dead server can hold
/// the caller (the timeouts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelLimits {
    /// TCP + TLS handshake. 10 s: a reachable API connects in well under a
    /// second; longer means it is not there.
    pub connect_timeout: Duration,
    /// From sending the body to the response headers. 120 s: some servers
    /// (llama.cpp, vLLM) send headers only once the prompt is processed,
    /// which takes a while for a long context on a small GPU.
    pub response_timeout: Duration,
    /// Longest silence between two reads of the stream. 90 s: the APIs send
    /// tokens or keep-alives (`ping`, SSE comments) every few seconds; a
    /// local server may pause while it evaluates a long tool result.
    pub idle_timeout: Duration,
    /// Cap on one server-sent event, checked before it is buffered. 1 MiB:
    /// an event normally carries a few tokens; the largest legitimate one is
    /// a whole tool call from a server that does not split them (Ollama),
    /// at most `max_tokens` of text (32k tokens ≈ 128 KiB, twice that with
    /// JSON escaping), so 1 MiB leaves 4× headroom.
    pub max_event_bytes: usize,
    /// Cap on the whole response body. 32 MiB: a streamed token costs about
    /// 250 bytes of JSON envelope, so this allows ~128k streamed tokens,
    /// more than any model's output limit, and it bounds what assembling
    /// tool-call arguments can hold.
    pub max_response_bytes: usize,
    /// Cap on an error body read to find the provider's message. 64 KiB:
    /// error JSON is a few hundred bytes.
    pub max_error_body_bytes: usize,
    /// Retries after a 429, a 5xx or a failed connection (so at most
    /// `max_retries + 1` attempts). 4: with the backoff below that spans
    /// about 15 s before the caller hears of it.
    pub max_retries: u32,
    /// First backoff; doubled each retry, with full jitter. 1 s.
    pub backoff_base: Duration,
    /// Ceiling on one wait, whether computed or asked for by `Retry-After`.
    /// 60 s: a rate limit asking for longer is reported, not slept through
    /// silently for minutes.
    pub max_backoff: Duration,
}

impl Default for ModelLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(90),
            max_event_bytes: 1 << 20,
            max_response_bytes: 32 << 20,
            max_error_body_bytes: 64 << 10,
            max_retries: 4,
            backoff_base: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Everything a [`ModelClient`](super::ModelClient) needs.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub provider: ProviderKind,
    /// The API root, e.g. `https://api.openai.com/v1` or
    /// `http://localhost:11434/v1`; `chat/completions` or `messages` is
    /// appended.
    pub base_url: String,
    /// `None` sends no key (local servers need none).
    pub api_key: Option<ApiKey>,
    pub limits: ModelLimits,
}

impl ModelConfig {
    /// The provider's public endpoint, the key from its usual environment
    /// variable, default limits.
    pub fn from_env(provider: ProviderKind) -> Self {
        Self {
            provider,
            base_url: provider.default_base_url().to_owned(),
            api_key: ApiKey::from_env(provider.default_key_env()),
            limits: ModelLimits::default(),
        }
    }

    /// The endpoint URL, checked: http or https only.
    pub fn endpoint(&self) -> Result<reqwest::Url, ModelError> {
        let path = match self.provider {
            ProviderKind::OpenAi => "chat/completions",
            ProviderKind::Anthropic => "messages",
        };
        let base = self.base_url.trim_end_matches('/');
        let url = reqwest::Url::parse(&format!("{base}/{path}"))
            .map_err(|e| ModelError::Config(format!("base_url {base:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ModelError::Config(format!(
                "base_url {base:?}: only http and https are supported"
            )));
        }
        Ok(url)
    }
}
