//! Fetching a package into bulkhead's cache, outside the server's sandbox,
//! and running it from there inside it.
//!
//! The flow, for a [`PackageRef`] from [`crate::analyze`]:
//!
//! 1. The version: [`PackageRef::exact_version`], or run
//!    [`resolve_version_command`] and read its stdout with
//!    [`parse_resolved_version`]. (For bun, which has no such command,
//!    fetch into a staging directory and read [`installed_version`]:
//!    `node_modules` can be moved, a venv cannot.)
//! 2. [`cache_dir`]`(base, pkg, version)`; if it is not there yet, run each
//!    of [`fetch_commands`] in order (with network to
//!    [`crate::registry_hosts`], reading [`crate::RegistrySettings::read`],
//!    writing only the directory).
//! 3. [`run_command`] is the server's command; [`analyze_installed`] its plan.
//!
//! **Install scripts are not run by default** ([`InstallScripts::Skip`]):
//! the fetch runs with network and outside the server's sandbox, so a
//! package's `postinstall` (or a Python sdist's build backend, which is the
//! same thing) would run arbitrary code with more reach than the server
//! itself gets. Most MCP servers are plain JavaScript or pure-Python wheels
//! and need none. Those that do (native addons built by node-gyp or
//! prebuild-install, puppeteer's browser download, sdist-only Python
//! packages) fail visibly: npm packages at run time with a missing binary,
//! Python ones at fetch time (`--no-build` refuses the sdist). Passing
//! [`InstallScripts::Run`] is the user's explicit choice.

use std::path::{Path, PathBuf};

use crate::packages::{
    Ecosystem, Installer, PackageRef, normalize_pypi, validate_bin, validate_resolved_version,
};
use crate::resolve::{MANIFEST_CAP, ReadFail, path_string, read_capped};
use crate::{LaunchEnv, LaunchError, LaunchPlan};

/// Scratch space inside a package's directory for the installer's own
/// download cache, so the fetch writes nowhere else. Safe to delete after
/// a successful fetch (uv hard-links or copies out of it, never symlinks).
pub const FETCH_CACHE: &str = ".fetch-cache";

/// Whether the fetch may run packages' install-time code. See the module
/// docs for why `Skip` is the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum InstallScripts {
    /// npm/bun `--ignore-scripts`; uv `--no-build`; pip `--only-binary=:all:`.
    #[default]
    Skip,
    /// Run them, as a plain `npm install` or `pip install` would.
    Run,
}

/// One command of a fetch: run `argv` with `env` added to the environment,
/// feeding it `stdin` if set.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Step {
    /// The command; `argv[0]` is looked up on `PATH`.
    pub argv: Vec<String>,
    /// Variables to set for it, on top of the user's (whose registry
    /// settings it needs; see [`crate::RegistrySettings::env`]): set these
    /// last, so that they win.
    pub env: Vec<(String, String)>,
    /// What to write to its stdin, if anything.
    pub stdin: Option<String>,
}

impl Step {
    /// A step to run `argv` with `env` added, fed `stdin`.
    pub fn new(argv: Vec<String>, env: Vec<(String, String)>, stdin: Option<String>) -> Self {
        Self { argv, env, stdin }
    }
}

/// `$XDG_CACHE_HOME/bulkhead`, else `~/.cache/bulkhead`.
pub fn default_cache_base(env: &LaunchEnv) -> Option<PathBuf> {
    env.xdg("XDG_CACHE_HOME", ".cache")
        .map(|c| c.join("bulkhead"))
}

