//! The worker's end of the IPC channel: the reader thread, credit, cancel,
//! and the [`OutputSink`] that tools write to.
//!
//! **Invariant:** the worker never sends a `Chunk` without credit, and waits
//! for credit *inside* `OutputSink::write`. A tool that writes blocks there,
//! so it stops reading its child's pipe, the pipe fills, and the child
//! blocks in `write(2)`: back-pressure reaches the tool's own pipe and
//! nothing buffers without bound.

use std::os::fd::AsFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bulkhead_ipc::{
    DEFAULT_MAX_FRAME_BYTES, FrameReader, FrameWriter, HostMessage, MAX_CHUNK_BYTES, Progress,
    StreamId, WorkerMessage, WorkerUsage,
};

use crate::input::InputQueue;
use crate::termination::Watch;
use crate::tools::{OutputSink, in_chunks};
use crate::tree;

/// How often the sink volunteers a `Usage` report. Four a second is enough
/// for a live display and costs nothing next to the chunks.
const USAGE_INTERVAL: Duration = Duration::from_millis(250);

/// Progress messages closer together than this are dropped: a tool calling
/// `progress` in a tight loop must not flood the channel.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
struct State {
    credit: u64,
    cancelled: bool,
    host_gone: bool,
}

/// State shared by the sink (main thread) and the reader thread.
#[derive(Clone, Default)]
pub struct Shared(Arc<(Mutex<State>, Condvar)>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a thread panicked while holding it; the
        // state is plain counters, still meaningful, so keep going.
        self.0.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// State holding `chunks` of credit: the opening's, read by the main
    /// thread before the reader thread exists.
    pub fn with_credit(chunks: u32) -> Self {
        let shared = Shared::default();
        shared.lock().credit = u64::from(chunks);
        shared
    }

    pub fn cancelled(&self) -> bool {
        let s = self.lock();
        s.cancelled || s.host_gone
    }
}

/// Starts the thread that reads host messages after `Invoke`.
///
/// On `Cancel` it kills the tool's processes at once, so a tool blocked in a
/// read of its child's pipe sees EOF. On EOF or error (the host died or
/// broke the protocol) it tears the whole call down and exits the process.
///
/// It also takes the termination signals, through `watch` (see
/// `termination`).
pub fn spawn_reader(
    mut reader: FrameReader<bulkhead_ipc::transport::WorkerStream>,
    watch: Watch,
    shared: Shared,
    input: Arc<InputQueue>,
    to_host: std::os::fd::RawFd,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("host-reader".into())
        .spawn(move || {
            loop {
                watch.wait_frame(reader.get_ref().as_fd());
                match reader.read::<HostMessage>() {
                    Ok(Some(HostMessage::Credit { chunks })) => {
                        shared.lock().credit += u64::from(chunks);
                        shared.0.1.notify_all();
                    }
                    Ok(Some(HostMessage::Cancel)) => {
                        shared.lock().cancelled = true;
                        shared.0.1.notify_all();
                        tree::signal_descendants();
                    }
                    // Never blocks: the host sends input only against the
                    // credit the tool grants (see `input`).
                    Ok(Some(HostMessage::Input { data })) if data.len() <= MAX_CHUNK_BYTES => {
                        input.push(data);
                    }
                    Ok(Some(HostMessage::CloseInput)) => input.close(),
                    Ok(Some(HostMessage::Fault(fault))) => crate::fault::obey(fault, to_host),
                    // Hello and Invoke only come once, before this thread runs;
                    // a second one is a broken host. Treat like EOF.
                    Ok(Some(_)) | Ok(None) | Err(_) => {
                        shared.lock().host_gone = true;
                        shared.0.1.notify_all();
                        crate::teardown_and_exit(crate::EXIT_HOST_GONE);
                    }
                }
            }
        })?;
    Ok(())
}

/// The sink tools write to. Counts bytes against the output cap and sends
/// chunks as credit allows.
pub struct IpcSink {
    writer: FrameWriter<bulkhead_ipc::transport::WorkerStream>,
    shared: Shared,
    seq: u64,
    max_output: u64,
    stop_at_cap: bool,
    bytes_seen: u64,
    lines_seen: u64,
    stopped_at_cap: bool,
    /// The start of a character whose rest would pass the cap, held back
    /// until the next write says whether the cap cuts it.
    held: Option<Held>,
    last_usage: Instant,
    last_progress: Option<Instant>,
}

/// At most 3 bytes of one stream: a character's start.
#[derive(Clone, Copy)]
struct Held {
    stream: StreamId,
    bytes: [u8; 3],
    len: usize,
}

impl IpcSink {
    pub fn new(
        writer: FrameWriter<bulkhead_ipc::transport::WorkerStream>,
        shared: Shared,
        max_output: u64,
        stop_at_cap: bool,
    ) -> Self {
        Self {
            writer,
            shared,
            seq: 0,
            max_output,
            stop_at_cap,
            bytes_seen: 0,
            lines_seen: 0,
            stopped_at_cap: false,
            held: None,
            last_usage: Instant::now(),
            last_progress: None,
        }
    }

