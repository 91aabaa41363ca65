//! `WorkerStreamValidator`: the host's state machine for a worker's stream.

use bulkhead_ipc::{
    Chunk, Confinement, Done, MAX_CHUNK_BYTES, PROTOCOL_VERSION, Progress, StreamId, ToolError,
    ToolErrorKind, ToolExit, Violation, WorkerMessage, WorkerStreamValidator, WorkerUsage,
};
use proptest::prelude::*;

fn hello(protocol: u32) -> WorkerMessage {
    WorkerMessage::Hello {
        protocol,
        worker_version: "test".into(),
        pid: 1,
    }
}

fn chunk(seq: u64, len: usize) -> WorkerMessage {
    WorkerMessage::Chunk(Chunk {
        // Alternate streams: seq is shared by both.
        stream: [StreamId::Stdout, StreamId::Stderr][(seq % 2) as usize],
        seq,
        data: vec![b'x'; len].into(),
    })
}

fn done() -> WorkerMessage {
    WorkerMessage::Done(Done {
        exit: ToolExit::Code(0),
        bytes_seen: 0,
        lines_seen: 0,
        stopped_at_output_cap: false,
        summary_json: None,
        usage: WorkerUsage::default(),
    })
}

fn error() -> WorkerMessage {
    WorkerMessage::Error(ToolError {
        kind: ToolErrorKind::Internal,
        message: "boom".into(),
    })
}

fn progress() -> WorkerMessage {
    WorkerMessage::Progress(Progress {
        message: "working".into(),
        done: 1,
        total: None,
    })
}

fn confined() -> WorkerMessage {
    WorkerMessage::Confined(Confinement::default())
}

fn usage() -> WorkerMessage {
    WorkerMessage::Usage(WorkerUsage::default())
}

/// A validator past a good Hello.
fn greeted() -> WorkerStreamValidator {
    let mut v = WorkerStreamValidator::new();
    v.accept(&hello(PROTOCOL_VERSION)).unwrap();
    v
}

#[test]
fn hello_must_come_first() {
    for (msg, name) in [
        (chunk(0, 1), "Chunk"),
        (confined(), "Confined"),
        (progress(), "Progress"),
        (usage(), "Usage"),
        (done(), "Done"),
        (error(), "Error"),
    ] {
        let mut v = WorkerStreamValidator::new();
        v.grant(10);
        assert_eq!(v.accept(&msg), Err(Violation::NoHello(name)));
    }
}

#[test]
fn version_mismatch_is_refused() {
    for protocol in [0, PROTOCOL_VERSION + 1, u32::MAX] {
        let mut v = WorkerStreamValidator::new();
        assert_eq!(
            v.accept(&hello(protocol)),
            Err(Violation::VersionMismatch {
                got: protocol,
                expected: PROTOCOL_VERSION
            })
        );
    }
}

#[test]
fn second_hello_is_refused() {
    let mut v = greeted();
    assert_eq!(
        v.accept(&hello(PROTOCOL_VERSION)),
        Err(Violation::RepeatedHello)
    );
}

#[test]
fn chunk_needs_credit() {
    let mut v = greeted();
    assert_eq!(v.credit(), 0);
    assert_eq!(v.accept(&chunk(0, 1)), Err(Violation::NoCredit));

    let mut v = greeted();
    v.grant(2);
    v.accept(&chunk(0, 1)).unwrap();
    v.accept(&chunk(1, 1)).unwrap();
    assert_eq!(v.credit(), 0);
    assert_eq!(v.accept(&chunk(2, 1)), Err(Violation::NoCredit));
}

#[test]
fn chunks_must_be_in_order() {
    let mut v = greeted();
    v.grant(10);
    assert_eq!(
        v.accept(&chunk(1, 1)),
        Err(Violation::OutOfOrder {
            expected: 0,
            got: 1
        })
    );

    let mut v = greeted();
    v.grant(10);
    v.accept(&chunk(0, 1)).unwrap();
    // A repeat, a gap and a wrap-around are all out of order.
    for got in [0, 2, u64::MAX] {
        assert_eq!(
            v.accept(&chunk(got, 1)),
            Err(Violation::OutOfOrder { expected: 1, got })
        );
    }
}