/// Where a package version lives:
/// `BASE/packages/INSTALLER/NAME/VERSION`, e.g.
/// `packages/npm/@scope+name/1.2.3` or `packages/uv/mcp-server-fetch/0.6.2`.
/// When the install differs from the bare package (extras, `--with`
/// packages, a Python version, registries named on the command line), the
/// version is followed by `@` and a hash of those (`@` appears in neither
/// semver nor PEP 440 versions). Names and version are re-validated.
pub fn cache_dir(
    base: &Path,
    pkg: &PackageRef,
    resolved_version: &str,
) -> Result<PathBuf, LaunchError> {
    let name = pkg.package.cache_component()?;
    validate_resolved_version(&pkg.package.name, resolved_version)?;
    let mut variant = Vec::new();
    variant.extend(pkg.package.extras.iter().map(|e| format!("extra {e}")));
    variant.extend(pkg.with.iter().map(|w| format!("with {}", w.requirement())));
    variant.extend(pkg.python.iter().map(|p| format!("python {p}")));
    variant.extend(
        pkg.registries
            .iter()
            .map(|r| format!("registry {} {}", r.flag, r.url)),
    );
    let mut leaf = resolved_version.to_owned();
    if !variant.is_empty() {
        variant.sort();
        leaf = format!("{leaf}@{:016x}", fnv1a(variant.join("\n").as_bytes()));
    }
    Ok(base
        .join("packages")
        .join(pkg.installer.name())
        .join(name)
        .join(leaf))
}

/// FNV-1a, 64 bits: a stable, dependency-free hash for cache keys (not a
/// security boundary: the key only keeps different installs apart).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn requirement_at(pkg: &PackageRef, version: Option<&str>) -> String {
    match (version, pkg.package.ecosystem) {
        (None, _) => pkg.package.requirement(),
        (Some(v), Ecosystem::Npm) => format!("{}@{v}", pkg.package.name),
        (Some(v), Ecosystem::PyPI) => {
            let mut p = pkg.package.clone();
            p.version = crate::VersionSpec::Exact(v.to_owned());
            p.requirement()
        }
    }
}

fn registry_flags(pkg: &PackageRef) -> Vec<String> {
    pkg.registries
        .iter()
        .map(|r| format!("{}={}", r.flag, r.url))
        .collect()
}

/// The commands that install `pkg` into `dir` (which the caller creates
/// and owns), at `version` exactly when given (from step 1 of the module
/// docs), else as the command line asked.
pub fn fetch_commands(
    pkg: &PackageRef,
    version: Option<&str>,
    dir: &Path,
    scripts: InstallScripts,
) -> Result<Vec<Step>, LaunchError> {
    if let Some(v) = version {
        validate_resolved_version(&pkg.package.name, v)?;
    }
    let d = path_string(dir)?;
    let cache = path_string(&dir.join(FETCH_CACHE))?;
    let skip = scripts == InstallScripts::Skip;
    let mut specs = vec![requirement_at(pkg, version)];
    specs.extend(pkg.with.iter().map(|w| w.requirement()));
    let step = |argv: Vec<String>, env: Vec<(&str, &str)>| Step {
        argv,
        env: env
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        stdin: None,
    };
    let strs = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    Ok(match pkg.installer {
        Installer::Npm => {
            let mut argv = strs(&["npm", "install", "--prefix", &d]);
            argv.extend(strs(&["--no-audit", "--no-fund", "--no-update-notifier"]));
            if skip {
                argv.push("--ignore-scripts".into());
            }
            argv.extend(registry_flags(pkg));
            argv.extend(specs);
            vec![step(argv, vec![("npm_config_cache", &cache)])]
        }
        Installer::Bun => {
            let mut argv = strs(&["bun", "add", "--cwd", &d, "--no-progress"]);
            if skip {
                argv.push("--ignore-scripts".into());
            }
            argv.extend(registry_flags(pkg));
            argv.extend(specs);
            vec![step(argv, vec![("BUN_INSTALL_CACHE_DIR", &cache)])]
        }
        Installer::Uv => {
            // UV_PYTHON_DOWNLOADS=never: use a Python already here (system,
            // pyenv, or one `uv python install` put in place) rather than
            // download one, which would need hosts beyond the index's.
            let env = vec![
                ("UV_CACHE_DIR", cache.as_str()),
                ("UV_PYTHON_DOWNLOADS", "never"),
            ];
            let venv = path_string(&dir.join("venv"))?;
            let python = path_string(&dir.join("venv/bin/python"))?;
            let mut create = strs(&["uv", "venv", "--no-project"]);
            if let Some(p) = &pkg.python {
                create.extend(["--python".to_owned(), p.clone()]);
            }
            create.push(venv);
            let mut install = strs(&["uv", "pip", "install", "--python", &python]);
            if skip {
                install.push("--no-build".into());
            }
            install.extend(registry_flags(pkg));
            install.extend(specs);
            vec![step(create, env.clone()), step(install, env)]
        }
        Installer::Pipx => {
            let home = path_string(&dir.join("pipx"))?;
            let bin = path_string(&dir.join("bin"))?;
            let man = path_string(&dir.join("man"))?;
            let mut argv = strs(&["pipx", "install"]);
            if let Some(p) = &pkg.python {
                argv.extend(["--python".to_owned(), p.clone()]);
            }
            if skip {
                argv.push("--pip-args=--only-binary=:all:".into());
            }
            argv.extend(registry_flags(pkg));
            for w in &specs[1..] {
                argv.extend(["--preinstall".to_owned(), w.clone()]);
            }
            argv.push(specs[0].clone());
            let env = vec![
                ("PIPX_HOME", home.as_str()),
                ("PIPX_BIN_DIR", bin.as_str()),
                ("PIPX_MAN_DIR", man.as_str()),
                ("PIP_CACHE_DIR", cache.as_str()),
                ("UV_CACHE_DIR", cache.as_str()),
            ];
            vec![step(argv, env)]
        }
    })
}

