//! Crash safety of the session store: a writer is SIGKILLed at a different
//! point of a burst of writes, 30 times over the same store. After each
//! kill the store opens, passes `PRAGMA integrity_check`, and holds every
//! item, every flushed byte and every finished result whose write returned
//! (the writer prints each acknowledgement after the call returned).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use bulkhead_store::{ItemId, ResultState, Retention, SessionId, Store};
use bulkhead_tests::bin;

const ROUNDS: u64 = 30;

#[derive(Default)]
struct Acked {
    sessions: Vec<SessionId>,
    items: Vec<ItemId>,
    /// Bytes each result had committed when the writer said so.
    flushed: HashMap<ItemId, u64>,
    finished: HashMap<ItemId, u64>,
}

impl Acked {
    fn take(&mut self, line: &str) {
        let words: Vec<&str> = line.split(' ').collect();
        let n = |i: usize| words[i].parse::<i64>().expect("a number");
        match words[0] {
            "session" => self.sessions.push(SessionId(n(1))),
            "item" => self.items.push(ItemId(n(1))),
            "flushed" => {
                self.flushed.insert(ItemId(n(1)), n(2) as u64);
            }
            "result" => {
                self.finished.insert(ItemId(n(1)), n(2) as u64);
            }
            other => panic!("unexpected line from store-writer: {other}"),
        }
    }
}

#[test]
fn every_acknowledged_write_survives_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sessions.db");
    let mut acked = Acked::default();
    for round in 0..ROUNDS {
        let mut child = Command::new(bin("store-writer"))
            .args([
                "burst",
                path.to_str().expect("utf-8 path"),
                &round.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn store-writer");
        // Kill after a number of acknowledgements that differs per round
        // (1 to 60): the writer is then somewhere in its next write.
        let kill_after = 1 + (round * 37) % 60;
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut seen = 0;
        while seen < kill_after {
            let line = lines
                .next()
                .expect("store-writer ended early")
                .expect("read a line");
            acked.take(&line);
            seen += 1;
        }
        child.kill().expect("SIGKILL");
        // Lines written before the kill also acknowledge writes.
        for line in lines.map_while(Result::ok) {
            acked.take(&line);
        }
        child.wait().expect("reap");

        let store = Store::open(&path).expect("the store opens after a kill");
        let problems = store.integrity_check().expect("integrity_check runs");
        assert!(problems.is_empty(), "round {round}: {problems:?}");
        for &s in &acked.sessions {
            store
                .session(s)
                .expect("an acknowledged session is present");
        }
        for &id in &acked.items {
            store.item(id).expect("an acknowledged item is present");
        }
        for (&id, &bytes) in &acked.flushed {
            let item = store.item(id).expect("a flushed result is present");
            assert!(
                item.payload_bytes >= bytes,
                "round {round}: result {id} holds {} bytes, {bytes} were acknowledged",
                item.payload_bytes
            );
        }
        for (&id, &bytes) in &acked.finished {
            let item = store.item(id).expect("a finished result is present");
            assert_eq!(item.payload_bytes, bytes, "round {round}: result {id}");
            let info = item.result.expect("a result");
            assert_eq!(info.state, ResultState::Finished);
            assert_eq!(info.bytes_seen, bytes);
            // The stored bytes read back whole, the last one included.
            let last = store
                .read_payload(id, bytes.saturating_sub(1), 1)
                .expect("read");
            assert_eq!(last.data.len(), usize::from(bytes > 0));
        }
    }
    // Every writer is dead now: gc marks each result it left running
    // `interrupted`, and keeps what those results had committed.
    let store = Store::open(&path).expect("open");
    let report = store.gc(&Retention::default()).expect("gc");
    let mut interrupted = 0;
    for &s in &acked.sessions {
        store
            .for_each_item(s, 0, |item| {
                if let Some(r) = &item.result {
                    assert_ne!(
                        r.state,
                        ResultState::Running,
                        "result {} still running",
                        item.id
                    );
                    interrupted += u64::from(r.state == ResultState::Interrupted);
                }
                Ok::<(), ()>(())
            })
            .expect("items")
            .expect("visit");
    }
    assert_eq!(interrupted, report.results_interrupted);
    assert!(store.integrity_check().expect("check").is_empty());
    assert!(
        acked.finished.len() >= 5 && acked.items.len() >= 100,
        "too few writes acknowledged to mean anything: {} results, {} items",
        acked.finished.len(),
        acked.items.len()
    );
}
