//! Anthropic Messages, streamed: the request body and the decoder of the
//! `message_start` … `message_stop` events.

mod body;
mod decode;

pub(super) use body::body;
pub(super) use decode::Decoder;