/// The command that prints the version `pkg` would resolve to (read it
/// with [`parse_resolved_version`]), using `scratch` as the tool's cache.
/// `None` when the version is already exact, or for bun (see the module
/// docs). Never runs package code: sdists are not built for it.
pub fn resolve_version_command(pkg: &PackageRef, scratch: &Path) -> Option<Step> {
    if pkg.exact_version().is_some() {
        return None;
    }
    let scratch = scratch.to_str()?.to_owned();
    let req = pkg.package.requirement();
    let mut step = Step {
        argv: Vec::new(),
        env: Vec::new(),
        stdin: None,
    };
    match pkg.installer {
        Installer::Bun => return None,
        Installer::Npm => {
            step.argv = vec!["npm".into(), "view".into(), "--json".into(), req];
            step.argv.push("version".into());
            step.argv.extend(registry_flags(pkg));
            step.env.push(("npm_config_cache".into(), scratch));
        }
        Installer::Uv => {
            step.argv = ["uv", "pip", "compile", "-", "--no-deps", "--no-header"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
            step.argv
                .extend(["--no-annotate", "--quiet", "--no-build"].map(String::from));
            if let Some(p) = &pkg.python {
                step.argv.extend(["--python".to_owned(), p.clone()]);
            }
            step.argv.extend(registry_flags(pkg));
            step.stdin = Some(format!("{req}\n"));
            step.env.push(("UV_CACHE_DIR".into(), scratch));
            step.env
                .push(("UV_PYTHON_DOWNLOADS".into(), "never".into()));
        }
        Installer::Pipx => {
            // pip >= 22.2 for --report.
            step.argv = ["python3", "-m", "pip", "install", "--dry-run", "--no-deps"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
            step.argv.extend(
                [
                    "--ignore-installed",
                    "--quiet",
                    "--report",
                    "-",
                    "--only-binary=:all:",
                ]
                .map(String::from),
            );
            step.argv.extend(registry_flags(pkg));
            step.argv.push(req);
            step.env.push(("PIP_CACHE_DIR".into(), scratch));
        }
    }
    Some(step)
}

/// The version in the stdout of [`resolve_version_command`]'s command:
/// npm's JSON (one version, or the highest of several matching a range),
/// `uv pip compile`'s `name==version` line, pip's `--report` JSON.
pub fn parse_resolved_version(pkg: &PackageRef, stdout: &str) -> Result<String, LaunchError> {
    let name = &pkg.package.name;
    let fail = |message: String| LaunchError::ResolvedVersion {
        name: name.clone(),
        message,
    };
    let version = match pkg.installer {
        Installer::Npm | Installer::Bun => {
            let v: serde_json::Value = serde_json::from_str(stdout.trim())
                .map_err(|e| fail(format!("npm view's output is not JSON: {e}")))?;
            let all: Vec<&str> = match &v {
                serde_json::Value::String(s) => vec![s.as_str()],
                serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str()).collect(),
                _ => Vec::new(),
            };
            all.into_iter()
                .max_by(|a, b| semver_cmp(a, b))
                .map(str::to_owned)
                .ok_or_else(|| fail("no published version matches".to_owned()))?
        }
        Installer::Uv => {
            let want = normalize_pypi(name);
            stdout
                .lines()
                .map(str::trim)
                .filter(|l| !l.starts_with('#'))
                .find_map(|l| {
                    let (n, v) = l.split_once("==")?;
                    let n = n.split('[').next()?.trim();
                    (normalize_pypi(n) == want).then(|| v.trim().to_owned())
                })
                .ok_or_else(|| fail(format!("no `{name}==…` line in uv's output")))?
        }
        Installer::Pipx => {
            let v: serde_json::Value = serde_json::from_str(stdout.trim())
                .map_err(|e| fail(format!("pip's report is not JSON: {e}")))?;
            let want = normalize_pypi(name);
            v.get("install")
                .and_then(|i| i.as_array())
                .into_iter()
                .flatten()
                .filter_map(|i| i.get("metadata"))
                .find(|m| {
                    m.get("name").and_then(|n| n.as_str()).map(normalize_pypi) == Some(want.clone())
                })
                .and_then(|m| m.get("version")?.as_str().map(str::to_owned))
                .ok_or_else(|| fail(format!("{name} is not in pip's report")))?
        }
    };
    validate_resolved_version(name, &version)?;
    Ok(version)
}

/// Orders semver versions: numeric core, then a release above its
/// pre-releases, then pre-release identifiers (numeric ones numerically).
fn semver_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |v: &str| {
        let v = v.split('+').next().unwrap_or(v);
        let (core, pre) = v.split_once('-').unwrap_or((v, ""));
        let nums: Vec<u64> = core.split('.').map(|n| n.parse().unwrap_or(0)).collect();
        (nums, pre.to_owned())
    };
    let ((an, ap), (bn, bp)) = (split(a), split(b));
    an.cmp(&bn)
        .then_with(|| match (ap.is_empty(), bp.is_empty()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            (false, false) => crate::resolve::version_cmp(&ap, &bp),
        })
}

