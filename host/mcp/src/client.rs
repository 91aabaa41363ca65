//! Passing a server's requests (sampling, elicitation, roots) on to the
//! gateway's own client, over stdio or HTTP alike: the request gets an id
//! of the gateway's (servers' ids could collide), goes out, and the
//! client's answer with that id comes back to the server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The client capability a server's request needs, or `None` if the
/// gateway does not pass that method on.
pub(crate) fn capability(method: &str) -> Option<&'static str> {
    match method {
        "sampling/createMessage" => Some("sampling"),
        "elicitation/create" => Some("elicitation"),
        "roots/list" => Some("roots"),
        _ => None,
    }
}

/// Whether a client that declared `caps` in its initialize takes `msg`.
pub(crate) fn takes(caps: &Value, msg: &Value) -> Result<(), Value> {
    let method = msg["method"].as_str().unwrap_or("");
    match capability(method) {
        Some(cap) if caps.get(cap).is_some_and(|c| !c.is_null()) => Ok(()),
        Some(cap) => Err(json!({
            "code": -32601,
            "message": format!("the client behind bulkhead's gateway did not declare the \"{cap}\" capability, so {method} cannot reach it"),
        })),
        None => Err(json!({
            "code": -32601,
            "message": format!("bulkhead's gateway does not pass \"{method}\" from servers to its client"),
        })),
    }
}

/// Requests passed to a client and not yet answered.
#[derive(Default)]
pub(crate) struct Waiting {
    /// By the gateway's id: who may answer (an HTTP session, or "" for
    /// the stdio client) and where the answer goes.
    map: Mutex<HashMap<String, (String, oneshot::Sender<Value>)>>,
    next: AtomicU64,
}

/// Forgets a request when its wait ends, answered or not (a timeout drops
/// the waiting future, and with it this).
pub(crate) struct WaitGuard {
    waiting: Arc<Waiting>,
    id: String,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        lock(&self.waiting.map).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Waiting {
    /// `msg` with an id of the gateway's, and where its answer will come.
    pub(crate) fn register(
        self: &Arc<Self>,
        owner: &str,
        msg: &Value,
    ) -> (Value, WaitGuard, oneshot::Receiver<Value>) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("bulkhead-{n}");
        let (tx, rx) = oneshot::channel();
        lock(&self.map).insert(id.clone(), (owner.to_owned(), tx));
        let mut out = msg.clone();
        out["id"] = json!(id);
        let guard = WaitGuard {
            waiting: self.clone(),
            id,
        };
        (out, guard, rx)
    }

    /// A client's answer from `owner`: true if it answered one of ours.
    pub(crate) fn answer(&self, owner: &str, msg: &Value) -> bool {
        let Some(id) = msg["id"].as_str() else {
            return false;
        };
        let mut map = lock(&self.map);
        if map.get(id).is_none_or(|(o, _)| o != owner) {
            return false;
        }
        match map.remove(id) {
            Some((_, tx)) => tx.send(msg.clone()).is_ok(),
            None => false,
        }
    }
}

/// The client's answer as the server should get it.
pub(crate) fn outcome(answer: Result<Value, oneshot::error::RecvError>) -> Result<Value, Value> {
    let answer = answer
        .map_err(|_| json!({"code": -32603, "message": "the client went away before answering"}))?;
    match (answer.get("result"), answer.get("error")) {
        (Some(r), _) => Ok(r.clone()),
        (None, Some(e)) => Err(e.clone()),
        (None, None) => Err(
            json!({"code": -32603, "message": "the client's answer has neither result nor error"}),
        ),
    }
}
