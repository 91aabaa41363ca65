//! What a wrapped MCP server needs to **read**, worked out from its command
//! line alone.
//!
//! `bulkhead mcp wrap -- CMD ARGS…` runs the server under a policy that reads
//! only the system directories (`untrusted`). Servers are launched the way
//! client configs launch them (`npx -y pkg`, `uvx pkg`, `venv/bin/python
//! server.py`, a pyenv `python3`), and each of those needs something outside
//! the system directories: an interpreter's prefix under `$HOME`, a venv and
//! its base interpreter, the script's project, or a package that a launcher
//! would download at start (which a sandbox without network cannot do).
//!
//! # Model
//!
//! [`analyze`] takes the command and a [`LaunchEnv`] (`PATH`, `HOME`, the cwd
//! and the other variables the server will see) and returns a [`LaunchPlan`]:
//!
//! - **`argv`/`program`**: the command to run instead. A version manager's
//!   shim (pyenv, asdf, mise, volta) is replaced by the real binary it would
//!   exec, found by reading the manager's files, never by running it: a shim
//!   inside the sandbox would need the manager's whole tree.
//! - **`read`**: the directories and files to make readable: interpreter
//!   prefixes (`realpath(bin)/..`), a venv and its base interpreter's prefix
//!   (from `pyvenv.cfg`), the project holding a script (the nearest ancestor
//!   with `pyproject.toml`, `package.json`, `deno.json` or `.git`), and for a
//!   script inside `node_modules`, the outermost `node_modules`. Never `/`,
//!   `$HOME`, an ancestor of it, or a shared per-user directory such as
//!   `~/.local`: those are refused with a note, and something narrower is
//!   granted where one exists.
//! - **`package`**: for `npx`, `npm exec`, `bunx`, `uvx`, `uv tool run` and
//!   `pipx run`, the parsed [`PackageRef`]. The package is not run through its
//!   launcher: it is fetched once, outside the server's sandbox, into a cache
//!   directory ([`cache_dir`]) with [`fetch_commands`], then run from there
//!   with [`run_command`]; [`analyze_installed`] gives the plan for that run.
//!   [`registry_settings`] names the registry hosts the fetch must reach and
//!   the user config files it must read.
//! - **`notes`**: what was inferred and what is unknown, for the user; an
//!   unresolved shim is named with the `--allow-read` flag that would fix it.
//! - **`unsupported`**: set when sandboxing the command from outside cannot
//!   work (`docker run`: the server runs under the container daemon) or when
//!   a package comes from somewhere other than a registry.
//!
//! ```no_run
//! use bulkhead_launch::{InstallScripts, LaunchEnv, analyze, cache_dir, fetch_commands};
//!
//! let env = LaunchEnv::from_process()?;
//! let command = ["npx", "-y", "@modelcontextprotocol/server-everything"].map(String::from);
//! let plan = analyze(&command, &env)?;
//! if let Some(pkg) = &plan.package {
//!     // Resolve the version (resolve_version_command), then fetch outside the
//!     // server's sandbox, with network to registry_hosts(pkg, &env):
//!     let dir = cache_dir("/home/me/.cache/bulkhead".as_ref(), pkg, "2025.9.25")?;
//!     for step in fetch_commands(pkg, Some("2025.9.25"), &dir, InstallScripts::Skip)? {
//!         let _ = (step.argv, step.env); // run it
//!     }
//!     let run = bulkhead_launch::analyze_installed(pkg, &dir, &env)?;
//!     let _ = (run.argv, run.read); // sandbox with --allow-read for each of run.read
//! } else if plan.unsupported.is_none() {
//!     let _ = (plan.argv, plan.read, plan.path_prepend, plan.notes);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A malformed command (an empty one, a launcher option without its value, a
//! package name the registry itself would refuse, such as one with `..`) is a
//! [`LaunchError`].
//!
//! # Caveats
//!
//! - Shims are resolved from files (`PYENV_VERSION`, `.python-version`,
//!   `.tool-versions`, `mise.toml`, volta's `platform.json`…), following each
//!   manager's documented order. In corner cases (plugins with custom bin
//!   paths, mise's `lts` or `prefix:` versions, volta's `extends`) this may
//!   disagree with the manager's own logic; when it cannot decide it says so
//!   and grants nothing, rather than guessing wider.
//! - Version names read from project files are untrusted (a cloned repo can
//!   write any `.python-version`): they must look like versions, and what they
//!   name must stay inside the manager's `versions`/`installs` tree.
//! - Only what the command line shows is known. A server that opens other
//!   files at run time (its own config under `~/.config`, data directories
//!   passed in its environment) still needs `--allow-read` for them; existing
//!   directories among its arguments are named in a note.
//! - Paths in `read` are canonical. Directories the policy already reads
//!   (such as `/usr`) are included when they are an interpreter's prefix;
//!   the caller may drop them.
//! - Unix only: executability is the mode's exec bits, and paths are joined
//!   with `/`.

