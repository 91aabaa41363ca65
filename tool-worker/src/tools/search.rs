//! `search_files_content`: ripgrep's engine behind a tool interface.
//!
//! The walk (`ignore`) and the search (`grep-searcher`, `grep-regex`) are
//! ripgrep's own crates with ripgrep's defaults, so results and speed match
//! `rg` on the same tree. Only the plumbing is ours: N walker threads each
//! search the files they find, format matches into a batch of their own that
//! spans files, and send full batches through a bounded channel to the thread
//! that called `run`, the only one that may touch the (not `Sync`) sink. The
//! writer hands each batch's buffer back for reuse. Every reason to stop
//! (sink says stop, cancel, `max_matches`) raises one flag that walkers,
//! searchers and file reads all check, so a search stops within one buffer
//! of work per thread.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

use bulkhead_ipc::{MAX_CHUNK_BYTES, StreamId, ToolErrorKind, ToolExit};
use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder};
use ignore::overrides::OverrideBuilder;
use ignore::{DirEntry, WalkBuilder, WalkState};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::args::{ChunkWriter, output_failure};
use super::{OutputSink, Tool, ToolContext, ToolEnd, ToolFailure};

mod batch;

use batch::{Batch, MatchSink, send_batch};

/// Upper bound on walker threads; ripgrep's own default cap. Past a dozen,
/// directory reads and the page cache, not CPU, limit a search.
const MAX_THREADS: usize = 12;

/// Largest batch a searcher thread sends, unless one line is longer: four
/// chunks' worth, which the writer sends as four chunks without copying.
/// Each batch wakes the writer thread, and each wake-up is a context switch
/// on a machine whose cores the searchers keep busy: with one chunk per
/// batch, a many-matches search cost ~3 switches per 64 KiB of output, and
/// 4 × fewer batches took ~5% off the worker's CPU (BENCHMARKS.md, search).
/// Buffers are pooled, so their size (above malloc's mmap threshold) costs
/// an mmap only when the pool grows.
const BATCH_BYTES: usize = 4 * MAX_CHUNK_BYTES;

/// A batch at least this full is sent as chunks of its own (the sink cuts
/// it at 64 KiB) rather than copied into the writer's pending chunk. Batches are sent full, except a
/// thread's last one and those sent for age; half a chunk keeps chunks big
/// while every full batch skips the copy.
const DIRECT_BYTES: usize = MAX_CHUNK_BYTES / 2;

/// A partial batch older than this is sent after the file that ends in it,
/// so that a search with sparse matches still shows them as it goes. Batches
/// span files: sending one per file cost a message, a wake-up of the writer
/// and an allocation per file, about a tenth of the worker's CPU on a
/// many-matches search. The same period as progress: below what a person
/// watching notices.
const BATCH_MAX_AGE: Duration = PROGRESS_INTERVAL;

/// Buffers up to this size go back to the pool; a bigger one (a batch that
/// held one huge line) is freed instead of being kept for the whole search.
const POOLED_CAPACITY: usize = 2 * BATCH_BYTES;

/// Messages queued between searchers and the writer: at ~256 KiB each,
/// about 4 MiB held while the sink waits for credit, and deep enough that a
/// searcher rarely waits on a writer that is merely busy with one write.
const CHANNEL_MESSAGES: usize = 16;

/// How often progress is reported, and how long the writer waits for output
/// before checking for cancellation again. 100 ms is below what a person
/// watching notices and far above the cost of one report.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Unreadable files reported on stderr. A tree full of them (a volume without
/// permission) would otherwise fill the output cap with errors; the summary
/// still counts them all.
const MAX_REPORTED_ERRORS: u64 = 20;

/// Why a search stopped early, as `Shared::reason` holds it (0: it did not).
/// A higher code wins when several happen: the summary names the one that
/// lost output.
const MAX_MATCHES: u8 = 1;
const OUTPUT_CAP: u8 = 2;
const CANCELLED: u8 = 3;
const REASONS: [Option<&str>; 4] = [
    None,
    Some("max_matches"),
    Some("output_cap"),
    Some("cancelled"),
];

