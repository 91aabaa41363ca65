//! [`ModelClient`]: sends one request, retrying what is worth retrying,
//! and hands back the answer as a [`ModelStream`].

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use tokio_util::sync::CancellationToken;

use super::stream::{Decoder, ModelStream};
use super::{ChatRequest, ModelConfig, ModelError, ModelLimits, ProviderKind, TimeoutKind};
use super::{anthropic, openai, provider_error, retry};

/// The Messages API version this client speaks.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// A client for one model endpoint. Cheap to share by reference; holds one
/// connection pool.
#[derive(Debug)]
pub struct ModelClient {
    provider: ProviderKind,
    limits: ModelLimits,
    url: reqwest::Url,
    /// Every request's headers, the key among them (marked sensitive).
    headers: HeaderMap,
    http: reqwest::Client,
}

impl ModelClient {
    pub fn new(config: ModelConfig) -> Result<Self, ModelError> {
        let url = config.endpoint()?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        if let Some(key) = &config.api_key {
            let (name, text) = match config.provider {
                ProviderKind::OpenAi => {
                    (AUTHORIZATION.as_str(), format!("Bearer {}", key.expose()))
                }
                ProviderKind::Anthropic => ("x-api-key", key.expose().to_owned()),
            };
            let mut value = HeaderValue::from_str(&text).map_err(|_| {
                ModelError::Config("the API key holds characters a header cannot carry".into())
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if config.provider == ProviderKind::Anthropic {
            headers.insert(
                "anthropic-version",
                HeaderValue::from_static(ANTHROPIC_VERSION),
            );
        }
        // rustls needs a crypto provider; reqwest is built without one to
        // skip aws-lc's C build (see Cargo.toml). Err: already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(config.limits.connect_timeout)
            // A redirect would carry the key to wherever the server points
            // and turn the POST into a GET; an API endpoint has one URL.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ModelError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            provider: config.provider,
            limits: config.limits,
            url,
            headers,
            http,
        })
    }

    pub fn provider(&self) -> ProviderKind {
        self.provider
    }

    pub fn limits(&self) -> &ModelLimits {
        &self.limits
    }

    /// The HTTP body for `req` in this provider's format, serialised once
    /// from the borrowed history (the caller can check its size against a
    /// budget before sending it with [`send`](Self::send)).
    pub fn build_body(&self, req: &ChatRequest<'_>) -> Result<Bytes, ModelError> {
        let body = match self.provider {
            ProviderKind::OpenAi => openai::body(req),
            ProviderKind::Anthropic => anthropic::body(req),
        };
        body.map(Bytes::from)
            .map_err(|e| ModelError::Config(format!("cannot serialise the request: {e}")))
    }

    /// [`build_body`](Self::build_body), then [`send`](Self::send).
    pub async fn stream(
        &self,
        req: &ChatRequest<'_>,
        cancel: &CancellationToken,
    ) -> Result<ModelStream, ModelError> {
        let body = self.build_body(req)?;
        self.send(body, cancel).await
    }

    /// Sends a body built by [`build_body`](Self::build_body). A 429, a 5xx
    /// or a failed connection is retried (the body is shared, not copied)
    /// up to `max_retries` times; nothing has been handed to the caller
    /// yet, so a retry is invisible to it. Returns once a 200 arrives.
    pub async fn send(
        &self,
        body: Bytes,
        cancel: &CancellationToken,
    ) -> Result<ModelStream, ModelError> {
        let mut retry = 0;
        loop {
            let err = match self.attempt(body.clone(), cancel).await {
                Ok(resp) => {
                    let decoder = match self.provider {
                        ProviderKind::OpenAi => Decoder::OpenAi(openai::Decoder::default()),
                        ProviderKind::Anthropic => {
                            Decoder::Anthropic(anthropic::Decoder::default())
                        }
                    };
                    return Ok(ModelStream::new(
                        resp,
                        decoder,
                        &self.limits,
                        cancel.clone(),
                    ));
                }
                Err(e) => e,
            };
            if !err.is_retryable() || retry >= self.limits.max_retries {
                return Err(err);
            }
            let after = match &err {
                ModelError::Http { retry_after, .. } => *retry_after,
                _ => None,
            };
            let wait = retry::wait(&self.limits, retry, after);
            tracing::debug!(retry, ?wait, error = %err, "model API request will be retried");
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(ModelError::Cancelled),
                () = tokio::time::sleep(wait) => {}
            }
            retry += 1;
        }
    }

