//! Requests over HTTP that an injected fault (`timeout`, `drop`) leaves
//! unanswered: their POSTs held open, bounded (`crate::serve_faults`).

use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use crate::serve_faults::Handled;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A list of waiting requests: still meaningful after a panic elsewhere.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Requests over HTTP a fault leaves unanswered (`timeout`, `drop`): each
/// POST is held open, without an answer, until its client cancels it
/// (`notifications/cancelled`), its session ends, or more than
/// [`MAX_HELD`] are held (the oldest is let go): bounded whatever the
/// client does. Under stdio nothing is held: there the request just gets
/// no line.
#[derive(Default)]
pub(crate) struct Held {
    waiting: Mutex<std::collections::VecDeque<HeldRequest>>,
}

struct HeldRequest {
    session: String,
    /// The request's id, as JSON text.
    id: String,
    /// Dropped to let the request go.
    _release: tokio::sync::oneshot::Sender<()>,
}

/// POSTs held open at once. A client that never cancels its unanswered
/// requests would otherwise hold one task and one connection each for
/// ever; a soak's worth of concurrent ones fits.
pub(crate) const MAX_HELD: usize = 256;

impl Held {
    /// Holds request `id` of `session` until it is let go.
    pub(crate) async fn hold(&self, session: &str, id: &Value) {
        let (release, released) = tokio::sync::oneshot::channel();
        {
            let mut waiting = lock(&self.waiting);
            if waiting.len() >= MAX_HELD {
                waiting.pop_front();
            }
            waiting.push_back(HeldRequest {
                session: session.to_owned(),
                id: id.to_string(),
                _release: release,
            });
        }
        let _ = released.await;
    }

    /// A client's `notifications/cancelled`: lets its request go.
    pub(crate) fn cancelled(&self, session: &str, msg: &Value) {
        if msg["method"] != "notifications/cancelled" {
            return;
        }
        let id = msg["params"]["requestId"].to_string();
        lock(&self.waiting).retain(|h| !(h.session == session && h.id == id));
    }

    /// The session ended: lets all its requests go.
    pub(crate) fn session_ended(&self, session: &str) {
        lock(&self.waiting).retain(|h| h.session != session);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.waiting).len()
    }
}

/// A client's request over HTTP: its answer, or `None` for none (the
/// POST's stream is then cut). `close` ends the client's session.
pub(crate) async fn http_answer(
    gateway: &crate::Gateway,
    session: &str,
    id: Value,
    msg: &Value,
    close: impl FnOnce(&str),
) -> Option<Value> {
    match gateway.handle_client(id.clone(), msg).await {
        Handled::Answer(v) => Some(v),
        Handled::Disconnect => {
            close(session);
            gateway.held.session_ended(session);
            None
        }
        Handled::Unanswered => {
            gateway.held.hold(session, &id).await;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    #[tokio::test]
    async fn held_requests_are_bounded_and_let_go_by_cancel_or_session_end() {
        let held = Arc::new(Held::default());
        let mut tasks = Vec::new();
        for n in 0..(MAX_HELD + 10) {
            let held = held.clone();
            let session = if n % 2 == 0 { "a" } else { "b" };
            tasks.push(tokio::spawn(async move {
                held.hold(session, &json!(n)).await;
            }));
            tokio::task::yield_now().await;
        }
        while held.len() < MAX_HELD {
            tokio::task::yield_now().await;
        }
        assert_eq!(held.len(), MAX_HELD);
        // The 10 oldest were let go.
        for t in tasks.drain(..10) {
            t.await.unwrap();
        }
        let last = MAX_HELD + 9;
        held.cancelled(
            "b",
            &json!({"method": "notifications/cancelled", "params": {"requestId": last}}),
        );
        assert_eq!(held.len(), MAX_HELD - 1);
        held.session_ended("a");
        held.session_ended("b");
        assert_eq!(held.len(), 0);
        for t in tasks {
            t.await.unwrap();
        }
    }
}
