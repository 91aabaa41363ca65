//! `mcp wrap --inject`'s stream faults, applied by the relay to what its
//! server writes, as if the server had written it, so that the relay's own
//! handling (the message cap, the non-JSON-RPC line count, the answers for
//! a server that ended) and the host's meet a real failure. Only the host
//! asks for them, in the relay's arguments.
//!
//! A fault fires on a server message: the first (no trigger), the Nth
//! (`@msg:N`, `@every:N`), the first at or after a time (`@DUR`, from the
//! server's start) or a byte count (`@bytes:SIZE`), or the answer to a
//! request of a method or tool (`@on:NAME`). Then:
//!
//! - `garbage`: a line that is not JSON-RPC comes before that message;
//! - `oversize`: a message over the message cap, fed through the real cap,
//!   comes in its place (with its id when it was an answer);
//! - `truncate`: the server is killed as that message is read, so its
//!   output ends in the middle of it; the relay passes whole lines only,
//!   so none of it reaches the client, and the requests in flight are
//!   answered with the server's end, as for a server that died there;
//! - `delay:DUR`: it and what follows are held back DUR;
//! - `slow:RATE`: from it on, each message goes on when its bytes would
//!   have come at RATE bytes a second (whole messages: a client cannot use
//!   part of one);
//! - `cut:SIZE`: SIZE more bytes of messages go on; the message that would
//!   pass SIZE does not, and the server is stopped, as at an output cap.
//!
//! While messages are held back the relay reads no more of the server's
//! output, so what is held is one read (and at most one capped line), and
//! the server meets the back-pressure of a slow reader.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bulkhead_ipc::lines::{BoundedLines, LineEvent};
use bulkhead_ipc::{RelayFault, RelayFaultKind, RelayTrigger};
use serde_json::Value;

use super::jsonrpc::{self, Kind};

/// The line `garbage` puts in the server's output: what a server that
/// prints to stdout by mistake writes.
const GARBAGE_LINE: &[u8] = b"bulkhead --inject garbage: this line is not JSON-RPC";

/// Padding fed to the cap per step by `oversize`: one read's worth, so the
/// oversized message is never built whole.
const PAD_STEP: usize = 64 << 10;

/// What the relay does next with the server's output.
pub(super) enum Step {
    /// A line or an oversized message, for the relay's own handling.
    Event(LineEvent),
    /// Stop the server, as at an output cap, for this reason.
    Cut { why: String },
    /// Kill the server: its output ends in the middle of a message.
    Truncate,
}

/// The stream faults of one session, armed until they fire.
pub(super) struct StreamFaults {
    armed: Vec<(RelayFault, bool)>,
    started: Instant,
    max_message: usize,
    /// Server messages so far, and their bytes.
    messages: u64,
    bytes: u64,
    /// Open requests an `@on:` fault waits for the answer to: id (JSON
    /// text) → the faults. Bounded by the requests the relay tracks.
    watched: HashMap<String, Vec<usize>>,
    held: VecDeque<(Instant, Step)>,
    /// Nothing goes on before this (`delay`).
    floor: Option<Instant>,
    /// Bytes a second (`slow`), and when the last paced message went on.
    rate: Option<u64>,
    paced_until: Option<Instant>,
    /// Bytes still to pass before the cut (`cut`).
    cut_left: Option<u64>,
    /// The server's output ends here (`cut`, `truncate`): later messages
    /// are never passed on.
    ended: bool,
    fired: Option<(String, String, u64)>,
    /// Lines for stderr about faults that fired.
    notes: Vec<String>,
}

impl StreamFaults {
    /// `None` for a session with no stream fault: the relay then does no
    /// fault work at all.
    pub(super) fn new(faults: Vec<RelayFault>, max_message: usize) -> Option<Box<Self>> {
        if faults.is_empty() {
            return None;
        }
        Some(Box::new(Self {
            armed: faults.into_iter().map(|f| (f, false)).collect(),
            started: Instant::now(),
            max_message,
            messages: 0,
            bytes: 0,
            watched: HashMap::new(),
            held: VecDeque::new(),
            floor: None,
            rate: None,
            paced_until: None,
            cut_left: None,
            ended: false,
            fired: None,
            notes: Vec::new(),
        }))
    }