/// Arguments of `search_files_content`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchArgs {
    /// Regular expression (Rust regex syntax, as ripgrep) matched against each line.
    pub pattern: String,
    /// File or directory to search. Files ignored by .gitignore, .ignore or
    /// .rgignore, hidden files and binary files are skipped, as ripgrep does.
    pub path: PathBuf,
    /// Only search files matching this glob, e.g. "*.rs" (ripgrep's -g; a
    /// leading "!" excludes instead).
    #[serde(default)]
    pub glob: Option<String>,
    /// Match without regard to case.
    #[serde(default)]
    pub case_insensitive: bool,
    /// Stop after this many matching lines in total.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_matches: Option<u64>,
}

/// Searches file contents with a regex; prints `path:line:text` per match.
///
/// The summary counts what was handed to the output: after the sink says
/// stop, queued batches are dropped and not counted. `stop_reason` is
/// `"max_matches"` as soon as the limit is reached, whether or not more
/// matches exist: finding out would cost the rest of the search.
pub struct SearchFilesContent;

impl Tool for SearchFilesContent {
    type Args = SearchArgs;
    const NAME: &'static str = "search_files_content";
    const DESCRIPTION: &'static str = "Searches file contents for a regex like ripgrep (honours .gitignore); prints path:line:text";

    fn paths(args: &Self::Args) -> Vec<PathBuf> {
        vec![args.path.clone()]
    }

    fn run(
        &self,
        args: SearchArgs,
        sink: &mut dyn OutputSink,
        _ctx: &ToolContext<'_>,
    ) -> Result<ToolEnd, ToolFailure> {
        if args.max_matches == Some(0) {
            return Err(ToolFailure::bad_args(
                "bad argument \"max_matches\": must be at least 1",
            ));
        }
        let matcher = RegexMatcherBuilder::new()
            .case_insensitive(args.case_insensitive)
            // Lets the matcher search whole buffers for candidate lines, and
            // rejects a pattern with a literal \n that could never match.
            .line_terminator(Some(b'\n'))
            .build(&args.pattern)
            .map_err(|err| ToolFailure::bad_args(format!("bad argument \"pattern\": {err}")))?;
        let meta = std::fs::metadata(&args.path).map_err(|err| {
            ToolFailure::io(format!("cannot search \"{}\"", args.path.display()), err)
        })?;
        let walk = build_walk(&args, meta.is_dir())?;
        search(walk, matcher, args.max_matches, sink)
    }
}

fn build_walk(args: &SearchArgs, is_dir: bool) -> Result<WalkBuilder, ToolFailure> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut walk = WalkBuilder::new(&args.path);
    walk.threads(threads.min(MAX_THREADS))
        // Outside a git checkout a .gitignore still says what the user does
        // not care about; ripgrep users expect it to apply.
        .require_git(false)
        .add_custom_ignore_filename(".rgignore");
    if let Some(glob) = &args.glob {
        // Globs with a slash are anchored at the searched directory, which is
        // what "src/*.rs" means to someone who named that directory.
        let root = match is_dir {
            true => args.path.as_path(),
            false => args.path.parent().unwrap_or(Path::new("")),
        };
        let overrides = OverrideBuilder::new(root)
            .add(glob)
            .and_then(|builder| builder.build())
            .map_err(|err| ToolFailure::bad_args(format!("bad argument \"glob\": {err}")))?;
        walk.overrides(overrides);
    }
    Ok(walk)
}

/// State every thread of one search shares.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    reason: AtomicU8,
    max_matches: Option<u64>,
    /// Matches handed out against `max_matches`; unused without it.
    claimed: AtomicU64,
    files_searched: AtomicU64,
    errors: AtomicU64,
    /// Emptied batch buffers, handed back by the writer. Their number is
    /// bounded by the buffers in use: one per searcher thread plus the
    /// channel's capacity plus the one the writer holds.
    spare: Mutex<Vec<Vec<u8>>>,
}

impl Shared {
    fn request_stop(&self, reason: u8) {
        self.reason.fetch_max(reason, Relaxed);
        self.stop.store(true, Relaxed);
    }

    fn stopping(&self) -> bool {
        self.stop.load(Relaxed)
    }

