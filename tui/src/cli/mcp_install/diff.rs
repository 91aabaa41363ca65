//! A small line diff for `--dry-run`. The rewrite only changes or inserts
//! lines at a few places, so a greedy walk that resynchronises on the
//! nearest equal pair of lines finds the same hunks a full diff would,
//! without a full diff's quadratic table on a large `~/.claude.json`.

/// How far ahead (in lines, both sides together) to look for the next
/// equal pair before giving the rest as one change.
const LOOKAHEAD: usize = 400;

/// `-`/`+` lines with `@@ -LINE +LINE @@` headers, as text.
pub fn unified(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
            continue;
        }
        let (di, dj) = resync(&a[i..], &b[j..]);
        out.push_str(&format!("@@ -{} +{} @@\n", i + 1, j + 1));
        for line in &a[i..i + di] {
            out.push_str(&format!("-{line}\n"));
        }
        for line in &b[j..j + dj] {
            out.push_str(&format!("+{line}\n"));
        }
        i += di;
        j += dj;
    }
    out
}

/// The smallest skip (old lines, new lines) after which both sides match
/// again, or the rest of both.
fn resync(a: &[&str], b: &[&str]) -> (usize, usize) {
    for total in 1..=LOOKAHEAD.min(a.len() + b.len()) {
        for di in 0..=total {
            let dj = total - di;
            if di < a.len() && dj < b.len() && a[di] == b[dj] {
                return (di, dj);
            }
        }
    }
    (a.len(), b.len())
}

#[cfg(test)]
mod tests {
    use super::unified;

    #[test]
    fn inserted_and_changed_lines() {
        let d = unified("a\nb\nc\n", "a\nB\nx\nc\n");
        assert_eq!(d, "@@ -2 +2 @@\n-b\n+B\n+x\n");
    }
}
