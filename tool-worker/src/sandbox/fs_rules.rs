//! Filesystem rules through Landlock: read roots, write roots, and denied
//! paths carved out of them.
//!
//! Landlock only ever *allows*: a rule grants access beneath a directory,
//! and nothing can take part of it back. A denied path under a root is
//! therefore carved out by [`carve`]: the root is replaced by each of its
//! entries except the one that leads to the denied path, recursively. For
//! `/` minus `/root/.ssh` that is every entry of `/` but `root`, plus every
//! entry of `/root` but `.ssh`.
//!
//! # Caveats
//! - Carving lists directories when the call starts. An entry created later
//!   beside a denied path (a new file in `$HOME` when `~/.ssh` is denied) is
//!   not readable by the tool.
//! - A directory that holds a denied path is allowed entry by entry, not
//!   itself: a rule on it would let the tool list the denied directories'
//!   contents (Landlock's `READ_DIR` reaches the whole hierarchy below), and
//!   file names can be secrets too (`~/.password-store`). So `$HOME` under
//!   `workspace`, or `/`, cannot be listed or searched as a whole; their
//!   subdirectories can.
//! - Symlinks met while carving are left out: access through a symlink is
//!   checked by Landlock at its target, so a link into a denied directory
//!   gives nothing, and a link to an allowed place loses nothing.
//! - Landlock does not restrict `connect` to a named Unix socket, nor reads
//!   of already-open fds. bulkhead closes every inherited fd.
//!
//! # Cost, and the tool's own roots
//! Landlock checks every `open` by walking from the file up through its
//! parent directories to the nearest one with a rule; each step looks the
//! directory up among the rules and takes and drops a reference on it, and
//! the directories near the top are shared by every thread of a parallel
//! search. A search of `/tmp/x/tree` walks up to the rule carving makes
//! on `/tmp`. [`nearest_rules`] adds a read rule on each path the tool
//! names in its arguments (the search root), where that path is already
//! readable in full: the walk then ends there, and the rule grants nothing
//! the others did not.

use std::path::{Path, PathBuf};

use bulkhead_ipc::FsRules;
use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};

/// The newest Landlock ABI whose rights bulkhead asks for. Older kernels
/// get the subset they know (best effort), and the report says which ABI
/// was in force.
const TARGET_ABI: ABI = ABI::V6;

/// Entries visited while carving, at most. `/` minus a few `$HOME` secrets
/// visits a few hundred; the bound only keeps a pathological tree (a
/// denied path under a directory of millions of entries) from stalling
/// the call's start.
const MAX_CARVED_ENTRIES: usize = 100_000;

/// What Landlock was asked to do, and what the kernel did.
#[derive(Debug)]
pub struct LandlockResult {
    /// The kernel's Landlock ABI, 0 if none.
    pub abi: i32,
    pub status: Result<RulesetStatus, String>,
    pub read_rules: usize,
    pub write_rules: usize,
    /// Rules [`nearest_rules`] added at the tool's own paths.
    pub tool_rules: usize,
    pub skipped: Vec<String>,
}

/// What else the same ruleset restricts besides the filesystem.
#[derive(Debug, Clone, Copy)]
pub struct Extras {
    /// Deny TCP bind and connect (network `none`).
    pub deny_tcp: bool,
    /// Deny signals and abstract Unix sockets to anything outside the
    /// sandbox (ABI 6).
    pub scope: bool,
}

/// The kernel's Landlock ABI version, or the reason there is none.
pub fn kernel_abi() -> Result<i32, String> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attr and size 0 this only queries the version.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v >= 0 {
        return Ok(v as i32);
    }
    let err = std::io::Error::last_os_error();
    Err(match err.raw_os_error() {
        Some(libc::ENOSYS) => {
            "the kernel has no Landlock (ENOSYS; Linux ≥ 5.13 with CONFIG_SECURITY_LANDLOCK)".into()
        }
        Some(libc::EOPNOTSUPP) => {
            "Landlock is built in but not enabled at boot (EOPNOTSUPP; add landlock to lsm=)".into()
        }
        _ => format!("landlock_create_ruleset: {err}"),
    })
}

