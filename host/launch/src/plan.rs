//! Collecting a plan's grants, with the one rule every grant obeys: never
//! a directory so wide that it hands over the user's files wholesale.

use std::path::{Path, PathBuf};

use crate::{LaunchEnv, LaunchPlan};

/// Directories under `$HOME` that hold many programs' data (keyrings,
/// browser profiles, tokens in `~/.config`), so never a grant as a whole,
/// even when an interpreter is installed with one as its prefix.
const SHARED_HOME_DIRS: &[&str] = &[
    ".local",
    ".local/share",
    ".local/state",
    ".local/lib",
    ".config",
    ".cache",
];

/// Shared directories outside `$HOME`: everyone's temporary files. A script
/// straight in `/tmp` gets itself granted, not `/tmp`.
const SHARED_SYSTEM_DIRS: &[&str] = &["/tmp", "/var/tmp", "/dev/shm"];

/// Where home directories live, refused when `HOME` is unknown.
const HOME_PARENTS: &[&str] = &["/home", "/root", "/Users"];

pub(crate) struct Builder<'a> {
    pub env: &'a LaunchEnv,
    home: Option<PathBuf>,
    read: Vec<PathBuf>,
    notes: Vec<String>,
    path_prepend: Vec<PathBuf>,
}

impl<'a> Builder<'a> {
    pub fn new(env: &'a LaunchEnv) -> Self {
        let home = env
            .home
            .as_ref()
            .map(|h| h.canonicalize().unwrap_or_else(|_| h.clone()));
        Self {
            env,
            home,
            read: Vec::new(),
            notes: Vec::new(),
            path_prepend: Vec::new(),
        }
    }

    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// Why granting the canonical `dir` as a whole would be too wide, if it
    /// would.
    pub fn too_wide(&self, dir: &Path) -> Option<&'static str> {
        if dir.parent().is_none() {
            return Some("the root directory");
        }
        if let Some(home) = &self.home {
            if dir == home {
                return Some("$HOME itself");
            }
            if home.starts_with(dir) {
                return Some("an ancestor of $HOME");
            }
            if SHARED_HOME_DIRS.iter().any(|d| dir == home.join(d)) {
                return Some("a directory shared by many programs' data");
            }
        } else if HOME_PARENTS.iter().any(|h| dir == Path::new(h)) {
            return Some("where home directories live");
        }
        if SHARED_SYSTEM_DIRS.iter().any(|d| dir == Path::new(d)) {
            return Some("a shared temporary directory");
        }
        None
    }

    /// Whether the canonical `path` is inside something already granted.
    pub fn covers(&self, path: &Path) -> bool {
        self.read.iter().any(|r| path.starts_with(r))
    }

    /// Grants `dir` (canonicalized) unless it is too wide; says why not.
    pub fn grant_dir(&mut self, dir: &Path, what: &str) -> bool {
        let Ok(canon) = dir.canonicalize() else {
            self.note(format!("{what} {} does not exist", dir.display()));
            return false;
        };
        if let Some(why) = self.too_wide(&canon) {
            self.note(format!(
                "{what} {} not granted: it is {why}; add --allow-read for what the server needs there",
                canon.display()
            ));
            return false;
        }
        self.read.push(canon);
        true
    }

    /// Grants one file (canonicalized).
    pub fn grant_file(&mut self, file: &Path) -> bool {
        match file.canonicalize() {
            Ok(canon) => {
                self.read.push(canon);
                true
            }
            Err(_) => false,
        }
    }

    /// Puts `dir` on the server's `PATH` ahead of the rest.
    pub fn prepend_path(&mut self, dir: PathBuf) {
        if !self.path_prepend.contains(&dir) {
            self.path_prepend.push(dir);
        }
    }

    /// Moves what was collected into `plan`: grants deduplicated, none
    /// inside another, in a stable order.
    pub fn finish(self, mut plan: LaunchPlan) -> LaunchPlan {
        plan.read = normalize(self.read);
        plan.notes.splice(0..0, self.notes);
        plan.path_prepend = self.path_prepend;
        plan
    }
}

/// Sorted, deduplicated, none inside another.
pub(crate) fn normalize(mut read: Vec<PathBuf>) -> Vec<PathBuf> {
    read.sort();
    read.dedup();
    read.iter()
        .filter(|p| !read.iter().any(|q| q != *p && p.starts_with(q)))
        .cloned()
        .collect()
}
