//! `list_directory`: lists a directory tree the way a developer sees it,
//! i.e. without what `.gitignore` and friends hide.
//!
//! Output is one entry per line, in file-name order so that two calls on the
//! same tree give the same bytes:
//!
//! ```text
//! src/
//! src/main.rs<TAB>1234
//! link<TAB>-> target
//! ```

use std::path::{Path, PathBuf};

use bulkhead_ipc::{MAX_CHUNK_BYTES, StreamId, ToolExit};
use ignore::WalkBuilder;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::args::{ChunkWriter, output_failure};
use super::{OutputSink, Tool, ToolContext, ToolEnd, ToolFailure};

/// Deepest listing allowed. Real source trees rarely nest past a dozen
/// levels; a depth beyond 32 is almost surely a request for "everything",
/// which is better served by `search_files_content` or a glob than by a
/// listing that the output cap would cut at an arbitrary point.
const MAX_DEPTH: u64 = 32;

/// Unreadable entries reported on stderr. A tree full of them (a volume
/// without permission) would otherwise fill the output cap with errors; the
/// summary still counts them all.
const MAX_REPORTED_ERRORS: u64 = 20;

/// Arguments of `list_directory`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListDirectoryArgs {
    /// The directory to list.
    pub path: PathBuf,
    /// How many levels to descend: 1 lists only the directory's own entries.
    /// Defaults to 1, at most 32.
    #[serde(default = "default_depth")]
    #[schemars(range(min = 1, max = 32))]
    pub depth: u64,
    /// List hidden entries (names starting with a dot) too. Files ignored by
    /// .gitignore or .ignore stay hidden either way.
    #[serde(default)]
    pub include_hidden: bool,
}

fn default_depth() -> u64 {
    1
}

/// Lists a directory tree, honouring `.gitignore`, sorted by name.
pub struct ListDirectory;

impl Tool for ListDirectory {
    type Args = ListDirectoryArgs;
    const NAME: &'static str = "list_directory";
    const DESCRIPTION: &'static str =
        "Lists a directory (recursively up to depth), honouring .gitignore; files show their size";

    fn paths(args: &Self::Args) -> Vec<PathBuf> {
        vec![args.path.clone()]
    }

    fn run(
        &self,
        args: ListDirectoryArgs,
        sink: &mut dyn OutputSink,
        _ctx: &ToolContext<'_>,
    ) -> Result<ToolEnd, ToolFailure> {
        if !(1..=MAX_DEPTH).contains(&args.depth) {
            return Err(ToolFailure::bad_args(format!(
                "bad argument \"depth\": must be between 1 and {MAX_DEPTH}, got {}",
                args.depth
            )));
        }
        let root = &args.path;
        let meta = std::fs::metadata(root)
            .map_err(|err| ToolFailure::io(format!("\"{}\"", root.display()), err))?;
        if !meta.is_dir() {
            return Err(ToolFailure::bad_args(format!(
                "\"{}\" is not a directory; use read_file to read a file",
                root.display()
            )));
        }
        let summary = list(root, &args, sink).map_err(output_failure)?;
        Ok(ToolEnd {
            exit: ToolExit::Finished,
            summary: Some(summary),
        })
    }
}

#[derive(Default)]
struct Counts {
    entries: u64,
    dirs: u64,
    files: u64,
    other: u64,
    errors: u64,
}