/// Restricts this process (and everything it starts) to `rules`.
/// `tool_paths`: the paths the tool's arguments name (see
/// [`nearest_rules`]).
pub fn restrict(rules: Option<&FsRules>, extras: Extras, tool_paths: &[PathBuf]) -> LandlockResult {
    let abi = kernel_abi().unwrap_or(0);
    let mut result = LandlockResult {
        abi,
        status: Err(String::new()),
        read_rules: 0,
        write_rules: 0,
        tool_rules: 0,
        skipped: Vec::new(),
    };
    result.status = build_and_restrict(rules, extras, tool_paths, &mut result);
    result
}

fn build_and_restrict(
    rules: Option<&FsRules>,
    extras: Extras,
    tool_paths: &[PathBuf],
    out: &mut LandlockResult,
) -> Result<RulesetStatus, String> {
    let err = |e: landlock::RulesetError| e.to_string();
    let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::BestEffort);
    if rules.is_some() {
        ruleset = ruleset
            .handle_access(AccessFs::from_all(TARGET_ABI))
            .map_err(err)?;
    }
    if extras.deny_tcp {
        ruleset = ruleset
            .handle_access(AccessNet::from_all(TARGET_ABI))
            .map_err(err)?;
    }
    if extras.scope {
        ruleset = ruleset.scope(Scope::from_all(TARGET_ABI)).map_err(err)?;
    }
    let mut created = ruleset.create().map_err(err)?;
    if let Some(rules) = rules {
        let deny: Vec<PathBuf> = rules.deny.iter().map(PathBuf::from).collect();
        let read = carve_typed(&to_paths(&rules.read), &deny);
        let write = carve_typed(&to_paths(&rules.write), &deny);
        let nearest = nearest_rules(tool_paths, read.iter().chain(&write), &deny);
        for (paths, access, count) in [
            (&read, AccessFs::from_read(TARGET_ABI), &mut out.read_rules),
            (&write, AccessFs::from_all(TARGET_ABI), &mut out.write_rules),
            (
                &nearest,
                AccessFs::from_read(TARGET_ABI),
                &mut out.tool_rules,
            ),
        ] {
            for Carved { path, is_dir } in paths {
                let fd = match PathFd::new(path) {
                    Ok(fd) => fd,
                    Err(e) => {
                        out.skipped.push(format!("{}: {e}", path.display()));
                        continue;
                    }
                };
                // A rule on a file may only carry file rights.
                let access = if is_dir.unwrap_or_else(|| path.is_dir()) {
                    access
                } else {
                    access & AccessFs::from_file(TARGET_ABI)
                };
                created = created
                    .add_rule(PathBeneath::new(fd, access))
                    .map_err(err)?;
                *count += 1;
            }
        }
    }
    let status = created.restrict_self().map_err(err)?;
    Ok(status.ruleset)
}

fn to_paths(v: &[String]) -> Vec<PathBuf> {
    v.iter().map(PathBuf::from).collect()
}

/// Replaces each root that contains a denied path by the parts of it that
/// do not, so that allowing all of them allows nothing denied.
pub fn carve(roots: &[PathBuf], deny: &[PathBuf]) -> Vec<PathBuf> {
    carve_typed(roots, deny)
        .into_iter()
        .map(|c| c.path)
        .collect()
}

/// Read rules at `tool_paths`, each made canonical, for those already
/// readable in full: beneath an allowed entry (read or write), with no
/// denied path at or beneath them. Such a rule changes no access (its
/// rights are a subset of its ancestor's), only where Landlock's walk up
/// from an opened file ends. A path that is missing, denied, or not
/// beneath an allowed entry gets no rule; the tool then meets the same
/// answer it would have met anyway.
pub fn nearest_rules<'a>(
    tool_paths: &[PathBuf],
    allowed: impl Iterator<Item = &'a Carved> + Clone,
    deny: &[PathBuf],
) -> Vec<Carved> {
    let deny = normal_forms(deny);
    let mut out: Vec<Carved> = Vec::new();
    for path in tool_paths {
        let Ok(path) = std::fs::canonicalize(path) else {
            continue;
        };
        let covered = allowed
            .clone()
            .any(|a| a.path != path && is_under(&path, &a.path));
        let near_denied = deny
            .iter()
            .any(|d| is_under(&path, d) || is_under(d, &path));
        if covered && !near_denied && !out.iter().any(|c| c.path == path) {
            let is_dir = path.is_dir();
            out.push(Carved {
                path,
                is_dir: Some(is_dir),
            });
        }
    }
    out
}

