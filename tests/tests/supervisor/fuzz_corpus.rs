//! Every file of the committed fuzz corpora (`fuzz/corpus/TARGET/`) run
//! through its target's check on stable, as an ordinary test: an input
//! that once crashed a decoder stays in the corpus, so the fix stays.
//! The checks are the fuzz targets' own (`bulkhead_tests::fuzz_checks`).
//!
//! The counting allocator is this binary's global allocator so that the
//! checks' allocation bounds hold here too; it counts per thread, so the
//! binary's other tests, running at the same time, do not disturb it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use bulkhead_tests::fuzz_checks::{TARGETS, alloc};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

#[test]
fn every_fuzz_corpus_file_passes_its_check() {
    assert!(alloc::counting(), "the counting allocator is not installed");
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (target, check) in TARGETS {
        let dir = corpus_dir(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("a corpus entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{} has no seeds", dir.display());
        for file in files {
            let bytes = std::fs::read(&file).expect("reading a corpus file");
            replayed += 1;
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&bytes))) {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failures.push(format!("{target}: {}: {why}", file.display()));
            }
        }
    }
    eprintln!(
        "replayed {replayed} corpus files through {} checks",
        TARGETS.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {replayed} corpus files fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_fuzz_target_has_a_corpus_and_a_binary() {
    let targets_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fuzz_targets");
    for (target, _) in TARGETS {
        assert!(corpus_dir(target).is_dir(), "no corpus for {target}");
        assert!(
            targets_dir.join(format!("{target}.rs")).is_file(),
            "no fuzz target for {target}"
        );
    }
}
