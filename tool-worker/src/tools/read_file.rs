//! `read_file`: streams a range of lines of a text file.
//!
//! The file is read through a fixed buffer and never held whole, and neither
//! is a line: a 10 GB file with no newline streams out in chunks like any
//! other, bounded by the output cap rather than by the worker's memory.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use bulkhead_ipc::{StreamId, ToolExit};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::args::{ChunkWriter, output_failure};
use super::{OutputSink, Tool, ToolContext, ToolEnd, ToolFailure};

/// Bytes inspected for a NUL to call a file binary. 8 KiB is what git
/// (`buffer_is_binary`) looks at; the same heuristic ripgrep applies to its
/// first buffer. Text with a NUL later on is rare enough to pass through.
const BINARY_SNIFF_BYTES: usize = 8 << 10;

/// Read buffer. 64 KiB is one chunk, so a long line costs one read per chunk
/// sent, and the memory a call holds stays constant whatever the file.
const READ_BUFFER_BYTES: usize = 64 << 10;

/// Lines returned when `limit` is not given: enough for most source files in
/// one call, small enough that a log file does not fill the output cap.
const DEFAULT_LIMIT: u64 = 2000;

/// Arguments of `read_file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadFileArgs {
    /// The file to read.
    pub path: PathBuf,
    /// 1-based number of the first line to return. Defaults to 1.
    #[serde(default = "default_offset")]
    #[schemars(range(min = 1))]
    pub offset: u64,
    /// Number of lines to return, from `offset` on. Defaults to 2000.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1))]
    pub limit: u64,
}

fn default_offset() -> u64 {
    1
}

fn default_limit() -> u64 {
    DEFAULT_LIMIT
}

/// Returns lines `offset..offset+limit` of a text file, byte for byte.
///
/// A binary file (a NUL byte in its first 8 KiB) is refused with kind
/// `BadArguments`: the file exists and is readable, so it is not an I/O
/// failure; it is the wrong file for this tool, and retrying cannot help.
pub struct ReadFile;

impl Tool for ReadFile {
    type Args = ReadFileArgs;
    const NAME: &'static str = "read_file";
    const DESCRIPTION: &'static str =
        "Returns a range of lines of a text file (offset is 1-based, limit counts lines)";

    fn paths(args: &Self::Args) -> Vec<PathBuf> {
        vec![args.path.clone()]
    }

    fn run(
        &self,
        args: ReadFileArgs,
        sink: &mut dyn OutputSink,
        _ctx: &ToolContext<'_>,
    ) -> Result<ToolEnd, ToolFailure> {
        if args.offset == 0 {
            return Err(ToolFailure::bad_args(
                "bad argument \"offset\": must be at least 1 (line numbers start at 1)",
            ));
        }
        if args.limit == 0 {
            return Err(ToolFailure::bad_args(
                "bad argument \"limit\": must be at least 1",
            ));
        }
        let reader = open_text(&args.path)?;
        let mut out = ChunkWriter::new(sink, StreamId::Stdout);
        let summary =
            copy_lines(reader, &mut out, args.offset, args.limit).map_err(|err| match err {
                CopyError::Read(err) => ToolFailure::io(quoted(&args.path), err),
                CopyError::Write(err) => output_failure(err),
            })?;
        Ok(ToolEnd {
            exit: ToolExit::Finished,
            summary: Some(summary),
        })
    }
}

fn quoted(path: &Path) -> String {
    format!("\"{}\"", path.display())
}

