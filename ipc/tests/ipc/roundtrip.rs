//! Every `HostMessage` and `WorkerMessage` survives a trip through a frame:
//! `encode_frame` + `FrameReader`, `FrameWriter` + `FrameReader`, and
//! `AsyncFrameWriter` + `AsyncFrameReader` over a tokio duplex, alone and
//! several frames back to back in one stream.

use bulkhead_ipc::frame::{HEADER_BYTES, encode_frame};
use bulkhead_ipc::{
    AsyncFrameReader, AsyncFrameWriter, Chunk, Confinement, DEFAULT_MAX_FRAME_BYTES, Done,
    FrameError, FrameReader, FrameWriter, FsRules, HostMessage, Invoke, MAX_CHUNK_BYTES,
    MechanismState, NetworkMode, OnMissing, Progress, SandboxSpec, StreamId, ToolError,
    ToolErrorKind, ToolExit, WorkerFault, WorkerLimits, WorkerMessage, WorkerUsage,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

const MAX: usize = DEFAULT_MAX_FRAME_BYTES;

// ---------------------------------------------------------------- strategies

/// Arbitrary unicode, mostly short, sometimes a few KiB.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        1 => vec(any::<char>(), 0..4096).prop_map(|c| c.into_iter().collect()),
    ]
}

fn limits() -> impl Strategy<Value = WorkerLimits> {
    (
        option::of(any::<u64>()),
        option::of(any::<u64>()),
        option::of(any::<u64>()),
        any::<u64>(),
        option::of(any::<u64>()),
        option::of(any::<u64>()),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(
            |(cpu, data, aspace, files, fsize, procs, out, stop)| WorkerLimits {
                cpu_seconds: cpu,
                data_bytes: data,
                address_space_bytes: aspace,
                open_files: files,
                file_size_bytes: fsize,
                processes: procs,
                max_output_bytes: out,
                stop_at_output_cap: stop,
            },
        )
}

fn invoke() -> impl Strategy<Value = Invoke> {
    (
        any::<u64>(),
        text(),
        text(),
        limits(),
        option::of(sandbox()),
    )
        .prop_map(|(call_id, tool, args_json, limits, sandbox)| Invoke {
            call_id,
            tool,
            args_json,
            limits,
            sandbox,
            start_faults: Vec::new(),
        })
}

fn sandbox() -> impl Strategy<Value = SandboxSpec> {
    let paths = || vec(text(), 0..6);
    let fs = option::of((paths(), paths(), paths()))
        .prop_map(|f| f.map(|(read, write, deny)| FsRules { read, write, deny }));
    let network = prop_oneof![
        Just(NetworkMode::None),
        Just(NetworkMode::Loopback),
        Just(NetworkMode::Full)
    ];
    let on_missing = prop_oneof![Just(OnMissing::Require), Just(OnMissing::BestEffort)];
    (
        text(),
        fs,
        network,
        any::<bool>(),
        any::<bool>(),
        on_missing,
    )
        .prop_map(
            |(policy, filesystem, network, isolate_processes, seccomp, on_missing)| SandboxSpec {
                policy,
                filesystem,
                network,
                isolate_processes,
                seccomp,
                on_missing,
                egress: None,
            },
        )
}

fn mechanism_state() -> impl Strategy<Value = MechanismState> {
    (text(), any::<bool>(), any::<bool>(), text()).prop_map(
        |(mechanism, requested, enforced, detail)| MechanismState {
            mechanism,
            requested,
            enforced,
            detail,
        },
    )
}

fn host_message() -> impl Strategy<Value = HostMessage> {
    prop_oneof![
        (any::<u32>(), text()).prop_map(|(protocol, host_version)| HostMessage::Hello {
            protocol,
            host_version
        }),
        invoke().prop_map(|i| HostMessage::Invoke(Box::new(i))),
        any::<u32>().prop_map(|chunks| HostMessage::Credit { chunks }),
        Just(HostMessage::Cancel),
    ]
}

fn stream_id() -> impl Strategy<Value = StreamId> {
    prop_oneof![Just(StreamId::Stdout), Just(StreamId::Stderr)]
}

/// Chunk payloads from empty to exactly `MAX_CHUNK_BYTES`, with the edges
/// drawn often.
fn chunk_data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => vec(any::<u8>(), 0..256),
        2 => vec(any::<u8>(), 0..=MAX_CHUNK_BYTES),
        1 => vec(any::<u8>(), MAX_CHUNK_BYTES..=MAX_CHUNK_BYTES),
    ]
}

