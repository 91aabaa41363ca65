//! Where a fetch goes: the registry hosts to allow, and the user's config
//! files (registry, CA, proxy) the fetch must read to find them.
//!
//! Read minimally, as each tool reads them, highest precedence first:
//!
//! - **npm** (and bun, which reads `.npmrc` too): `--registry` on the
//!   command line, `npm_config_*` variables (any case), the project's
//!   `.npmrc` (nearest directory with package.json or node_modules), the user
//!   file (`npm_config_userconfig` or `~/.npmrc`), the global one
//!   (`npm_config_globalconfig` or node's `PREFIX/etc/npmrc`). Keys:
//!   `registry`, `@scope:registry`, `cafile`, `proxy`, `https-proxy`, with
//!   `${VAR}` expanded. Bun adds `bunfig.toml`'s `[install] registry` and
//!   `[install.scopes]`.
//! - **uv**: `--index-url`/`--index`/… on the command line, `UV_*`
//!   variables, then `UV_CONFIG_FILE` alone, or the nearest `uv.toml` or
//!   `pyproject.toml` with `[tool.uv]`, the user's `uv.toml` and `/etc/uv`
//!   (none with `UV_NO_CONFIG`). Keys: `index-url`, `extra-index-url`,
//!   `[[index]] url`, `find-links`, also under `[pip]`. uv ignores pip.conf.
//! - **pip** (pipx, whose backend may be pip or uv, so both are read):
//!   `PIP_*` variables, `PIP_CONFIG_FILE`, `/etc/pip.conf`,
//!   `/etc/xdg/pip/pip.conf`, `~/.pip/pip.conf`, `~/.config/pip/pip.conf`.
//!   Keys in `[global]`/`[install]`: `index-url`, `extra-index-url`,
//!   `find-links`, `cert`, `proxy`.
//!
//! Hosts are `host`, or `host:port` when a URL names a port other than its
//! scheme's default. A proxy, when one is set, is a host to allow too.

use std::path::{Path, PathBuf};

use crate::packages::{Installer, PackageRef};
mod python;
use crate::resolve::{ReadFail, find_upward, read_capped, which};
use crate::{LaunchEnv, LaunchError};

/// Config files are a few kilobytes; a bigger one is not a config, and is
/// refused rather than read into memory.
pub(crate) const CONFIG_CAP: u64 = 1 << 20;

/// npm settings the fetch sets itself (where it installs and caches), so
/// the user's are not passed through to compete with them.
const NPM_FETCH_OWNED: &[&str] = &["cache", "prefix", "global", "location"];

/// The npm registry's default host (it serves the tarballs too).
const NPM_DEFAULT: &str = "https://registry.npmjs.org/";

/// Proxy variables curl, npm, pip and uv all honor.
#[rustfmt::skip] // an option table: one long list, not one item a line
const PROXY_VARS: &[&str] = &[
    "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
    "no_proxy",
];

/// CA variables: OpenSSL's (uv, and pip through certifi's override),
/// requests', node's.
#[rustfmt::skip] // an option table: one long list, not one item a line
const CA_VARS: &[&str] = &[
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS",
];

/// Where the fetch goes and what it reads to find out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistrySettings {
    /// Hosts to allow, the package's own registry first.
    pub hosts: Vec<String>,
    /// Existing files the fetch reads: config files, CA bundles, local
    /// `find-links` directories.
    pub read: Vec<PathBuf>,
    /// The user's variables the fetch needs (registry, CA, proxy), to pass
    /// through to it.
    pub env: Vec<(String, String)>,
    /// What was found, for the user.
    pub notes: Vec<String>,
}

impl RegistrySettings {
    pub(crate) fn host(&mut self, url: &str, what: &str) {
        match host_of(url) {
            Some(h) if !self.hosts.contains(&h) => self.hosts.push(h),
            Some(_) => {}
            None => self
                .notes
                .push(format!("{what} {url:?} is not an http(s) URL; not allowed")),
        }
    }

    pub(crate) fn read_path(&mut self, p: &Path) {
        if p.exists() && !self.read.iter().any(|r| r == p) {
            self.read.push(p.to_path_buf());
        }
    }

    pub(crate) fn pass(&mut self, env: &LaunchEnv, name: &str) {
        if let Some(v) = env.var(name) {
            if !self.env.iter().any(|(k, _)| k == name) {
                self.env.push((name.to_owned(), v.to_owned()));
            }
        }
    }
}

/// The registry hosts the fetch of `pkg` must reach.
pub fn registry_hosts(pkg: &PackageRef, env: &LaunchEnv) -> Result<Vec<String>, LaunchError> {
    registry_settings(pkg, env).map(|s| s.hosts)
}