    /// A batch buffer from the pool, or a new one of a full batch's size.
    fn buffer(&self) -> Vec<u8> {
        let spare = self.spare.lock().unwrap_or_else(|p| p.into_inner()).pop();
        // Allocated at its full size once, then reused from the pool: grown
        // by doubling, every batch would reallocate, and past malloc's mmap
        // threshold each of those costs an mmap, page faults and an munmap.
        spare.unwrap_or_else(|| Vec::with_capacity(BATCH_BYTES))
    }

    fn recycle(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() <= POOLED_CAPACITY {
            buffer.clear();
            let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
            spare.push(buffer);
        }
    }
}

enum Message {
    Output(Batch),
    /// A file or directory that could not be read.
    Error(String),
}

fn search(
    walk: WalkBuilder,
    matcher: RegexMatcher,
    max_matches: Option<u64>,
    sink: &mut dyn OutputSink,
) -> Result<ToolEnd, ToolFailure> {
    let shared = Shared {
        max_matches,
        ..Shared::default()
    };
    let (tx, rx) = mpsc::sync_channel::<Message>(CHANNEL_MESSAGES);
    let mut out = ChunkWriter::new(sink, StreamId::Stdout);
    if out.sink().cancelled() {
        // Walkers then quit on the root: a cancelled call opens no file.
        shared.request_stop(CANCELLED);
    }
    let (written, walked) = std::thread::scope(|scope| {
        let shared = &shared;
        let walker = scope.spawn(move || {
            walk.build_parallel().run(|| {
                let mut thread = SearchThread {
                    shared,
                    tx: tx.clone(),
                    batch: Batch::default(),
                    batch_since: Instant::now(),
                    matcher: matcher.clone(),
                    searcher: SearcherBuilder::new()
                        .line_number(true)
                        // ripgrep's default for files found by a walk: a NUL
                        // means binary, and the file is dropped.
                        .binary_detection(BinaryDetection::quit(b'\x00'))
                        .build(),
                };
                Box::new(move |entry| thread.visit(entry))
            });
        });
        let written = write_output(&rx, &mut out, shared);
        // Whatever ended the writer ends the walkers: raise the flag, and
        // unblock any sender waiting on a full channel.
        shared.stop.store(true, Relaxed);
        drop(rx);
        (written, walker.join())
    });
    if walked.is_err() {
        return Err(ToolFailure {
            kind: ToolErrorKind::Internal,
            message: "search_files_content: a search thread panicked".into(),
        });
    }
    let (matches, files_with_matches) = written.map_err(output_failure)?;
    let reason = REASONS[usize::from(shared.reason.load(Relaxed))];
    Ok(ToolEnd {
        exit: ToolExit::Finished,
        summary: Some(json!({
            "matches": matches,
            "files_with_matches": files_with_matches,
            "files_searched": shared.files_searched.load(Relaxed),
            "errors": shared.errors.load(Relaxed),
            "stopped_early": reason.is_some(),
            "stop_reason": reason,
        })),
    })
}

/// The writer, on `run`'s thread. Returns (matches, files with matches)
/// handed to the output, once every searcher is done or the output stopped.
fn write_output(
    rx: &Receiver<Message>,
    out: &mut ChunkWriter<'_>,
    shared: &Shared,
) -> io::Result<(u64, u64)> {
    let (mut matches, mut files) = (0, 0);
    let mut last_progress = Instant::now();
    let mut reported = 0;
    let mut keep_going = true;
    let finished = loop {
        if !keep_going || out.sink().cancelled() {
            break false;
        }
        // Coalesce while output is queued; wait (bounded, to notice a
        // cancel) only when nothing is pending.
        let received = if out.has_pending() {
            rx.try_recv().map_err(|e| e == TryRecvError::Disconnected)
        } else {
            rx.recv_timeout(PROGRESS_INTERVAL)
                .map_err(|e| e == RecvTimeoutError::Disconnected)
        };
        keep_going = match received {
            Ok(Message::Output(batch)) => {
                matches += batch.matches;
                files += batch.files;
                let len = batch.data.len();
                let sent = if len >= DIRECT_BYTES {
                    // Uncopied, with its newlines already counted.
                    out.write_lines(&batch.data, batch.newlines)?
                } else {
                    out.push(&batch.data)?
                };
                shared.recycle(batch.data);
                sent
            }
            Ok(Message::Error(text)) => {
                let text = &text.as_bytes()[..text.len().min(MAX_CHUNK_BYTES)];
                out.sink().write(StreamId::Stderr, text)?
            }
            Err(true) => break true,
            // The queue ran dry: send the partial chunk, so that a slow
            // search still shows what it found.
            Err(false) => out.flush()?,
        };
        if last_progress.elapsed() >= PROGRESS_INTERVAL {
            last_progress = Instant::now();
            let done = shared.files_searched.load(Relaxed);
            if done != reported {
                reported = done;
                out.sink()
                    .progress(&format!("searched {done} files"), done, None);
            }
        }
    };
    if !(finished && out.flush()?) {
        let cancelled = out.sink().cancelled();
        shared.request_stop(if cancelled { CANCELLED } else { OUTPUT_CAP });
    }
    Ok((matches, files))
}

