//! From a server's command line to what runs: [`prepare`].
//!
//! The command is analysed ([`bulkhead_launch::analyze`]) for what it
//! needs to read: an interpreter's real prefix, a venv and its base, a
//! version manager's real binary, a script's project. A package launcher
//! (`npx -y PKG`, `uvx PKG`, `pipx run PKG`, `bunx PKG`) is fetched once
//! into bulkhead's package cache, and the server then runs from there.
//!
//! **Architecture invariant:** a fetch runs in a worker like any tool call,
//! under bulkhead's own `untrusted` preset: it writes only its package's
//! cache directory, reads only the system, the installer and the registry
//! settings it needs, and reaches only the registry's hosts, through the
//! egress proxy. The server itself later gets that directory read-only, and
//! never the user's `~/.npm` or `~/.cache/uv`, so a hostile server cannot
//! poison packages other projects use.
//!
//! # Versions
//!
//! A command without a version, or with `@latest`, runs the version pinned
//! at its first fetch (the `pin` file beside the versions), so a second
//! start needs no network; `bulkhead mcp fetch --update -- CMD…` moves the
//! pin to the newest version. An exact version is its own pin.
//!
//! # Caveats
//! - Two fetches of the same package wait on one lock; a fetch that fails
//!   leaves nothing behind but its error.
//! - Install scripts do not run ([`InstallScripts::Skip`]): a package that
//!   needs them fails at its first start, with its own error.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bulkhead_egress::AllowList;
use bulkhead_host::policy::{ResolveContext, preset, resolve};
use bulkhead_host::{CallLimits, CallRequest, Outcome, ToolHost};
use bulkhead_ipc::ToolExit;
use bulkhead_launch::{
    InstallScripts, Installer, LaunchEnv, LaunchError, LaunchPlan, PackageRef, Step, VersionSpec,
    analyze, analyze_installed, cache_dir, default_cache_base, fetch_commands, installed_version,
    parse_resolved_version, registry_settings, resolve_version_command,
};

/// A fetch step's wall-clock limit. A large package over a slow link takes
/// a few minutes; past ten, the registry is not answering usefully and the
/// user is better told so.
const FETCH_TIMEOUT: Duration = Duration::from_secs(600);

/// A fetch step's memory cap. npm and uv resolving a large tree peak at a
/// few hundred MiB; twice the default call's cap leaves room.
const FETCH_MEMORY: u64 = 2 << 30;

/// Output kept from a fetch step: enough for `npm view --json` of a
/// package's versions and the tail of an installer's error, no more.
const FETCH_OUTPUT: u64 = 1 << 20;

/// The marker written last into a package's directory: a directory without
/// it is a fetch that did not finish, and is fetched again.
const COMPLETE: &str = ".bulkhead-complete";

/// What runs, and what it needs.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// The command to run: the original, a shim replaced by its real
    /// binary, or a fetched package's executable.
    pub argv: Vec<String>,
    /// What the server must be able to read, canonical.
    pub read: Vec<PathBuf>,
    /// Directories to put first on the server's `PATH`.
    pub path_prepend: Vec<PathBuf>,
    /// What was inferred or is unknown, for the user.
    pub notes: Vec<String>,
    /// The package it runs, for a package launcher.
    pub package: Option<PackageInfo>,
}

impl Prepared {
    /// The server's `PATH`: [`Prepared::path_prepend`] before `path`.
    pub fn path_var(&self, path: Option<&str>) -> Option<String> {
        if self.path_prepend.is_empty() {
            return None;
        }
        let mut parts: Vec<String> = self
            .path_prepend
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        parts.extend(path.map(str::to_owned));
        Some(parts.join(":"))
    }
}

/// A package a launcher runs from bulkhead's cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageInfo {
    /// Who fetched it: `npm`, `uv`, `pipx` or `bun`.
    pub installer: String,
    /// The package's name.
    pub name: String,
    /// The version it runs.
    pub version: String,
    /// Where it is.
    pub dir: PathBuf,
    /// This start fetched it (the network was used).
    pub fetched_now: bool,
}

