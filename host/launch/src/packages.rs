//! Package references: what `npx`, `bunx`, `uvx` and `pipx run` would
//! fetch, with names checked against the registries' own rules, since names
//! become path components of the cache.

use std::fmt;

use crate::LaunchError;

/// Whose registry and naming rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Ecosystem {
    /// The npm registry (npx, npm exec, bunx).
    Npm,
    /// The Python Package Index or an index like it (uvx, pipx).
    PyPI,
}

impl fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Npm => "npm",
            Self::PyPI => "PyPI",
        })
    }
}

/// Which tool fetches the package and how it is laid out in the cache
/// (the launcher that named it decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Installer {
    /// `npm install --prefix DIR` (from npx, npm exec).
    Npm,
    /// `bun add --cwd DIR` (from bunx, bun x).
    Bun,
    /// `uv venv DIR/venv` + `uv pip install` (from uvx, uv tool run).
    Uv,
    /// `pipx install` with `PIPX_HOME=DIR/pipx` (from pipx run).
    Pipx,
}

impl Installer {
    /// `npm`, `bun`, `uv`, `pipx`: also the cache's directory for it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Npm => "npm",
            Self::Bun => "bun",
            Self::Uv => "uv",
            Self::Pipx => "pipx",
        }
    }

    /// The registry it fetches from.
    pub fn ecosystem(self) -> Ecosystem {
        match self {
            Self::Npm | Self::Bun => Ecosystem::Npm,
            Self::Uv | Self::Pipx => Ecosystem::PyPI,
        }
    }
}

/// The version asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VersionSpec {
    /// None given: the registry's latest.
    Unspecified,
    /// `@latest`, said explicitly.
    Latest,
    /// One exact version (`@1.2.3`, `==1.2.3`).
    Exact(String),
    /// A range, a tag or a specifier set (`@^1.2`, `@next`, `>=1,<2`).
    Requirement(String),
}

/// One package: name, extras (PyPI) and version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct PackageSpec {
    /// Whose naming rules it follows.
    pub ecosystem: Ecosystem,
    /// The name as written (validated): `@scope/name`, `mcp-server-fetch`.
    pub name: String,
    /// PyPI extras (`mcp[cli]` → `["cli"]`).
    pub extras: Vec<String>,
    /// The version asked for.
    pub version: VersionSpec,
}

/// A registry named on the launcher's command line (`--registry`,
/// `--index-url`…), passed on to the fetch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RegistryArg {
    /// The installer's flag, e.g. `--registry`, `--index-url`, `--index`.
    pub flag: String,
    /// Its URL.
    pub url: String,
}

/// What a package launcher would run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PackageRef {
    /// Who fetches it, and the cache layout.
    pub installer: Installer,
    /// The package providing the executable.
    pub package: PackageSpec,
    /// More packages installed beside it (`npx -p a -p b`, `uvx --with`).
    pub with: Vec<PackageSpec>,
    /// The executable, when the command line names it (`npx -p pkg cmd`,
    /// `uvx --from pkg cmd`, `uvx pkg`); `None` for npm/bun packages named
    /// alone, whose executable comes from their manifest after the fetch
    /// ([`crate::installed_bin`]).
    pub bin: Option<String>,
    /// The server's own arguments.
    pub args: Vec<String>,
    /// Registries named on the command line.
    pub registries: Vec<RegistryArg>,
    /// The Python asked for (`uvx --python 3.12`, `pipx run --python`).
    pub python: Option<String>,
    /// `bunx --bun`: run with bun even where the script's `#!` says node.
    pub force_bun: bool,
}

impl PackageRef {
    /// The exact version asked for, if one was.
    pub fn exact_version(&self) -> Option<&str> {
        match &self.package.version {
            VersionSpec::Exact(v) => Some(v),
            _ => None,
        }
    }

    /// The executable's name before the fetch: `bin`, or for npm the
    /// name's last segment (npm's own fallback), for PyPI the name.
    pub fn default_bin(&self) -> &str {
        self.bin
            .as_deref()
            .unwrap_or_else(|| match self.package.ecosystem {
                Ecosystem::Npm => self.package.unscoped_name(),
                Ecosystem::PyPI => &self.package.name,
            })
    }
}