    pub fn bytes_seen(&self) -> u64 {
        self.bytes_seen
    }

    pub fn lines_seen(&self) -> u64 {
        self.lines_seen
    }

    pub fn stopped_at_cap(&self) -> bool {
        self.stopped_at_cap
    }

    pub fn usage(&self) -> WorkerUsage {
        WorkerUsage {
            cpu_ms: cpu_ms_self_and_children(),
            bytes_seen: self.bytes_seen,
            max_rss_bytes: max_rss_bytes(),
        }
    }

    /// Sends a message that needs no credit.
    pub fn send(&mut self, msg: &WorkerMessage) -> std::io::Result<()> {
        self.writer.write(msg).map_err(std::io::Error::other)
    }

    /// Blocks until one chunk of credit is available. `false`: cancelled.
    fn take_credit(&self) -> bool {
        let mut s = self.shared.lock();
        loop {
            if s.cancelled || s.host_gone {
                return false;
            }
            if s.credit > 0 {
                s.credit -= 1;
                return true;
            }
            s = self.shared.0.1.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// `write`, with the newlines in `data` already counted.
    fn write_counted(
        &mut self,
        stream: StreamId,
        data: &[u8],
        newlines: u64,
    ) -> std::io::Result<bool> {
        if data.is_empty() {
            return Ok(!self.cancelled());
        }
        let before = self.bytes_seen;
        self.bytes_seen += data.len() as u64;
        self.lines_seen += newlines;
        if self.last_usage.elapsed() >= USAGE_INTERVAL {
            self.last_usage = Instant::now();
            let usage = WorkerMessage::Usage(self.usage());
            self.send(&usage)?;
        }
        if !self.stop_at_cap {
            // With a tail wanted everything is sent and the host keeps
            // only the last part.
            if !self.send_chunk(stream, data)? {
                return Ok(false);
            }
            return Ok(!self.cancelled());
        }
        // Only bytes up to the cap are sent (the host keeps nothing past
        // it), and the cut ends on a character, so the kept text ends
        // whole rather than in half a character.
        let mut start = 0;
        if let Some(h) = self.held.take() {
            if self.bytes_seen <= self.max_output {
                // The cap has not cut the held character (yet): it goes out
                // as it is, completed or not by what follows.
                if !self.send_chunk(h.stream, &h.bytes[..h.len])? {
                    return Ok(false);
                }
            } else if h.stream == stream {
                // The cap cut it: its rest is not sent either.
                start = bulkhead_ipc::utf8::suffix_start(data, 0);
            }
        }
        let room = usize::try_from(self.max_output.saturating_sub(before)).unwrap_or(usize::MAX);
        let mut send_len = if data.len() > room {
            bulkhead_ipc::utf8::prefix_len(data, room)
        } else {
            // A character this write leaves incomplete, whose rest could
            // not fit under the cap, waits: the next write either passes
            // the cap (and the character is cut whole) or not.
            let tail = bulkhead_ipc::utf8::incomplete_tail_start(data);
            let whole = tail
                + data
                    .get(tail)
                    .map_or(0, |&b| bulkhead_ipc::utf8::sequence_len(b));
            if tail < data.len() && whole > room {
                let mut bytes = [0; 3];
                let len = data.len() - tail;
                bytes[..len].copy_from_slice(&data[tail..]);
                self.held = Some(Held { stream, bytes, len });
                tail
            } else {
                data.len()
            }
        };
        send_len = send_len.max(start);
        if send_len > start && !self.send_chunk(stream, &data[start..send_len])? {
            return Ok(false);
        }
        if self.bytes_seen > self.max_output {
            self.stopped_at_cap = true;
            return Ok(false);
        }
        Ok(!self.cancelled())
    }

    /// Sends a character held back at the cap: the tool ended without
    /// passing it, so nothing cut it. Called before `Done`.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if let Some(h) = self.held.take() {
            // `false` means cancelled: the host wants no more output.
            self.send_chunk(h.stream, &h.bytes[..h.len])?;
        }
        Ok(())
    }

    /// Sends `data` as chunks, each against one credit.
    fn send_chunk(&mut self, stream: StreamId, data: &[u8]) -> std::io::Result<bool> {
        in_chunks(data, |piece| {
            if !self.take_credit() {
                return Ok(false);
            }
            self.writer
                .write_chunk(stream, self.seq, piece)
                .map_err(std::io::Error::other)?;
            self.seq += 1;
            Ok(true)
        })
    }
}

impl OutputSink for IpcSink {
    fn write(&mut self, stream: StreamId, data: &[u8]) -> std::io::Result<bool> {
        // memchr counts with SIMD; a byte loop here cost a tenth of the
        // worker's CPU on output-heavy calls.
        self.write_counted(stream, data, count_newlines(data) as u64)
    }

    fn write_lines(
        &mut self,
        stream: StreamId,
        data: &[u8],
        newlines: u64,
    ) -> std::io::Result<bool> {
        // The workspace tests run debug builds of the worker: a tool that
        // miscounts fails them.
        debug_assert_eq!(newlines, count_newlines(data) as u64, "miscounted newlines");
        self.write_counted(stream, data, newlines)
    }