/// A path to allow, and whether it is a directory when carving already
/// knows (a root's kind is looked up later): it saves a `stat` per rule,
/// of which `/` minus `$HOME`'s secrets makes a few hundred.
pub struct Carved {
    pub path: PathBuf,
    pub is_dir: Option<bool>,
}

pub fn carve_typed(roots: &[PathBuf], deny: &[PathBuf]) -> Vec<Carved> {
    let mut out = Vec::new();
    let mut budget = MAX_CARVED_ENTRIES;
    // Entries joined below a normal dir stay normal.
    let deny = normal_forms(deny);
    for root in roots {
        let root: PathBuf = root.components().collect();
        carve_into(&root, None, &deny, &mut out, &mut budget);
    }
    out
}

/// Normal form (no `.`, no doubled or trailing `/`), so that `is_under`
/// can compare bytes.
fn normal_forms(paths: &[PathBuf]) -> Vec<PathBuf> {
    paths.iter().map(|p| p.components().collect()).collect()
}

/// `path.starts_with(prefix)` for paths in normal form, on bytes. `Path`'s
/// own compares component by component, and carving `/` around `$HOME`'s
/// secrets makes a few hundred entries × dozens of denied paths of those
/// comparisons: a fifth of a sandboxed worker's start-up CPU.
fn is_under(path: &Path, prefix: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (path, prefix) = (path.as_os_str().as_bytes(), prefix.as_os_str().as_bytes());
    path.starts_with(prefix)
        && (path.len() == prefix.len()
            || prefix.ends_with(b"/")
            || path.get(prefix.len()) == Some(&b'/'))
}

