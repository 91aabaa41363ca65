//! Tests of `search_files_content`.
use std::fs;

use super::*;
use crate::tools::args::test_sink::{VecSink, run_tool};

fn run(args: serde_json::Value, sink: &mut VecSink) -> serde_json::Value {
    run_tool(&SearchFilesContent, args, sink).expect("search runs")
}

fn failure(args: serde_json::Value) -> ToolFailure {
    run_tool(&SearchFilesContent, args, &mut VecSink::new()).expect_err("search fails")
}

/// Output lines, sorted: the parallel walk has no fixed order.
fn lines(sink: &VecSink) -> Vec<String> {
    let mut lines: Vec<String> = sink.stdout_text().lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let files: [(&str, &[u8]); 7] = [
        (".gitignore", b"ignored/\n*.log\n"),
        ("a.rs", b"fn main() {\n    let needle = 1;\n}\n"),
        ("b.txt", b"Needle\nhay\nneedle again"),
        ("c.log", b"needle in a log\n"),
        (".hidden", b"needle hidden\n"),
        ("ignored/x.rs", b"needle ignored\n"),
        ("bin.dat", b"needle\0binary\n"),
    ];
    fs::create_dir(dir.path().join("ignored")).unwrap();
    for (name, content) in files {
        fs::write(dir.path().join(name), content).unwrap();
    }
    dir
}

#[test]
fn prints_path_line_text_and_honours_gitignore_hidden_binary() {
    let dir = tree();
    let p = dir.path().display();
    let mut sink = VecSink::new();
    let summary = run(json!({"pattern": "needle", "path": dir.path()}), &mut sink);
    let expected = [
        format!("{p}/a.rs:2:    let needle = 1;"),
        format!("{p}/b.txt:3:needle again"),
    ];
    assert_eq!(lines(&sink), expected);
    // The last line of b.txt has no newline; the output line does.
    assert!(sink.stdout.ends_with(b"\n"));
    assert_eq!(summary["matches"], 2);
    assert_eq!(summary["files_with_matches"], 2);
    // a.rs, b.txt, bin.dat: hidden and ignored files are never opened.
    assert_eq!(summary["files_searched"], 3);
    assert_eq!(summary["stopped_early"], false);
    assert_eq!(summary["stop_reason"], json!(null));
}

#[test]
fn case_insensitive_and_glob() {
    let dir = tree();
    let p = dir.path().display();
    let mut sink = VecSink::new();
    let args =
        json!({"pattern": "NEEDLE", "path": dir.path(), "case_insensitive": true, "glob": "*.txt"});
    let summary = run(args, &mut sink);
    assert_eq!(
        lines(&sink),
        [
            format!("{p}/b.txt:1:Needle"),
            format!("{p}/b.txt:3:needle again")
        ]
    );
    assert_eq!(summary["files_searched"], 1);

    let mut sink = VecSink::new();
    run(json!({"pattern": "NEEDLE", "path": dir.path()}), &mut sink);
    assert!(sink.stdout.is_empty());
}

#[test]
fn single_file_path_is_searched() {
    let dir = tree();
    let file = dir.path().join("c.log");
    let mut sink = VecSink::new();
    run(json!({"pattern": "log$", "path": file}), &mut sink);
    assert_eq!(
        sink.stdout_text(),
        format!("{}:1:needle in a log\n", file.display())
    );
}

#[test]
fn non_utf8_is_written_lossily() {
    let dir = tempfile::tempdir().unwrap();
    // An invalid byte, a valid multi-byte character, and a character cut
    // short by the end of its line: each line is converted on its own.
    fs::write(
        dir.path().join("f"),
        b"ab\xffcd\r\n\xe2\x82\xac cd\ncd \xe2\x82\n",
    )
    .unwrap();
    let mut sink = VecSink::new();
    run(json!({"pattern": "cd", "path": dir.path()}), &mut sink);
    let text = std::str::from_utf8(&sink.stdout).expect("the worker sends text");
    let f = dir.path().join("f");
    let f = f.display();
    let expected = format!("{f}:1:ab\u{FFFD}cd\r\n{f}:2:\u{20AC} cd\n{f}:3:cd \u{FFFD}\n");
    assert_eq!(text, expected);
}

#[test]
fn newlines_in_file_names_count_as_lines_seen() {
    // Enough output for whole batches, which the search sends with their
    // newlines counted (`write_lines`), and a name with a newline in it.
    let dir = big_tree(4, 3000);
    fs::rename(
        dir.path().join("f0000.txt"),
        dir.path().join("two\nlines.txt"),
    )
    .unwrap();
    let mut sink = VecSink::new();
    let summary = run(json!({"pattern": "match", "path": dir.path()}), &mut sink);
    assert_eq!(summary["matches"], 4 * 3000);
    let newlines = sink.stdout.iter().filter(|&&b| b == b'\n').count() as u64;
    assert_eq!(newlines, 5 * 3000);
    assert_eq!(sink.newlines, newlines);
}

/// `files` files of `lines` matching lines each.
fn big_tree(files: usize, lines: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let content: String = (0..lines).map(|i| format!("match line {i}\n")).collect();
    for i in 0..files {
        fs::write(dir.path().join(format!("f{i:04}.txt")), &content).unwrap();
    }
    dir
}