impl std::fmt::Display for PackageInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}@{}", self.installer, self.name, self.version)
    }
}

/// How [`prepare`] fetches.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Resolve the newest version again instead of using the pin.
    pub update: bool,
    /// Never fetch: a package not in the cache is an error.
    pub offline: bool,
    /// The cache's base directory; `None` is `$XDG_CACHE_HOME/bulkhead`.
    pub cache_base: Option<PathBuf>,
}

/// Why a command cannot be prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrepareError {
    /// The command line or a file it depends on is malformed.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// The command cannot run sandboxed (a container runtime).
    #[error("{0}")]
    Unsupported(String),
    /// No cache directory: neither `XDG_CACHE_HOME` nor `HOME` is set.
    #[error("no package cache: set XDG_CACHE_HOME or HOME")]
    NoCache,
    /// The package is not in the cache and fetching was not allowed.
    #[error("{0} is not in bulkhead's package cache; run `bulkhead mcp fetch -- COMMAND` first")]
    NotCached(String),
    /// A fetch step failed: which, how, and the end of its output.
    #[error("fetching {package}: `{step}` {how}{}", tail(.output))]
    Fetch {
        package: String,
        step: String,
        how: String,
        output: String,
    },
    /// The cache could not be written.
    #[error("package cache {path}: {error}")]
    Cache { path: PathBuf, error: io::Error },
    /// The fetch policy could not be resolved.
    #[error(transparent)]
    Policy(#[from] bulkhead_host::policy::PolicyError),
}

fn tail(output: &str) -> String {
    let t = output.trim();
    if t.is_empty() {
        return String::new();
    }
    // The end of an installer's output is where it says what went wrong.
    let start = t.char_indices().rev().nth(1500).map_or(0, |(i, _)| i);
    format!(":\n{}", &t[start..])
}

/// Works out what `command` needs, fetching its package first when it is a
/// package launcher whose package is not cached yet (unless
/// [`FetchOptions::offline`]). The fetch's steps run through `host`.
pub async fn prepare(
    host: &ToolHost,
    command: &[String],
    env: &LaunchEnv,
    options: &FetchOptions,
) -> Result<Prepared, PrepareError> {
    let plan = analyze(command, env)?;
    if let Some(why) = plan.unsupported {
        return Err(PrepareError::Unsupported(why));
    }
    let Some(pkg) = plan.package.clone() else {
        return Ok(from_plan(plan, None));
    };
    let base = match &options.cache_base {
        Some(b) => b.clone(),
        None => default_cache_base(env).ok_or(PrepareError::NoCache)?,
    };
    let (version, dir, fetched_now) = ensure_fetched(host, &pkg, env, &base, options).await?;
    let installed = analyze_installed(&pkg, &dir, env)?;
    let info = PackageInfo {
        installer: pkg.installer.name().to_owned(),
        name: pkg.package.name.clone(),
        version,
        dir,
        fetched_now,
    };
    let mut prepared = from_plan(installed, Some(info));
    prepared.notes.splice(0..0, plan.notes);
    // The launcher's plan and the installed package's can say the same
    // thing of one interpreter; say it once.
    let mut seen = std::collections::HashSet::new();
    prepared.notes.retain(|n| seen.insert(n.clone()));
    Ok(prepared)
}

fn from_plan(plan: LaunchPlan, package: Option<PackageInfo>) -> Prepared {
    Prepared {
        argv: plan.argv,
        read: plan.read,
        path_prepend: plan.path_prepend,
        notes: plan.notes,
        package,
    }
}

