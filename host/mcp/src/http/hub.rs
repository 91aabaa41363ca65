//! Where a server's notification goes over HTTP.
//!
//! The rule (also in the README's `mcp serve` section):
//! - `notifications/progress` goes to the POST whose request carried that
//!   `progressToken` (and went to that server); with no such POST in
//!   flight it is dropped, as progress for a finished request means
//!   nothing.
//! - `notifications/message` (logging) goes to the most recently started
//!   POST still in flight that went to that server (or to every server,
//!   like `resources/list`); with none in flight, to the GET stream of
//!   every session that has one.
//! - Only a POST whose client accepts SSE counts as in flight here: one
//!   that wants JSON could not carry anything but its answer.
//! - Everything else (list changes, resource updates) goes to the GET
//!   stream of every session that has one.
//!
//! - A server's request (sampling, elicitation, roots) goes the way of
//!   logging, to the latest POST in flight to that server whose client
//!   takes SSE, if that client declared the capability; its answer is a
//!   later POST with the id the gateway gave it. Otherwise the server
//!   gets an error saying why.
//!
//! What goes to the GET streams goes to every session alike, so one
//! bounded replay buffer with one sequence of event ids serves them all
//! (a session replays only what came after it opened): a client that
//! reconnects with `Last-Event-ID` gets what it missed, as far back as the
//! buffer reaches, and the memory it takes does not grow with the number
//! of sessions.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::body::{Body, sse_event};
use crate::client::Waiting;

/// Events one SSE stream may hold unread before its writer waits: enough
/// for a burst of progress and log lines, small enough that the bytes
/// held per stream stay bounded (each event is at most one capped
/// message).
pub(crate) const SSE_QUEUE: usize = 64;

/// How long a writer waits on a stream whose client does not read before
/// that stream is closed. Long enough for a client busy for a while (a
/// model thinking), short enough that a client that never reads does not
/// hold a server's notifications back for long.
pub(crate) const SLOW_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// GET-stream events kept for `Last-Event-ID`: a reconnect after a short
/// network blip finds what it missed; an older id gets what is left.
const REPLAY_EVENTS: usize = 256;

/// The bytes those events may take, whichever limit comes first: bounds
/// the memory the buffer holds whatever the servers send.
const REPLAY_BYTES: usize = 1 << 20;

/// A POST in flight: where its notifications go.
struct Flight {
    seq: u64,
    session: String,
    /// The server the request went to; `None`: any (or every) server.
    server: Option<usize>,
    token: Option<Value>,
    /// Whether the client takes an SSE answer (a request can reach it
    /// only on one).
    sse: bool,
    tx: mpsc::Sender<Value>,
}

/// Sessions at once; opening one more ends the oldest. Each holds a
/// little state and at most one stream, and clients that never DELETE
/// their sessions (most do not) must not grow the gateway without end.
const MAX_SESSIONS: usize = 1024;

#[derive(Default)]
struct Replay {
    events: VecDeque<(u64, Bytes)>,
    bytes: usize,
    next: u64,
}

#[derive(Default)]
struct ClientSession {
    /// The open GET stream, if any.
    stream: Option<mpsc::Sender<Bytes>>,
    /// The first event id this session may be sent (replays stop there).
    first_event: u64,
    /// When it was opened, among sessions: the oldest goes first.
    opened: u64,
    /// What the client declared in its initialize.
    caps: Value,
}

#[derive(Default)]
pub(crate) struct Hub {
    sessions: Mutex<HashMap<String, ClientSession>>,
    flights: Mutex<Vec<Flight>>,
    next_flight: AtomicU64,
    waiting: Arc<Waiting>,
    replay: Mutex<Replay>,
    next_session: AtomicU64,
}

