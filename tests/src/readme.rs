//! The README's runnable commands: fenced blocks whose info string is
//! `sh runnable` (GitHub highlights them as `sh` and ignores the rest).
//! `tests/tests/cli/readme_runnable.rs` runs each one; this module only finds
//! them, so the extraction itself is unit-tested.

/// One runnable block: its first line's number in the file (1-based, the
/// line after the fence) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub line: usize,
    pub code: String,
}

/// The info string that marks a block as runnable.
pub const MARK: &str = "sh runnable";

/// Every `sh runnable` block of `markdown`, in order. A fence opened with
/// N backticks or tildes closes only with at least N of the same character,
/// as in CommonMark, so a block may quote shorter fences. An unclosed block
/// runs to the end of the file (CommonMark again).
pub fn runnable_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<(char, usize, bool, Block)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        let fence = fence_of(trimmed);
        match (&mut open, fence) {
            (None, Some((ch, n))) => {
                let info = trimmed.trim_start_matches(ch).trim();
                let wanted = info.split_whitespace().collect::<Vec<_>>().join(" ") == MARK;
                let block = Block {
                    line: i + 2,
                    code: String::new(),
                };
                open = Some((ch, n, wanted, block));
            }
            (Some((ch, n, _, _)), Some((c, m)))
                if c == *ch && m >= *n && trimmed.trim_start_matches(c).trim().is_empty() =>
            {
                if let Some((_, _, true, block)) = open.take() {
                    blocks.push(block);
                }
            }
            (Some((_, _, _, block)), _) => {
                block.code.push_str(line);
                block.code.push('\n');
            }
            (None, None) => {}
        }
    }
    if let Some((_, _, true, block)) = open {
        blocks.push(block);
    }
    blocks
}

/// `Some((char, length))` if `line` starts a fence of 3+ backticks or tildes.
fn fence_of(line: &str) -> Option<(char, usize)> {
    let ch = line.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let n = line.chars().take_while(|c| *c == ch).count();
    (n >= 3).then_some((ch, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_marked_sh_blocks_are_taken_with_their_line_numbers() {
        let md = "# t\n```sh\nnot me\n```\n\n```sh runnable\necho a\necho b\n```\ntext\n~~~sh  runnable\necho c\n~~~\n";
        let b = runnable_blocks(md);
        assert_eq!(
            b,
            vec![
                Block {
                    line: 7,
                    code: "echo a\necho b\n".into()
                },
                Block {
                    line: 12,
                    code: "echo c\n".into()
                },
            ]
        );
    }

    #[test]
    fn a_longer_fence_may_quote_a_shorter_one() {
        let md = "````sh runnable\ncat <<'X'\n```\nX\n````\n```sh runnable\nlast\n";
        let b = runnable_blocks(md);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].code, "cat <<'X'\n```\nX\n");
        assert_eq!(b[1].code, "last\n", "an unclosed block runs to the end");
    }

    #[test]
    fn other_languages_and_markers_are_ignored() {
        let md = "```toml runnable\nx = 1\n```\n```sh runnable-later\necho no\n```\n```text\n```sh runnable\n```\n";
        assert!(runnable_blocks(md).is_empty());
    }
}