    fn progress(&mut self, message: &str, done: u64, total: Option<u64>) {
        if self
            .last_progress
            .is_some_and(|t| t.elapsed() < PROGRESS_INTERVAL)
        {
            return;
        }
        self.last_progress = Some(Instant::now());
        let msg = WorkerMessage::Progress(Progress {
            message: message.to_owned(),
            done,
            total,
        });
        // Progress is best effort: a failed send surfaces on the next chunk.
        let _ = self.send(&msg);
    }

    fn cancelled(&self) -> bool {
        self.shared.cancelled()
    }

    fn grant_input(&mut self, chunks: u32) -> std::io::Result<()> {
        self.send(&WorkerMessage::InputCredit { chunks })
    }

    fn request(&mut self, id: &str, open: bool) -> std::io::Result<()> {
        self.send(&WorkerMessage::Request {
            id: id.to_owned(),
            open,
        })
    }
}

/// CPU time of the worker plus every reaped descendant, in milliseconds.
pub fn cpu_ms_self_and_children() -> u64 {
    let ms = |who| {
        nix::sys::resource::getrusage(who)
            .map(|u| {
                let t = |tv: nix::sys::time::TimeVal| {
                    (tv.tv_sec() as u64) * 1000 + (tv.tv_usec() as u64) / 1000
                };
                t(u.user_time()) + t(u.system_time())
            })
            .unwrap_or(0)
    };
    ms(nix::sys::resource::UsageWho::RUSAGE_SELF)
        + ms(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
}

/// Largest `ru_maxrss` of the worker and its reaped children, in bytes.
pub fn max_rss_bytes() -> u64 {
    use nix::sys::resource::{UsageWho, getrusage};
    [UsageWho::RUSAGE_SELF, UsageWho::RUSAGE_CHILDREN]
        .into_iter()
        .filter_map(|who| getrusage(who).ok())
        // Linux reports ru_maxrss in KiB.
        .map(|u| u.max_rss().max(0) as u64 * 1024)
        .max()
        .unwrap_or(0)
}

/// The cap the host's frame reader uses; the worker writes with the same.
pub const FRAME_CAP: usize = DEFAULT_MAX_FRAME_BYTES;

/// Counts newlines with SIMD but without runtime CPU detection. memchr's
/// dispatching functions ask `std_detect` on first use, which executes
/// CPUID a dozen times: 57 µs of VM exits per process on the benchmark VM,
/// paid by every call since every call is a new worker. SSE2 is part of
/// x86_64's baseline, so memchr's SSE2 kernel needs no check.
fn count_newlines(data: &[u8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if let Some(sse2) = memchr::arch::x86_64::sse2::memchr::One::new(b'\n') {
        return sse2.count(data);
    }
    memchr::memchr_iter(b'\n', data).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a sink capped at `cap` sends of `writes` (stdout), then the end.
    fn sent(cap: u64, writes: &[&[u8]]) -> Vec<u8> {
        let (host, worker) = bulkhead_ipc::transport::cloexec_socketpair().expect("socketpair");
        let writer = FrameWriter::new(worker.into(), FRAME_CAP);
        let mut sink = IpcSink::new(writer, Shared::with_credit(1 << 20), cap, true);
        for w in writes {
            if !sink.write(StreamId::Stdout, w).expect("write") {
                break;
            }
        }
        sink.finish().expect("finish");
        drop(sink);
        let mut reader =
            FrameReader::new(bulkhead_ipc::transport::WorkerStream::from(host), FRAME_CAP);
        let mut out = Vec::new();
        while let Ok(Some(msg)) = reader.read::<WorkerMessage>() {
            if let WorkerMessage::Chunk(c) = msg {
                out.extend_from_slice(&c.data);
            }
        }
        out
    }

    #[test]
    fn the_cap_cuts_before_a_two_three_or_four_byte_character_it_would_split() {
        for ch in ['é', '€', '🦀'] {
            let text: String = std::iter::repeat_n(ch, 12).collect();
            let b = text.as_bytes();
            let w = ch.len_utf8();
            for cap in 1..b.len() - 1 {
                // Two writes, split anywhere: the character the cap splits
                // may start in the first and end in the second.
                for split in 1..b.len() {
                    let out = sent(cap as u64, &[&b[..split], &b[split..]]);
                    let case = format!("{ch} cap {cap} split {split}");
                    assert!(
                        out.len() <= cap && cap - out.len() < w,
                        "{case}: {}",
                        out.len()
                    );
                    assert!(text.is_char_boundary(out.len()), "{case}: {}", out.len());
                    assert_eq!(out, b[..out.len()], "{case}");
                }
            }
        }
    }

    #[test]
    fn output_that_ends_at_the_cap_is_sent_whole_even_in_half_a_character() {
        // The tool ends with half a `€` exactly at the cap: nothing cut it.
        let text = "ab€".as_bytes();
        assert_eq!(sent(4, &[&text[..4]]), &text[..4]);
        assert_eq!(sent(4, &[&text[..3], &text[3..4]]), &text[..4]);
    }
}
