//! Canonical paths for denied paths, which need not exist yet.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The canonical form of a path's longest existing prefix, with the rest
/// appended: a denied path that does not exist yet must still be denied
/// where it would appear, behind any symlinked parent.
///
/// Parents are resolved once and shared. std's `canonicalize` costs a
/// `readlink` per component, from `/` each time, and fails on a missing
/// path, so a missing path cost one call per prefix: the forty-odd denied
/// paths under `$HOME` took some 200 system calls at the start of every
/// sandboxed call. Here each distinct prefix costs one `lstat`, and only a
/// symlink is followed in full.
#[derive(Debug, Default)]
pub(crate) struct Lenient {
    known: HashMap<PathBuf, PathBuf>,
}

impl Lenient {
    pub(crate) fn canonical(&mut self, path: &Path) -> PathBuf {
        if let Some(c) = self.known.get(path) {
            return c.clone();
        }
        let c = self.resolve(path);
        self.known.insert(path.to_path_buf(), c.clone());
        c
    }

    fn resolve(&mut self, path: &Path) -> PathBuf {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            // `/`, or a path that ends in `..`: std's answer, else as given.
            return std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        };
        if parent.as_os_str().is_empty() {
            // Relative: std resolves it against the working directory.
            return std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        }
        let at = self.canonical(parent).join(name);
        match std::fs::symlink_metadata(&at) {
            // A link is followed to its end; a dangling one stays where it
            // is, which is where a secret written through it would appear
            // to a tool that named the link.
            Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(&at).unwrap_or(at),
            _ => at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(path: &Path) -> PathBuf {
        Lenient::default().canonical(path)
    }

    #[test]
    fn a_missing_path_is_denied_where_it_would_appear() {
        let dir = tempfile::tempdir().unwrap();
        let c = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(canonical(&dir.path().join("a/b")), c.join("a/b"));
    }

    #[test]
    fn symlinks_on_the_way_are_followed_and_a_dangling_one_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let c = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(c.join("real/inner")).unwrap();
        std::os::unix::fs::symlink(c.join("real"), c.join("link")).unwrap();
        std::os::unix::fs::symlink(c.join("real/inner"), c.join("real/to_inner")).unwrap();
        std::os::unix::fs::symlink(c.join("nowhere"), c.join("dangling")).unwrap();
        let mut l = Lenient::default();
        // A symlinked parent, existing or missing leaf.
        assert_eq!(l.canonical(&c.join("link/inner")), c.join("real/inner"));
        assert_eq!(
            l.canonical(&c.join("link/missing/x")),
            c.join("real/missing/x")
        );
        // A symlink as the leaf, and one behind a symlinked parent.
        assert_eq!(l.canonical(&c.join("link/to_inner")), c.join("real/inner"));
        assert_eq!(l.canonical(&c.join("dangling")), c.join("dangling"));
        // Forms std reads the same way.
        assert_eq!(l.canonical(&c.join("link/./inner/")), c.join("real/inner"));
        assert_eq!(l.canonical(&c.join("real/inner/..")), c.join("real"));
    }

    /// What std's `canonicalize` answers wherever the path exists.
    #[test]
    fn existing_paths_get_what_std_gives() {
        let dir = tempfile::tempdir().unwrap();
        let c = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(c.join("a/b")).unwrap();
        std::os::unix::fs::symlink("a/b", c.join("rel")).unwrap();
        let mut l = Lenient::default();
        for p in [
            c.join("a"),
            c.join("a/b"),
            c.join("rel"),
            PathBuf::from("/"),
        ] {
            assert_eq!(l.canonical(&p), std::fs::canonicalize(&p).unwrap(), "{p:?}");
        }
    }
}