/// The server's command: the installed executable and its arguments.
pub fn run_command(pkg: &PackageRef, dir: &Path) -> Result<Vec<String>, LaunchError> {
    let bin = installed_bin(pkg, dir)?;
    let exe = match pkg.installer {
        Installer::Npm | Installer::Bun => dir.join("node_modules/.bin").join(&bin),
        Installer::Uv => dir.join("venv/bin").join(&bin),
        Installer::Pipx => dir.join("bin").join(&bin),
    };
    let mut argv = Vec::new();
    if pkg.force_bun {
        argv.extend(["bun".to_owned(), "--bun".to_owned()]);
    }
    argv.push(path_string(&exe)?);
    argv.extend(pkg.args.iter().cloned());
    Ok(argv)
}

fn read_manifest(path: &Path) -> Result<serde_json::Value, LaunchError> {
    let text = read_capped(path, MANIFEST_CAP).map_err(|e| LaunchError::Manifest {
        path: path.to_path_buf(),
        message: match e {
            ReadFail::Missing => "missing: is the package installed here?".to_owned(),
            other => other.to_string(),
        },
    })?;
    serde_json::from_str(&text).map_err(|e| LaunchError::Manifest {
        path: path.to_path_buf(),
        message: format!("not JSON: {e}"),
    })
}