fn chunk() -> impl Strategy<Value = Chunk> {
    (stream_id(), any::<u64>(), chunk_data()).prop_map(|(stream, seq, data)| Chunk {
        stream,
        seq,
        data: data.into(),
    })
}

fn usage() -> impl Strategy<Value = WorkerUsage> {
    (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(cpu_ms, bytes_seen, max_rss_bytes)| {
        WorkerUsage {
            cpu_ms,
            bytes_seen,
            max_rss_bytes,
        }
    })
}

fn tool_exit() -> impl Strategy<Value = ToolExit> {
    prop_oneof![
        Just(ToolExit::Finished),
        any::<i32>().prop_map(ToolExit::Code),
        any::<i32>().prop_map(ToolExit::Signal),
        Just(ToolExit::Stopped),
    ]
}

fn done() -> impl Strategy<Value = Done> {
    (
        tool_exit(),
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
        option::of(text()),
        usage(),
    )
        .prop_map(
            |(exit, bytes_seen, lines_seen, stopped, summary_json, usage)| Done {
                exit,
                bytes_seen,
                lines_seen,
                stopped_at_output_cap: stopped,
                summary_json,
                usage,
            },
        )
}

fn tool_error() -> impl Strategy<Value = ToolError> {
    let kind = prop_oneof![
        Just(ToolErrorKind::UnknownTool),
        Just(ToolErrorKind::BadArguments),
        Just(ToolErrorKind::Io),
        Just(ToolErrorKind::Internal),
    ];
    (kind, text()).prop_map(|(kind, message)| ToolError { kind, message })
}

fn worker_message() -> impl Strategy<Value = WorkerMessage> {
    prop_oneof![
        (any::<u32>(), text(), any::<u32>()).prop_map(|(protocol, worker_version, pid)| {
            WorkerMessage::Hello {
                protocol,
                worker_version,
                pid,
            }
        }),
        (vec((text(), text()), 0..8), vec(mechanism_state(), 0..12)).prop_map(
            |(applied, sandbox)| WorkerMessage::Confined(Confinement { applied, sandbox })
        ),
        chunk().prop_map(WorkerMessage::Chunk),
        (text(), any::<u64>(), option::of(any::<u64>())).prop_map(|(message, done, total)| {
            WorkerMessage::Progress(Progress {
                message,
                done,
                total,
            })
        }),
        usage().prop_map(WorkerMessage::Usage),
        done().prop_map(WorkerMessage::Done),
        tool_error().prop_map(WorkerMessage::Error),
    ]
}

// ------------------------------------------------------------------- helpers

/// Encodes one frame and checks its header states the body length.
fn frame<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(msg, &mut out, MAX).expect("encode");
    let len = u32::from_le_bytes(out[..HEADER_BYTES].try_into().unwrap()) as usize;
    assert_eq!(len, out.len() - HEADER_BYTES);
    assert!(len > 0);
    out
}

/// Reads every frame of `bytes`, asserting the stream ends cleanly.
fn read_all_sync<T: DeserializeOwned>(bytes: &[u8]) -> Vec<T> {
    let mut reader = FrameReader::new(bytes, MAX);
    let mut out = Vec::new();
    while let Some(msg) = reader.read::<T>().expect("read") {
        out.push(msg);
    }
    // A clean end stays clean.
    assert!(reader.read::<T>().expect("read after end").is_none());
    out
}

/// Writes `msgs` into one end of a duplex with a small buffer (so frames are
/// split across many reads and writes) and reads them from the other.
fn async_roundtrip<T>(msgs: &[T], duplex_buf: usize) -> Vec<T>
where
    T: Serialize + DeserializeOwned + Send,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (a, b) = tokio::io::duplex(duplex_buf);
        let write = async move {
            let mut writer = AsyncFrameWriter::new(a, MAX);
            for msg in msgs {
                writer.write(msg).await.expect("async write");
            }
            // Dropping the writer closes its end: the reader sees EOF.
        };
        let read = async move {
            let mut reader = AsyncFrameReader::new(b, MAX);
            let mut out = Vec::new();
            while let Some(msg) = reader.read::<T>().await.expect("async read") {
                out.push(msg);
            }
            out
        };
        tokio::join!(write, read).1
    })
}

