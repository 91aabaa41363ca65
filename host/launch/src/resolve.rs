//! Finding programs: `PATH` lookup, `#!` lines, and capped reads of the
//! small files everything else is decided from.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::LaunchEnv;

/// Version files, `pyvenv.cfg`, shims, `.npmrc`-sized things: a few lines
/// each. Anything bigger is not one of them, and is not read whole.
pub(crate) const SMALL_FILE_CAP: u64 = 64 * 1024;

/// package.json, platform.json, TOML configs: real ones are kilobytes;
/// 4 MiB tolerates generated monorepo manifests without reading a stray
/// multi-gigabyte file into memory.
pub(crate) const MANIFEST_CAP: u64 = 4 << 20;

/// How much of a file is read to find its `#!` line and, for pip's
/// long-path trick, the `'''exec'` line after it. Linux itself reads at
/// most 256 bytes of a `#!` line (BINPRM_BUF_SIZE since 5.1).
const SHEBANG_CAP: u64 = 1024;

/// Why a capped read failed.
#[derive(Debug)]
pub(crate) enum ReadFail {
    Missing,
    TooLarge,
    NotUtf8,
    Io(std::io::Error),
}

impl std::fmt::Display for ReadFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => f.write_str("does not exist"),
            Self::TooLarge => f.write_str("too large"),
            Self::NotUtf8 => f.write_str("not UTF-8"),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Reads a whole UTF-8 file of at most `cap` bytes.
pub(crate) fn read_capped(path: &Path, cap: u64) -> Result<String, ReadFail> {
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ReadFail::Missing,
        _ => ReadFail::Io(e),
    })?;
    let mut buf = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(ReadFail::Io)?;
    if buf.len() as u64 > cap {
        return Err(ReadFail::TooLarge);
    }
    String::from_utf8(buf).map_err(|_| ReadFail::NotUtf8)
}

/// Reads a small file, or `None` for any failure (callers that must report
/// failures use [`read_capped`]).
pub(crate) fn read_small(path: &Path) -> Option<String> {
    read_capped(path, SMALL_FILE_CAP).ok()
}

/// `path` made absolute against `cwd`, `.` and `..` removed lexically (no
/// symlinks followed: a venv's `bin/python` must keep its path).
pub(crate) fn absolutize(path: &Path, cwd: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A regular file with an exec bit set, following symlinks.
pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `PATH`'s directories, absolute (an empty or relative entry is relative
/// to the cwd, as execvp treats it).
pub(crate) fn path_dirs(env: &LaunchEnv) -> Vec<PathBuf> {
    env.path
        .as_ref()
        .map(|p| {
            std::env::split_paths(p)
                .map(|d| absolutize(&d, &env.cwd))
                .collect()
        })
        .unwrap_or_default()
}

/// Where `program` is: a name with a `/` is a path (relative to the cwd);
/// a bare name is looked up on `PATH`, skipping directories `skip` rejects.
pub(crate) fn locate(
    program: &str,
    env: &LaunchEnv,
    skip: &dyn Fn(&Path) -> bool,
) -> Option<PathBuf> {
    if program.contains('/') {
        let p = absolutize(Path::new(program), &env.cwd);
        return is_executable(&p).then_some(p);
    }
    path_dirs(env)
        .into_iter()
        .filter(|d| !skip(d))
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

/// `program` on `PATH`.
pub(crate) fn which(program: &str, env: &LaunchEnv) -> Option<PathBuf> {
    locate(program, env, &|_| false)
}

/// Whether `a` and `b` are the same directory (lexically, or once both are
/// canonical).
pub(crate) fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// `child` canonicalized, if it exists and stays inside `root`
/// (canonicalized). Guards every path built from a version name read out of
/// a file, which a cloned project controls.
pub(crate) fn contained(root: &Path, child: &Path) -> Option<PathBuf> {
    let root = root.canonicalize().ok()?;
    let child = child.canonicalize().ok()?;
    (child.starts_with(&root) && child != root).then_some(child)
}

/// A version name read from a file: letters, digits, `.`, `_`, `+`, `-`,
/// starting with a letter or digit, at most 128 bytes (no `/`, no `..`, so
/// it stays one path component).
pub(crate) fn is_version_name(v: &str) -> bool {
    v.len() <= 128
        && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
}

/// Compares dotted versions numerically where both parts are numbers
/// (`3.9.18 < 3.10.1`, `v22.1.0 > v20.9.0`), textually otherwise.
pub(crate) fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |s: &str| -> Vec<String> {
        s.trim_start_matches('v')
            .split(['.', '-', '+'])
            .map(str::to_owned)
            .collect()
    };
    let (a, b) = (split(a), split(b));
    for (x, y) in a.iter().zip(b.iter()) {
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if ord.is_ne() {
            return ord;
        }
    }
    a.len().cmp(&b.len())
}

/// The highest version directory under `dir` whose name is `prefix` or
/// starts with `prefix.` (`3.11` → `3.11.7`), ignoring pre-releases
/// (names with letters after the prefix), as pyenv and mise do.
pub(crate) fn latest_with_prefix(dir: &Path, prefix: &str) -> Option<String> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            let rest = n
                .strip_prefix(prefix)
                .or_else(|| n.strip_prefix('v').and_then(|m| m.strip_prefix(prefix)));
            match rest {
                Some("") => true,
                Some(r) => {
                    r.starts_with('.') && r[1..].chars().all(|c| c.is_ascii_digit() || c == '.')
                }
                None => false,
            }
        })
        .max_by(|a, b| version_cmp(a, b))
}