/// The package's version and directory in the cache, fetched if needed.
async fn ensure_fetched(
    host: &ToolHost,
    pkg: &PackageRef,
    env: &LaunchEnv,
    base: &Path,
    options: &FetchOptions,
) -> Result<(String, PathBuf, bool), PrepareError> {
    let label = pkg.package.requirement();
    let pin = pin_path(base, pkg)?;
    let pinned_now = || match (&pkg.package.version, options.update) {
        (VersionSpec::Exact(v), _) => Some(v.clone()),
        (VersionSpec::Unspecified | VersionSpec::Latest, false) => read_pin(&pin),
        _ => None,
    };
    let cached = |pinned: &Option<String>| -> Result<_, PrepareError> {
        if let Some(v) = pinned {
            let dir = cache_dir(base, pkg, v)?;
            if dir.join(COMPLETE).exists() {
                return Ok(Some((v.clone(), dir, false)));
            }
        }
        Ok(None)
    };
    let pinned = pinned_now();
    if let Some(found) = cached(&pinned)? {
        return Ok(found);
    }
    if options.offline {
        return Err(PrepareError::NotCached(label));
    }
    let package_root = pin.parent().map(Path::to_path_buf).unwrap_or_default();
    create_dir(&package_root)?;
    let _lock = lock(&package_root).await?;
    // Another start may have fetched and pinned it while this one waited
    // for the lock: then it is in the cache, with no lookup needed.
    let pinned = pinned.or_else(pinned_now);
    if let Some(found) = cached(&pinned)? {
        return Ok(found);
    }
    let fetcher = Fetcher::new(host, pkg, env, &package_root)?;
    let version = match pinned {
        Some(v) => v,
        None => fetcher.resolve_version().await?,
    };
    let dir = cache_dir(base, pkg, &version)?;
    if !dir.join(COMPLETE).exists() {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|error| PrepareError::Cache {
                path: dir.clone(),
                error,
            })?;
        }
        create_dir(&dir)?;
        if let Err(e) = fetcher.install(&version, &dir).await {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let installed = installed_version(pkg, &dir).unwrap_or_else(|_| version.clone());
        if installed != version {
            tracing::warn!(%installed, %version, "the installer installed another version");
        }
        // The installer's download cache is only for this fetch: the server
        // runs from the installed tree, and a later fetch makes its own.
        let _ = std::fs::remove_dir_all(dir.join(bulkhead_launch::FETCH_CACHE));
        write_file(&dir.join(COMPLETE), "")?;
    }
    if !matches!(pkg.package.version, VersionSpec::Exact(_)) {
        write_file(&pin, &version)?;
    }
    Ok((version, dir, true))
}

/// Where the version a command without one runs is pinned: beside the
/// versions of its package, keyed like them by what else it installs.
fn pin_path(base: &Path, pkg: &PackageRef) -> Result<PathBuf, PrepareError> {
    // `cache_dir` of any valid version gives the package's directory and
    // the variant suffix (`@hash`) of its leaf; the pin is named after it.
    const ANY: &str = "1.0.0";
    let probe = cache_dir(base, pkg, ANY)?;
    let leaf = probe
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(ANY)
        .to_owned();
    let variant = leaf.strip_prefix(ANY).unwrap_or("");
    let parent = probe.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(parent.join(format!("pin{variant}")))
}

/// A pin file's version; a pin is a few bytes, so a larger file is not one.
fn read_pin(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let v = text.trim();
    (!v.is_empty() && v.len() < 128).then(|| v.to_owned())
}

fn create_dir(path: &Path) -> Result<(), PrepareError> {
    std::fs::create_dir_all(path).map_err(|error| PrepareError::Cache {
        path: path.to_path_buf(),
        error,
    })
}

fn write_file(path: &Path, text: &str) -> Result<(), PrepareError> {
    // Written whole and renamed into place, so a reader sees the old pin or
    // the new one, never a torn one.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|error| PrepareError::Cache {
            path: path.to_path_buf(),
            error,
        })
}

/// An exclusive lock on a package's directory, held while it is fetched.
async fn lock(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, PrepareError> {
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| PrepareError::Cache {
            path: path.clone(),
            error,
        })?;
    let locked = tokio::task::spawn_blocking(move || {
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
    })
    .await
    .map_err(|e| PrepareError::Cache {
        path: path.clone(),
        error: io::Error::other(e),
    })?;
    locked.map_err(|(_, errno)| PrepareError::Cache {
        path,
        error: io::Error::from(errno),
    })
}