/// npm's cap on a name's length (validate-npm-package-name).
const NPM_NAME_MAX: usize = 214;

/// Names npm reserves (validate-npm-package-name's blocklist).
const NPM_RESERVED: &[&str] = &["node_modules", "favicon.ico"];

/// Long enough for any real version or specifier set; a longer one is a
/// mistake or an attack on whatever parses it next.
const VERSION_MAX: usize = 256;

impl PackageSpec {
    /// Parses an npm spec: `name`, `name@1.2.3`, `@scope/name@^1`,
    /// `name@latest`. `Ok(Err(reason))` when it is valid npm but not a
    /// registry package (a git URL, a path, a tarball, an alias).
    pub fn parse_npm(spec: &str) -> Result<Result<Self, String>, LaunchError> {
        if let Some(why) = npm_non_registry(spec) {
            return Ok(Err(format!("{spec:?} is {why}, not a registry package")));
        }
        let at = if let Some(rest) = spec.strip_prefix('@') {
            rest.find('@').map(|i| i + 1)
        } else {
            spec.find('@')
        };
        let (name, version) = match at {
            Some(i) => (&spec[..i], Some(&spec[i + 1..])),
            None => (spec, None),
        };
        validate_npm_name(name)?;
        let version = match version {
            None => VersionSpec::Unspecified,
            Some(v) => npm_version(name, v)?,
        };
        Ok(Ok(Self {
            ecosystem: crate::Ecosystem::Npm,
            name: name.to_owned(),
            extras: Vec::new(),
            version,
        }))
    }

    /// Parses a Python requirement as uvx and pipx take it: `name`,
    /// `name==1.2`, `name@1.2`, `name@latest`, `name[extra]>=1,<2`.
    /// `Ok(Err(reason))` for valid non-registry sources (URLs, paths).
    pub fn parse_pypi(spec: &str) -> Result<Result<Self, String>, LaunchError> {
        let spec = spec.trim();
        if let Some(why) = pypi_non_registry(spec) {
            return Ok(Err(format!("{spec:?} is {why}, not a registry package")));
        }
        let end = spec
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            .unwrap_or(spec.len());
        let name = &spec[..end];
        validate_pypi_name(name)?;
        if spec[end..].starts_with(|c: char| !"[@=<>!~ ".contains(c)) {
            return Err(bad_name(
                crate::Ecosystem::PyPI,
                spec,
                "only letters, digits, . _ - are allowed",
            ));
        }
        let mut rest = spec[end..].trim_start();
        let mut extras = Vec::new();
        if let Some(r) = rest.strip_prefix('[') {
            let Some(close) = r.find(']') else {
                return Err(bad_name(crate::Ecosystem::PyPI, spec, "unclosed extras"));
            };
            for e in r[..close]
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
            {
                validate_pypi_name(e)?;
                extras.push(e.to_owned());
            }
            rest = r[close + 1..].trim_start();
        }
        let version = pypi_version(name, rest)?;
        Ok(Ok(Self {
            ecosystem: crate::Ecosystem::PyPI,
            name: name.to_owned(),
            extras,
            version,
        }))
    }

    /// The requirement as the installer takes it: `name@1.2.3`,
    /// `name[cli]==1.2`, `name>=1,<2`.
    pub fn requirement(&self) -> String {
        match self.ecosystem {
            Ecosystem::Npm => match &self.version {
                VersionSpec::Unspecified => self.name.clone(),
                VersionSpec::Latest => format!("{}@latest", self.name),
                VersionSpec::Exact(v) | VersionSpec::Requirement(v) => {
                    format!("{}@{v}", self.name)
                }
            },
            Ecosystem::PyPI => {
                let mut r = self.name.clone();
                if !self.extras.is_empty() {
                    r = format!("{r}[{}]", self.extras.join(","));
                }
                match &self.version {
                    VersionSpec::Unspecified | VersionSpec::Latest => r,
                    VersionSpec::Exact(v) => format!("{r}=={v}"),
                    VersionSpec::Requirement(s) => format!("{r}{s}"),
                }
            }
        }
    }

    /// The name without an npm scope (`@scope/name` → `name`).
    pub fn unscoped_name(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }

