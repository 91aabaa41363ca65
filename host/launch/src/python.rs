//! Python: the interpreter's real prefix, a venv and its base interpreter,
//! and what the arguments run (a script, `-m module`, `-c code`).

use std::path::{Path, PathBuf};

use crate::plan::Builder;
use crate::resolve::{read_small, same_dir};
use crate::script::{grant_cwd_project, grant_script};

/// `python`, `python3`, `python3.12`, `pypy3`, `python3.13t`: a Python.
pub(crate) fn is_python(name: &str) -> bool {
    let rest = name
        .strip_prefix("python")
        .or_else(|| name.strip_prefix("pypy"));
    rest.is_some_and(|r| {
        let r = r.strip_suffix(['t', 'm', 'w']).unwrap_or(r);
        r.chars().all(|c| c.is_ascii_digit() || c == '.')
    })
}

/// What a Python command line runs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// A script (or a directory/zip with `__main__.py`).
    Script(String),
    /// `-m module`.
    Module(String),
    /// `-c code`.
    Code,
    /// Nothing named: the program comes from stdin.
    Stdin,
}

/// Reads Python's options to find what it runs. One-letter options may be
/// run together (`-uBc code`); `-c`, `-m`, `-W`, `-X` take the rest of the
/// argument or the next one.
pub(crate) fn target(args: &[String]) -> Target {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        i += 1;
        if a == "--" {
            return args
                .get(i)
                .map_or(Target::Stdin, |s| Target::Script(s.clone()));
        }
        if a == "-" {
            return Target::Stdin;
        }
        if let Some(long) = a.strip_prefix("--") {
            if long == "check-hash-based-pycs" {
                i += 1;
            }
            continue;
        }
        let Some(flags) = a.strip_prefix('-') else {
            return Target::Script(a.clone());
        };
        for (pos, c) in flags.char_indices() {
            let rest = &flags[pos + c.len_utf8()..];
            match c {
                'c' | 'm' => {
                    let value = if rest.is_empty() {
                        i += 1;
                        args.get(i - 1).cloned().unwrap_or_default()
                    } else {
                        rest.to_owned()
                    };
                    return if c == 'c' {
                        Target::Code
                    } else {
                        Target::Module(value)
                    };
                }
                'W' | 'X' => {
                    if rest.is_empty() {
                        i += 1;
                    }
                    break;
                }
                _ => {}
            }
        }
    }
    Target::Stdin
}

/// Grants the interpreter at `invoked` (as it will be run, not
/// canonicalized; `None` when unknown), its venv if it is a venv's, and
/// what `args` run.
pub(crate) fn analyze(b: &mut Builder, invoked: Option<&Path>, args: &[String], cwd: &Path) {
    if let Some(invoked) = invoked {
        runtime(b, invoked);
    }
    extra_env(b);
    match target(args) {
        Target::Script(s) => {
            grant_script(b, &s, cwd);
        }
        Target::Module(m) => {
            let top = m.split('.').next().unwrap_or(&m);
            // -m puts the cwd first on sys.path: a module there is the
            // project's own.
            if cwd.join(format!("{top}.py")).is_file() || cwd.join(top).is_dir() {
                grant_cwd_project(b, cwd, &format!("-m {m} (found in the cwd)"));
            }
        }
        Target::Code => b.note("python -c: code on the command line, no script to grant"),
        Target::Stdin => b.note("python reads its program from stdin; no script to grant"),
    }
}

/// The venv `invoked` belongs to: Python looks for `pyvenv.cfg` beside its
/// executable and one directory up, by the path it was run as.
pub(crate) fn venv_of(invoked: &Path) -> Option<PathBuf> {
    let bin = invoked.parent()?;
    [bin, bin.parent()?]
        .into_iter()
        .find(|d| d.join("pyvenv.cfg").is_file())
        .map(Path::to_path_buf)
}