    /// One POST: a 200 response, or the error it came to.
    async fn attempt(
        &self,
        body: Bytes,
        cancel: &CancellationToken,
    ) -> Result<reqwest::Response, ModelError> {
        let send = self
            .http
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body)
            .send();
        let resp = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(ModelError::Cancelled),
            r = tokio::time::timeout(self.limits.response_timeout, send) => r,
        };
        let resp = match resp {
            Err(_) => return Err(ModelError::Timeout(TimeoutKind::Response)),
            Ok(Err(e)) => return Err(ModelError::from_transport(e)),
            Ok(Ok(resp)) => resp,
        };
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let retry_after = retry::retry_after(resp.headers());
        let body = read_capped(
            resp,
            self.limits.max_error_body_bytes,
            self.limits.idle_timeout,
            cancel,
        )
        .await?;
        Err(ModelError::Http {
            status,
            message: provider_error::message(&body),
            retry_after,
        })
    }
}

/// Up to `cap` bytes of a body (an error's): the rest is not read.
async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
    idle: Duration,
    cancel: &CancellationToken,
) -> Result<Vec<u8>, ModelError> {
    let mut body = Vec::new();
    loop {
        let chunk = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(ModelError::Cancelled),
            c = tokio::time::timeout(idle, resp.chunk()) => c,
        };
        match chunk {
            Err(_) | Ok(Err(_)) | Ok(Ok(None)) => return Ok(body),
            Ok(Ok(Some(chunk))) => {
                let room = cap - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if chunk.len() >= room {
                    return Ok(body);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, ToolCall};

    #[test]
    fn the_size_estimate_is_close_to_the_body_in_both_formats() {
        let messages: Vec<Message> = (0..300)
            .map(|i| match i % 3 {
                0 => Message::User {
                    text: "q".repeat(i),
                },
                1 => Message::Assistant {
                    text: String::new(),
                    tool_calls: vec![ToolCall {
                        id: format!("call_{i}"),
                        name: "search".into(),
                        arguments: r#"{"pattern":"x"}"#.into(),
                    }],
                },
                _ => Message::ToolResult {
                    call_id: format!("call_{}", i - 1),
                    content: "r".repeat(i * 10),
                    is_error: i % 2 == 0,
                },
            })
            .collect();
        let req = ChatRequest {
            model: "m",
            system: Some("sys"),
            messages: &messages,
            tools: &[],
            max_tokens: 10,
            temperature: None,
        };
        for provider in [ProviderKind::OpenAi, ProviderKind::Anthropic] {
            let client = ModelClient::new(ModelConfig {
                provider,
                base_url: "http://127.0.0.1:9".into(),
                api_key: None,
                limits: ModelLimits::default(),
            })
            .unwrap();
            let body = client.build_body(&req).unwrap();
            let estimate = req.estimated_bytes();
            assert!(
                estimate >= body.len() && estimate < body.len() * 5 / 4,
                "{provider:?}: estimate {estimate}, body {}",
                body.len()
            );
        }
    }

    #[test]
    fn the_key_is_in_no_debug_output() {
        for provider in [ProviderKind::OpenAi, ProviderKind::Anthropic] {
            let config = ModelConfig {
                provider,
                base_url: "http://127.0.0.1:9".into(),
                api_key: Some(crate::ApiKey::new("sk-SECRET-123")),
                limits: ModelLimits::default(),
            };
            let shown = format!("{config:?}");
            assert!(
                shown.contains("<redacted>") && !shown.contains("SECRET"),
                "{shown}"
            );
            let shown = format!("{:?}", ModelClient::new(config).unwrap());
            assert!(!shown.contains("SECRET"), "{shown}");
        }
    }
}