    /// The name as the registry compares it: PyPI's normalized form
    /// (lowercase, runs of `-_.` as one `-`, PEP 503); npm's as is.
    pub fn normalized_name(&self) -> String {
        match self.ecosystem {
            Ecosystem::Npm => self.name.clone(),
            Ecosystem::PyPI => normalize_pypi(&self.name),
        }
    }

    /// The name as one path component: npm's `@scope/name` as
    /// `@scope+name` (`+` is not allowed in npm names, so this cannot
    /// collide), PyPI's normalized. Re-validates: fields are public.
    pub fn cache_component(&self) -> Result<String, LaunchError> {
        match self.ecosystem {
            Ecosystem::Npm => {
                validate_npm_name(&self.name)?;
                Ok(self.name.replacen('/', "+", 1))
            }
            Ecosystem::PyPI => {
                validate_pypi_name(&self.name)?;
                Ok(normalize_pypi(&self.name))
            }
        }
    }
}

fn bad_name(ecosystem: Ecosystem, name: &str, reason: &'static str) -> LaunchError {
    LaunchError::InvalidPackageName {
        ecosystem,
        name: name.to_owned(),
        reason,
    }
}

/// PEP 503 normalization.
pub(crate) fn normalize_pypi(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// validate-npm-package-name, for names new and old: at most 214 bytes, no
/// leading `.` or `_`, URL-safe characters (uppercase allowed, as old
/// names like `JSONStream` have it), `@scope/name` with both parts
/// non-empty. `!'()*` are refused although legacy names may have them:
/// none of note does, and they have no business in a path.
pub(crate) fn validate_npm_name(name: &str) -> Result<(), LaunchError> {
    let bad = |reason| Err(bad_name(Ecosystem::Npm, name, reason));
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > NPM_NAME_MAX {
        return bad("longer than 214 characters");
    }
    if NPM_RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        return bad("a reserved name");
    }
    let parts: Vec<&str> = match name.strip_prefix('@') {
        Some(scoped) => {
            let parts: Vec<&str> = scoped.split('/').collect();
            if parts.len() != 2 {
                return bad("a scoped name is @scope/name");
            }
            parts
        }
        None => vec![name],
    };
    for part in parts {
        if part.is_empty() {
            return bad("empty scope or name");
        }
        if part.starts_with('.') || part.starts_with('_') {
            return bad("cannot start with . or _");
        }
        if !part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
        {
            return bad("only letters, digits, - . _ ~ are allowed");
        }
    }
    Ok(())
}

/// PEP 508's name rule: letters, digits, `.`, `_`, `-`, starting and ending
/// with a letter or digit (so never `.` or `..`).
pub(crate) fn validate_pypi_name(name: &str) -> Result<(), LaunchError> {
    let bad = |reason| Err(bad_name(Ecosystem::PyPI, name, reason));
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > VERSION_MAX {
        return bad("too long");
    }
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !ends_ok(name.chars().next()) || !ends_ok(name.chars().last()) {
        return bad("must start and end with a letter or digit");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return bad("only letters, digits, . _ - are allowed");
    }
    Ok(())
}

/// Why an npm spec is not a registry package, if it is not.
fn npm_non_registry(spec: &str) -> Option<&'static str> {
    if spec.starts_with(['.', '/', '~']) {
        return Some("a local path");
    }
    if spec.contains("://") || spec.starts_with("git+") {
        return Some("a URL");
    }
    let protocol = ["github:", "gitlab:", "bitbucket:", "gist:", "file:", "git:"];
    if protocol.iter().any(|p| spec.starts_with(p)) {
        return Some("a git or file source");
    }
    if spec.contains("@npm:") {
        return Some("an alias");
    }
    if spec.ends_with(".tgz") || spec.ends_with(".tar.gz") {
        return Some("a tarball");
    }
    if !spec.starts_with('@') && spec.split('@').next().is_some_and(|n| n.contains('/')) {
        return Some("a GitHub shorthand (user/repo)");
    }
    None
}

/// Why a Python requirement is not a registry package, if it is not.
fn pypi_non_registry(spec: &str) -> Option<&'static str> {
    if spec.starts_with(['.', '/', '~']) {
        return Some("a local path");
    }
    if spec.contains("://") || spec.starts_with("git+") || spec.contains(" @ ") {
        return Some("a URL or direct reference");
    }
    if [".whl", ".tar.gz", ".zip"]
        .iter()
        .any(|s| spec.ends_with(s))
    {
        return Some("an archive");
    }
    if spec.contains(';') {
        return Some("a requirement with environment markers");
    }
    None
}

