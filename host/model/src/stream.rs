//! [`ModelStream`]: the answer's SSE body, read under the caps and
//! timeouts, decoded into [`ModelEvent`]s.

use std::collections::VecDeque;
use std::time::Duration;

use bulkhead_ipc::sse::{SseEvent, SseParser};
use tokio_util::sync::CancellationToken;

use super::{CapKind, ModelError, ModelEvent, ModelLimits, TimeoutKind};
use super::{anthropic, openai};

/// A provider's stream decoder: turns one event's data into events.
#[derive(Debug)]
pub(super) enum Decoder {
    OpenAi(openai::Decoder),
    Anthropic(anthropic::Decoder),
}

impl Decoder {
    /// Decodes one SSE event's data. Returns true once the provider ended
    /// the answer (after pushing everything, `Done` last).
    fn event(&mut self, data: &[u8], out: &mut VecDeque<ModelEvent>) -> Result<bool, ModelError> {
        match self {
            Self::OpenAi(d) => d.event(data, out),
            Self::Anthropic(d) => d.event(data, out),
        }
    }

    /// What the provider sends to end an answer, for the error when the
    /// body ends without it.
    fn terminator(&self) -> &'static str {
        match self {
            Self::OpenAi(_) => "data: [DONE]",
            Self::Anthropic(_) => "a message_stop event",
        }
    }
}

/// The model's answer, event by event. Dropping it closes the connection.
#[derive(Debug)]
pub struct ModelStream {
    resp: reqwest::Response,
    decoder: Decoder,
    parser: SseParser,
    cancel: CancellationToken,
    idle_timeout: Duration,
    max_event_bytes: usize,
    max_response_bytes: usize,
    /// Body bytes read so far.
    read: usize,
    /// Decoded, not yet handed out.
    pending: VecDeque<ModelEvent>,
    /// To hand out once `pending` is empty; then the stream is over.
    failed: Option<ModelError>,
    /// The provider ended the answer, or an error was handed out.
    ended: bool,
}

impl ModelStream {
    pub(super) fn new(
        resp: reqwest::Response,
        decoder: Decoder,
        limits: &ModelLimits,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            resp,
            decoder,
            parser: SseParser::new(limits.max_event_bytes),
            cancel,
            idle_timeout: limits.idle_timeout,
            max_event_bytes: limits.max_event_bytes,
            max_response_bytes: limits.max_response_bytes,
            read: 0,
            pending: VecDeque::new(),
            failed: None,
            ended: false,
        }
    }

    /// The next event; `None` after [`ModelEvent::Done`] or an error.
    /// Events decoded before an error are handed out before it.
    pub async fn next(&mut self) -> Option<Result<ModelEvent, ModelError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if let Some(e) = self.failed.take() {
                self.ended = true;
                return Some(Err(e));
            }
            if self.ended {
                return None;
            }
            match self.read_more().await {
                Ok(true) => self.ended = true,
                Ok(false) => {}
                Err(e) => self.failed = Some(e),
            }
        }
    }

    /// Reads one chunk and decodes the events it completes. True once the
    /// provider ended the answer.
    async fn read_more(&mut self) -> Result<bool, ModelError> {
        let chunk = tokio::select! {
            biased;
            () = self.cancel.cancelled() => return Err(ModelError::Cancelled),
            c = tokio::time::timeout(self.idle_timeout, self.resp.chunk()) => c,
        };
        let chunk = match chunk {
            Err(_) => return Err(ModelError::Timeout(TimeoutKind::Idle)),
            Ok(Err(e)) => return Err(ModelError::from_transport(e)),
            Ok(Ok(None)) => {
                return Err(ModelError::Protocol(format!(
                    "the stream ended before {}",
                    self.decoder.terminator()
                )));
            }
            Ok(Ok(Some(chunk))) => chunk,
        };
        self.read = self.read.saturating_add(chunk.len());
        if self.read > self.max_response_bytes {
            return Err(ModelError::CapExceeded {
                kind: CapKind::Response,
                limit: self.max_response_bytes,
            });
        }
        let mut events = Vec::new();
        self.parser.feed(&chunk, &mut events);
        for event in events {
            let data = match event {
                SseEvent::Oversize => {
                    return Err(ModelError::CapExceeded {
                        kind: CapKind::Event,
                        limit: self.max_event_bytes,
                    });
                }
                SseEvent::Message { data } => data,
            };
            if self.decoder.event(&data, &mut self.pending)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
