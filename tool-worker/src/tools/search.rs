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
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkMatch};
use ignore::overrides::OverrideBuilder;
use ignore::{DirEntry, WalkBuilder, WalkState};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::args::{ChunkWriter, output_failure};
use super::{OutputSink, Tool, ToolContext, ToolEnd, ToolFailure};

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

/// Output of one searcher thread: whole files, and pieces of those whose
/// output did not fit.
#[derive(Default)]
struct Batch {
    /// Whole lines, `path:line:text\n`.
    data: Vec<u8>,
    /// Match lines in `data`.
    matches: u64,
    /// Newline bytes in `data`, counted as lines are added so that the sink
    /// need not scan the output for them again (`OutputSink::write_lines`):
    /// one per line, and those of paths that hold a newline.
    newlines: u64,
    /// Files whose first match is in `data`.
    files: u64,
}

impl Batch {
    /// Makes `data` valid UTF-8, replacing invalid bytes as
    /// `String::from_utf8_lossy` does: the host and the model want text, and
    /// a stray invalid byte should not cost the rest of its line. Paths are
    /// already text (`Path::display`); matched lines are added as they are,
    /// and checked here, once per batch: one pass over ~256 KiB of mostly
    /// ASCII is a few times cheaper than a check per line, which cost ~2 ms
    /// of a 238,000-line search. The result is the same as converting each
    /// line: an invalid sequence never spans the ASCII `\n` between lines.
    fn make_text(&mut self) {
        if std::str::from_utf8(&self.data).is_err() {
            // The text replaces the buffer rather than being copied into it:
            // for a batch of one huge line, that holds two copies, not three.
            self.data = String::from_utf8_lossy(&self.data)
                .into_owned()
                .into_bytes();
        }
    }
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

/// Sends `batch`, if it holds anything, and leaves it empty; false when the writer is gone, which stops the search.
fn send_batch(shared: &Shared, tx: &SyncSender<Message>, batch: &mut Batch) -> bool {
    if batch.data.is_empty() {
        return true;
    }
    batch.make_text();
    let full = Batch {
        // The next line takes a buffer from the pool; a thread that is done
        // does not need one.
        data: std::mem::take(&mut batch.data),
        matches: std::mem::take(&mut batch.matches),
        newlines: std::mem::take(&mut batch.newlines),
        files: std::mem::take(&mut batch.files),
    };
    let sent = tx.send(Message::Output(full)).is_ok();
    if !sent {
        shared.stop.store(true, Relaxed);
    }
    sent
}

/// Formats one file's matches as `path:line:text\n` into its thread's
/// batch, sending the batch whenever the next line would overfill it.
struct MatchSink<'a> {
    shared: &'a Shared,
    tx: &'a SyncSender<Message>,
    prefix: &'a [u8],
    /// Newlines each output line holds: its own, and any in `prefix`.
    newlines_per_line: u64,
    batch: &'a mut Batch,
    batch_since: &'a mut Instant,
    /// No match of this file yet.
    first: bool,
}

impl Sink for &mut MatchSink<'_> {
    type Error = io::Error;

    fn matched(&mut self, _: &Searcher, mat: &SinkMatch<'_>) -> Result<bool, io::Error> {
        if self.shared.stopping() {
            return Ok(false);
        }
        let mut last_allowed = false;
        if let Some(max) = self.shared.max_matches {
            let claimed = self.shared.claimed.fetch_add(1, Relaxed);
            if claimed >= max {
                self.shared.request_stop(MAX_MATCHES);
                return Ok(false);
            }
            last_allowed = claimed + 1 == max;
        }
        // Without multi-line search a match is exactly one line.
        let line = mat.bytes();
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        // Room for "path:" + a u64 + ':' + text + '\n'. (Made text, a batch
        // with invalid bytes grows by up to 2 bytes for each, into a new
        // buffer: `Batch::make_text`.)
        let needed = self.prefix.len() + 21 + text.len() + 1;
        if self.batch.data.len() + needed > BATCH_BYTES
            && !send_batch(self.shared, self.tx, self.batch)
        {
            return Ok(false);
        }
        let data = &mut self.batch.data;
        if data.capacity() == 0 {
            *data = self.shared.buffer();
        }
        if data.is_empty() {
            *self.batch_since = Instant::now();
            // Only a line longer than a batch grows the buffer.
            data.reserve(needed);
        }
        self.batch.files += u64::from(std::mem::take(&mut self.first));
        data.extend_from_slice(self.prefix);
        push_decimal(data, mat.line_number().unwrap_or(0));
        data.push(b':');
        // As it is: the batch is made valid UTF-8 as a whole before it is
        // sent (`Batch::make_text`).
        data.extend_from_slice(text);
        data.push(b'\n');
        self.batch.matches += 1;
        self.batch.newlines += self.newlines_per_line;
        if last_allowed {
            // Stop at the limit rather than on the next match, which could
            // be at the far end of the tree or nowhere.
            self.shared.request_stop(MAX_MATCHES);
            return Ok(false);
        }
        Ok(true)
    }
}

/// Appends `n` in decimal; `write!` costs a formatter call per match line.
fn push_decimal(data: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    data.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
#[path = "search_tests.rs"]
mod tests;