/// A `#!` interpreter line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shebang {
    /// The interpreter: an absolute path, or for `/usr/bin/env NAME`, the
    /// bare name.
    pub interpreter: String,
    /// Whether it was found through `env` (so on `PATH`).
    pub via_env: bool,
    /// Arguments to the interpreter written after it.
    pub args: Vec<String>,
    /// The line as written, without `#!`.
    pub line: String,
}

/// The `#!` line of `path`, if it has one. Handles `/usr/bin/env [-S]
/// [VAR=val…] NAME` and pip's trick for long interpreter paths
/// (`#!/bin/sh` then `'''exec' "/long/path/python" "$0" "$@"`).
pub(crate) fn shebang(path: &Path) -> Option<Shebang> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(SHEBANG_CAP)
        .read_to_end(&mut head)
        .ok()?;
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.lines();
    let first = lines.next()?.strip_prefix("#!")?;
    let mut words = first.split_whitespace().map(str::to_owned);
    let interpreter = words.next()?;
    let mut args: Vec<String> = words.collect();
    if interpreter.ends_with("/sh") {
        if let Some(exec) = lines.next().and_then(|l| l.strip_prefix("'''exec' ")) {
            let target = exec.split_whitespace().next()?.trim_matches('"');
            return Some(Shebang {
                interpreter: target.to_owned(),
                via_env: false,
                args: Vec::new(),
                line: exec.trim().to_owned(),
            });
        }
    }
    if Path::new(&interpreter)
        .file_name()
        .is_some_and(|n| n == "env")
    {
        args.retain(|a| a != "-S" && !a.starts_with("--split-string"));
        let pos = args
            .iter()
            .position(|a| !a.starts_with('-') && !a.contains('='))?;
        let name = args.remove(pos);
        args.drain(..pos);
        return Some(Shebang {
            interpreter: name,
            via_env: true,
            args,
            line: first.trim().to_owned(),
        });
    }
    Some(Shebang {
        interpreter,
        via_env: false,
        args,
        line: first.trim().to_owned(),
    })
}

/// `p` as a `String`, or the error naming it.
pub(crate) fn path_string(p: &Path) -> Result<String, crate::LaunchError> {
    p.to_str()
        .map(str::to_owned)
        .ok_or_else(|| crate::LaunchError::NonUtf8Path {
            path: p.to_path_buf(),
        })
}

/// The first of `names` found in `start` or one of its ancestors, walking
/// up to `/`.
pub(crate) fn find_upward(start: &Path, names: &[&str]) -> Option<PathBuf> {
    start
        .ancestors()
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}
