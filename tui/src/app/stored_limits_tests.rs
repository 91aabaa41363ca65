//! A reopened session shows each stored card against the limits its call
//! ran under (recorded in the result item's meta), not today's defaults.

use std::time::Duration;

use bulkhead_host::CallLimits;
use bulkhead_ipc::StreamId;
use bulkhead_store::{NewSession, ResultEnd, SessionId, Store, StoreOptions};
use tokio::sync::mpsc;

use super::state::App;
use super::store_io::StoreIo;
use super::theme::Theme;

fn record(store: &Store, session: SessionId, end: &ResultEnd) {
    let mut w = store
        .begin_result(session, "shell", None, r#"{"command":"yes"}"#)
        .expect("begin");
    w.write(store, StreamId::Stdout, b"y\ny\n").expect("write");
    w.finish(store, end).expect("finish");
}

#[test]
fn a_reopened_session_shows_the_limits_its_calls_ran_under() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sessions.db");
    let limits = CallLimits {
        memory_bytes: 300 << 20,
        max_output_bytes: 3 << 20,
        timeout: Duration::from_secs(420),
        ..CallLimits::default()
    };
    let completed = ResultEnd {
        status: "completed".into(),
        bytes_seen: 4,
        ..ResultEnd::default()
    };
    let session = {
        let store = Store::open(&path).expect("open");
        let session = store
            .create_session(&NewSession {
                title: "limits".into(),
                model: None,
                config_json: None,
            })
            .expect("session");
        // One recorded before meta carried limits, one after.
        record(&store, session, &completed);
        record(&store, session, &completed.clone().with_limits(&limits));
        session
    };
    let (wake, _ui) = mpsc::channel(4);
    let io = StoreIo::open(&path, StoreOptions::default(), wake).expect("store io");
    let mut app = App::new(Theme { color: false });
    super::session_view::open(&mut app, &io, &session.to_string()).expect("reopen");
    let shown: Vec<&CallLimits> = app.cards().map(|c| &c.limits).collect();
    assert_eq!(shown, [&CallLimits::default(), &limits]);
}
