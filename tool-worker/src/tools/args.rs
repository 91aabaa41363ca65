//! Helpers shared by the built-in tools: argument parsing and chunked output.
//!
//! The model that calls a tool reads the error message and retries, so a bad
//! argument must say *which* field is wrong and why, in words it can act on:
//! `bad argument "max_matches": invalid type: string "x", expected u64`.
//! `serde_path_to_error` supplies the field path that plain serde loses.

use std::io;

use bulkhead_ipc::{MAX_CHUNK_BYTES, StreamId};
use serde::de::DeserializeOwned;

use super::{OutputSink, ToolFailure};

/// Parses `args_json` into a tool's argument type.
///
/// Argument types use `#[serde(deny_unknown_fields)]`, so a misspelt optional
/// field is reported instead of silently ignored. Every failure is a
/// [`ToolFailure`] of kind `BadArguments` whose message names the field.
pub fn parse_args<T: DeserializeOwned>(args_json: &str) -> Result<T, ToolFailure> {
    // The one mistake serde words badly is a non-object document ("invalid
    // type: string, expected struct SearchArgs"), so it is caught up front.
    if args_json
        .trim_start()
        .bytes()
        .next()
        .is_some_and(|b| b != b'{')
    {
        let what = match serde_json::from_str::<serde_json::Value>(args_json) {
            Ok(value) => json_kind(&value),
            Err(_) => "text that is not valid JSON",
        };
        return Err(ToolFailure::bad_args(format!(
            "arguments must be a JSON object, got {what}"
        )));
    }

    let mut de = serde_json::Deserializer::from_str(args_json);
    let parsed: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        ToolFailure::bad_args(describe(&path, &inner))
    })?;
    // Trailing garbage after the object means the caller sent something other
    // than what it thinks; refuse rather than guess.
    de.end()
        .map_err(|err| ToolFailure::bad_args(format!("arguments are not valid JSON: {err}")))?;
    Ok(parsed)
}

/// The JSON Schema of an argument type, as published by `Tool::schema`.
pub fn schema_of<T: schemars::JsonSchema>() -> serde_json::Value {
    schemars::schema_for!(T).to_value()
}

/// Turns a serde_json error at `path` into a message that names the field.
fn describe(path: &str, err: &serde_json::Error) -> String {
    if err.is_syntax() || err.is_eof() {
        return format!("arguments are not valid JSON: {err}");
    }
    let message = strip_position(err);
    // serde quotes field names with backticks; the rest of our messages use
    // double quotes, which is also what a JSON-minded reader expects.
    let message =
        if message.starts_with("missing field `") || message.starts_with("unknown field `") {
            message.replace('`', "\"")
        } else {
            message
        };
    // The root path is "."; errors there (missing or unknown fields) already
    // carry the field name in the message.
    if path.is_empty() || path == "." {
        message
    } else {
        format!("bad argument \"{path}\": {message}")
    }
}

/// serde_json appends " at line L column C", which is noise for a one-line
/// argument object and hides the part the reader needs.
fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    match text.strip_suffix(&suffix) {
        Some(stripped) => stripped.to_owned(),
        None => text,
    }
}

/// Coalesces a tool's small writes into chunks of exactly
/// [`MAX_CHUNK_BYTES`] (the last one shorter), and splits writes bigger than
/// that. Each chunk costs the host a frame and a credit, so one chunk per
/// line would make a search of many small matches crawl, and the protocol
/// refuses a chunk over the limit.
pub(crate) struct ChunkWriter<'a> {
    sink: &'a mut dyn OutputSink,
    stream: StreamId,
    pending: Vec<u8>,
    stopped: bool,
}

impl<'a> ChunkWriter<'a> {
    pub(crate) fn new(sink: &'a mut dyn OutputSink, stream: StreamId) -> Self {
        Self {
            sink,
            stream,
            pending: Vec::new(),
            stopped: false,
        }
    }