/// Unregisters a flight when its POST is done, however it ends.
pub(crate) struct FlightGuard {
    hub: Arc<Hub>,
    seq: u64,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        lock(&self.hub.flights).retain(|f| f.seq != self.seq);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    pub(crate) fn open(&self, session: String, caps: Value) {
        let s = ClientSession {
            caps,
            first_event: lock(&self.replay).next,
            opened: self.next_session.fetch_add(1, Ordering::Relaxed),
            stream: None,
        };
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.opened)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(session, s);
    }

    /// A client's answer to a server's request; false if it is not one
    /// this session was asked.
    pub(crate) fn answer(&self, session: &str, msg: &Value) -> bool {
        self.waiting.answer(session, msg)
    }

    /// Passes server `server`'s request to the client whose call caused
    /// it (see the module's rule) and waits for its answer; the session
    /// bounds the wait.
    pub(crate) async fn server_request(&self, server: usize, msg: Value) -> Result<Value, Value> {
        let found = lock(&self.flights)
            .iter()
            .filter(|f| f.sse && f.server.is_none_or(|s| s == server))
            .max_by_key(|f| f.seq)
            .map(|f| (f.session.clone(), f.tx.clone()));
        let Some((session, tx)) = found else {
            return Err(
                json!({"code": -32601, "message": "no client call in flight (over SSE) to pass this request to"}),
            );
        };
        let caps = lock(&self.sessions)
            .get(&session)
            .map(|s| s.caps.clone())
            .unwrap_or_default();
        crate::client::takes(&caps, &msg)?;
        let (request, _guard, answer) = self.waiting.register(&session, &msg);
        tx.send_timeout(request, SLOW_CLIENT_TIMEOUT)
            .await
            .map_err(
                |_| json!({"code": -32603, "message": "the client is not reading its stream"}),
            )?;
        crate::client::outcome(answer.await)
    }

    pub(crate) fn contains(&self, session: &str) -> bool {
        lock(&self.sessions).contains_key(session)
    }

    /// Ends a session (its GET stream with it); false if there was none.
    pub(crate) fn close(&self, session: &str) -> bool {
        let removed = lock(&self.sessions).remove(session).is_some();
        lock(&self.flights).retain(|f| f.session != session);
        removed
    }

    /// Registers a POST in flight; its notifications come out of the
    /// returned receiver until the guard is dropped.
    pub(crate) fn flight(
        self: &Arc<Self>,
        session: &str,
        server: Option<usize>,
        token: Option<Value>,
        sse: bool,
    ) -> (FlightGuard, mpsc::Receiver<Value>) {
        let (tx, rx) = mpsc::channel(SSE_QUEUE);
        let seq = self.next_flight.fetch_add(1, Ordering::Relaxed);
        lock(&self.flights).push(Flight {
            seq,
            session: session.to_owned(),
            server,
            token,
            sse,
            tx,
        });
        (
            FlightGuard {
                hub: self.clone(),
                seq,
            },
            rx,
        )
    }

    /// Opens `session`'s GET stream (closing the one before), first
    /// replaying what came after `last_event`. `None`: no such session.
    pub(crate) fn stream(&self, session: &str, last_event: Option<u64>) -> Option<Body> {
        // Both locks, in `broadcast`'s order, so no event falls between
        // the replay and the new stream.
        let replay = lock(&self.replay);
        let mut sessions = lock(&self.sessions);
        let s = sessions.get_mut(session)?;
        let (tx, rx) = mpsc::channel(SSE_QUEUE);
        let prefix = match last_event {
            Some(last) => replay
                .events
                .iter()
                .filter(|(id, _)| *id > last && *id >= s.first_event)
                .map(|(_, b)| b.clone())
                .collect(),
            None => VecDeque::new(),
        };
        s.stream = Some(tx);
        Some(Body::Stream { prefix, rx })
    }

    /// Routes one notification from server `server` (see the module's
    /// rule).
    pub(crate) async fn route(&self, server: usize, note: Value) {
        let method = note["method"].as_str().unwrap_or("");
        let to_flight = {
            let flights = lock(&self.flights);
            // A POST answered with JSON reads nothing before its answer,
            // so only one that takes SSE can carry a notification.
            let serves = |f: &&Flight| f.sse && f.server.is_none_or(|s| s == server);
            match method {
                "notifications/progress" => {
                    let token = &note["params"]["progressToken"];
                    let found = flights
                        .iter()
                        .filter(serves)
                        .find(|f| f.token.as_ref() == Some(token));
                    match found {
                        Some(f) => Some(f.tx.clone()),
                        None => return,
                    }
                }
                "notifications/message" => flights
                    .iter()
                    .filter(serves)
                    .max_by_key(|f| f.seq)
                    .map(|f| f.tx.clone()),
                _ => None,
            }
        };
        match to_flight {
            // A POST whose client does not read is its own loss: its
            // stream ends when the wait runs out (see `post_stream`).
            Some(tx) => {
                let _ = tx.send_timeout(note, SLOW_CLIENT_TIMEOUT).await;
            }
            None => self.broadcast(&note).await,
        }
    }

    /// Sends `note` on every session's GET stream, keeping it for replay.
    /// The streams are written to at once, so one slow client holds the
    /// others back no longer than itself.
    async fn broadcast(&self, note: &Value) {
        let mut streams = Vec::new();
        {
            let mut replay = lock(&self.replay);
            let id = replay.next;
            replay.next += 1;
            let event = sse_event(Some(id), note);
            replay.bytes += event.len();
            replay.events.push_back((id, event.clone()));
            while replay.events.len() > REPLAY_EVENTS || replay.bytes > REPLAY_BYTES {
                match replay.events.pop_front() {
                    Some((_, b)) => replay.bytes -= b.len(),
                    None => break,
                }
            }
            let sessions = lock(&self.sessions);
            for (name, s) in sessions.iter() {
                if let Some(tx) = &s.stream {
                    streams.push((name.clone(), tx.clone(), event.clone()));
                }
            }
        }
        let mut sends = tokio::task::JoinSet::new();
        for (name, tx, event) in streams {
            sends.spawn(async move {
                let sent = tx.send_timeout(event, SLOW_CLIENT_TIMEOUT).await.is_ok();
                (name, tx, sent)
            });
        }
        while let Some(done) = sends.join_next().await {
            let Ok((name, tx, false)) = done else {
                continue;
            };
            // Gone or not reading: close the stream (the client can
            // resume from the replay buffer with `Last-Event-ID`).
            if let Some(s) = lock(&self.sessions).get_mut(&name)
                && s.stream.as_ref().is_some_and(|t| t.same_channel(&tx))
            {
                s.stream = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(n: u64) -> Value {
        json!({"jsonrpc": "2.0", "method": "notifications/resources/list_changed", "params": {"n": n}})
    }

    /// A GET stream nobody reads: the writer waits up to the timeout, then
    /// the stream is closed; the events stay in the replay buffer.
    #[tokio::test(start_paused = true)]
    async fn a_stream_nobody_reads_is_closed_after_the_wait() {
        let hub = Hub::default();
        hub.open("s".into(), Value::Null);
        let _unread = hub.stream("s", None).expect("a session");
        for n in 0..SSE_QUEUE as u64 {
            hub.route(0, note(n)).await;
        }
        let before = tokio::time::Instant::now();
        hub.route(0, note(999)).await;
        assert!(before.elapsed() >= SLOW_CLIENT_TIMEOUT);
        assert!(lock(&hub.sessions)["s"].stream.is_none());
        // Later events do not wait at all.
        let before = tokio::time::Instant::now();
        hub.route(0, note(1000)).await;
        assert!(before.elapsed() < Duration::from_secs(1));
    }

    /// The replay buffer keeps at most REPLAY_EVENTS, and a resumed
    /// stream gets what came after the id it names.
    #[tokio::test(start_paused = true)]
    async fn replay_is_bounded_and_resumes_after_the_id() {
        let hub = Hub::default();
        hub.open("s".into(), Value::Null);
        for n in 0..(REPLAY_EVENTS as u64 + 10) {
            hub.route(0, note(n)).await;
        }
        {
            let replay = lock(&hub.replay);
            assert_eq!(replay.events.len(), REPLAY_EVENTS);
            assert!(replay.bytes <= REPLAY_BYTES);
        }
        let last = REPLAY_EVENTS as u64 + 5;
        let Some(Body::Stream { prefix, .. }) = hub.stream("s", Some(last)) else {
            panic!("a stream");
        };
        assert_eq!(prefix.len(), 4);
        assert!(String::from_utf8_lossy(&prefix[0]).starts_with(&format!("id: {}\n", last + 1)));
    }

    /// Past MAX_SESSIONS, the oldest session ends; a session opened
    /// after an event does not get it replayed.
    #[tokio::test(start_paused = true)]
    async fn sessions_are_bounded_and_replay_only_their_own_events() {
        let hub = Hub::default();
        hub.open("first".into(), Value::Null);
        hub.route(0, note(0)).await;
        hub.route(0, note(1)).await;
        for n in 1..MAX_SESSIONS {
            hub.open(format!("s{n}"), Value::Null);
        }
        assert!(hub.contains("first"));
        let Some(Body::Stream { prefix, .. }) = hub.stream("s1", Some(0)) else {
            panic!("a stream");
        };
        assert!(prefix.is_empty(), "event 1 came before s1 opened");
        let Some(Body::Stream { prefix, .. }) = hub.stream("first", Some(0)) else {
            panic!("a stream");
        };
        assert_eq!(prefix.len(), 1, "but not before first");
        hub.open("one more".into(), Value::Null);
        assert!(!hub.contains("first"));
        assert!(hub.contains("s1") && hub.contains("one more"));
    }

    /// Progress goes to the POST that carried its token, logging to the
    /// latest POST to that server.
    #[tokio::test(start_paused = true)]
    async fn progress_and_logging_go_to_their_post() {
        let hub = Arc::new(Hub::default());
        hub.open("a".into(), Value::Null);
        hub.open("b".into(), Value::Null);
        let (_ga, mut ra) = hub.flight("a", Some(0), Some(json!("tok-a")), true);
        let (_gb, mut rb) = hub.flight("b", Some(1), Some(json!("tok-b")), true);
        let progress = |t: &str| json!({"method": "notifications/progress", "params": {"progressToken": t, "progress": 1}});
        hub.route(0, progress("tok-a")).await;
        hub.route(1, progress("tok-b")).await;
        // A token sent by another server's request is not this one's.
        hub.route(1, progress("tok-a")).await;
        hub.route(
            1,
            json!({"method": "notifications/message", "params": {"level": "info"}}),
        )
        .await;
        assert_eq!(ra.try_recv().ok(), Some(progress("tok-a")));
        assert!(ra.try_recv().is_err());
        assert_eq!(rb.try_recv().ok(), Some(progress("tok-b")));
        assert_eq!(
            rb.try_recv().ok().map(|m| m["method"].clone()),
            Some(json!("notifications/message"))
        );
    }
}