/// Where the fetch of `pkg` goes and what it reads: see the module docs.
pub fn registry_settings(
    pkg: &PackageRef,
    env: &LaunchEnv,
) -> Result<RegistrySettings, LaunchError> {
    let mut s = RegistrySettings::default();
    match pkg.installer {
        Installer::Npm => {
            npm(pkg, env, &mut s)?;
        }
        Installer::Bun => {
            let bun_registry = bunfig(env, &mut s)?;
            let npm_default = npm(pkg, env, &mut s)?;
            if bun_registry && npm_default {
                // bunfig's registry replaces npm's default.
                s.hosts
                    .retain(|h| Some(h.as_str()) != host_of(NPM_DEFAULT).as_deref());
            }
        }
        Installer::Uv => python::uv(pkg, env, &mut s)?,
        Installer::Pipx => {
            python::pip(pkg, env, &mut s)?;
            python::uv(pkg, env, &mut s)?;
            s.notes.push(
                "pipx fetches with uv when uv is installed, else pip: both configs are read"
                    .to_owned(),
            );
        }
    }
    for v in CA_VARS {
        s.pass(env, v);
        if let Some(p) = env.var(v) {
            s.read_path(Path::new(p));
        }
    }
    for v in PROXY_VARS {
        s.pass(env, v);
    }
    if let Some(p) = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .find_map(|v| env.var(v))
    {
        s.host(p, "proxy");
        s.notes
            .push(format!("requests go through the proxy {p}: allow it"));
    }
    Ok(s)
}

/// `host` or `host:port` of an http(s) URL.
pub(crate) fn host_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (format!("[{h}]"), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._[]:".contains(c))
    {
        return None;
    }
    let host = host.to_ascii_lowercase();
    match port {
        Some(p) if p != default_port && !p.is_empty() => p
            .chars()
            .all(|c| c.is_ascii_digit())
            .then(|| format!("{host}:{p}")),
        _ => Some(host),
    }
}

/// A config file's text, `None` when it does not exist.
pub(crate) fn read_config(path: &Path) -> Result<Option<String>, LaunchError> {
    match read_capped(path, CONFIG_CAP) {
        Ok(t) => Ok(Some(t)),
        Err(ReadFail::Missing) => Ok(None),
        Err(ReadFail::TooLarge) => Err(LaunchError::ConfigTooLarge {
            path: path.to_path_buf(),
            cap: CONFIG_CAP,
        }),
        Err(ReadFail::NotUtf8) => Err(LaunchError::ConfigParse {
            path: path.to_path_buf(),
            line: 0,
            message: "not UTF-8".to_owned(),
        }),
        Err(ReadFail::Io(e)) if e.kind() == std::io::ErrorKind::IsADirectory => Ok(None),
        Err(ReadFail::Io(source)) => Err(LaunchError::ConfigRead {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `[section] key = value` lines, `;`/`#` comments, indented continuation
/// lines appended (pip's multi-line `extra-index-url`). Keys lowercased,
/// `_` as `-`, values unquoted. Returns (section, key, value).
pub(crate) fn ini(text: &str, delims: &[char]) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    let mut section = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.2.push(' ');
                last.2.push_str(trimmed);
            }
            continue;
        }
        if let Some(s) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.trim().to_ascii_lowercase();
            continue;
        }
        let Some((k, v)) = trimmed
            .split_once(delims)
            .filter(|(k, _)| !k.contains("//"))
        else {
            continue;
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        out.push((
            section.clone(),
            k.trim().to_ascii_lowercase().replace('_', "-"),
            v.to_owned(),
        ));
    }
    out
}

