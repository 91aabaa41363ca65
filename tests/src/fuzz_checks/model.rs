//! The model stream decoders (OpenAI Chat Completions, Anthropic
//! Messages), driven as `ModelStream` drives them: the same events and
//! verdict whatever pieces the body arrives in, a well-formed sequence of
//! events, and memory bounded by the caps.

use std::collections::{BTreeMap, VecDeque};

use bulkhead_model::fuzzing::StreamDecoder;
use bulkhead_model::{ModelEvent, ModelLimits, ProviderKind};

use super::alloc::{assert_within, peak_during};
use super::{Params, Splits};

/// One feed may hold the SSE parser's line and data (each at most the
/// event cap, twice that after `Vec` growth), the decoder's tool calls
/// (arguments at most the body read so far, copied once into the events
/// and once more when a call is completed) and the events handed out.
fn feed_bound(max_event: usize, read: usize) -> usize {
    4 * max_event + 8 * read + (64 << 10)
}

struct Run {
    events: Vec<ModelEvent>,
    verdict: String,
}

fn run(provider: ProviderKind, limits: &ModelLimits, pieces: &[&[u8]]) -> Run {
    let mut decoder = StreamDecoder::new(provider, limits);
    let mut events = Vec::new();
    let mut read = 0;
    for piece in pieces {
        read += piece.len();
        let mut out = VecDeque::new();
        let (r, peak) = peak_during(|| decoder.feed(piece, &mut out));
        assert_within(
            peak,
            feed_bound(limits.max_event_bytes, read),
            "StreamDecoder::feed",
        );
        events.extend(out);
        match r {
            Ok(false) => {}
            Ok(true) => {
                return Run {
                    events,
                    verdict: "ended".into(),
                };
            }
            Err(e) => {
                let verdict = format!("{e:?}");
                return Run { events, verdict };
            }
        }
    }
    Run {
        events,
        verdict: "open".into(),
    }
}

fn check(provider: ProviderKind, data: &[u8]) {
    let mut p = Params::new(data);
    let limits = ModelLimits {
        // Small caps, so an input of a few KiB crosses them.
        max_event_bytes: usize::from(p.u16()) % 8192 + 1,
        max_response_bytes: usize::from(p.u16()) + 1,
        ..ModelLimits::default()
    };
    let seed = p.u64();
    let body = p.rest();
    let whole = run(provider, &limits, &[body]);
    well_formed(&whole);
    // The response cap is checked per read, so only a body within it is
    // decoded the same in any pieces.
    if body.len() <= limits.max_response_bytes {
        let split = run(provider, &limits, &Splits::new(seed).split(body, 48));
        assert_eq!(
            whole.events, split.events,
            "events differ when the body is split"
        );
        assert_eq!(
            whole.verdict, split.verdict,
            "the verdict differs when the body is split"
        );
    }
}

/// Calls start once, get arguments only once started, complete once with
/// exactly the arguments streamed for them; `Done` is last.
fn well_formed(run: &Run) {
    #[derive(Default)]
    struct Call {
        started: bool,
        complete: bool,
        arguments: String,
    }
    let mut calls: BTreeMap<usize, Call> = BTreeMap::new();
    for (i, event) in run.events.iter().enumerate() {
        match event {
            ModelEvent::ToolCallStarted { index, id, name } => {
                let call = calls.entry(*index).or_default();
                assert!(!call.started, "call {index} started twice");
                assert!(
                    !id.is_empty() && !name.is_empty(),
                    "call {index} started without an id or name"
                );
                call.started = true;
            }
            ModelEvent::ToolCallArgumentsDelta { index, delta } => {
                let call = calls.entry(*index).or_default();
                assert!(
                    call.started && !call.complete,
                    "arguments for call {index} outside it"
                );
                call.arguments.push_str(delta);
            }
            ModelEvent::ToolCallComplete { index, call: done } => {
                let call = calls.entry(*index).or_default();
                assert!(
                    call.started && !call.complete,
                    "call {index} completed twice or unstarted"
                );
                call.complete = true;
                let streamed = if call.arguments.trim().is_empty() {
                    "{}"
                } else {
                    &call.arguments
                };
                assert_eq!(
                    done.arguments, streamed,
                    "call {index}'s arguments differ from its deltas"
                );
            }
            ModelEvent::Done => {
                assert_eq!(i + 1, run.events.len(), "events after Done");
                assert_eq!(run.verdict, "ended", "Done without the end of the answer");
            }
            ModelEvent::TextDelta(_) | ModelEvent::Usage(_) | ModelEvent::Stop(_) => {}
        }
    }
    if run.verdict == "ended" {
        assert!(
            matches!(run.events.last(), Some(ModelEvent::Done)),
            "an ended answer without Done"
        );
    }
}

pub fn openai(data: &[u8]) {
    check(ProviderKind::OpenAi, data);
}

pub fn anthropic(data: &[u8]) {
    check(ProviderKind::Anthropic, data);
}
