//! Fake trees for the tests: a temporary root holding `home/` and whatever
//! else a test lays out, and a `LaunchEnv` pointing into it.

#![allow(dead_code)] // each test file uses a different part

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bulkhead_launch::LaunchEnv;

pub struct Tree {
    pub dir: tempfile::TempDir,
    /// Canonical root (tempdirs may sit behind a symlink).
    pub root: PathBuf,
}

impl Tree {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical tempdir");
        std::fs::create_dir_all(root.join("home")).expect("home");
        Self { dir, root }
    }

    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Writes a file (parents created).
    pub fn file(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
        p
    }

    /// Writes an executable file.
    pub fn exe(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.file(rel, text);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }

    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.p(rel);
        std::fs::create_dir_all(&p).expect("mkdir");
        p
    }

    /// `rel` → `target` (target as written: relative or absolute).
    pub fn symlink(&self, rel: &str, target: impl AsRef<Path>) -> PathBuf {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(target, &p).expect("symlink");
        p
    }

    /// A Python prefix: `bin/pythonX.Y` (+ python3, python links) and
    /// `lib/pythonX.Y/os.py`.
    pub fn python_prefix(&self, rel: &str, xy: &str) -> PathBuf {
        let real = self.exe(&format!("{rel}/bin/python{xy}"), "\x7fELF fake");
        self.symlink(&format!("{rel}/bin/python3"), format!("python{xy}"));
        self.symlink(&format!("{rel}/bin/python"), format!("python{xy}"));
        self.file(&format!("{rel}/lib/python{xy}/os.py"), "# os\n");
        real
    }

    /// An environment: HOME = root/home, cwd and PATH as given (PATH
    /// entries relative to the root).
    pub fn env(&self, cwd: &str, path: &[&str]) -> LaunchEnv {
        let joined: Vec<PathBuf> = path.iter().map(|d| self.p(d)).collect();
        LaunchEnv {
            path: Some(std::env::join_paths(joined).expect("PATH")),
            home: Some(self.home()),
            cwd: self.p(cwd),
            vars: BTreeMap::new(),
        }
    }
}

pub fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

pub fn with_var(mut env: LaunchEnv, k: &str, v: impl Into<String>) -> LaunchEnv {
    env.vars.insert(k.to_owned(), v.into());
    env
}

pub fn path_of(env: &LaunchEnv) -> OsString {
    env.path.clone().unwrap_or_default()
}

/// Whether any note contains `needle`.
pub fn noted(notes: &[String], needle: &str) -> bool {
    notes.iter().any(|n| n.contains(needle))
}
