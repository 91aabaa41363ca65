//! The stream decoders driven as [`ModelStream`](crate::ModelStream) drives
//! them once a body chunk has been read: through the bounded SSE parser,
//! then the provider's decoder. For the fuzz targets and their replay test
//! (`tests/src/fuzz_checks/model.rs`); hidden, not part of the API.

use std::collections::VecDeque;

use bulkhead_ipc::sse::{SseEvent, SseParser};

use crate::{CapKind, ModelError, ModelEvent, ModelLimits, ProviderKind, anthropic, openai};

enum Decoder {
    OpenAi(openai::Decoder),
    Anthropic(anthropic::Decoder),
}

/// A model's answer body, decoded chunk by chunk.
pub struct StreamDecoder {
    parser: SseParser,
    decoder: Decoder,
    max_event_bytes: usize,
    max_response_bytes: usize,
    read: usize,
}

impl StreamDecoder {
    pub fn new(provider: ProviderKind, limits: &ModelLimits) -> Self {
        Self {
            parser: SseParser::new(limits.max_event_bytes),
            decoder: match provider {
                ProviderKind::OpenAi => Decoder::OpenAi(openai::Decoder::default()),
                ProviderKind::Anthropic => Decoder::Anthropic(anthropic::Decoder::default()),
            },
            max_event_bytes: limits.max_event_bytes,
            max_response_bytes: limits.max_response_bytes,
            read: 0,
        }
    }

    /// One chunk of the body, as `ModelStream::read_more` handles it: the
    /// response cap, the event cap, then each event's data decoded. True
    /// once the provider ended the answer.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        out: &mut VecDeque<ModelEvent>,
    ) -> Result<bool, ModelError> {
        self.read = self.read.saturating_add(chunk.len());
        if self.read > self.max_response_bytes {
            return Err(ModelError::CapExceeded {
                kind: CapKind::Response,
                limit: self.max_response_bytes,
            });
        }
        let mut events = Vec::new();
        self.parser.feed(chunk, &mut events);
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
            let ended = match &mut self.decoder {
                Decoder::OpenAi(d) => d.event(&data, out)?,
                Decoder::Anthropic(d) => d.event(&data, out)?,
            };
            if ended {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