#[test]
fn max_matches_stops_early_with_exact_count() {
    let dir = big_tree(200, 100);
    let mut sink = VecSink::new();
    let args = json!({"pattern": "match", "path": dir.path(), "max_matches": 150});
    let summary = run(args, &mut sink);
    assert_eq!(lines(&sink).len(), 150);
    assert_eq!(summary["matches"], 150);
    assert_eq!(summary["stopped_early"], true);
    assert_eq!(summary["stop_reason"], "max_matches");
    assert!(
        summary["files_searched"].as_u64().unwrap() < 50,
        "{summary}"
    );
}

#[test]
fn batches_spanning_files_count_every_match_and_file() {
    // 300 files of 50 lines: each thread's batches hold many files, and
    // some files are split between two batches.
    let dir = big_tree(300, 50);
    let mut sink = VecSink::new();
    let summary = run(json!({"pattern": "match", "path": dir.path()}), &mut sink);
    let lines = lines(&sink);
    assert_eq!(lines.len(), 300 * 50);
    assert_eq!(summary["matches"], 300 * 50);
    assert_eq!(summary["files_with_matches"], 300);
    assert_eq!(summary["files_searched"], 300);
    let p = dir.path().display();
    assert!(lines.contains(&format!("{p}/f0299.txt:50:match line 49")));
    assert!(sink.chunk_sizes.iter().all(|&n| n <= MAX_CHUNK_BYTES));
    assert_eq!(sink.newlines, 300 * 50);
}

#[test]
fn sink_budget_stops_the_search() {
    let dir = big_tree(2000, 100);
    let mut sink = VecSink::with_budget(64 << 10);
    let summary = run(json!({"pattern": "match", "path": dir.path()}), &mut sink);
    assert_eq!(summary["stopped_early"], true);
    assert_eq!(summary["stop_reason"], "output_cap");
    // The budget holds ~1% of the matches. How many files the other search
    // thread gets through before it sees the stop depends on scheduling (274
    // on a loaded 2-core machine, against ~30 quiet), so the bound only says
    // the search did stop: far short of the whole tree.
    let searched = summary["files_searched"].as_u64().unwrap();
    assert!(searched < 1000, "searched {searched} of 2000 files");
    assert_eq!(sink.writes_after_stop, 0);
    assert!(sink.chunk_sizes.iter().all(|&n| n <= MAX_CHUNK_BYTES));
}

#[test]
fn cancel_stops_the_search() {
    let dir = big_tree(2000, 100);
    let mut sink = VecSink::new();
    sink.cancel_after_writes = Some(1);
    let summary = run(json!({"pattern": "match", "path": dir.path()}), &mut sink);
    assert_eq!(summary["stop_reason"], "cancelled");
    // The budget holds ~1% of the matches. How many files the other search
    // thread gets through before it sees the stop depends on scheduling (274
    // on a loaded 2-core machine, against ~30 quiet), so the bound only says
    // the search did stop: far short of the whole tree.
    let searched = summary["files_searched"].as_u64().unwrap();
    assert!(searched < 1000, "searched {searched} of 2000 files");
    assert_eq!(sink.writes_after_stop, 0);

    // Cancelled before it starts: nothing is searched at all.
    let mut sink = VecSink::new();
    sink.cancelled = true;
    let summary = run(json!({"pattern": "match", "path": dir.path()}), &mut sink);
    assert_eq!(summary["stop_reason"], "cancelled");
    assert_eq!(summary["files_searched"], 0);
    assert!(sink.stdout.is_empty());
}

#[test]
fn long_line_is_split_into_bounded_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let mut content = vec![b'a'; 1 << 20];
    content.extend_from_slice(b"needle\n");
    fs::write(dir.path().join("long.txt"), &content).unwrap();
    let mut sink = VecSink::new();
    let summary = run(json!({"pattern": "needle", "path": dir.path()}), &mut sink);
    assert_eq!(summary["matches"], 1);
    let prefix = format!("{}:1:", dir.path().join("long.txt").display());
    assert_eq!(sink.stdout.len(), prefix.len() + content.len());
    assert!(sink.stdout.starts_with(prefix.as_bytes()) && sink.stdout.ends_with(b"aneedle\n"));
    assert!(sink.chunk_sizes.len() > 16);
    assert!(
        sink.chunk_sizes
            .iter()
            .all(|&n| n > 0 && n <= MAX_CHUNK_BYTES)
    );
}

#[test]
fn bad_arguments_are_named() {
    let dir = tree();
    let path = dir.path();
    let err = failure(json!({"pattern": "(", "path": path}));
    assert_eq!(err.kind, ToolErrorKind::BadArguments);
    assert!(
        err.message.starts_with("bad argument \"pattern\": "),
        "{err}"
    );
    assert!(err.message.contains("unclosed group"), "{err}");
    let err = failure(json!({"pattern": "a", "path": path, "max_matches": "x"}));
    let expected = "bad argument \"max_matches\": invalid type: string \"x\", expected u64";
    assert_eq!(err.message, expected);
    assert_eq!(
        failure(json!({"path": path})).message,
        "missing field \"pattern\""
    );
    let err = failure(json!({"pattern": "a", "path": path, "regex": "b"}));
    assert!(err.message.contains("unknown field \"regex\""), "{err}");
    let err = failure(json!({"pattern": "a", "path": path, "glob": "{a"}));
    assert!(err.message.starts_with("bad argument \"glob\": "), "{err}");
}

#[test]
fn missing_path_is_an_io_failure_naming_it() {
    let missing = tempfile::tempdir().unwrap().path().join("gone");
    let err = failure(json!({"pattern": "a", "path": missing}));
    assert_eq!(err.kind, ToolErrorKind::Io);
    assert!(
        err.message.contains(&format!("\"{}\"", missing.display())),
        "{err}"
    );
}
