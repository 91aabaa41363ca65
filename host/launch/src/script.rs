//! A script named on the command line → the project it belongs to.

use std::path::{Path, PathBuf};

use crate::plan::Builder;
use crate::resolve::absolutize;

/// Files that mark a project's root: where a server's own modules, its
/// `node_modules` or its `.venv` live. `.git` last: a repository root is a
/// project root when nothing more specific is found.
const PROJECT_MARKERS: &[&str] = &[
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "package.json",
    "deno.json",
    "deno.jsonc",
    ".git",
];

/// Grants what a script needs: its project, found from its real location.
/// Returns the canonical script path, or `None` (with a note) when it does
/// not exist.
pub(crate) fn grant_script(b: &mut Builder, script: &str, cwd: &Path) -> Option<PathBuf> {
    let path = absolutize(Path::new(script), cwd);
    let Ok(real) = path.canonicalize() else {
        b.note(format!(
            "script {script} not found (from {}): nothing granted for it",
            cwd.display()
        ));
        return None;
    };
    if b.covers(&real) {
        // Inside a venv or prefix granted already (a venv's bin script).
        return Some(real);
    }
    if real.is_dir() {
        // `python pkgdir` runs pkgdir/__main__.py; `node dir` runs its index.
        grant_project(b, &real, &real);
        return Some(real);
    }
    let dir = real.parent().unwrap_or(Path::new("/")).to_path_buf();
    grant_project(b, &real, &dir);
    Some(real)
}

/// Grants the project holding `dir` (where `target` is), or `dir`, or just
/// `target` when even `dir` would be too wide.
fn grant_project(b: &mut Builder, target: &Path, dir: &Path) {
    if let Some(nm) = outermost_node_modules(dir) {
        // Inside node_modules, dependencies are hoisted to the outermost
        // one, not to the package's own directory.
        if b.grant_dir(&nm, "node_modules") {
            b.note(format!(
                "{}: inside {}, granted whole",
                target.display(),
                nm.display()
            ));
            return;
        }
    }
    let root = project_root(b, dir);
    let granted = match &root {
        Some((root, marker)) => b.grant_dir(root, "project").then(|| {
            format!(
                "{}: project {} (has {marker})",
                target.display(),
                root.display()
            )
        }),
        None => (b.too_wide(dir).is_none() && b.grant_dir(dir, "script directory")).then(|| {
            format!(
                "{}: no project marker above it; granted its directory",
                target.display()
            )
        }),
    };
    if let Some(note) = granted {
        b.note(note);
        return;
    }
    if b.grant_file(target) {
        b.note(format!(
            "{}: sits directly in {}, which is too wide to grant; granted only the file \
             (move it into its own directory, or add --allow-read for what it imports)",
            target.display(),
            dir.display()
        ));
    }
}

/// The nearest ancestor of `dir` (itself included) holding a project
/// marker, stopping before `$HOME` and `/`: a dotfiles repository at `~`
/// does not make `~` a project.
fn project_root(b: &Builder, dir: &Path) -> Option<(PathBuf, &'static str)> {
    for a in dir.ancestors() {
        if b.too_wide(a).is_some() {
            return None;
        }
        if let Some(m) = PROJECT_MARKERS.iter().find(|m| a.join(m).exists()) {
            return Some((a.to_path_buf(), m));
        }
    }
    None
}

/// The outermost `node_modules` directory among `path`'s ancestors.
pub(crate) fn outermost_node_modules(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .filter(|a| a.file_name().is_some_and(|n| n == "node_modules"))
        .last()
        .map(Path::to_path_buf)
}

/// Grants the project around the cwd (for `npm start`-like launches that
/// run whatever the cwd's project says).
pub(crate) fn grant_cwd_project(b: &mut Builder, cwd: &Path, why: &str) {
    let Ok(real) = cwd.canonicalize() else {
        b.note(format!("cwd {} does not exist", cwd.display()));
        return;
    };
    match project_root(b, &real) {
        Some((root, marker)) => {
            if b.grant_dir(&root, "project") {
                b.note(format!("{why}: project {} (has {marker})", root.display()));
            }
        }
        None => {
            b.note(format!(
                "{why}: no project found around the cwd {}; add --allow-read for it",
                real.display()
            ));
        }
    }
}

/// Names, in a note, existing directories among `args` that nothing
/// granted: a server given a directory to work on usually needs to read it.
pub(crate) fn note_dir_args(b: &mut Builder, args: &[String], cwd: &Path) {
    for a in args {
        if a.starts_with('-') && !a.contains('=') {
            continue;
        }
        let value = a.split_once('=').map_or(a.as_str(), |(_, v)| v);
        if !(value.starts_with('/') || value.starts_with("./") || value.starts_with("../")) {
            continue;
        }
        let p = absolutize(Path::new(value), cwd);
        if p.is_dir() {
            b.note(format!(
                "argument {value} is a directory: if the server works on it, add --allow-read {value}"
            ));
        }
    }
}

/// Grants the project holding the directory `dir` (a `--project` or
/// `--directory` argument), or `dir` itself.
pub(crate) fn grant_project_dir(b: &mut Builder, dir: &Path, what: &str) {
    match dir.canonicalize() {
        Ok(real) => grant_project(b, &real, &real),
        Err(_) => b.note(format!("{what} {} does not exist", dir.display())),
    }
}
