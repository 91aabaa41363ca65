//! OpenAI Chat Completions, streamed: the request body and the decoder of
//! `chat.completion.chunk` events.

mod body;
mod decode;

pub(super) use body::body;
pub(super) use decode::Decoder;