mod fetch;
mod launchers;
mod node;
mod packages;
mod pkgargs;
mod plan;
mod python;
mod registry;
mod resolve;
mod script;
mod shims;
mod uv;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

pub use fetch::{
    FETCH_CACHE, InstallScripts, Step, analyze_installed, cache_dir, default_cache_base,
    fetch_commands, installed_bin, installed_version, parse_resolved_version,
    resolve_version_command, run_command,
};
pub use packages::{Ecosystem, Installer, PackageRef, PackageSpec, RegistryArg, VersionSpec};
pub use registry::{RegistrySettings, registry_hosts, registry_settings};

/// What the launched server will see: its search path, home, working
/// directory and environment. Only read, never modified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchEnv {
    /// `PATH` as the server gets it; `None` is an empty search path.
    pub path: Option<OsString>,
    /// `HOME`; `None` when unset (then nothing is looked up under `~`).
    pub home: Option<PathBuf>,
    /// The server's working directory; relative paths on the command line,
    /// `.python-version`, `.tool-versions` and the like are found from here.
    pub cwd: PathBuf,
    /// The other variables the server will see: `PYENV_VERSION`,
    /// `PYENV_ROOT`, `ASDF_DATA_DIR`, `VOLTA_HOME`, `NVM_DIR`, `XDG_*`,
    /// `UV_*`, `PIP_*`, `npm_config_*`, `SSL_CERT_FILE`, … Empty values
    /// count as unset.
    pub vars: BTreeMap<String, String>,
}

impl LaunchEnv {
    /// This process's environment: `PATH`, `HOME`, the current directory
    /// and every variable whose name and value are UTF-8.
    pub fn from_process() -> std::io::Result<Self> {
        Ok(Self {
            path: std::env::var_os("PATH"),
            home: std::env::var_os("HOME").map(PathBuf::from),
            cwd: std::env::current_dir()?,
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        })
    }

    /// A variable's value, `None` when unset or empty.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A variable naming a directory: only absolute values count (the XDG
    /// base-directory spec says to ignore relative ones, and a relative
    /// `PYENV_ROOT` would depend on the cwd).
    pub(crate) fn var_dir(&self, name: &str) -> Option<PathBuf> {
        self.var(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    }

    /// An XDG base directory: `$VAR` if absolute, else `$HOME/default`.
    pub(crate) fn xdg(&self, var: &str, default: &str) -> Option<PathBuf> {
        self.var_dir(var)
            .or_else(|| self.home.as_ref().map(|h| h.join(default)))
    }
}

/// What kind of command this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Launcher {
    /// A Python interpreter (including a venv's), running a script, `-m`
    /// module or `-c` code; also a script whose `#!` names one.
    Python,
    /// Node.js running a script; also a script whose `#!` names node.
    Node,
    /// Bun running a script or a package.json script.
    Bun,
    /// Deno running a local or remote module.
    Deno,
    /// `npx` or `npm exec`/`npm x`: a package from the npm registry.
    Npx,
    /// `bunx` or `bun x`: a package from the npm registry, run by bun.
    Bunx,
    /// `uvx` or `uv tool run`: a package from a Python index.
    Uvx,
    /// `uv run`: a script or a command in a uv project's environment.
    UvRun,
    /// `pipx run`: a package from a Python index.
    PipxRun,
    /// `docker`/`podman`/`nerdctl`: see [`LaunchPlan::unsupported`].
    Container,
    /// Anything else: run as it is, with only its program resolved.
    Other,
}