/// Runs a package's fetch steps in workers.
struct Fetcher<'a> {
    host: &'a ToolHost,
    pkg: &'a PackageRef,
    /// The hosts the steps may reach: the registry's.
    allow: AllowList,
    /// Files and directories the steps read: the installer and its
    /// interpreter, registry config and CA files.
    read: Vec<PathBuf>,
    /// Variables every step gets: the user's registry and CA settings, a
    /// `HOME` and `PATH` that reach real binaries.
    env: Vec<(String, String)>,
    /// Where a step may write besides the package's own directory: scratch
    /// for the version lookup.
    scratch: PathBuf,
}

/// The scratch goes with the fetcher, whether its steps worked or not: a
/// fetch leaves nothing behind but the package (or its error).
impl Drop for Fetcher<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

impl<'a> Fetcher<'a> {
    fn new(
        host: &'a ToolHost,
        pkg: &'a PackageRef,
        env: &LaunchEnv,
        package_root: &Path,
    ) -> Result<Self, PrepareError> {
        let registry = registry_settings(pkg, env)?;
        let allow = AllowList::parse(&registry.hosts).map_err(|e| PrepareError::Fetch {
            package: pkg.package.requirement(),
            step: "registry".into(),
            how: format!("names a host that cannot be allowed: {e}"),
            output: String::new(),
        })?;
        let mut read = registry.read.clone();
        let mut path_prepend = Vec::new();
        for program in installer_programs(pkg.installer) {
            if let Ok(plan) = analyze(&[(*program).to_owned()], env) {
                read.extend(plan.read);
                path_prepend.extend(plan.path_prepend);
                if let Some(p) = plan.program {
                    path_prepend.extend(p.parent().map(Path::to_path_buf));
                }
            }
        }
        let scratch = package_root.join(format!(".scratch-{}", std::process::id()));
        let mut vars = registry.env.clone();
        let path: Vec<String> = path_prepend
            .iter()
            .map(|p| p.display().to_string())
            .chain(env.var("PATH").map(str::to_owned))
            .collect();
        vars.push(("PATH".into(), path.join(":")));
        vars.push(("HOME".into(), scratch.join("home").display().to_string()));
        Ok(Self {
            host,
            pkg,
            allow,
            read,
            env: vars,
            scratch,
        })
    }

    async fn resolve_version(&self) -> Result<String, PrepareError> {
        // The lookup's cache is apart from the step's working directory:
        // uv refuses to run in a directory inside its cache.
        match resolve_version_command(self.pkg, &self.scratch.join("cache")) {
            Some(step) => {
                let out = self.run(&step, &[], true).await?;
                Ok(parse_resolved_version(self.pkg, &out)?)
            }
            // Bun has no lookup of its own: its install says what it took.
            None => Err(PrepareError::Fetch {
                package: self.pkg.package.requirement(),
                step: "bun".into(),
                how: "needs an exact version (PKG@1.2.3) for bulkhead to fetch it".into(),
                output: String::new(),
            }),
        }
    }

    async fn install(&self, version: &str, dir: &Path) -> Result<(), PrepareError> {
        let steps = fetch_commands(self.pkg, Some(version), dir, InstallScripts::Skip)?;
        for step in &steps {
            self.run(step, &[dir.to_path_buf()], false).await?;
        }
        Ok(())
    }