#[test]
fn chunk_size_is_bounded_and_nonzero() {
    let mut v = greeted();
    v.grant(10);
    assert_eq!(
        v.accept(&chunk(0, MAX_CHUNK_BYTES + 1)),
        Err(Violation::OversizedChunk {
            len: MAX_CHUNK_BYTES + 1,
            max: MAX_CHUNK_BYTES
        })
    );

    let mut v = greeted();
    v.grant(10);
    assert_eq!(v.accept(&chunk(0, 0)), Err(Violation::EmptyChunk));

    // Exactly the cap is fine.
    let mut v = greeted();
    v.grant(1);
    v.accept(&chunk(0, MAX_CHUNK_BYTES)).unwrap();
}

#[test]
fn nothing_after_the_end() {
    for end in [done(), error()] {
        let mut v = greeted();
        v.grant(10);
        assert!(!v.ended());
        v.accept(&end).unwrap();
        assert!(v.ended());
        for (msg, name) in [
            (hello(PROTOCOL_VERSION), "Hello"),
            (chunk(0, 1), "Chunk"),
            (confined(), "Confined"),
            (progress(), "Progress"),
            (usage(), "Usage"),
            (done(), "Done"),
            (error(), "Error"),
        ] {
            assert_eq!(v.accept(&msg), Err(Violation::AfterEnd(name)));
        }
        assert!(v.ended());
    }
}

#[test]
fn a_valid_exchange_is_accepted_and_spends_credit() {
    let mut v = WorkerStreamValidator::default();
    v.accept(&hello(PROTOCOL_VERSION)).unwrap();
    v.accept(&confined()).unwrap();
    v.grant(3);
    assert_eq!(v.credit(), 3);
    v.accept(&chunk(0, 10)).unwrap();
    assert_eq!(v.credit(), 2);
    v.accept(&progress()).unwrap();
    v.accept(&chunk(1, MAX_CHUNK_BYTES)).unwrap();
    assert_eq!(v.credit(), 1);
    v.accept(&usage()).unwrap();
    v.grant(2);
    assert_eq!(v.credit(), 3);
    v.accept(&chunk(2, 1)).unwrap();
    assert_eq!(v.credit(), 2);
    assert!(!v.ended());
    v.accept(&done()).unwrap();
    assert!(v.ended());
    // Leftover credit does not matter once the call ended.
    assert_eq!(v.credit(), 2);
}

#[test]
fn a_refused_chunk_changes_nothing() {
    let mut v = greeted();
    v.grant(1);
    assert!(v.accept(&chunk(5, 1)).is_err());
    assert!(v.accept(&chunk(0, 0)).is_err());
    assert!(v.accept(&chunk(0, MAX_CHUNK_BYTES + 1)).is_err());
    assert_eq!(v.credit(), 1);
    v.accept(&chunk(0, 1)).unwrap();
    assert_eq!(v.credit(), 0);
}

#[test]
fn credit_does_not_overflow() {
    let mut v = greeted();
    for _ in 0..4 {
        v.grant(u32::MAX);
    }
    assert_eq!(v.credit(), 4 * u64::from(u32::MAX));
}

proptest! {
    /// With credit granted in arbitrary installments, a worker may send
    /// exactly as many chunks as it was granted, no more.
    #[test]
    fn chunks_sent_equal_credit_granted(grants in prop::collection::vec(0u32..5, 1..20)) {
        let mut v = greeted();
        let mut seq = 0;
        for g in grants {
            v.grant(g);
            for _ in 0..g {
                v.accept(&chunk(seq, 1)).unwrap();
                seq += 1;
            }
            prop_assert_eq!(v.credit(), 0);
            prop_assert_eq!(v.accept(&chunk(seq, 1)), Err(Violation::NoCredit));
        }
        v.accept(&done()).unwrap();
    }
}
