//! Where a server's notification goes over HTTP.
//!
//! The rule (also in the README's `mcp serve` section):
//! - `notifications/progress` goes to the POST whose request carried that
//!   `progressToken` (and went to that server); with no such POST in
//!   flight it is dropped, as progress for a finished request means
//!   nothing. The server is given a token of the gateway's, one per POST,
//!   and the client gets its progress back under its own: two sessions'
//!   requests often carry the same token.
//! - `notifications/message` (logging) goes to the most recently started
//!   POST still in flight that went to that server (or to every server,
//!   like `resources/list`; not one the gateway answers alone, like
//!   `tools/list`); with none in flight, to the GET stream of
//!   every session that has one.
//! - Only a POST whose client accepts SSE counts as in flight here: one
//!   that wants JSON could not carry anything but its answer.
//! - Everything else (list changes, resource updates) goes to the GET
//!   stream of every session that has one.
//!
//! - A server's request (sampling, elicitation, roots) goes to the client
//!   session whose call that server is serving: the one session with a
//!   POST in flight to that server, on its latest such POST that takes
//!   SSE, if that client declared the capability; its answer is a later
//!   POST with the id the gateway gave it. With no such POST, or POSTs of
//!   two sessions in flight to that server (nothing in the request says
//!   which it serves), or no capability, the server gets an error saying
//!   why, and no client sees the request.
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
use super::budget::{Charged, GatewayBudget, StreamBudget, StreamTx};
use crate::client::Waiting;
use crate::route::Reach;

/// Events one SSE stream may hold unread before its writer waits: enough
/// for a burst of progress and log lines. The bytes they hold are bounded
/// apart from this, by `budget::STREAM_BYTES` per stream and
/// `budget::GATEWAY_BYTES` for all, as each event may be a capped message
/// of several MiB; this bounds what many tiny events cost besides.
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
    /// The servers the request went to.
    reach: Reach,
    /// The request's progress token: the gateway's own, which the server
    /// was given, and the client's, which its progress goes back under.
    token: Option<(Value, Value)>,
    /// Whether the client takes an SSE answer (a request can reach it
    /// only on one).
    sse: bool,
    tx: StreamTx,
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
    stream: Option<StreamTx>,
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
    /// The bytes every stream's unread events take, together.
    budget: GatewayBudget,
}

