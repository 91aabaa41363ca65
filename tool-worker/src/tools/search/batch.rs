//! A searcher thread's output: match lines formatted into batches that
//! span files, made text and counted before the writer gets them.

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use grep_searcher::{Searcher, Sink, SinkMatch};

use super::{BATCH_BYTES, MAX_MATCHES, Message, Shared};

/// Output of one searcher thread: whole files, and pieces of those whose
/// output did not fit.
#[derive(Default)]
pub(super) struct Batch {
    /// Whole lines, `path:line:text\n`.
    pub(super) data: Vec<u8>,
    /// Match lines in `data`.
    pub(super) matches: u64,
    /// Newline bytes in `data`, counted as lines are added so that the sink
    /// need not scan the output for them again (`OutputSink::write_lines`):
    /// one per line, and those of paths that hold a newline.
    pub(super) newlines: u64,
    /// Files whose first match is in `data`.
    pub(super) files: u64,
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

/// Sends `batch`, if it holds anything, and leaves it empty; false when the writer is gone, which stops the search.
pub(super) fn send_batch(shared: &Shared, tx: &SyncSender<Message>, batch: &mut Batch) -> bool {
    if batch.data.is_empty() {
        return true;
    }
    batch.make_text();
    // The batch left behind has no buffer: its next line takes one from the
    // pool, and a thread that is done does not need one.
    let full = std::mem::take(batch);
    let sent = tx.send(Message::Output(full)).is_ok();
    if !sent {
        shared.stop.store(true, Relaxed);
    }
    sent
}

/// Formats one file's matches as `path:line:text\n` into its thread's
/// batch, sending the batch whenever the next line would overfill it.
pub(super) struct MatchSink<'a> {
    pub(super) shared: &'a Shared,
    pub(super) tx: &'a SyncSender<Message>,
    pub(super) prefix: &'a [u8],
    /// Newlines each output line holds: its own, and any in `prefix`.
    pub(super) newlines_per_line: u64,
    pub(super) batch: &'a mut Batch,
    pub(super) batch_since: &'a mut Instant,
    /// No match of this file yet.
    pub(super) first: bool,
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
