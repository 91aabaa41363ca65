//! Python indexes for the fetch: uv's settings and pip's (see
//! [`crate::registry`]'s module docs for the order each is read in).

use std::path::{Path, PathBuf};

use super::{CONFIG_CAP, RegistrySettings, ini, read_config, toml_file};
use crate::packages::PackageRef;
use crate::resolve::read_capped;
use crate::{LaunchEnv, LaunchError};

/// PyPI's index and the host its files are served from.
const PYPI_DEFAULT: &[&str] = &["pypi.org", "files.pythonhosted.org"];

/// uv variables that choose indexes, TLS and the interpreter for the fetch.
#[rustfmt::skip] // an option table: one long list, not one item a line
const UV_VARS: &[&str] = &[
    "UV_INDEX", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS",
    "UV_NATIVE_TLS", "UV_SYSTEM_CERTS", "UV_CONFIG_FILE", "UV_NO_CONFIG", "UV_INSECURE_HOST",
    "UV_KEYRING_PROVIDER", "UV_INDEX_STRATEGY", "UV_HTTP_TIMEOUT", "UV_PYTHON",
];

pub(crate) fn uv(
    pkg: &PackageRef,
    env: &LaunchEnv,
    s: &mut RegistrySettings,
) -> Result<(), LaunchError> {
    for v in UV_VARS {
        s.pass(env, v);
    }
    for (k, _) in env.vars.iter().filter(|(k, _)| k.starts_with("UV_INDEX_")) {
        s.pass(env, k);
    }
    let mut replaced = false;
    for r in &pkg.registries {
        if matches!(r.flag.as_str(), "--index-url" | "--default-index") {
            replaced = true;
        }
        add_index(s, &r.url, &r.flag);
    }
    for (var, replaces) in [
        ("UV_INDEX_URL", true),
        ("UV_DEFAULT_INDEX", true),
        ("UV_INDEX", false),
        ("UV_EXTRA_INDEX_URL", false),
        ("UV_FIND_LINKS", false),
    ] {
        if let Some(v) = env.var(var) {
            replaced |= replaces;
            for url in v.split([' ', ',']).filter(|u| !u.is_empty()) {
                add_index(s, url.split_once('=').map_or(url, |(_, u)| u), var);
            }
        }
    }
    let files: Vec<PathBuf> = if env.var("UV_NO_CONFIG").is_some() {
        Vec::new()
    } else if let Some(f) = env.var_dir("UV_CONFIG_FILE") {
        vec![f]
    } else {
        let mut files = Vec::new();
        for dir in env.cwd.ancestors() {
            let (uvt, pyp) = (dir.join("uv.toml"), dir.join("pyproject.toml"));
            if uvt.is_file() {
                files.push(uvt);
                break;
            }
            // A pyproject.toml counts only with a [tool.uv] table; a broken
            // one is the project's problem, not the fetch's.
            let has_uv = read_capped(&pyp, CONFIG_CAP)
                .ok()
                .and_then(|t| t.parse::<toml::Table>().ok())
                .is_some_and(|t| t.get("tool").and_then(|t| t.get("uv")).is_some());
            if has_uv {
                files.push(pyp);
                break;
            }
        }
        files.extend(
            env.xdg("XDG_CONFIG_HOME", ".config")
                .map(|c| c.join("uv/uv.toml")),
        );
        files.push(PathBuf::from("/etc/uv/uv.toml"));
        files
    };
    for file in files {
        let Some(table) = toml_file(&file)? else {
            continue;
        };
        s.read_path(&file);
        let root = if file.file_name().is_some_and(|n| n == "pyproject.toml") {
            table
                .get("tool")
                .and_then(|t| t.get("uv"))
                .and_then(|t| t.as_table())
        } else {
            Some(&table)
        };
        let Some(root) = root else { continue };
        let origin = file.display().to_string();
        for t in [Some(root), root.get("pip").and_then(|p| p.as_table())]
            .into_iter()
            .flatten()
        {
            if let Some(u) = t.get("index-url").and_then(|v| v.as_str()) {
                replaced = true;
                add_index(s, u, &origin);
            }
            for key in ["extra-index-url", "find-links"] {
                for u in t.get(key).and_then(|v| v.as_array()).into_iter().flatten() {
                    if let Some(u) = u.as_str() {
                        add_index(s, u, &origin);
                    }
                }
            }
            for idx in t
                .get("index")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                if let Some(u) = idx.get("url").and_then(|u| u.as_str()) {
                    replaced |= idx.get("default").and_then(|d| d.as_bool()) == Some(true);
                    add_index(s, u, &origin);
                }
            }
        }
    }
    if !replaced {
        for h in PYPI_DEFAULT {
            if !s.hosts.iter().any(|x| x == h) {
                s.hosts.push((*h).to_owned());
            }
        }
    }
    if replaced {
        s.notes.push(
            "a custom index replaces PyPI: the files it links to may live on other hosts"
                .to_owned(),
        );
    }
    Ok(())
}