fn list(
    root: &Path,
    args: &ListDirectoryArgs,
    sink: &mut dyn OutputSink,
) -> std::io::Result<serde_json::Value> {
    let include_hidden = args.include_hidden;
    let mut walk = WalkBuilder::new(root);
    walk.max_depth(usize::try_from(args.depth).ok())
        .hidden(!include_hidden)
        // Outside a git checkout a .gitignore still says what the user does
        // not care about; ripgrep users expect it to apply.
        .require_git(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        // `.git` is shown but not entered: its object files would drown the
        // listing and are never what the caller wanted to see.
        .filter_entry(move |entry| {
            !(include_hidden
                && entry
                    .path()
                    .parent()
                    .and_then(Path::file_name)
                    .is_some_and(|name| name == ".git"))
        });

    let mut out = ChunkWriter::new(sink, StreamId::Stdout);
    let mut counts = Counts::default();
    let mut line = Vec::new();
    let mut stopped_early = false;
    for result in walk.build() {
        if out.sink().cancelled() {
            stopped_early = true;
            break;
        }
        let entry = match result {
            Ok(entry) => entry,
            Err(err) => {
                // An unreadable subdirectory should not hide the rest of the
                // tree; say what was skipped on stderr, as ls does.
                counts.errors += 1;
                if counts.errors > MAX_REPORTED_ERRORS {
                    continue;
                }
                let mut message = format!("list_directory: {err}\n").into_bytes();
                message.truncate(MAX_CHUNK_BYTES);
                if !out.sink().write(StreamId::Stderr, &message)? {
                    stopped_early = true;
                    break;
                }
                continue;
            }
        };
        if entry.depth() == 0 {
            continue;
        }
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        line.clear();
        line.extend_from_slice(relative.to_string_lossy().as_bytes());
        let file_type = entry.file_type();
        if file_type.is_some_and(|t| t.is_dir()) {
            counts.dirs += 1;
            line.push(b'/');
        } else if file_type.is_some_and(|t| t.is_symlink()) {
            counts.other += 1;
            let target = std::fs::read_link(entry.path())
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_else(|err| format!("(unreadable: {err})"));
            line.extend_from_slice(b"\t-> ");
            line.extend_from_slice(target.as_bytes());
        } else if file_type.is_some_and(|t| t.is_file()) {
            counts.files += 1;
            // A file deleted between readdir and stat has no size; a
            // listing is a snapshot, so show it without one.
            if let Ok(meta) = entry.metadata() {
                line.extend_from_slice(format!("\t{}", meta.len()).as_bytes());
            }
        } else {
            // Sockets, FIFOs, devices: named, never opened.
            counts.other += 1;
        }
        line.push(b'\n');
        counts.entries += 1;
        if !out.push(&line)? {
            stopped_early = true;
            break;
        }
    }
    if !stopped_early && !out.flush()? {
        stopped_early = true;
    }
    Ok(json!({
        "entries": counts.entries,
        "dirs": counts.dirs,
        "files": counts.files,
        "other": counts.other,
        "errors": counts.errors,
        "stopped_early": stopped_early,
    }))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use bulkhead_ipc::ToolErrorKind;

    use super::*;
    use crate::tools::args::test_sink::{VecSink, run_tool};

    fn run(args: serde_json::Value, sink: &mut VecSink) -> Result<serde_json::Value, ToolFailure> {
        run_tool(&ListDirectory, args, sink)
    }

    /// root/{.gitignore, .hidden, a.txt, b/{c.txt, d/e.txt}, target/x.o}
    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        fs::write(p.join(".gitignore"), "target/\n*.log\n").unwrap();
        fs::write(p.join(".hidden"), "h").unwrap();
        fs::write(p.join("a.txt"), "hello").unwrap();
        fs::write(p.join("debug.log"), "log").unwrap();
        fs::create_dir_all(p.join("b/d")).unwrap();
        fs::write(p.join("b/c.txt"), "12").unwrap();
        fs::write(p.join("b/d/e.txt"), "").unwrap();
        fs::create_dir(p.join("target")).unwrap();
        fs::write(p.join("target/x.o"), "obj").unwrap();
        dir
    }

    #[test]
    fn depth_one_lists_own_entries_sorted_with_sizes() {
        let dir = tree();
        let mut sink = VecSink::new();
        let summary = run(json!({"path": dir.path()}), &mut sink).unwrap();
        assert_eq!(sink.stdout_text(), "a.txt\t5\nb/\n");
        assert_eq!(summary["entries"], 2);
        assert_eq!(summary["dirs"], 1);
        assert_eq!(summary["files"], 1);
        assert_eq!(summary["stopped_early"], false);
    }

    #[test]
    fn deeper_listing_is_depth_first_and_deterministic() {
        let dir = tree();
        let mut sink = VecSink::new();
        let summary = run(json!({"path": dir.path(), "depth": 3}), &mut sink).unwrap();
        assert_eq!(
            sink.stdout_text(),
            "a.txt\t5\nb/\nb/c.txt\t2\nb/d/\nb/d/e.txt\t0\n"
        );
        assert_eq!(summary["entries"], 5);

        let mut sink = VecSink::new();
        run(json!({"path": dir.path(), "depth": 2}), &mut sink).unwrap();
        assert_eq!(sink.stdout_text(), "a.txt\t5\nb/\nb/c.txt\t2\nb/d/\n");
    }

    #[test]
    fn hidden_entries_on_request_but_gitignored_ones_never() {
        let dir = tree();
        fs::create_dir_all(dir.path().join(".git/objects")).unwrap();
        let mut sink = VecSink::new();
        run(
            json!({"path": dir.path(), "depth": 3, "include_hidden": true}),
            &mut sink,
        )
        .unwrap();
        let text = sink.stdout_text();
        assert!(text.contains(".hidden\t1\n"), "{text}");
        assert!(text.contains(".gitignore\t"), "{text}");
        assert!(
            text.contains(".git/\n") && !text.contains(".git/objects"),
            "{text}"
        );
        assert!(
            !text.contains("target") && !text.contains("debug.log"),
            "{text}"
        );
    }

    #[test]
    fn stops_when_the_sink_says_so() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..10_000 {
            fs::write(dir.path().join(format!("file-{i:05}.txt")), "").unwrap();
        }
        let mut sink = VecSink::with_budget(10);
        let summary = run(json!({"path": dir.path()}), &mut sink).unwrap();
        assert_eq!(summary["stopped_early"], true);
        assert_eq!(sink.chunk_sizes, vec![MAX_CHUNK_BYTES]);
        assert!(summary["entries"].as_u64().unwrap() < 10_000);
        assert!(
            sink.stdout_text()
                .starts_with("file-00000.txt\t0\nfile-00001.txt\t0\n")
        );
    }

    #[test]
    fn bad_arguments_are_named() {
        let dir = tree();
        let err = run(
            json!({"path": dir.path(), "depth": 33}),
            &mut VecSink::new(),
        )
        .unwrap_err();
        assert_eq!(err.kind, ToolErrorKind::BadArguments);
        assert_eq!(
            err.message,
            "bad argument \"depth\": must be between 1 and 32, got 33"
        );
        let err = run(json!({"path": dir.path(), "depth": 0}), &mut VecSink::new()).unwrap_err();
        assert!(err.message.contains("\"depth\""), "{}", err.message);
        let err = run(
            json!({"path": dir.path(), "hidden": true}),
            &mut VecSink::new(),
        )
        .unwrap_err();
        assert!(
            err.message.contains("unknown field \"hidden\""),
            "{}",
            err.message
        );
        let err = run(json!({"path": 3}), &mut VecSink::new()).unwrap_err();
        assert!(
            err.message.starts_with("bad argument \"path\""),
            "{}",
            err.message
        );
    }

    #[test]
    fn missing_path_and_file_path_are_refused() {
        let dir = tree();
        let missing = dir.path().join("nope");
        let err = run(json!({"path": missing}), &mut VecSink::new()).unwrap_err();
        assert_eq!(err.kind, ToolErrorKind::Io);
        assert!(err.message.contains(&format!("\"{}\"", missing.display())));
        let err = run(
            json!({"path": dir.path().join("a.txt")}),
            &mut VecSink::new(),
        )
        .unwrap_err();
        assert!(
            err.message.contains("is not a directory"),
            "{}",
            err.message
        );
    }

    #[test]
    fn symlinks_show_their_target() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("elsewhere", dir.path().join("link")).unwrap();
        let mut sink = VecSink::new();
        let summary = run(json!({"path": dir.path()}), &mut sink).unwrap();
        assert_eq!(sink.stdout_text(), "link\t-> elsewhere\n");
        assert_eq!(summary["other"], 1);
    }
}