/// Writes `msgs` as the worker does (chunks through `write_chunk`), sends
/// them through a duplex with a small buffer, and reads them with the
/// host's `read_worker_message`, whose chunks are slices of their frames.
fn host_path_roundtrip(msgs: &[WorkerMessage], duplex_buf: usize) -> Vec<WorkerMessage> {
    let mut bytes = Vec::new();
    let mut writer = FrameWriter::new(&mut bytes, MAX);
    for msg in msgs {
        match msg {
            WorkerMessage::Chunk(c) => writer.write_chunk(c.stream, c.seq, &c.data),
            other => writer.write(other),
        }
        .expect("write");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (mut a, b) = tokio::io::duplex(duplex_buf);
        let write = async move {
            tokio::io::AsyncWriteExt::write_all(&mut a, &bytes)
                .await
                .expect("duplex write");
        };
        let read = async move {
            let mut reader = AsyncFrameReader::new(b, MAX);
            let mut out = Vec::new();
            while let Some(msg) = reader.read_worker_message().await.expect("async read") {
                out.push(msg);
            }
            out
        };
        tokio::join!(write, read).1
    })
}

// --------------------------------------------------------------------- tests

proptest! {
    #[test]
    fn host_message_sync(msg in host_message()) {
        let bytes = frame(&msg);
        prop_assert_eq!(read_all_sync::<HostMessage>(&bytes), vec![msg]);
    }

    #[test]
    fn worker_message_sync(msg in worker_message()) {
        let bytes = frame(&msg);
        prop_assert_eq!(read_all_sync::<WorkerMessage>(&bytes), vec![msg]);
    }

    #[test]
    fn frame_writer_matches_encode_frame(msg in worker_message()) {
        let mut written = Vec::new();
        FrameWriter::new(&mut written, MAX).write(&msg).expect("write");
        prop_assert_eq!(&written, &frame(&msg));
    }

    #[test]
    fn host_messages_back_to_back_sync(msgs in vec(host_message(), 0..16)) {
        let mut bytes = Vec::new();
        let mut writer = FrameWriter::new(&mut bytes, MAX);
        for msg in &msgs {
            writer.write(msg).expect("write");
        }
        prop_assert_eq!(read_all_sync::<HostMessage>(&bytes), msgs);
    }

    #[test]
    fn worker_messages_back_to_back_sync(msgs in vec(worker_message(), 0..8)) {
        let mut bytes = Vec::new();
        for msg in &msgs {
            encode_frame(msg, &mut bytes, MAX).expect("encode");
        }
        prop_assert_eq!(read_all_sync::<WorkerMessage>(&bytes), msgs);
    }

    #[test]
    fn host_messages_async(msgs in vec(host_message(), 1..16), buf in 1usize..4096) {
        prop_assert_eq!(async_roundtrip(&msgs, buf), msgs);
    }

    #[test]
    fn worker_messages_async(msgs in vec(worker_message(), 1..8), buf in 1usize..(128 << 10)) {
        prop_assert_eq!(async_roundtrip(&msgs, buf), msgs);
    }

    #[test]
    fn worker_messages_by_the_host_path(msgs in vec(worker_message(), 1..8), buf in 1usize..(128 << 10)) {
        prop_assert_eq!(host_path_roundtrip(&msgs, buf), msgs);
    }
}