    /// A client request passed on: noted when an `@on:` fault names its
    /// method, or its tool.
    pub(super) fn on_request(&mut self, id: &str, method: &str, request: &Value) {
        let tool = request
            .get("params")
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str);
        let hits: Vec<usize> = self
            .armed
            .iter()
            .enumerate()
            .filter(|(_, (f, done))| {
                !done
                    && matches!(&f.trigger, RelayTrigger::On(name)
                        if name == method || Some(name.as_str()) == tool)
            })
            .map(|(i, _)| i)
            .collect();
        if !hits.is_empty() && self.watched.len() < bulkhead_ipc::validate::MAX_OPEN_REQUESTS {
            self.watched.insert(id.to_owned(), hits);
        }
    }

    /// Whether messages are held back: the relay then reads no more.
    pub(super) fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// How long until the next held message is due.
    pub(super) fn next_due(&self, now: Instant) -> Option<Duration> {
        self.held
            .front()
            .map(|(at, _)| at.saturating_duration_since(now))
    }

    /// The next step due at `now`.
    pub(super) fn take_due(&mut self, now: Instant) -> Option<Step> {
        if self.held.front().is_some_and(|(at, _)| *at <= now) {
            return self.held.pop_front().map(|(_, step)| step);
        }
        None
    }

    /// Notes about faults that fired, for stderr.
    pub(super) fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// The first fault that fired, for the session's `injected`.
    pub(super) fn injected_json(&self) -> Option<Value> {
        let (fault, trigger, at_ms) = self.fired.clone()?;
        Some(serde_json::json!({"fault": fault, "trigger": trigger, "at_ms": at_ms}))
    }

    /// A message from the server, as the relay's capped reader cut it: the
    /// faults it fires fire, and it is scheduled (or replaced, or dropped).
    pub(super) fn schedule(&mut self, event: LineEvent, now: Instant) {
        if self.ended {
            return;
        }
        let len = match &event {
            // Its newline too: the bytes the server wrote.
            LineEvent::Line(line) => line.len() as u64 + 1,
            // At least past the cap; the rest is not counted.
            LineEvent::Oversize { .. } => self.max_message as u64 + 1,
        };
        self.messages += 1;
        self.bytes += len;
        let (answered, waiting) = self.answered(&event).unzip();
        let waiting = waiting.unwrap_or_default();
        let due: Vec<usize> = (0..self.armed.len())
            .filter(|&i| self.is_due(i, now, &waiting))
            .collect();
        let mut event = Some(event);
        for i in due {
            let (fault, done) = &mut self.armed[i];
            // `@every:` stays armed; every other trigger fires once.
            *done = !matches!(fault.trigger, RelayTrigger::Every(_));
            let fault = fault.clone();
            self.note(&fault, now);
            let at = self.floor.map_or(now, |f| f.max(now));
            match fault.kind {
                RelayFaultKind::Garbage => self
                    .held
                    .push_back((at, Step::Event(LineEvent::Line(GARBAGE_LINE.to_vec())))),
                RelayFaultKind::Oversize => {
                    let id = answered
                        .clone()
                        .or_else(|| event.as_ref().and_then(response_id));
                    event = Some(self.oversized(id.as_deref()));
                }
                RelayFaultKind::Truncate => {
                    self.held.push_back((at, Step::Truncate));
                    self.ended = true;
                    return;
                }
                RelayFaultKind::DelayMs(ms) => {
                    self.floor = Some(at + Duration::from_millis(ms));
                }
                RelayFaultKind::Slow(rate) => self.rate = Some(rate.max(1)),
                RelayFaultKind::Cut(n) => self.cut_left = Some(n),
            }
        }
        let Some(event) = event else { return };
        let mut at = self.floor.map_or(now, |f| f.max(now));
        if let Some(rate) = self.rate {
            let start = self.paced_until.map_or(at, |p| p.max(at));
            at = start + Duration::from_secs_f64(len as f64 / rate as f64);
            self.paced_until = Some(at);
        }
        if let Some(left) = self.cut_left {
            if len > left {
                let (spec, total) = self.cut_spec();
                let why = format!(
                    "the MCP server was stopped as at an output cap (--inject {spec}, after {} \
                     bytes of its output)",
                    total.saturating_sub(left)
                );
                self.held.push_back((at, Step::Cut { why }));
                self.ended = true;
                return;
            }
            self.cut_left = Some(left - len);
        }
        self.held.push_back((at, Step::Event(event)));
    }

    /// The `cut` fault as written, and its size.
    fn cut_spec(&self) -> (String, u64) {
        self.armed
            .iter()
            .find_map(|(f, _)| match f.kind {
                RelayFaultKind::Cut(n) => Some((f.spec_fault.clone(), n)),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// Whether fault `i` fires on the message now read; `waiting`: the
    /// `@on:` faults that waited for it (it answers their request).
    fn is_due(&self, i: usize, now: Instant, waiting: &[usize]) -> bool {
        let (fault, done) = &self.armed[i];
        if *done {
            return false;
        }
        match &fault.trigger {
            RelayTrigger::Start => true,
            RelayTrigger::AfterMs(ms) => {
                now.duration_since(self.started).as_millis() >= *ms as u128
            }
            RelayTrigger::Bytes(b) => self.bytes >= *b,
            RelayTrigger::Msg(n) => self.messages == *n,
            // `checked_rem`: `is_multiple_of` is newer than the workspace's rust-version.
            RelayTrigger::Every(n) => self.messages.checked_rem(*n) == Some(0),
            RelayTrigger::On(_) => waiting.contains(&i),
        }
    }

    /// The watched request `event` answers, if any: its id and the faults
    /// that waited for it. Its watch ends.
    fn answered(&mut self, event: &LineEvent) -> Option<(String, Vec<usize>)> {
        if self.watched.is_empty() {
            return None;
        }
        let id = response_id(event)?;
        self.watched.remove(&id).map(|faults| (id, faults))
    }

    fn note(&mut self, fault: &RelayFault, now: Instant) {
        let at_ms = u64::try_from(now.duration_since(self.started).as_millis()).unwrap_or(u64::MAX);
        self.notes.push(format!(
            "bulkhead: mcp wrap: injected {} @{} at {at_ms} ms: server message {}\n",
            fault.spec_fault, fault.spec_trigger, self.messages
        ));
        if self.fired.is_none() {
            self.fired = Some((fault.spec_fault.clone(), fault.spec_trigger.clone(), at_ms));
        }
    }

    /// A message one byte over the cap, fed through a reader with the
    /// relay's real cap: an answer with `id` (JSON text) when there is
    /// one, else a notification.
    fn oversized(&self, id: Option<&str>) -> LineEvent {
        let head = match id {
            Some(id) => format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":""#
            ),
            None => r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":""#.to_owned(),
        };
        let mut reader = BoundedLines::new(self.max_message);
        let mut out = Vec::new();
        reader.feed(head.as_bytes(), &mut out);
        let pad = [b'x'; PAD_STEP];
        let mut fed = head.len();
        while out.is_empty() && fed <= self.max_message {
            let step = (self.max_message + 1 - fed).min(PAD_STEP);
            reader.feed(&pad[..step], &mut out);
            fed += step;
        }
        reader.feed(b"\"}]}}\n", &mut out);
        out.into_iter().next().unwrap_or(LineEvent::Oversize {
            prefix: head.into_bytes(),
        })
    }
}

/// The id (JSON text) of a response, as the relay keys requests.
fn response_id(event: &LineEvent) -> Option<String> {
    let LineEvent::Line(line) = event else {
        return None;
    };
    let value = serde_json::from_slice::<Value>(line).ok()?;
    match jsonrpc::classify(&value) {
        Kind::Response { id } => Some(id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(kind: RelayFaultKind, trigger: RelayTrigger) -> Box<StreamFaults> {
        let f = RelayFault {
            kind,
            trigger,
            spec_fault: "f".into(),
            spec_trigger: "t".into(),
        };
        StreamFaults::new(vec![f], 1000).expect("a fault")
    }

    fn line(text: &str) -> LineEvent {
        LineEvent::Line(text.as_bytes().to_vec())
    }

    fn drain(f: &mut StreamFaults) -> Vec<Step> {
        let far = Instant::now() + Duration::from_secs(3600);
        std::iter::from_fn(|| f.take_due(far)).collect()
    }

    #[test]
    fn garbage_comes_before_the_nth_message() {
        let mut f = faults(RelayFaultKind::Garbage, RelayTrigger::Msg(2));
        let now = Instant::now();
        f.schedule(line("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}"), now);
        f.schedule(line("{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}"), now);
        let steps = drain(&mut f);
        assert_eq!(steps.len(), 3);
        assert!(matches!(&steps[1], Step::Event(LineEvent::Line(l)) if l == GARBAGE_LINE));
        assert_eq!(f.injected_json().unwrap()["trigger"], "t");
    }

    #[test]
    fn oversize_replaces_the_answer_to_the_method_and_passes_the_real_cap() {
        let mut f = faults(
            RelayFaultKind::Oversize,
            RelayTrigger::On("tools/call".into()),
        );
        let call = serde_json::json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo"}});
        f.on_request("7", "tools/call", &call);
        let now = Instant::now();
        f.schedule(line("{\"jsonrpc\":\"2.0\",\"id\":6,\"result\":{}}"), now);
        f.schedule(line("{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}"), now);
        let steps = drain(&mut f);
        let [
            Step::Event(LineEvent::Line(_)),
            Step::Event(LineEvent::Oversize { prefix }),
        ] = &steps[..]
        else {
            panic!("not replaced");
        };
        assert_eq!(jsonrpc::id_in_prefix(prefix).as_deref(), Some("7"));
    }

    #[test]
    fn slow_paces_messages_and_delay_holds_them() {
        let mut f = faults(RelayFaultKind::Slow(100), RelayTrigger::Start);
        let now = Instant::now();
        // 50 bytes with the newline: half a second each at 100 B/s.
        let msg = format!("{{\"a\":\"{}\"}}", "x".repeat(41));
        f.schedule(line(&msg), now);
        f.schedule(line(&msg), now);
        assert_eq!(f.next_due(now), Some(Duration::from_millis(500)));
        assert!(f.take_due(now + Duration::from_millis(600)).is_some());
        assert!(f.take_due(now + Duration::from_millis(600)).is_none());
        assert!(f.take_due(now + Duration::from_millis(1000)).is_some());

        let mut f = faults(RelayFaultKind::DelayMs(300), RelayTrigger::Msg(2));
        f.schedule(line("{}"), now);
        f.schedule(line("{}"), now);
        assert!(f.take_due(now).is_some());
        assert!(f.take_due(now).is_none());
        assert!(f.take_due(now + Duration::from_millis(300)).is_some());
    }

    #[test]
    fn a_time_trigger_fires_on_the_first_message_after_it() {
        let mut f = faults(RelayFaultKind::Garbage, RelayTrigger::AfterMs(200));
        let start = f.started;
        f.schedule(line("{}"), start + Duration::from_millis(150));
        assert!(f.injected_json().is_none());
        f.schedule(line("{}"), start + Duration::from_millis(250));
        f.schedule(line("{}"), start + Duration::from_millis(350));
        assert_eq!(f.injected_json().unwrap()["at_ms"], 250);
        let garbage = drain(&mut f)
            .iter()
            .filter(|s| matches!(s, Step::Event(LineEvent::Line(l)) if l == GARBAGE_LINE))
            .count();
        assert_eq!(garbage, 1, "fires once");
    }

    #[test]
    fn cut_and_truncate_end_the_output() {
        let mut f = faults(RelayFaultKind::Cut(10), RelayTrigger::Start);
        let now = Instant::now();
        f.schedule(line("1234"), now);
        f.schedule(line("123456"), now);
        f.schedule(line("1"), now);
        let steps = drain(&mut f);
        assert!(
            matches!(&steps[..], [Step::Event(_), Step::Cut { why }] if why.contains("after 5 bytes")),
        );
        let mut f = faults(RelayFaultKind::Truncate, RelayTrigger::Bytes(4));
        f.schedule(line("12"), now);
        f.schedule(line("34"), now);
        f.schedule(line("56"), now);
        let steps = drain(&mut f);
        assert!(matches!(&steps[..], [Step::Event(_), Step::Truncate]));
    }
}