/// Opens `path` and checks its first bytes for a NUL. The bytes read for the
/// check are put back in front of the rest of the file.
fn open_text(path: &Path) -> Result<impl BufRead, ToolFailure> {
    let mut file = File::open(path).map_err(|err| ToolFailure::io(quoted(path), err))?;
    let meta = file
        .metadata()
        .map_err(|err| ToolFailure::io(quoted(path), err))?;
    if meta.is_dir() {
        return Err(ToolFailure::bad_args(format!(
            "{} is a directory; use list_directory to see what it holds",
            quoted(path)
        )));
    }
    let mut head = Vec::with_capacity(BINARY_SNIFF_BYTES);
    (&mut file)
        .take(BINARY_SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|err| ToolFailure::io(quoted(path), err))?;
    if let Some(at) = head.iter().position(|&b| b == 0) {
        return Err(ToolFailure::bad_args(format!(
            "{} is a binary file (NUL byte at offset {at}); read_file only returns text",
            quoted(path)
        )));
    }
    Ok(BufReader::with_capacity(
        READ_BUFFER_BYTES,
        Cursor::new(head).chain(file),
    ))
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Streams lines `offset..offset + limit` (1-based) from `reader` to `out`
/// and returns the summary.
fn copy_lines(
    mut reader: impl BufRead,
    out: &mut ChunkWriter<'_>,
    offset: u64,
    limit: u64,
) -> Result<serde_json::Value, CopyError> {
    let end = offset.saturating_add(limit);
    // Number of the line the next byte read belongs to.
    let mut line = 1u64;
    // Part of the current line was read: at EOF that is a last line without
    // a newline, which still counts.
    let mut line_open = false;
    let mut returned = 0u64;
    let mut stopped_early = false;
    // Stopped inside a line: that line was seen, though not to its end.
    let mut stopped_in_line = false;
    let mut eof = false;
    while line < end {
        // A cancelled call skipping to a far offset writes nothing, so it
        // would never hear the sink's `false`; ask on every pass.
        if out.sink().cancelled() {
            stopped_early = true;
            stopped_in_line = line_open;
            break;
        }
        let buf = reader.fill_buf().map_err(CopyError::Read)?;
        if buf.is_empty() {
            eof = true;
            break;
        }
        let (piece, ends_line) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let used = piece.len();
        let selected = line >= offset;
        if selected && !out.push(piece).map_err(CopyError::Write)? {
            // The bytes were counted, so the line was (partly) returned.
            returned += 1;
            stopped_early = true;
            stopped_in_line = true;
            break;
        }
        reader.consume(used);
        if ends_line {
            if selected {
                returned += 1;
            }
            line += 1;
            line_open = false;
        } else {
            line_open = true;
        }
    }
    if !stopped_early && !eof {
        // The limit was reached exactly; look one byte ahead so `eof` says
        // whether asking for more lines would return anything.
        eof = reader.fill_buf().map_err(CopyError::Read)?.is_empty();
    }
    if eof && line_open {
        // A last line without a newline is still a line.
        if line >= offset {
            returned += 1;
        }
        line += 1;
    }
    if !stopped_early && !out.flush().map_err(CopyError::Write)? {
        stopped_early = true;
    }
    let total_lines_seen = line - 1 + u64::from(stopped_in_line);
    let (first_line, last_line) = if returned > 0 {
        (json!(offset), json!(offset + returned - 1))
    } else {
        (json!(null), json!(null))
    };
    Ok(json!({
        "lines_returned": returned,
        "first_line": first_line,
        "last_line": last_line,
        "total_lines_seen": total_lines_seen,
        "eof": eof,
        "stopped_early": stopped_early,
    }))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use bulkhead_ipc::{MAX_CHUNK_BYTES, ToolErrorKind};

    use super::*;
    use crate::tools::args::test_sink::{VecSink, run_tool};

    fn run(args: serde_json::Value, sink: &mut VecSink) -> Result<serde_json::Value, ToolFailure> {
        run_tool(&ReadFile, args, sink)
    }

    fn numbered(n: usize) -> String {
        (1..=n).map(|i| format!("line {i}\n")).collect()
    }

    fn file_with(content: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(content)
            .unwrap();
        (dir, path)
    }

    #[test]
    fn whole_small_file() {
        let (_dir, path) = file_with(numbered(3).as_bytes());
        let mut sink = VecSink::new();
        let summary = run(json!({"path": path}), &mut sink).unwrap();
        assert_eq!(sink.stdout_text(), numbered(3));
        assert_eq!(summary["lines_returned"], 3);
        assert_eq!(summary["first_line"], 1);
        assert_eq!(summary["last_line"], 3);
        assert_eq!(summary["total_lines_seen"], 3);
        assert_eq!(summary["eof"], true);
    }

    #[test]
    fn offset_and_limit_select_lines() {
        let (_dir, path) = file_with(numbered(10).as_bytes());
        let mut sink = VecSink::new();
        let summary = run(json!({"path": path, "offset": 4, "limit": 3}), &mut sink).unwrap();
        assert_eq!(sink.stdout_text(), "line 4\nline 5\nline 6\n");
        assert_eq!(summary["lines_returned"], 3);
        assert_eq!(summary["first_line"], 4);
        assert_eq!(summary["last_line"], 6);
        assert_eq!(summary["total_lines_seen"], 6);
        assert_eq!(summary["eof"], false);
    }

    #[test]
    fn limit_reaching_the_end_reports_eof() {
        let (_dir, path) = file_with(numbered(5).as_bytes());
        let mut sink = VecSink::new();
        let summary = run(json!({"path": path, "offset": 4, "limit": 2}), &mut sink).unwrap();
        assert_eq!(sink.stdout_text(), "line 4\nline 5\n");
        assert_eq!(summary["eof"], true);
    }

    #[test]
    fn offset_past_the_end_returns_nothing() {
        let (_dir, path) = file_with(b"a\nb");
        let mut sink = VecSink::new();
        let summary = run(json!({"path": path, "offset": 9}), &mut sink).unwrap();
        assert!(sink.stdout.is_empty());
        assert_eq!(summary["lines_returned"], 0);
        assert_eq!(summary["first_line"], json!(null));
        assert_eq!(summary["total_lines_seen"], 2);
        assert_eq!(summary["eof"], true);
    }

    #[test]
    fn last_line_without_newline_is_returned_as_is() {
        let (_dir, path) = file_with(b"a\nb");
        let mut sink = VecSink::new();
        let summary = run(json!({"path": path, "offset": 2}), &mut sink).unwrap();
        assert_eq!(sink.stdout_text(), "b");
        assert_eq!(summary["lines_returned"], 1);
        assert_eq!(summary["last_line"], 2);
    }

    #[test]
    fn long_single_line_is_split_into_bounded_chunks() {
        let line = vec![b'x'; 1 << 20];
        let mut content = line.clone();
        content.extend_from_slice(b"\nnext\n");
        let (_dir, path) = file_with(&content);
        let mut sink = VecSink::new();
        let summary = run(json!({"path": path, "limit": 1}), &mut sink).unwrap();
        assert_eq!(sink.stdout.len(), line.len() + 1);
        assert!(sink.stdout.starts_with(&line) && sink.stdout.ends_with(b"x\n"));
        assert!(sink.chunk_sizes.len() >= 16, "{:?}", sink.chunk_sizes);
        assert!(
            sink.chunk_sizes
                .iter()
                .all(|&n| n > 0 && n <= MAX_CHUNK_BYTES)
        );
        assert_eq!(summary["lines_returned"], 1);
        assert_eq!(summary["eof"], false);
    }

    #[test]
    fn stops_when_the_sink_says_so() {
        let (_dir, path) = file_with(numbered(100_000).as_bytes());
        let mut sink = VecSink::with_budget(100);
        let summary = run(json!({"path": path, "limit": 100_000}), &mut sink).unwrap();
        assert_eq!(summary["stopped_early"], true);
        assert_eq!(summary["eof"], false);
        assert_eq!(sink.writes_after_stop, 0);
        // One chunk went out, and the count covers what it held.
        assert_eq!(sink.chunk_sizes, vec![MAX_CHUNK_BYTES]);
        let returned = summary["lines_returned"].as_u64().unwrap();
        assert!(returned > 1000 && returned < 10_000, "{returned}");
    }

    #[test]
    fn binary_file_is_refused() {
        let mut content = b"text\n".to_vec();
        content.push(0);
        content.extend_from_slice(b"more");
        let (_dir, path) = file_with(&content);
        let mut sink = VecSink::new();
        let err = run(json!({"path": path}), &mut sink).unwrap_err();
        assert_eq!(err.kind, ToolErrorKind::BadArguments);
        assert_eq!(
            err.message,
            format!(
                "\"{}\" is a binary file (NUL byte at offset 5); read_file only returns text",
                path.display()
            )
        );
        assert!(sink.stdout.is_empty());
    }

    #[test]
    fn nul_after_the_sniffed_prefix_is_passed_through() {
        let mut content = vec![b'a'; BINARY_SNIFF_BYTES];
        content.extend_from_slice(b"\0\n");
        let (_dir, path) = file_with(&content);
        let mut sink = VecSink::new();
        run(json!({"path": path}), &mut sink).unwrap();
        assert_eq!(sink.stdout, content);
    }

    #[test]
    fn missing_file_and_directory_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.txt");
        let err = run(json!({"path": missing}), &mut VecSink::new()).unwrap_err();
        assert_eq!(err.kind, ToolErrorKind::Io);
        assert!(
            err.message.contains(&format!("\"{}\"", missing.display())),
            "{}",
            err.message
        );

        let err = run(json!({"path": dir.path()}), &mut VecSink::new()).unwrap_err();
        assert!(err.message.contains("is a directory"), "{}", err.message);
    }

    #[test]
    fn bad_arguments_name_the_field() {
        let (_dir, path) = file_with(b"a\n");
        let err = run(json!({"path": path, "offset": 0}), &mut VecSink::new()).unwrap_err();
        assert_eq!(err.kind, ToolErrorKind::BadArguments);
        assert!(err.message.contains("\"offset\""), "{}", err.message);
        let err = run(json!({"path": path, "limit": "ten"}), &mut VecSink::new()).unwrap_err();
        assert!(
            err.message.starts_with("bad argument \"limit\""),
            "{}",
            err.message
        );
        let err = run(json!({"offset": 2}), &mut VecSink::new()).unwrap_err();
        assert_eq!(err.message, "missing field \"path\"");
        let err = run(json!({"path": path, "lines": 2}), &mut VecSink::new()).unwrap_err();
        assert!(
            err.message.contains("unknown field \"lines\""),
            "{}",
            err.message
        );
    }

    #[test]
    fn schema_describes_the_arguments() {
        let schema = crate::tools::DynTool::schema(&ReadFile);
        assert_eq!(schema["required"], json!(["path"]));
        assert!(schema["properties"]["offset"]["description"].is_string());
    }
}