/// The executable to run: the one the command line named, else for npm and
/// bun npm's own rule on the installed package.json (its only executable,
/// or the one named like the package), else for PyPI the package's name.
pub fn installed_bin(pkg: &PackageRef, dir: &Path) -> Result<String, LaunchError> {
    if let Some(b) = &pkg.bin {
        validate_bin(b)?;
        return Ok(b.clone());
    }
    if pkg.package.ecosystem == Ecosystem::PyPI {
        let b = pkg.default_bin().to_owned();
        validate_bin(&b)?;
        return Ok(b);
    }
    pkg.package.cache_component()?;
    let path = dir
        .join("node_modules")
        .join(&pkg.package.name)
        .join("package.json");
    let manifest = read_manifest(&path)?;
    let unscoped = pkg.package.unscoped_name();
    let bad = |message: String| LaunchError::Manifest {
        path: path.clone(),
        message,
    };
    let bin = match manifest.get("bin") {
        Some(serde_json::Value::String(_)) => unscoped.to_owned(),
        Some(serde_json::Value::Object(m)) => {
            let targets: std::collections::BTreeSet<&str> =
                m.values().filter_map(|v| v.as_str()).collect();
            if targets.len() == 1 {
                m.keys().next().cloned().unwrap_or_default()
            } else if m.contains_key(unscoped) {
                unscoped.to_owned()
            } else {
                let names: Vec<&str> = m.keys().map(String::as_str).collect();
                return Err(bad(format!(
                    "several executables ({}) and none named {unscoped}: name one, as in npx -p {} NAME",
                    names.join(", "),
                    pkg.package.name
                )));
            }
        }
        _ => return Err(bad("the package has no executables (no \"bin\")".to_owned())),
    };
    validate_bin(&bin)?;
    Ok(bin)
}

/// The version actually installed in `dir` (npm/bun: the package's
/// package.json; uv/pipx: its `.dist-info` directory's name).
pub fn installed_version(pkg: &PackageRef, dir: &Path) -> Result<String, LaunchError> {
    let name = &pkg.package.name;
    let version = match pkg.installer {
        Installer::Npm | Installer::Bun => {
            pkg.package.cache_component()?;
            let path = dir.join("node_modules").join(name).join("package.json");
            let v = read_manifest(&path)?;
            v.get("version")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .ok_or_else(|| LaunchError::Manifest {
                    path,
                    message: "no \"version\"".to_owned(),
                })?
        }
        Installer::Uv | Installer::Pipx => {
            let venvs = match pkg.installer {
                Installer::Uv => vec![dir.join("venv")],
                _ => read_dirs(&dir.join("pipx/venvs")),
            };
            let want = normalize_pypi(name);
            venvs
                .iter()
                .flat_map(|v| read_dirs(&v.join("lib")))
                .flat_map(|py| read_dirs(&py.join("site-packages")))
                .find_map(|d| {
                    let file = d.file_name()?.to_str()?;
                    let (n, v) = file.strip_suffix(".dist-info")?.rsplit_once('-')?;
                    (normalize_pypi(n) == want).then(|| v.to_owned())
                })
                .ok_or_else(|| LaunchError::Manifest {
                    path: dir.to_path_buf(),
                    message: format!("no {name} .dist-info in its environment"),
                })?
        }
    };
    validate_resolved_version(name, &version)?;
    Ok(version)
}

fn read_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

/// The plan for running an installed package: [`crate::analyze`] of
/// [`run_command`] (its interpreter, venv and base prefix), plus `dir`
/// itself, which holds the package and everything it depends on.
pub fn analyze_installed(
    pkg: &PackageRef,
    dir: &Path,
    env: &LaunchEnv,
) -> Result<LaunchPlan, LaunchError> {
    let argv = run_command(pkg, dir)?;
    let mut plan = crate::analyze(&argv, env)?;
    let canon = dir.canonicalize().map_err(|e| LaunchError::Manifest {
        path: dir.to_path_buf(),
        message: format!("the package directory: {e}"),
    })?;
    plan.notes.push(format!(
        "{} from the package cache {}",
        pkg.package.name,
        canon.display()
    ));
    plan.read.push(canon);
    plan.read = crate::plan::normalize(std::mem::take(&mut plan.read));
    Ok(plan)
}