/// npm's `${VAR}` expansion (an unset variable stays as written, as npm
/// leaves it).
fn expand(value: &str, env: &LaunchEnv) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + end];
        match env.var(name.trim_end_matches('?')) {
            Some(v) => out.push_str(v),
            None => out.push_str(&rest[start..start + end + 1]),
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// npm's settings; returns whether the default registry is the one in use.
fn npm(pkg: &PackageRef, env: &LaunchEnv, s: &mut RegistrySettings) -> Result<bool, LaunchError> {
    // Settings by precedence: command line, environment, then files.
    let mut layers: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let cli: Vec<(String, String)> = pkg
        .registries
        .iter()
        .map(|r| (r.flag.trim_start_matches('-').to_owned(), r.url.clone()))
        .collect();
    layers.push(("the command line".to_owned(), cli));
    let mut from_env = Vec::new();
    for (k, v) in &env.vars {
        if k.len() > 11 && k[..11].eq_ignore_ascii_case("npm_config_") && !v.is_empty() {
            let key = k[11..].to_ascii_lowercase().replace('_', "-");
            if NPM_FETCH_OWNED.contains(&key.as_str()) {
                continue;
            }
            from_env.push((key, v.clone()));
            s.pass(env, k);
        }
    }
    layers.push(("the environment".to_owned(), from_env));
    let env_value = |key: &str| {
        layers[1]
            .1
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| PathBuf::from(v))
    };
    let project = find_upward(&env.cwd, &["package.json", "node_modules"])
        .and_then(|p| p.parent().map(|d| d.join(".npmrc")));
    let user = env_value("userconfig").or_else(|| env.home.as_ref().map(|h| h.join(".npmrc")));
    let global = env_value("globalconfig").or_else(|| {
        let node = which("node", env)?.canonicalize().ok()?;
        Some(node.parent()?.parent()?.join("etc/npmrc"))
    });
    let project_file = project.clone();
    for file in [project, user, global].into_iter().flatten() {
        if let Some(text) = read_config(&file)? {
            s.read_path(&file);
            let kv = ini(&text, &['='])
                .into_iter()
                .map(|(_, k, v)| (k, expand(&v, env)))
                .collect();
            layers.push((file.display().to_string(), kv));
        }
    }
    let first = |key: &str| {
        layers.iter().find_map(|(origin, kv)| {
            kv.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| (v.clone(), origin.clone()))
        })
    };
    let scope = pkg
        .package
        .name
        .strip_prefix('@')
        .and_then(|n| n.split('/').next());
    let scoped = scope.and_then(|sc| first(&format!("@{sc}:registry")));
    let (registry, origin) =
        first("registry").unwrap_or((NPM_DEFAULT.to_owned(), "npm's default".to_owned()));
    if let Some((url, origin)) = &scoped {
        s.host(url, "scope registry");
        s.notes.push(format!(
            "{}: registry {url} (from {origin})",
            pkg.package.name
        ));
    }
    s.host(&registry, "registry");
    s.notes
        .push(format!("npm registry {registry} (from {origin})"));
    if let (Some(p), Some((_, o))) = (&project_file, first("registry")) {
        if o == p.display().to_string() && env.var("npm_config_registry").is_none() {
            // The fetch runs with --prefix DIR, so npm would not read the
            // project's .npmrc itself: carry its registry over.
            s.env
                .push(("npm_config_registry".to_owned(), registry.clone()));
        }
    }
    // Dependencies may come from any configured scope.
    for (_, kv) in &layers {
        for (k, v) in kv {
            if k.starts_with('@') && k.ends_with(":registry") {
                s.host(v, "scope registry");
            }
        }
    }
    if let Some((cafile, _)) = first("cafile") {
        s.read_path(Path::new(&cafile));
    }
    if let Some((proxy, origin)) = first("https-proxy").or_else(|| first("proxy")) {
        s.host(&proxy, "proxy");
        s.notes.push(format!(
            "npm goes through the proxy {proxy} (from {origin}): allow it"
        ));
    }
    Ok(origin == "npm's default")
}

/// bunfig.toml's settings; returns whether one names a default registry.
fn bunfig(env: &LaunchEnv, s: &mut RegistrySettings) -> Result<bool, LaunchError> {
    let mut named = false;
    for v in ["BUN_CONFIG_REGISTRY", "NPM_CONFIG_REGISTRY"] {
        s.pass(env, v);
        if let Some(url) = env.var(v) {
            named = true;
            s.host(url, v);
        }
    }
    let files = [
        Some(env.cwd.join("bunfig.toml")),
        env.xdg("XDG_CONFIG_HOME", ".config")
            .map(|c| c.join(".bunfig.toml")),
        env.home.as_ref().map(|h| h.join(".bunfig.toml")),
    ];
    for file in files.into_iter().flatten() {
        let Some(table) = toml_file(&file)? else {
            continue;
        };
        s.read_path(&file);
        let install = table.get("install").and_then(|i| i.as_table());
        let url = |v: &toml::Value| -> Option<String> {
            match v {
                toml::Value::String(u) => Some(u.clone()),
                toml::Value::Table(t) => t.get("url")?.as_str().map(str::to_owned),
                _ => None,
            }
        };
        if let Some(u) = install.and_then(|i| i.get("registry")).and_then(url) {
            named = true;
            s.host(&u, "bunfig registry");
        }
        if let Some(scopes) = install
            .and_then(|i| i.get("scopes"))
            .and_then(|v| v.as_table())
        {
            for v in scopes.values().filter_map(url) {
                s.host(&v, "bunfig scope registry");
            }
        }
    }
    Ok(named)
}

/// A TOML file as a table; `None` when it does not exist.
pub(crate) fn toml_file(path: &Path) -> Result<Option<toml::Table>, LaunchError> {
    let Some(text) = read_config(path)? else {
        return Ok(None);
    };
    text.parse::<toml::Table>()
        .map(Some)
        .map_err(|e| LaunchError::ConfigParse {
            path: path.to_path_buf(),
            line: e.span().map_or(0, |sp| {
                text[..sp.start.min(text.len())].lines().count().max(1)
            }),
            message: e.message().to_owned(),
        })
}