/// An index or find-links entry: a URL is a host; a local path is read.
fn add_index(s: &mut RegistrySettings, entry: &str, origin: &str) {
    let entry = entry.trim();
    if entry.contains("://") && !entry.starts_with("file://") {
        s.host(entry, origin);
    } else {
        let path = entry.strip_prefix("file://").unwrap_or(entry);
        if Path::new(path).is_absolute() {
            s.read_path(Path::new(path));
        } else {
            s.notes.push(format!(
                "{origin}: {entry:?} is not an absolute path or URL; ignored"
            ));
        }
    }
}

pub(crate) fn pip(
    pkg: &PackageRef,
    env: &LaunchEnv,
    s: &mut RegistrySettings,
) -> Result<(), LaunchError> {
    let mut replaced = pkg.registries.iter().any(|r| r.flag == "--index-url");
    for r in &pkg.registries {
        add_index(s, &r.url, &r.flag);
    }
    let mut files: Vec<PathBuf> = Vec::new();
    match env.var("PIP_CONFIG_FILE") {
        Some("os.devnull") | Some("/dev/null") => {}
        Some(f) => files.push(PathBuf::from(f)),
        None => {
            let dirs = env.var("XDG_CONFIG_DIRS").unwrap_or("/etc/xdg");
            files.extend(dirs.split(':').map(|d| Path::new(d).join("pip/pip.conf")));
            files.push(PathBuf::from("/etc/pip.conf"));
            if let Some(h) = &env.home {
                files.push(h.join(".pip/pip.conf"));
            }
            files.extend(
                env.xdg("XDG_CONFIG_HOME", ".config")
                    .map(|c| c.join("pip/pip.conf")),
            );
            files.extend(env.var_dir("VIRTUAL_ENV").map(|v| v.join("pip.conf")));
        }
    }
    let mut settings: Vec<(String, String, String)> = Vec::new();
    for file in files {
        if let Some(text) = read_config(&file)? {
            s.read_path(&file);
            let origin = file.display().to_string();
            settings.extend(
                ini(&text, &['=', ':'])
                    .into_iter()
                    .filter(|(sec, _, _)| matches!(sec.as_str(), "global" | "install" | "download"))
                    .map(|(_, k, v)| (k, v, origin.clone())),
            );
        }
    }
    for (var, key) in [
        ("PIP_INDEX_URL", "index-url"),
        ("PIP_EXTRA_INDEX_URL", "extra-index-url"),
        ("PIP_FIND_LINKS", "find-links"),
        ("PIP_CERT", "cert"),
        ("PIP_PROXY", "proxy"),
        ("PIP_TRUSTED_HOST", "trusted-host"),
    ] {
        s.pass(env, var);
        if let Some(v) = env.var(var) {
            settings.push((key.to_owned(), v.to_owned(), var.to_owned()));
        }
    }
    for (k, v, origin) in &settings {
        match k.as_str() {
            "index-url" => {
                replaced = true;
                add_index(s, v, origin);
            }
            "extra-index-url" | "find-links" => {
                for u in v.split_whitespace() {
                    add_index(s, u, origin);
                }
            }
            "cert" => s.read_path(Path::new(v)),
            "proxy" => {
                s.host(v, "proxy");
                s.notes.push(format!(
                    "pip goes through the proxy {v} (from {origin}): allow it"
                ));
            }
            _ => {}
        }
    }
    if !replaced {
        for h in PYPI_DEFAULT {
            if !s.hosts.iter().any(|x| x == h) {
                s.hosts.push((*h).to_owned());
            }
        }
    }
    Ok(())
}