fn carve_into(
    dir: &Path,
    is_dir: Option<bool>,
    deny: &[PathBuf],
    out: &mut Vec<Carved>,
    budget: &mut usize,
) {
    if deny.iter().any(|d| is_under(dir, d)) {
        return;
    }
    if !deny.iter().any(|d| is_under(d, dir)) {
        out.push(Carved {
            path: dir.to_path_buf(),
            is_dir,
        });
        return;
    }
    // A denied path lies strictly beneath `dir`: allow its entries one by
    // one instead. If it cannot be listed, allow none of it: failing closed
    // is the only safe answer.
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_symlink() {
            continue;
        }
        let path = entry.path();
        if kind.is_dir() {
            carve_into(&path, Some(true), deny, out, budget);
        } else if !deny.iter().any(|d| is_under(&path, d)) {
            out.push(Carved {
                path,
                is_dir: Some(false),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_under_agrees_with_path_starts_with_on_normal_paths() {
        let paths = ["/", "/a", "/a/b", "/ab", "/a/bc", "/a/b/c", "/b"];
        for p in paths {
            for q in paths {
                let (p, q) = (Path::new(p), Path::new(q));
                assert_eq!(is_under(p, q), p.starts_with(q), "{p:?} under {q:?}");
            }
        }
    }

    #[test]
    fn denied_paths_in_other_forms_are_still_carved() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        std::fs::create_dir(home.join(".ssh")).unwrap();
        std::fs::write(home.join(".bashrc"), "").unwrap();
        // A trailing `/` on the root, and `.` and a trailing `/` in the
        // denied path: `Path::starts_with` ignores both, so must carving.
        let root = PathBuf::from(format!("{}/", home.display()));
        let deny = PathBuf::from(format!("{}/./.ssh/", home.display()));
        assert_eq!(carve(&[root], &[deny]), vec![home.join(".bashrc")]);
    }

    #[test]
    fn a_root_without_denied_paths_is_kept_whole() {
        let roots = vec![PathBuf::from("/usr")];
        assert_eq!(carve(&roots, &[PathBuf::from("/home/x/.ssh")]), roots);
    }

    #[test]
    fn a_denied_root_is_dropped() {
        let roots = vec![PathBuf::from("/home/x/.ssh/keys")];
        assert!(carve(&roots, &[PathBuf::from("/home/x/.ssh")]).is_empty());
    }

    #[test]
    fn a_denied_path_is_carved_out_and_its_siblings_kept() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        for d in [".ssh", "src", "src/deep"] {
            std::fs::create_dir(home.join(d)).unwrap();
        }
        std::fs::write(home.join(".bashrc"), "").unwrap();
        std::fs::write(home.join(".ssh/id_ed25519"), "secret").unwrap();
        std::os::unix::fs::symlink(home.join(".ssh"), home.join("keys")).unwrap();
        let mut got = carve(&[home.to_path_buf()], &[home.join(".ssh")]);
        got.sort();
        // `keys` (a symlink) is left out; `.ssh` is gone; `src` is whole.
        assert_eq!(got, vec![home.join(".bashrc"), home.join("src")]);
    }

    #[test]
    fn a_denied_file_deep_down_carves_each_level() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/.env"), "K=V").unwrap();
        std::fs::write(root.join("a/b/main.rs"), "").unwrap();
        std::fs::write(root.join("a/top"), "").unwrap();
        let mut got = carve(&[root.to_path_buf()], &[root.join("a/b/.env")]);
        got.sort();
        assert_eq!(got, vec![root.join("a/b/main.rs"), root.join("a/top")]);
    }

    fn dir(path: PathBuf) -> Carved {
        Carved {
            path,
            is_dir: Some(true),
        }
    }

    fn nearest(paths: &[PathBuf], allowed: &[Carved], deny: &[PathBuf]) -> Vec<PathBuf> {
        nearest_rules(paths, allowed.iter(), deny)
            .into_iter()
            .map(|c| c.path)
            .collect()
    }

    #[test]
    fn a_tool_path_beneath_an_allowed_dir_gets_a_rule() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/f"), "").unwrap();
        let allowed = [dir(root.join("a"))];
        let got = nearest(&[root.join("a/b"), root.join("a/f")], &allowed, &[]);
        assert_eq!(got, vec![root.join("a/b"), root.join("a/f")]);
        let rules = nearest_rules(&[root.join("a/f")], allowed.iter(), &[]);
        assert_eq!(rules[0].is_dir, Some(false), "a file gets file rights only");
    }

    #[test]
    fn a_tool_path_that_is_an_entry_outside_or_missing_gets_none() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        for d in ["a", "c"] {
            std::fs::create_dir(root.join(d)).unwrap();
        }
        let allowed = [dir(root.join("a"))];
        let paths = [root.join("a"), root.join("c"), root.join("a/missing")];
        assert!(nearest(&paths, &allowed, &[]).is_empty());
    }

    /// Carving never allows a directory that holds a denied path; the deny
    /// check stands on its own all the same.
    #[test]
    fn a_tool_path_at_above_or_below_a_denied_path_gets_none() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir_all(root.join("a/secret/x")).unwrap();
        let allowed = [dir(root.clone())];
        let deny = [root.join("a/secret")];
        let paths = [
            root.join("a"),
            root.join("a/secret"),
            root.join("a/secret/x"),
        ];
        assert!(nearest(&paths, &allowed, &deny).is_empty());
    }

    #[test]
    fn a_symlinked_tool_path_gets_its_rule_at_the_target() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir(root.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(root.join("a/b"), root.join("elsewhere/link")).unwrap();
        let allowed = [dir(root.join("a"))];
        let got = nearest(&[root.join("elsewhere/link")], &allowed, &[]);
        assert_eq!(got, vec![root.join("a/b")]);
    }
}