/// Grants the interpreter: a venv and its base, or a plain prefix.
pub(crate) fn runtime(b: &mut Builder, invoked: &Path) {
    let real = invoked.canonicalize().ok();
    if let Some(venv) = venv_of(invoked) {
        let granted = b.grant_dir(&venv, "venv");
        let home = read_small(&venv.join("pyvenv.cfg")).and_then(|cfg| cfg_value(&cfg, "home"));
        let mut bases = Vec::new();
        if let Some(home) = &home {
            // `home` is the base interpreter's bin directory.
            if let Some(prefix) = Path::new(home)
                .canonicalize()
                .ok()
                .and_then(|h| h.parent().map(Path::to_path_buf))
            {
                bases.push(prefix);
            }
        }
        if let Some(prefix) = real.as_ref().and_then(|r| r.parent()?.parent()) {
            if !prefix.starts_with(&venv) && !bases.iter().any(|p| same_dir(p, prefix)) {
                bases.push(prefix.to_path_buf());
            }
        }
        let mut found = Vec::new();
        for base in &bases {
            if has_landmark(base) {
                grant_prefix(b, base, real.as_deref());
                found.push(base.display().to_string());
            }
        }
        match (found.is_empty(), &home) {
            (false, _) => b.note(format!(
                "python: venv {} (base {})",
                venv.display(),
                found.join(", ")
            )),
            (true, Some(h)) => b.note(format!(
                "python: venv {}: its pyvenv.cfg names home = {h}, which holds no Python \
                 standard library; base interpreter not granted",
                venv.display()
            )),
            (true, None) => b.note(format!(
                "python: venv {} has no `home` in pyvenv.cfg; base interpreter unknown",
                venv.display()
            )),
        }
        if !granted {
            b.note("python: the venv was not granted; the server will not find its packages");
        }
        return;
    }
    let Some(real) = real else {
        b.note(format!("python: {} does not exist", invoked.display()));
        return;
    };
    match real.parent().and_then(Path::parent) {
        Some(prefix) if has_landmark(prefix) => {
            grant_prefix(b, prefix, Some(&real));
            b.note(format!("python: prefix {}", prefix.display()));
        }
        _ => {
            b.grant_file(&real);
            b.note(format!(
                "python: {} has no standard library at ../lib/python*; granted only the binary",
                real.display()
            ));
        }
    }
}

/// `key = value` from a pyvenv.cfg.
fn cfg_value(cfg: &str, key: &str) -> Option<String> {
    cfg.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().to_owned())
    })
}

/// Python's own landmark for a prefix: `lib/pythonX.Y/os.py` (or `lib64`,
/// or PyPy's `lib/pypyX.Y`).
fn has_landmark(prefix: &Path) -> bool {
    !stdlib_dirs(prefix).is_empty()
}

fn stdlib_dirs(prefix: &Path) -> Vec<PathBuf> {
    ["lib", "lib64"]
        .iter()
        .filter_map(|l| std::fs::read_dir(prefix.join(l)).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("python") || n.starts_with("pypy"))
                && p.join("os.py").is_file()
        })
        .collect()
}

/// Grants a Python prefix, or when the prefix is too wide to grant whole
/// (Python installed with `--prefix ~/.local`), just its standard library,
/// its shared library and the binary.
fn grant_prefix(b: &mut Builder, prefix: &Path, real: Option<&Path>) {
    let Ok(canon) = prefix.canonicalize() else {
        return;
    };
    if b.too_wide(&canon).is_none() {
        b.grant_dir(&canon, "python prefix");
        return;
    }
    for dir in stdlib_dirs(&canon) {
        b.grant_dir(&dir, "python standard library");
    }
    for lib in ["lib", "lib64"] {
        if let Ok(entries) = std::fs::read_dir(canon.join(lib)) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("libpython") {
                    b.grant_file(&e.path());
                }
            }
        }
    }
    if let Some(r) = real {
        b.grant_file(r);
    }
    b.note(format!(
        "python: prefix {} is too wide to grant whole; granted its standard library and binary",
        canon.display()
    ));
}

/// `PYTHONHOME` and absolute `PYTHONPATH` entries, which the interpreter
/// reads before anything on the command line.
fn extra_env(b: &mut Builder) {
    let env = b.env;
    if let Some(home) = env.var("PYTHONHOME") {
        if b.grant_dir(Path::new(home), "PYTHONHOME") {
            b.note(format!("python: PYTHONHOME {home}"));
        }
    }
    if let Some(pp) = env.var("PYTHONPATH") {
        for entry in pp.split(':').filter(|e| !e.is_empty()) {
            let p = Path::new(entry);
            if !p.is_absolute() {
                b.note(format!(
                    "python: PYTHONPATH entry {entry} is relative; not granted"
                ));
            } else if p.is_file() {
                b.grant_file(p);
            } else if b.grant_dir(p, "PYTHONPATH entry") {
                b.note(format!("python: PYTHONPATH entry {entry}"));
            }
        }
    }
}