/// One of each variant, fixed, so a variant missing from a strategy above
/// would still be caught here.
#[test]
fn every_variant_once_sync_and_async() {
    let host = vec![
        HostMessage::Hello {
            protocol: 1,
            host_version: "host 0.1 ✓".into(),
        },
        HostMessage::Invoke(Box::new(Invoke {
            call_id: u64::MAX,
            tool: "grep".into(),
            args_json: r#"{"pattern":"a\u0000b"}"#.into(),
            limits: WorkerLimits {
                cpu_seconds: Some(10),
                data_bytes: None,
                address_space_bytes: Some(0),
                open_files: 64,
                file_size_bytes: None,
                processes: Some(u64::MAX),
                max_output_bytes: 1 << 20,
                stop_at_output_cap: false,
            },
            sandbox: Some(SandboxSpec {
                policy: "untrusted".into(),
                filesystem: Some(FsRules {
                    read: vec!["/usr".into()],
                    write: vec![],
                    deny: vec!["/root/.ssh".into()],
                }),
                network: NetworkMode::Loopback,
                isolate_processes: true,
                seccomp: true,
                on_missing: OnMissing::Require,
                egress: None,
            }),
            start_faults: vec![WorkerFault::Kill, WorkerFault::Exit(3)],
        })),
        HostMessage::Credit { chunks: 0 },
        HostMessage::Cancel,
    ];
    let worker = vec![
        WorkerMessage::Hello {
            protocol: 1,
            worker_version: String::new(),
            pid: 42,
        },
        WorkerMessage::Confined(Confinement {
            applied: vec![("RLIMIT_NPROC".into(), "not enforced: root".into())],
            sandbox: vec![MechanismState {
                mechanism: "net_ns".into(),
                requested: true,
                enforced: false,
                detail: "unshare(CLONE_NEWNET): EPERM".into(),
            }],
        }),
        WorkerMessage::Chunk(Chunk {
            stream: StreamId::Stderr,
            seq: 0,
            data: vec![0xc1; MAX_CHUNK_BYTES].into(),
        }),
        WorkerMessage::Progress(Progress {
            message: "searched 1200 files".into(),
            done: 1200,
            total: None,
        }),
        WorkerMessage::Usage(WorkerUsage::default()),
        WorkerMessage::Done(Done {
            exit: ToolExit::Signal(-9),
            bytes_seen: 3,
            lines_seen: 1,
            stopped_at_output_cap: true,
            summary_json: Some("{}".into()),
            usage: WorkerUsage {
                cpu_ms: 7,
                bytes_seen: 3,
                max_rss_bytes: 1 << 30,
            },
        }),
        WorkerMessage::Error(ToolError {
            kind: ToolErrorKind::BadArguments,
            message: "missing field `pattern`".into(),
        }),
    ];
    let mut host_bytes = Vec::new();
    for m in &host {
        encode_frame(m, &mut host_bytes, MAX).unwrap();
    }
    let mut worker_bytes = Vec::new();
    for m in &worker {
        encode_frame(m, &mut worker_bytes, MAX).unwrap();
    }
    assert_eq!(read_all_sync::<HostMessage>(&host_bytes), host);
    assert_eq!(read_all_sync::<WorkerMessage>(&worker_bytes), worker);
    assert_eq!(async_roundtrip(&host, 7), host);
    assert_eq!(async_roundtrip(&worker, 4096), worker);
}

/// A chunk of the full chunk size fits comfortably in the default cap, and a
/// message over a writer's cap is refused without leaving a partial frame.
#[test]
fn encode_respects_cap() {
    let big = WorkerMessage::Chunk(Chunk {
        stream: StreamId::Stdout,
        seq: 0,
        data: vec![1; MAX_CHUNK_BYTES].into(),
    });
    let mut out = vec![0xaa];
    encode_frame(&big, &mut out, MAX).unwrap();
    let body_len = out.len() - 1 - HEADER_BYTES;
    assert!(body_len > MAX_CHUNK_BYTES && body_len < MAX_CHUNK_BYTES + 64);

    let mut out = vec![0xaa];
    let err = encode_frame(&big, &mut out, MAX_CHUNK_BYTES).unwrap_err();
    assert!(
        matches!(err, FrameError::Oversized { len, max }
            if len == body_len as u64 && max == MAX_CHUNK_BYTES),
        "{err:?}"
    );
    assert_eq!(out, [0xaa], "a refused frame leaves the buffer as it was");

    let mut sink = Vec::new();
    let err = FrameWriter::new(&mut sink, MAX_CHUNK_BYTES)
        .write(&big)
        .unwrap_err();
    assert!(matches!(err, FrameError::Oversized { .. }), "{err:?}");
    assert!(sink.is_empty(), "nothing reaches the channel");
}

/// The worker sends chunks as `ChunkRef` (borrowed); the host decodes
/// `WorkerMessage::Chunk`. The bytes on the wire must be the same.
#[test]
fn borrowed_chunk_encodes_like_the_owned_one() {
    use bulkhead_ipc::{Chunk, ChunkRef, StreamId, WorkerMessage};
    let data = vec![7u8; 65_536];
    let owned = WorkerMessage::Chunk(Chunk {
        stream: StreamId::Stderr,
        seq: 42,
        data: data.clone().into(),
    });
    let borrowed = ChunkRef::Chunk {
        stream: StreamId::Stderr,
        seq: 42,
        data: &data,
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    bulkhead_ipc::frame::encode_frame(&owned, &mut a, usize::MAX).unwrap();
    bulkhead_ipc::frame::encode_frame(&borrowed, &mut b, usize::MAX).unwrap();
    assert_eq!(a, b);
}
