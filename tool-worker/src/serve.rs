//! One call, from handshake to exit.

use std::io;

use bulkhead_ipc::{
    Confinement, Done, FrameReader, FrameWriter, HostMessage, PROTOCOL_VERSION, ToolError,
    ToolErrorKind, ToolExit, WorkerMessage,
};

use crate::channel::{self, FRAME_CAP, IpcSink, Shared};

use crate::confine;
use crate::input::InputQueue;
use crate::sandbox;
use crate::termination::Termination;
use crate::tools::{self, OutputSink, ToolContext};

/// The worker's version, sent in `Hello`; the host refuses a mismatch.
pub const WORKER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs one call. Errors here are channel errors: nobody can be told, so
/// the caller just exits non-zero.
pub fn serve(expected_parent: Option<i32>) -> io::Result<()> {
    let (from_host, to_host, mut applied) = confine::confine_process(expected_parent)?;
    // Blocked now, taken (by the reader thread, see `termination`) only
    // once the sandbox is built: the kernel refuses a user namespace to a
    // multi-threaded process. A signal that comes meanwhile waits, pending.
    let termination = Termination::block()?;
    let channel = bulkhead_ipc::transport::WorkerChannel::from_fds(from_host, to_host);
    // For an injected fault that breaks the stream on purpose (`fault`).
    let to_host_fd = std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&channel.to_host));
    let mut reader = FrameReader::new(channel.from_host, FRAME_CAP);
    let mut writer = FrameWriter::new(channel.to_host, FRAME_CAP);
    let pid = std::process::id();
    write(
        &mut writer,
        &WorkerMessage::Hello {
            protocol: PROTOCOL_VERSION,
            worker_version: WORKER_VERSION.to_owned(),
            pid,
        },
    )?;
    match read(&mut reader)? {
        HostMessage::Hello {
            protocol,
            host_version,
        } => {
            if protocol != PROTOCOL_VERSION || host_version != WORKER_VERSION {
                let message = format!(
                    "version mismatch: host is bulkhead {host_version} (protocol {protocol}), \
                     worker is bulkhead-worker {WORKER_VERSION} (protocol {PROTOCOL_VERSION})"
                );
                return fail(&mut writer, ToolErrorKind::Internal, message);
            }
        }
        other => return Err(protocol_error("Hello", &other)),
    }
    let invoke = match read(&mut reader)? {
        HostMessage::Invoke(invoke) => invoke,
        other => return Err(protocol_error("Invoke", &other)),
    };
    // The opening's last frame. Read here rather than by the reader
    // thread, so the tool's first chunk does not wait for that thread to
    // start (~0.05–0.1 ms).
    let opening_credit = match read(&mut reader)? {
        HostMessage::Credit { chunks } => chunks,
        other => return Err(protocol_error("Credit", &other)),
    };
    if let Err(e) = confine::apply_limits(&invoke.limits, &mut applied) {
        return fail(
            &mut writer,
            ToolErrorKind::Internal,
            format!("cannot apply limits: {e}"),
        );
    }
    let Some(tool) = tools::find(&invoke.tool) else {
        let names: Vec<_> = tools::all().iter().map(|t| t.name()).collect();
        let message = format!(
            "unknown tool \"{}\"; the tools are: {}",
            invoke.tool,
            names.join(", ")
        );
        return fail(&mut writer, ToolErrorKind::UnknownTool, message);
    };

    // The sandbox is built in two steps around the start of our threads:
    // see `sandbox` for why.
    let pending = invoke.sandbox.as_ref().map(|spec| {
        let facts = sandbox::ToolFacts {
            spawns_processes: tool.spawns_processes(),
            paths: tool.paths_json(&invoke.args_json),
        };
        sandbox::begin(spec, facts)
    });
    let watch = termination.start()?;
    let shared = Shared::with_credit(opening_credit);
    let input = std::sync::Arc::new(InputQueue::new()?);
    channel::spawn_reader(reader, watch, shared.clone(), input.clone(), to_host_fd)?;
    let sandbox = match pending.map(sandbox::Pending::finish) {
        None => Vec::new(),
        Some(Ok(states)) => states,
        Some(Err(refused)) => {
            write(
                &mut writer,
                &WorkerMessage::Confined(Confinement {
                    applied: applied.0,
                    sandbox: refused.states,
                }),
            )?;
            return fail(&mut writer, ToolErrorKind::SandboxRefused, refused.message);
        }
    };
    write(
        &mut writer,
        &WorkerMessage::Confined(Confinement {
            applied: applied.0,
            sandbox,
        }),
    )?;
    crate::fault::at_start(&invoke.start_faults, to_host_fd);

    let mut sink = IpcSink::new(
        writer,
        shared,
        invoke.limits.max_output_bytes,
        invoke.limits.stop_at_output_cap,
    );
    let ctx = ToolContext {
        limits: &invoke.limits,
        input: &input,
    };
    let result = tool.run_json(&invoke.args_json, &mut sink, &ctx);
    crate::hold_if_tearing_down();
    // Nothing of the call outlives it, whatever the tool did.
    crate::tree::kill_descendants();
    if result.is_ok() {
        sink.finish()?;
    }
    let msg = match result {
        Ok(end) => WorkerMessage::Done(Done {
            // An in-worker tool that returned because the sink said stop
            // did not finish; say so, as the shell tool does.
            exit: match end.exit {
                ToolExit::Finished if sink.stopped_at_cap() || sink.cancelled() => {
                    ToolExit::Stopped
                }
                other => other,
            },
            bytes_seen: sink.bytes_seen(),
            lines_seen: sink.lines_seen(),
            stopped_at_output_cap: sink.stopped_at_cap(),
            summary_json: end.summary.map(|v| v.to_string()),
            usage: sink.usage(),
        }),
        Err(failure) => WorkerMessage::Error(ToolError {
            kind: failure.kind,
            message: failure.message,
        }),
    };
    sink.send(&msg)
}

fn write(
    w: &mut FrameWriter<bulkhead_ipc::transport::WorkerStream>,
    msg: &WorkerMessage,
) -> io::Result<()> {
    w.write(msg).map_err(io::Error::other)
}

fn read(r: &mut FrameReader<bulkhead_ipc::transport::WorkerStream>) -> io::Result<HostMessage> {
    match r.read() {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "host closed the channel",
        )),
        Err(e) => Err(io::Error::other(e)),
    }
}

fn protocol_error(expected: &str, got: &HostMessage) -> io::Error {
    io::Error::other(format!("expected {expected} from the host, got {got:?}"))
}

fn fail(
    w: &mut FrameWriter<bulkhead_ipc::transport::WorkerStream>,
    kind: ToolErrorKind,
    message: String,
) -> io::Result<()> {
    write(w, &WorkerMessage::Error(ToolError { kind, message }))
}
