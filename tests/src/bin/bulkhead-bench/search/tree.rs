//! The generated tree `search` runs on: deterministic text files of
//! random words, a rare literal in a few files and a common word in many
//! lines.

use std::io::Write;
use std::path::Path;

/// Directories × files per directory: 5,000 files, a mid-sized repository.
pub const DIRS: usize = 50;
pub const FILES_PER_DIR: usize = 100;

/// Bytes per file (about): 5,000 × 20 KB = 100 MB, large enough that the
/// search, not process start-up, dominates, and fits the page cache.
const FILE_BYTES: usize = 20_000;

/// Every this-many-th file holds the rare literal once: 10 matches in all.
const NEEDLE_EVERY: usize = 500;
pub const NEEDLE: &str = "bulkheadneedle";

/// A word of the vocabulary; with 64 words and ~11 per line, ~16% of lines
/// hold it: about 200,000 matches, ~27 MB of output.
pub const COMMON: &str = "delta";

/// Words the generated lines are made of. None contains another's text,
/// so a word pattern matches only that word.
const WORDS: [&str; 64] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "amber", "basil", "cedar", "dune",
    "ember", "fern", "grove", "heath", "iris", "jade", "kelp", "lotus", "moss", "nectar", "olive",
    "pine", "quartz", "reed", "sage", "thyme", "umber", "vale", "willow", "yarrow", "zinnia",
    "anchor", "beacon", "compass", "harbor", "keel", "lantern", "mast", "oar", "rudder", "sail",
    "tide", "wharf", "buoy",
];

/// Writes the tree; returns its size in bytes. Deterministic (fixed seed).
pub fn generate(root: &Path) -> u64 {
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        // xorshift64: fast, and the same tree on every machine.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut total = 0u64;
    let mut content = Vec::with_capacity(FILE_BYTES + 200);
    for d in 0..DIRS {
        let dir = root.join(format!("d{d:02}"));
        std::fs::create_dir_all(&dir).expect("cannot create the tree");
        for f in 0..FILES_PER_DIR {
            let index = d * FILES_PER_DIR + f;
            content.clear();
            let mut needle = index.is_multiple_of(NEEDLE_EVERY);
            while content.len() < FILE_BYTES {
                if needle && content.len() >= FILE_BYTES / 2 {
                    writeln!(content, "the {NEEDLE} is here").expect("writing to a Vec");
                    needle = false;
                }
                let words = 8 + next() % 7;
                for w in 0..words {
                    if w > 0 {
                        content.push(b' ');
                    }
                    content.extend_from_slice(
                        WORDS[(next() % WORDS.len() as u64) as usize].as_bytes(),
                    );
                }
                content.push(b'\n');
            }
            std::fs::write(dir.join(format!("f{index:04}.txt")), &content)
                .expect("cannot write a file");
            total += content.len() as u64;
        }
    }
    total
}