impl Launcher {
    /// A short lowercase name (`python`, `npx`, `uv run`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::Python => "python",
            Self::Node => "node",
            Self::Bun => "bun",
            Self::Deno => "deno",
            Self::Npx => "npx",
            Self::Bunx => "bunx",
            Self::Uvx => "uvx",
            Self::UvRun => "uv run",
            Self::PipxRun => "pipx run",
            Self::Container => "container",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for Launcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What [`analyze`] worked out. See the crate docs for the model.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LaunchPlan {
    /// What kind of command it is.
    pub launcher: Launcher,
    /// The program to execute: `argv[0]` found on `PATH` (absolute), with a
    /// version-manager shim replaced by the real binary. Not canonicalized
    /// for Python: a venv's `bin/python` must keep its path to find its
    /// `pyvenv.cfg`. `None` when it was not found.
    pub program: Option<PathBuf>,
    /// The command to run in place of the original: `program` and the
    /// original arguments, or for a script whose `#!` interpreter is a
    /// shim, the real interpreter followed by the script. For package
    /// launchers (`package` is set) this is the original command: run
    /// [`run_command`] after fetching instead.
    pub argv: Vec<String>,
    /// Canonical directories and files the server must be able to read,
    /// deduplicated, none inside another.
    pub read: Vec<PathBuf>,
    /// Directories to put first on the server's `PATH`, so that what it runs
    /// by name reaches real binaries and not shims (what `pyenv exec` does).
    pub path_prepend: Vec<PathBuf>,
    /// For the user: what was inferred, what is unknown and how to fix it.
    pub notes: Vec<String>,
    /// The package a package launcher would fetch.
    pub package: Option<PackageRef>,
    /// Why this command cannot be run sandboxed as it is, and what to do
    /// instead. When set, the rest of the plan is informational.
    pub unsupported: Option<String>,
}

impl LaunchPlan {
    pub(crate) fn new(launcher: Launcher, argv: Vec<String>) -> Self {
        Self {
            launcher,
            program: None,
            argv,
            read: Vec::new(),
            path_prepend: Vec::new(),
            notes: Vec::new(),
            package: None,
            unsupported: None,
        }
    }
}

/// A malformed command, package reference or config file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// The command has no program.
    #[error("empty command: nothing to launch")]
    EmptyCommand,
    /// A launcher option that takes a value came last.
    #[error("{launcher}: option {option} needs a value")]
    MissingValue {
        /// `npx`, `uvx`, …
        launcher: &'static str,
        /// The option as written.
        option: String,
    },
    /// A package launcher with nothing to run.
    #[error("{launcher}: no package or command to run")]
    MissingPackage {
        /// `npx`, `uvx`, …
        launcher: &'static str,
    },
    /// A name the registry itself would refuse (and so one that must not
    /// become a path).
    #[error("invalid {ecosystem} package name {name:?}: {reason}")]
    InvalidPackageName {
        /// Whose naming rules.
        ecosystem: Ecosystem,
        /// The name as written.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A version or version requirement that is not one.
    #[error("invalid version {version:?} for {name}: {reason}")]
    InvalidVersion {
        /// The package.
        name: String,
        /// The version as written.
        version: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An executable name that would not stay a single path component.
    #[error("invalid executable name {bin:?}: {reason}")]
    InvalidBinName {
        /// The name as written or found.
        bin: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A path that must go into a command line is not UTF-8.
    #[error("{path}: not UTF-8, cannot be passed on a command line")]
    NonUtf8Path {
        /// The path.
        path: PathBuf,
    },
    /// A config file over the size cap.
    #[error("{path}: larger than {cap} bytes, too large for a config file")]
    ConfigTooLarge {
        /// The file.
        path: PathBuf,
        /// The cap, in bytes.
        cap: u64,
    },
    /// A config file that exists but could not be read.
    #[error("{path}: {source}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A config file that could not be parsed.
    #[error("{path}:{line}: {message}")]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// 1-based line, 0 when unknown.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// An installed package's manifest is missing or says something unusable.
    #[error("{path}: {message}")]
    Manifest {
        /// The manifest (package.json, a dist-info directory…).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The output of a version-resolving command could not be understood.
    #[error("resolving {name}'s version: {message}")]
    ResolvedVersion {
        /// The package.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// Works out what `command` needs to read when launched in `env`.
///
/// Never runs anything; reads only small files (shims, version files,
/// `pyvenv.cfg`, manifests), each under a size cap. Errors only for a
/// malformed command; everything uncertain becomes a note.
pub fn analyze(command: &[String], env: &LaunchEnv) -> Result<LaunchPlan, LaunchError> {
    let Some(first) = command.first().filter(|c| !c.is_empty()) else {
        return Err(LaunchError::EmptyCommand);
    };
    let name = Path::new(first)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(first);
    let mut b = plan::Builder::new(env);
    let plan = launchers::dispatch(&mut b, name, command)?;
    Ok(b.finish(plan))
}
