//! A server's notifications on their way to the hub: each server's
//! [`note_queue`](crate::note_queue), routed in order by one task per
//! server.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

use super::hub::Hub;
use crate::note_queue::{self, Pending, Routed};
use crate::session::ServerSession;

/// Routes `session`'s notifications, server `server`, through `hub` until
/// the session ends; what it returns tells how far they have got.
pub(crate) fn spawn(hub: Arc<Hub>, server: usize, session: &ServerSession) -> Arc<Routed> {
    let (rx, routed) = note_queue::spawn(session);
    tokio::spawn(route(hub, server, rx, routed.clone()));
    routed
}

/// Routes the queued notifications in order; each one's bytes are given
/// back once the hub has queued it (or given up on its client).
async fn route(hub: Arc<Hub>, server: usize, mut rx: mpsc::Receiver<Pending>, routed: Arc<Routed>) {
    while let Some((bytes, permit)) = rx.recv().await {
        // It was serialized from a `Value` just now.
        if let Ok(note) = serde_json::from_slice::<Value>(&bytes) {
            drop(bytes);
            hub.route(server, note).await;
        }
        drop(permit);
        routed.add(1);
    }
}
