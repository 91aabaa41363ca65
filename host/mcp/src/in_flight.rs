//! A gateway's client requests in flight, by client session and id, so
//! that a client's `notifications/cancelled` stops the one it names: its
//! task ends without an answer (a cancelled request gets none), and the
//! server session it was waiting on cancels it at the server in turn.
//! Over stdio there is one client, whose session is `""`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio::sync::oneshot;

#[derive(Default)]
pub(crate) struct InFlight {
    /// Tells apart two requests a client gave the same id, so that the end
    /// of one never unregisters the other.
    serial: AtomicU64,
    by_id: Mutex<HashMap<String, (u64, oneshot::Sender<()>)>>,
}

/// A registered request; dropping it (the request's end) unregisters it.
pub(crate) struct Ticket {
    in_flight: Arc<InFlight>,
    key: String,
    serial: u64,
}

impl InFlight {
    /// Registers request `id` of client session `session`: the receiver
    /// gets `Ok` if the client cancels it.
    pub(crate) fn start(
        self: &Arc<Self>,
        session: &str,
        id: &Value,
    ) -> (Ticket, oneshot::Receiver<()>) {
        let (cancel, cancelled) = oneshot::channel();
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let key = key(session, id);
        self.lock().insert(key.clone(), (serial, cancel));
        let ticket = Ticket {
            in_flight: self.clone(),
            key,
            serial,
        };
        (ticket, cancelled)
    }

    /// A notification of client session `session`: if it is
    /// `notifications/cancelled` for a request of its still in flight, that
    /// request is stopped.
    pub(crate) fn notified(&self, session: &str, msg: &Value) {
        if msg["method"] != "notifications/cancelled" {
            return;
        }
        let key = key(session, &msg["params"]["requestId"]);
        if let Some((_, cancel)) = self.lock().remove(&key) {
            let _ = cancel.send(());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, oneshot::Sender<()>)>> {
        // The map is whole whatever a panicking holder was doing.
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A session id is 32 hex digits (or empty): the NUL cannot be in it.
fn key(session: &str, id: &Value) -> String {
    format!("{session}\0{id}")
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut by_id = self.in_flight.lock();
        if by_id
            .get(&self.key)
            .is_some_and(|(serial, _)| *serial == self.serial)
        {
            by_id.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cancel(id: Value) -> Value {
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": id}})
    }

    #[test]
    fn a_cancel_stops_the_request_it_names_and_no_other() {
        let in_flight = Arc::new(InFlight::default());
        let (_a, mut a) = in_flight.start("s", &json!(1));
        let (_b, mut b) = in_flight.start("s", &json!("1"));
        let (_c, mut c) = in_flight.start("t", &json!(1));
        let progress = json!({"method": "notifications/progress", "params": {"requestId": 1}});
        in_flight.notified("s", &progress);
        in_flight.notified("s", &cancel(json!(1)));
        assert_eq!(a.try_recv(), Ok(()));
        assert!(b.try_recv().is_err(), "\"1\" is not 1");
        assert!(c.try_recv().is_err(), "another session's 1");
        in_flight.notified("s", &cancel(json!("1")));
        assert_eq!(b.try_recv(), Ok(()));
    }

    #[test]
    fn an_ended_request_unregisters_itself_but_not_a_later_one_of_its_id() {
        let in_flight = Arc::new(InFlight::default());
        let (first, _) = in_flight.start("", &json!(7));
        let (_second, mut second) = in_flight.start("", &json!(7));
        drop(first);
        in_flight.notified("", &cancel(json!(7)));
        assert_eq!(second.try_recv(), Ok(()), "the later 7 is still registered");
        assert!(in_flight.lock().is_empty());
    }
}