/// Unregisters a flight when its POST is done, however it ends.
pub(crate) struct FlightGuard {
    hub: Arc<Hub>,
    seq: u64,
    /// The progress token the server is to be given in place of the
    /// client's (`None`: the request had none).
    pub(crate) progress_token: Option<Value>,
    /// The budget of the POST's stream, which its answer is charged to.
    pub(crate) budget: StreamBudget,
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
        let method = msg["method"].as_str().unwrap_or("").to_owned();
        let (session, tx) = self
            .asked_client(server)
            .map_err(|why| json!({"code": -32601, "message": format!("bulkhead's gateway cannot pass {method} to a client: {why}")}))?;
        let caps = lock(&self.sessions)
            .get(&session)
            .map(|s| s.caps.clone())
            .unwrap_or_default();
        crate::client::takes(&caps, &msg)?;
        let (request, _guard, answer) = self.waiting.register(&session, &msg);
        if !tx.send(sse_event(None, &request)).await {
            return Err(json!({"code": -32603, "message": "the client is not reading its stream"}));
        }
        crate::client::outcome(answer.await)
    }

    /// The one client session whose calls server `server` is serving, and
    /// the stream of its latest such call; or why there is none. Nothing
    /// in a server's request says which call it serves (stdio carries no
    /// such link), so when calls of two sessions are in flight to the
    /// server, neither is asked: guessing could show one client what
    /// another's call is about.
    fn asked_client(&self, server: usize) -> Result<(String, StreamTx), &'static str> {
        let flights = lock(&self.flights);
        let mut serving = flights.iter().filter(|f| f.reach.includes(server));
        let Some(first) = serving.next() else {
            return Err("no client's call to this server is in flight");
        };
        let mut latest = first.sse.then_some(first);
        for f in serving {
            if f.session != first.session {
                return Err(
                    "calls of more than one client session are in flight to this server, and nothing tells which of them the request serves",
                );
            }
            if f.sse && latest.is_none_or(|l| f.seq > l.seq) {
                latest = Some(f);
            }
        }
        latest
            .map(|f| (f.session.clone(), f.tx.clone()))
            .ok_or("the client's call does not accept text/event-stream, the only way a request reaches it before the call's answer")
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
    /// returned receiver until the guard is dropped. A client's progress
    /// token is replaced by one of the gateway's (the guard's
    /// `progress_token`), which the request must carry to the server:
    /// clients choose tokens alone, and two sessions' calls to one server
    /// often carry the same (the SDKs use the request id), so the client's
    /// token cannot tell whose call a progress notification is for.
    pub(crate) fn flight(
        self: &Arc<Self>,
        session: &str,
        reach: Reach,
        token: Option<Value>,
        sse: bool,
    ) -> (FlightGuard, mpsc::Receiver<Charged>) {
        let (tx, rx) = self.budget.channel();
        let budget = tx.budget().clone();
        let seq = self.next_flight.fetch_add(1, Ordering::Relaxed);
        let token = token.map(|theirs| (json!(format!("bulkhead-progress-{seq}")), theirs));
        let progress_token = token.as_ref().map(|(ours, _)| ours.clone());
        lock(&self.flights).push(Flight {
            seq,
            session: session.to_owned(),
            reach,
            token,
            sse,
            tx,
        });
        (
            FlightGuard {
                hub: self.clone(),
                seq,
                progress_token,
                budget,
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
        let (tx, rx) = self.budget.channel();
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
    pub(crate) async fn route(&self, server: usize, mut note: Value) {
        let method = note["method"].as_str().unwrap_or("");
        let to_flight = {
            let flights = lock(&self.flights);
            // A POST answered with JSON reads nothing before its answer,
            // so only one that takes SSE can carry a notification.
            let serves = |f: &&Flight| f.sse && f.reach.includes(server);
            match method {
                "notifications/progress" => {
                    let token = &note["params"]["progressToken"];
                    let found = flights.iter().filter(serves).find_map(|f| match &f.token {
                        Some((ours, theirs)) if ours == token => Some((f, theirs)),
                        _ => None,
                    });
                    let Some((f, theirs)) = found else {
                        return;
                    };
                    note["params"]["progressToken"] = theirs.clone();
                    Some(f.tx.clone())
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
                let _ = tx.send(sse_event(None, &note)).await;
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
                let sent = tx.send(event).await;
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

    /// The message an SSE event carries.
    fn message(event: &Charged) -> Value {
        let text = std::str::from_utf8(event.bytes()).expect("UTF-8");
        let data = text
            .strip_prefix("data: ")
            .and_then(|d| d.strip_suffix("\n\n"))
            .expect("one data line");
        serde_json::from_str(data).expect("JSON")
    }

    /// The next message queued on a stream, if any.
    fn next(rx: &mut mpsc::Receiver<Charged>) -> Option<Value> {
        rx.try_recv().ok().map(|e| message(&e))
    }

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

    /// Progress goes to the POST that carried its token, under the
    /// client's token, though two sessions chose the same one; logging to
    /// the latest POST to that server.
    #[tokio::test(start_paused = true)]
    async fn progress_and_logging_go_to_their_post() {
        let hub = Arc::new(Hub::default());
        hub.open("a".into(), Value::Null);
        hub.open("b".into(), Value::Null);
        let (ga, mut ra) = hub.flight("a", Reach::One(0), Some(json!(1)), true);
        let (gb, mut rb) = hub.flight("b", Reach::One(0), Some(json!(1)), true);
        let (ours_a, ours_b) = (
            ga.progress_token.clone().expect("a token"),
            gb.progress_token.clone().expect("a token"),
        );
        assert_ne!(ours_a, ours_b);
        let progress = |t: &Value, n: u64| json!({"method": "notifications/progress", "params": {"progressToken": t, "progress": n}});
        hub.route(0, progress(&ours_b, 1)).await;
        hub.route(0, progress(&ours_a, 2)).await;
        // A token sent to another server is not this one's.
        hub.route(1, progress(&ours_a, 3)).await;
        // Nor is the client's own, which the server never saw.
        hub.route(0, progress(&json!(1), 4)).await;
        hub.route(
            0,
            json!({"method": "notifications/message", "params": {"level": "info"}}),
        )
        .await;
        assert_eq!(next(&mut ra), Some(progress(&json!(1), 2)));
        assert!(ra.try_recv().is_err());
        assert_eq!(next(&mut rb), Some(progress(&json!(1), 1)));
        assert_eq!(
            next(&mut rb).map(|m| m["method"].clone()),
            Some(json!("notifications/message"))
        );
        assert!(rb.try_recv().is_err());
    }

    /// A server's request goes to the one session whose call it serves;
    /// with two sessions' calls in flight to that server it goes to none,
    /// and a call the gateway answers alone (`tools/list`) serves no
    /// server.
    #[tokio::test(start_paused = true)]
    async fn a_servers_request_goes_only_to_the_session_it_serves() {
        let hub = Arc::new(Hub::default());
        let caps = json!({"sampling": {}});
        hub.open("a".into(), caps.clone());
        hub.open("b".into(), caps.clone());
        let sample =
            json!({"jsonrpc": "2.0", "id": 7, "method": "sampling/createMessage", "params": {}});
        let (_list, _) = hub.flight("b", Reach::Gateway, None, true);
        let (_ga, mut ra) = hub.flight("a", Reach::One(0), None, true);
        let (_gb, mut rb) = hub.flight("b", Reach::One(1), None, true);
        let hub2 = hub.clone();
        let asked = tokio::spawn(async move { hub2.server_request(0, sample).await });
        let request = message(&ra.recv().await.expect("session a is asked"));
        assert_eq!(request["method"], "sampling/createMessage");
        assert!(rb.try_recv().is_err(), "session b is not asked");
        let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": {"ok": true}});
        assert!(!hub.answer("b", &answer), "b cannot answer a's request");
        assert!(hub.answer("a", &answer));
        assert_eq!(asked.await.expect("joined"), Ok(json!({"ok": true})));

        // Now b calls server 0 too: whose call it serves is unknown.
        let (gb0, mut rb0) = hub.flight("b", Reach::All, None, true);
        let sample =
            json!({"jsonrpc": "2.0", "id": 8, "method": "sampling/createMessage", "params": {}});
        let refused = hub.server_request(0, sample).await.expect_err("refused");
        assert!(
            refused["message"]
                .as_str()
                .unwrap_or("")
                .contains("more than one client session"),
            "{refused}"
        );
        assert!(ra.try_recv().is_err() && rb0.try_recv().is_err());

        // A call that takes no SSE cannot carry the request.
        drop(gb0);
        let (_gj, _) = hub.flight("a", Reach::One(2), None, false);
        let sample = json!({"jsonrpc": "2.0", "id": 9, "method": "roots/list"});
        let refused = hub.server_request(2, sample).await.expect_err("refused");
        assert!(
            refused["message"]
                .as_str()
                .unwrap_or("")
                .contains("text/event-stream"),
            "{refused}"
        );
    }
}