/// An exact semver (`1.2.3`, `1.2.3-rc.1+build`), leading `v`/`=` allowed
/// as npm allows them.
fn exact_semver(v: &str) -> Option<&str> {
    let v = v.trim_start_matches(['v', '=']);
    let core = v.split(['-', '+']).next()?;
    let nums: Vec<&str> = core.split('.').collect();
    let ok = nums.len() == 3
        && nums
            .iter()
            .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'));
    ok.then_some(v)
}

fn npm_version(name: &str, v: &str) -> Result<VersionSpec, LaunchError> {
    let bad = |reason| LaunchError::InvalidVersion {
        name: name.to_owned(),
        version: v.to_owned(),
        reason,
    };
    if v.is_empty() {
        return Err(bad("empty after @"));
    }
    if v.len() > VERSION_MAX {
        return Err(bad("too long"));
    }
    if !v.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(c, '.' | '^' | '~' | '<' | '>' | '=' | '|' | '*')
            || matches!(c, ' ' | '+' | '-' | '_')
    }) {
        return Err(bad("not a version, range or tag"));
    }
    Ok(if v == "latest" {
        VersionSpec::Latest
    } else if let Some(exact) = exact_semver(v) {
        VersionSpec::Exact(exact.to_owned())
    } else {
        VersionSpec::Requirement(v.to_owned())
    })
}

/// A PEP 440-looking single version: starts with a digit, then letters,
/// digits and `.!+_-`.
fn pep440_version(v: &str) -> bool {
    v.chars().next().is_some_and(|c| c.is_ascii_digit())
        && v.len() <= VERSION_MAX
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '!' | '+' | '_' | '-'))
}

fn pypi_version(name: &str, rest: &str) -> Result<VersionSpec, LaunchError> {
    let bad = |reason| LaunchError::InvalidVersion {
        name: name.to_owned(),
        version: rest.to_owned(),
        reason,
    };
    if rest.is_empty() {
        return Ok(VersionSpec::Unspecified);
    }
    if let Some(v) = rest.strip_prefix('@') {
        let v = v.trim();
        return if v == "latest" {
            Ok(VersionSpec::Latest)
        } else if pep440_version(v) {
            Ok(VersionSpec::Exact(v.to_owned()))
        } else {
            Err(bad("not a version after @"))
        };
    }
    if !rest.starts_with(['=', '<', '>', '!', '~']) {
        return Err(bad(
            "expected a version specifier (==, >=, ~=, …) or @version",
        ));
    }
    if rest.len() > VERSION_MAX
        || !rest.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '.' | '*' | '+' | '!' | '=' | '<' | '>' | '~' | ',' | ' ' | '_' | '-'
                )
        })
    {
        return Err(bad("not a version specifier"));
    }
    let compact: String = rest.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(v) = compact.strip_prefix("==") {
        if !v.contains([',', '*', '=', '<', '>', '!', '~']) && pep440_version(v) {
            return Ok(VersionSpec::Exact(v.to_owned()));
        }
    }
    Ok(VersionSpec::Requirement(compact))
}

/// A version as a path component: one version, not `.`/`..`, no `/`.
pub(crate) fn validate_resolved_version(name: &str, v: &str) -> Result<(), LaunchError> {
    let ok = v.len() <= VERSION_MAX
        && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '!' | '+' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(LaunchError::InvalidVersion {
            name: name.to_owned(),
            version: v.to_owned(),
            reason: "a resolved version is letters, digits and . ! + _ -, starting with a letter or digit",
        })
    }
}

/// An executable name: one path component.
pub(crate) fn validate_bin(bin: &str) -> Result<(), LaunchError> {
    let bad = |reason| {
        Err(LaunchError::InvalidBinName {
            bin: bin.to_owned(),
            reason,
        })
    };
    if bin.is_empty() || bin == "." || bin == ".." {
        return bad("empty, . or ..");
    }
    if bin.contains(['/', '\\', '\0']) {
        return bad("contains a path separator");
    }
    if bin.len() > NPM_NAME_MAX {
        return bad("too long");
    }
    Ok(())
}