/// One walker thread's searcher, reused for every file it visits so that
/// its buffers are allocated once, and its batch, which spans files. The
/// walk drops it when the thread is done, which sends what is left.
struct SearchThread<'s> {
    shared: &'s Shared,
    tx: SyncSender<Message>,
    batch: Batch,
    /// When `batch` got its first line.
    batch_since: Instant,
    matcher: RegexMatcher,
    searcher: Searcher,
}

impl Drop for SearchThread<'_> {
    fn drop(&mut self) {
        send_batch(self.shared, &self.tx, &mut self.batch);
    }
}

impl SearchThread<'_> {
    fn visit(&mut self, entry: Result<DirEntry, ignore::Error>) -> WalkState {
        if !self.shared.stopping() {
            match entry {
                Ok(entry) if is_searchable(&entry) => self.search_file(entry.path()),
                Ok(_) => {}
                Err(err) => self.report_error(err.to_string()),
            }
        }
        match self.shared.stopping() {
            true => WalkState::Quit,
            false => WalkState::Continue,
        }
    }

    fn search_file(&mut self, path: &Path) {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(err) => return self.report_error(format!("{}: {err}", path.display())),
        };
        let prefix = format!("{}:", path.display());
        let mut sink = MatchSink {
            shared: self.shared,
            tx: &self.tx,
            prefix: prefix.as_bytes(),
            // A file name may hold a newline; each of its lines adds it.
            newlines_per_line: 1 + prefix.bytes().filter(|&b| b == b'\n').count() as u64,
            batch: &mut self.batch,
            batch_since: &mut self.batch_since,
            first: true,
        };
        let reader = StopRead {
            inner: file,
            stop: &self.shared.stop,
        };
        let result = self
            .searcher
            .search_reader(&self.matcher, reader, &mut sink);
        self.shared.files_searched.fetch_add(1, Relaxed);
        if !self.batch.data.is_empty() && self.batch_since.elapsed() >= BATCH_MAX_AGE {
            send_batch(self.shared, &self.tx, &mut self.batch);
        }
        if let Err(err) = result {
            self.report_error(format!("{}: {err}", path.display()));
        }
    }

    fn report_error(&self, text: String) {
        if self.shared.errors.fetch_add(1, Relaxed) < MAX_REPORTED_ERRORS {
            // A closed channel means the writer is gone; nobody to tell.
            let _ = self
                .tx
                .send(Message::Error(format!("search_files_content: {text}\n")));
        }
    }
}

/// What ripgrep searches: regular files, and the root even when it is a
/// symlink to one. Other symlinks are not followed, so no file is searched
/// twice and no loop is walked.
fn is_searchable(entry: &DirEntry) -> bool {
    match entry.file_type() {
        Some(t) if t.is_file() => true,
        Some(t) if t.is_symlink() && entry.depth() == 0 => {
            std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file())
        }
        _ => false,
    }
}

/// A file that reads as ended once the search must stop, so that a long file
/// with no matches does not keep its thread busy to the last byte.
struct StopRead<'s> {
    inner: File,
    stop: &'s AtomicBool,
}

impl Read for StopRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.stop.load(Relaxed) {
            true => Ok(0),
            false => self.inner.read(buf),
        }
    }
}

#[cfg(test)]
#[path = "search_tests.rs"]
mod tests;