    /// Queues `data`, sending every chunk that fills up. `Ok(false)` once
    /// the sink said stop; from then on everything is dropped.
    pub(crate) fn push(&mut self, mut data: &[u8]) -> io::Result<bool> {
        while !data.is_empty() {
            if self.stopped {
                return Ok(false);
            }
            if self.pending.is_empty() && data.len() >= MAX_CHUNK_BYTES {
                // Whole chunks of a big write go out without a copy.
                let (chunk, rest) = data.split_at(MAX_CHUNK_BYTES);
                self.send(chunk)?;
                data = rest;
                continue;
            }
            let take = (MAX_CHUNK_BYTES - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == MAX_CHUNK_BYTES {
                self.flush()?;
            }
        }
        Ok(!self.stopped)
    }

    /// Sends what is queued. `Ok(false)` once the sink said stop.
    pub(crate) fn flush(&mut self) -> io::Result<bool> {
        if !self.pending.is_empty() && !self.stopped {
            let pending = std::mem::take(&mut self.pending);
            self.send(&pending)?;
            // Keep the allocation: the next chunk will need it again.
            self.pending = pending;
            self.pending.clear();
        }
        Ok(!self.stopped)
    }

    /// Sends what is queued, to keep the order of the output, then `data`
    /// uncopied: the sink cuts it into chunks. `newlines` is the number of
    /// `\n` bytes in `data`, which the caller counted as it made it
    /// ([`OutputSink::write_lines`]). `Ok(false)` once the sink said stop.
    pub(crate) fn write_lines(&mut self, data: &[u8], newlines: u64) -> io::Result<bool> {
        if self.flush()? && !self.sink.write_lines(self.stream, data, newlines)? {
            self.stopped = true;
        }
        Ok(!self.stopped)
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The sink, for progress, cancellation checks and other streams.
    pub(crate) fn sink(&mut self) -> &mut dyn OutputSink {
        &mut *self.sink
    }

    fn send(&mut self, chunk: &[u8]) -> io::Result<()> {
        if !self.sink.write(self.stream, chunk)? {
            self.stopped = true;
        }
        Ok(())
    }
}

/// A [`ToolFailure`] for a write the sink could not make (the host went
/// away); nothing more can be delivered, so the tool ends.
pub(crate) fn output_failure(err: io::Error) -> ToolFailure {
    ToolFailure::io("writing output", err)
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// An [`OutputSink`](super::OutputSink) for tests: collects everything and,
/// given a byte budget, answers `Ok(false)` once the budget is crossed, as the
/// worker's IPC sink does at the output cap.
#[cfg(test)]
pub(crate) mod test_sink {
    use std::io;

    use bulkhead_ipc::{StreamId, ToolExit, WorkerLimits};

    use crate::tools::{DynTool, OutputSink, ToolContext, ToolFailure};

    /// Runs `tool` with `args` into `sink`; returns the summary of a normal end.
    pub(crate) fn run_tool(
        tool: &dyn DynTool,
        args: serde_json::Value,
        sink: &mut VecSink,
    ) -> Result<serde_json::Value, ToolFailure> {
        let limits = WorkerLimits {
            cpu_seconds: None,
            data_bytes: None,
            address_space_bytes: None,
            open_files: 256,
            file_size_bytes: None,
            processes: None,
            max_output_bytes: 1 << 20,
            stop_at_output_cap: true,
        };
        let input = crate::input::InputQueue::new().expect("a pipe for the input queue");
        let ctx = ToolContext {
            limits: &limits,
            input: &input,
        };
        let end = tool.run_json(&args.to_string(), sink, &ctx)?;
        assert_eq!(end.exit, ToolExit::Finished);
        Ok(end.summary.expect("a summary"))
    }

    #[derive(Default)]
    pub(crate) struct VecSink {
        pub stdout: Vec<u8>,
        pub stderr: Vec<u8>,
        /// Size of every `write` call, to check the chunk bound.
        pub chunk_sizes: Vec<usize>,
        pub budget: Option<usize>,
        /// Writes made after the sink had already said stop.
        pub writes_after_stop: usize,
        pub progress: Vec<(String, u64)>,
        pub cancelled: bool,
        /// Become cancelled on this many writes, as if the host sent Cancel.
        pub cancel_after_writes: Option<usize>,
        /// Newlines written, as `IpcSink` counts them for `lines_seen`:
        /// counted in `write`, taken from the tool in `write_lines`.
        pub newlines: u64,
        said_stop: bool,
    }

    impl VecSink {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        pub(crate) fn with_budget(bytes: usize) -> Self {
            Self {
                budget: Some(bytes),
                ..Self::default()
            }
        }

        pub(crate) fn stdout_text(&self) -> String {
            String::from_utf8_lossy(&self.stdout).into_owned()
        }
    }

    impl OutputSink for VecSink {
        fn write(&mut self, stream: StreamId, data: &[u8]) -> io::Result<bool> {
            self.newlines += data.iter().filter(|&&b| b == b'\n').count() as u64;
            self.record(stream, data)
        }

        fn write_lines(
            &mut self,
            stream: StreamId,
            data: &[u8],
            newlines: u64,
        ) -> io::Result<bool> {
            self.newlines += newlines;
            crate::tools::in_chunks(data, |chunk| self.record(stream, chunk))
        }

        fn progress(&mut self, message: &str, done: u64, _total: Option<u64>) {
            self.progress.push((message.to_owned(), done));
        }

        fn cancelled(&self) -> bool {
            self.cancelled
        }
    }

    impl VecSink {
        /// One write as the sink sees it, after the newlines are counted.
        fn record(&mut self, stream: StreamId, data: &[u8]) -> io::Result<bool> {
            if self.said_stop {
                self.writes_after_stop += 1;
            }
            self.chunk_sizes.push(data.len());
            match stream {
                StreamId::Stdout => self.stdout.extend_from_slice(data),
                StreamId::Stderr => self.stderr.extend_from_slice(data),
            }
            if self
                .cancel_after_writes
                .is_some_and(|n| self.chunk_sizes.len() >= n)
            {
                self.cancelled = true;
            }
            let total = self.stdout.len() + self.stderr.len();
            if self.cancelled || self.budget.is_some_and(|b| total > b) {
                self.said_stop = true;
                return Ok(false);
            }
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use bulkhead_ipc::ToolErrorKind;
    use schemars::JsonSchema;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Args {
        /// The pattern.
        pattern: String,
        /// How many.
        #[serde(default)]
        max_matches: Option<u64>,
        #[serde(default)]
        nested: Option<Inner>,
    }

    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        depth: u64,
    }

    fn err(json: &str) -> String {
        let failure = parse_args::<Args>(json).expect_err("should fail");
        assert_eq!(failure.kind, ToolErrorKind::BadArguments);
        failure.message
    }

    #[test]
    fn parses_good_arguments() {
        let args: Args =
            parse_args(r#" {"pattern": "a+", "max_matches": 3, "nested": {"depth": 2}} "#).unwrap();
        assert_eq!(args.pattern, "a+");
        assert_eq!(args.max_matches, Some(3));
        assert_eq!(args.nested.map(|n| n.depth), Some(2));
    }

    #[test]
    fn wrong_type_names_the_field() {
        assert_eq!(
            err(r#"{"pattern": "a", "max_matches": "x"}"#),
            r#"bad argument "max_matches": invalid type: string "x", expected u64"#
        );
    }

    #[test]
    fn nested_field_path_is_named() {
        let message = err(r#"{"pattern": "a", "nested": {"depth": -1}}"#);
        assert!(
            message.starts_with(r#"bad argument "nested.depth": "#),
            "{message}"
        );
    }

    #[test]
    fn missing_field_is_named() {
        assert_eq!(err(r#"{"max_matches": 1}"#), r#"missing field "pattern""#);
    }

    #[test]
    fn unknown_field_is_rejected_and_named() {
        let message = err(r#"{"pattern": "a", "max_match": 1}"#);
        assert!(
            message.contains(r#"unknown field "max_match""#),
            "{message}"
        );
        assert!(message.contains(r#""max_matches""#), "{message}");
    }

    #[test]
    fn non_object_is_explained() {
        assert_eq!(
            err(r#""a""#),
            "arguments must be a JSON object, got a string"
        );
        assert_eq!(err("[1]"), "arguments must be a JSON object, got an array");
        assert_eq!(err("null"), "arguments must be a JSON object, got null");
        assert!(err("nope").contains("not valid JSON"));
    }

    #[test]
    fn syntax_errors_and_trailing_text_are_refused() {
        assert!(err(r#"{"pattern": "a""#).starts_with("arguments are not valid JSON"));
        assert!(err(r#"{"pattern": "a"} x"#).starts_with("arguments are not valid JSON"));
        assert!(err("").starts_with("arguments are not valid JSON"));
    }

    #[test]
    fn chunk_writer_coalesces_small_writes_and_splits_big_ones() {
        let mut sink = test_sink::VecSink::new();
        let mut out = ChunkWriter::new(&mut sink, StreamId::Stdout);
        for _ in 0..1000 {
            assert!(out.push(&[b'x'; 100]).unwrap());
        }
        assert!(out.push(&vec![b'y'; 3 * MAX_CHUNK_BYTES]).unwrap());
        assert!(out.flush().unwrap());
        let total = 100_000 + 3 * MAX_CHUNK_BYTES;
        let mut expected = vec![MAX_CHUNK_BYTES; total / MAX_CHUNK_BYTES];
        expected.push(total % MAX_CHUNK_BYTES);
        assert_eq!(sink.chunk_sizes, expected);
        assert_eq!(sink.stdout.len(), total);
    }

    #[test]
    fn chunk_writer_drops_everything_once_told_to_stop() {
        let mut sink = test_sink::VecSink::with_budget(10);
        let mut out = ChunkWriter::new(&mut sink, StreamId::Stdout);
        assert!(!out.push(&vec![b'x'; MAX_CHUNK_BYTES + 5]).unwrap());
        assert!(!out.push(b"more").unwrap());
        assert!(!out.flush().unwrap());
        assert_eq!(sink.chunk_sizes, vec![MAX_CHUNK_BYTES]);
        assert_eq!(sink.writes_after_stop, 0);
    }

    #[test]
    fn schema_carries_doc_comments_and_required_fields() {
        let schema = schema_of::<Args>();
        assert_eq!(
            schema["properties"]["pattern"]["description"],
            "The pattern."
        );
        assert_eq!(schema["required"], serde_json::json!(["pattern"]));
        assert_eq!(schema["additionalProperties"], false);
    }
}