    /// Runs one step in a worker; its output, or an error naming the step.
    /// With `stdout_only`, stderr goes to a file in the scratch dir and
    /// shows only in the error: the output is then an answer to parse.
    async fn run(
        &self,
        step: &Step,
        write: &[PathBuf],
        stdout_only: bool,
    ) -> Result<String, PrepareError> {
        create_dir(&self.scratch.join("home"))?;
        let untrusted = preset("untrusted").ok_or_else(|| PrepareError::Fetch {
            package: self.pkg.package.requirement(),
            step: "policy".into(),
            how: "the untrusted preset is missing".into(),
            output: String::new(),
        })?;
        let mut writable = write.to_vec();
        writable.push(self.scratch.clone());
        let ctx = ResolveContext {
            home: None,
            workspace: Some(self.scratch.clone()),
            read: self.read.clone(),
            write: writable,
            install_dir: None,
            allow_net: self.allow.clone(),
        };
        let policy = resolve(&untrusted, &ctx)?;
        let stderr_file = self.scratch.join("stderr");
        let command = shell_command(
            step,
            &self.env,
            stdout_only.then_some(stderr_file.as_path()),
        );
        let limits = CallLimits {
            timeout: FETCH_TIMEOUT,
            memory_bytes: FETCH_MEMORY,
            max_output_bytes: FETCH_OUTPUT,
            ..CallLimits::default()
        };
        let args = serde_json::json!({ "command": command }).to_string();
        let report = self
            .host
            .call(
                CallRequest::new("shell", args)
                    .policy(policy)
                    .limits(limits)
                    .cwd(self.scratch.join("home")),
            )
            .wait()
            .await;
        let mut output = report.output_text();
        if stdout_only {
            let stderr = std::fs::read_to_string(&stderr_file).unwrap_or_default();
            if !matches!(
                (&report.outcome, report.exit),
                (Outcome::Completed, Some(ToolExit::Code(0)))
            ) {
                output.push_str(&stderr);
            }
        }
        let refused = report.egress_lines().join("\n");
        let how = match (&report.outcome, report.exit) {
            (Outcome::Completed, Some(ToolExit::Code(0))) => return Ok(output),
            (Outcome::Completed, Some(ToolExit::Code(c))) => format!("exited with {c}"),
            (Outcome::Completed, other) => format!("ended with {other:?}"),
            (other, _) => {
                other.status().to_owned()
                    + &other.reason().map(|r| format!(": {r}")).unwrap_or_default()
            }
        };
        let how = if refused.is_empty() {
            how
        } else {
            format!("{how}; the egress proxy reported:\n{refused}")
        };
        Err(PrepareError::Fetch {
            package: self.pkg.package.requirement(),
            step: step.argv.join(" "),
            how,
            output,
        })
    }
}

/// The programs a fetch by `installer` runs, whose real prefixes it reads.
fn installer_programs(installer: Installer) -> &'static [&'static str] {
    match installer {
        Installer::Npm => &["npm", "node"],
        Installer::Bun => &["bun"],
        Installer::Uv => &["uv", "python3"],
        Installer::Pipx => &["pipx", "python3"],
        _ => &[],
    }
}

/// `step` as one `sh -c` line: its stdin piped in, its variables set with
/// `env`, every word quoted, and its stderr sent to `stderr_to` if given.
fn shell_command(step: &Step, base_env: &[(String, String)], stderr_to: Option<&Path>) -> String {
    let mut words = vec!["exec".to_owned(), "env".to_owned()];
    for (k, v) in base_env.iter().chain(&step.env) {
        words.push(quote(&format!("{k}={v}")));
    }
    words.extend(step.argv.iter().map(|a| quote(a)));
    if let Some(file) = stderr_to {
        words.push(format!("2>{}", quote(&file.display().to_string())));
    }
    let line = words.join(" ");
    match &step.stdin {
        Some(input) => format!("printf '%s' {} | {line}", quote(input)),
        None => line,
    }
}

/// A word for `sh`, in single quotes.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_and_stdin_is_piped() {
        let step = Step::new(
            vec!["uv".into(), "pip".into(), "it's".into()],
            vec![("A".into(), "b c".into())],
            Some("x==1\n".into()),
        );
        let line = shell_command(&step, &[("PATH".into(), "/usr/bin".into())], None);
        assert_eq!(
            line,
            "printf '%s' 'x==1\n' | exec env 'PATH=/usr/bin' 'A=b c' 'uv' 'pip' 'it'\\''s'"
        );
    }

    #[test]
    fn the_path_puts_real_binaries_first() {
        let p = Prepared {
            path_prepend: vec!["/opt/py/bin".into()],
            ..Prepared::default()
        };
        assert_eq!(
            p.path_var(Some("/usr/bin")).as_deref(),
            Some("/opt/py/bin:/usr/bin")
        );
        assert_eq!(Prepared::default().path_var(Some("/usr/bin")), None);
    }
}
