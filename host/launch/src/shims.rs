//! Version-manager shims → the real binary they would exec, decided from the
//! managers' own files without running them.
//!
//! | manager | shim | version from | real binary |
//! |---|---|---|---|
//! | pyenv | `$PYENV_ROOT/shims/X` (bash) | `PYENV_VERSION`, `.python-version` up the tree, `$PYENV_ROOT/version` | `$PYENV_ROOT/versions/V/bin/X` |
//! | asdf | `$ASDF_DATA_DIR/shims/X` (bash, names its plugins) | `ASDF_<PLUGIN>_VERSION`, `.tool-versions` up the tree, `~/.tool-versions` | `$ASDF_DATA_DIR/installs/P/V/bin/X` |
//! | mise | `$MISE_DATA_DIR/shims/X` (symlink to mise) | `MISE_<TOOL>_VERSION`, `mise.toml`/`.mise.toml`/`.tool-versions` up the tree, the global config | `$MISE_DATA_DIR/installs/T/V/bin/X` |
//! | volta | `$VOLTA_HOME/bin/X` (shim binary) | package.json's `volta`, `tools/user/platform.json` | `$VOLTA_HOME/tools/image/node/V/bin/X` |
//!
//! nvm and fnm have no shims: their `bin` directories (or fnm's multishell
//! symlinks) lead to the real binary by `canonicalize` alone.

use std::path::{Path, PathBuf};

use crate::LaunchEnv;
use crate::resolve::{
    MANIFEST_CAP, contained, find_upward, is_executable, is_version_name, latest_with_prefix,
    locate, read_capped, read_small, same_dir,
};

/// Shims are a few hundred bytes of shell; a bigger file is a real program
/// and is not read as text.
const SHIM_MAX_BYTES: u64 = 16 * 1024;

/// What a shim leads to.
#[derive(Debug)]
pub(crate) enum Shim {
    /// The real binary, and other directories it needs (volta's node image
    /// under a pinned npm).
    Resolved {
        manager: &'static str,
        real: PathBuf,
        version: String,
        origin: String,
        extra: Vec<PathBuf>,
    },
    /// A shim whose target could not be decided.
    Unresolved {
        manager: &'static str,
        root: PathBuf,
        why: String,
    },
}

/// If `invoked` (found on `PATH`, not canonicalized) is a shim, what it
/// leads to. `name` is the command name the shim dispatches on.
pub(crate) fn resolve(invoked: &Path, name: &str, env: &LaunchEnv) -> Option<Shim> {
    let dir = invoked.parent()?;
    let text = std::fs::symlink_metadata(invoked)
        .ok()
        .filter(|m| m.is_file() && m.len() <= SHIM_MAX_BYTES)
        .and_then(|_| read_small(invoked));
    if let Some(root) = text.as_deref().and_then(pyenv_root_from_shim).or_else(|| {
        let root = env
            .var_dir("PYENV_ROOT")
            .or_else(|| env.home.as_ref().map(|h| h.join(".pyenv")))?;
        same_dir(dir, &root.join("shims")).then_some(root)
    }) {
        return Some(pyenv(&root, name, env));
    }
    if let Some(text) = text.as_deref().filter(|t| t.contains("# asdf-plugin:")) {
        let root = dir.parent()?.to_path_buf();
        return Some(asdf(&root, text, name, env));
    }
    let link_target = std::fs::read_link(invoked).ok();
    let link_name = |prefix: &str| {
        link_target
            .as_ref()
            .and_then(|t| t.file_name())
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(prefix))
    };
    let mise_data = env.var_dir("MISE_DATA_DIR").or_else(|| {
        env.xdg("XDG_DATA_HOME", ".local/share")
            .map(|d| d.join("mise"))
    });
    if (dir.file_name().is_some_and(|n| n == "shims") && link_name("mise"))
        || mise_data.is_some_and(|m| same_dir(dir, &m.join("shims")))
    {
        let root = dir.parent()?.to_path_buf();
        return Some(mise(&root, name, env));
    }
    let volta_home = env
        .var_dir("VOLTA_HOME")
        .or_else(|| env.home.as_ref().map(|h| h.join(".volta")));
    let volta_tools = ["volta", "volta-shim", "volta-migrate"];
    if !volta_tools.contains(&name)
        && (link_name("volta-shim") || volta_home.is_some_and(|v| same_dir(dir, &v.join("bin"))))
    {
        let root = dir.parent()?.to_path_buf();
        return Some(volta(&root, name, env));
    }
    None
}

/// `PYENV_ROOT` as a pyenv shim exports it (`export PYENV_ROOT="…"`), if
/// the text is one.
fn pyenv_root_from_shim(text: &str) -> Option<PathBuf> {
    if !text.contains("libexec/pyenv\" exec") && !text.contains("pyenv exec") {
        return None;
    }
    text.lines().find_map(|l| {
        let v = l.trim().strip_prefix("export PYENV_ROOT=")?;
        let v = v.trim_matches('"').trim_matches('\'');
        Some(PathBuf::from(v)).filter(|p| p.is_absolute())
    })
}

/// The words of a version file, `#` comments dropped.
fn version_words(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .map(str::to_owned)
        .collect()
}

/// `name` on `PATH` outside `shims`: what a manager's `system` version is.
fn system_binary(name: &str, shims: &Path, env: &LaunchEnv) -> Option<PathBuf> {
    locate(name, env, &|d| same_dir(d, shims))
}

fn pyenv(root: &Path, name: &str, env: &LaunchEnv) -> Shim {
    let (versions, origin) = if let Some(v) = env.var("PYENV_VERSION") {
        (
            v.split([':', ' ']).map(str::to_owned).collect::<Vec<_>>(),
            "PYENV_VERSION".to_owned(),
        )
    } else if let Some(f) = find_upward(&env.cwd, &[".python-version"]) {
        (
            read_small(&f)
                .map(|t| version_words(&t))
                .unwrap_or_default(),
            f.display().to_string(),
        )
    } else {
        let global = root.join("version");
        match read_small(&global) {
            Some(t) => (version_words(&t), global.display().to_string()),
            None => (vec!["system".to_owned()], "pyenv's default".to_owned()),
        }
    };
    let installs = root.join("versions");
    let mut why = Vec::new();
    for v in versions.iter().filter(|v| !v.is_empty()) {
        if v == "system" {
            if let Some(real) = system_binary(name, &root.join("shims"), env) {
                return resolved("pyenv", real, v, &origin);
            }
            why.push(format!("no {name} on PATH outside pyenv for `system`"));
            continue;
        }
        match find_in_install(&installs, v, name, true) {
            Ok(real) => return resolved("pyenv", real, v, &origin),
            Err(e) => why.push(e),
        }
    }
    if versions.is_empty() {
        why.push("no version named".to_owned());
    }
    Shim::Unresolved {
        manager: "pyenv",
        root: root.to_path_buf(),
        why: format!("version from {origin}: {}", why.join("; ")),
    }
}

fn resolved(manager: &'static str, real: PathBuf, version: &str, origin: &str) -> Shim {
    Shim::Resolved {
        manager,
        real,
        version: version.to_owned(),
        origin: origin.to_owned(),
        extra: Vec::new(),
    }
}

/// `installs/<version>/bin/<name>`, where `version` may be a prefix of an
/// installed one (`3.11` → `3.11.7`) when `prefixes` allows. The result
/// must stay inside `installs`: the version comes from a file a project
/// controls.
fn find_in_install(
    installs: &Path,
    version: &str,
    name: &str,
    prefixes: bool,
) -> Result<PathBuf, String> {
    if !is_version_name(version) {
        return Err(format!("{version:?} is not a version name, ignored"));
    }
    let mut dir = installs.join(version);
    if !dir.exists() && prefixes {
        if let Some(full) = latest_with_prefix(installs, version) {
            dir = installs.join(full);
        }
    }
    let bin = dir.join("bin").join(name);
    if is_executable(&bin) && contained(installs, &bin).is_some() {
        Ok(bin)
    } else {
        Err(format!("{version}: no {}", bin.display()))
    }
}

fn asdf(root: &Path, shim: &str, name: &str, env: &LaunchEnv) -> Shim {
    let mut plugins: Vec<&str> = Vec::new();
    for l in shim.lines() {
        if let Some(p) = l
            .strip_prefix("# asdf-plugin:")
            .and_then(|r| r.split_whitespace().next())
        {
            if !plugins.contains(&p) {
                plugins.push(p);
            }
        }
    }
    let file = env
        .var("ASDF_DEFAULT_TOOL_VERSIONS_FILENAME")
        .filter(|f| !f.contains('/'))
        .unwrap_or(".tool-versions")
        .to_owned();
    let mut why = Vec::new();
    for plugin in plugins {
        let var = format!(
            "ASDF_{}_VERSION",
            plugin.to_ascii_uppercase().replace('-', "_")
        );
        let found = env
            .var(&var)
            .map(|v| (version_words(v), var.clone()))
            .or_else(|| tool_versions_upward(env, &file, &[plugin]));
        let Some((versions, origin)) = found else {
            why.push(format!("no version of {plugin} set in {file} or {var}"));
            continue;
        };
        let installs = root.join("installs").join(plugin);
        for v in &versions {
            let attempt = if v == "system" {
                system_binary(name, &root.join("shims"), env)
                    .ok_or_else(|| format!("no {name} on PATH outside asdf for `system`"))
            } else if v.starts_with("path:") {
                Err(format!("{v}: a path version is not followed"))
            } else {
                let v = v
                    .strip_prefix("ref:")
                    .map_or(v.clone(), |r| format!("ref-{r}"));
                find_in_install(&installs, &v, name, false)
            };
            match attempt {
                Ok(real) => return resolved("asdf", real, v, &origin),
                Err(e) => why.push(format!("{plugin} from {origin}: {e}")),
            }
        }
    }
    if why.is_empty() {
        why.push("the shim names no plugin".to_owned());
    }
    Shim::Unresolved {
        manager: "asdf",
        root: root.to_path_buf(),
        why: why.join("; "),
    }
}

/// The versions of `tools` in the nearest `file` (a `.tool-versions`)
/// from the cwd up that mentions one, then in `~/file`.
fn tool_versions_upward(
    env: &LaunchEnv,
    file: &str,
    tools: &[&str],
) -> Option<(Vec<String>, String)> {
    let home = env.home.as_ref().map(|h| h.join(file));
    env.cwd
        .ancestors()
        .map(|d| d.join(file))
        .chain(home)
        .find_map(|f| {
            let text = read_small(&f)?;
            tool_versions_entry(&text, tools).map(|v| (v, f.display().to_string()))
        })
}

/// The versions after the first of `tools` in `.tool-versions` text.
fn tool_versions_entry(text: &str, tools: &[&str]) -> Option<Vec<String>> {
    text.lines().find_map(|l| {
        let mut w = l.split('#').next()?.split_whitespace();
        let tool = w.next()?;
        tools
            .contains(&tool)
            .then(|| w.map(str::to_owned).collect())
    })
}

/// The mise tool providing a command, and its names in `.tool-versions`.
fn mise_tool(name: &str) -> Option<(&'static str, &'static [&'static str])> {
    let python = name.starts_with("python") || name.starts_with("pip");
    Some(match name {
        "node" | "npm" | "npx" | "corepack" => ("node", &["node", "nodejs"]),
        _ if python => ("python", &["python"]),
        "bun" | "bunx" => ("bun", &["bun"]),
        "deno" => ("deno", &["deno"]),
        "uv" | "uvx" => ("uv", &["uv"]),
        _ => return None,
    })
}

/// mise config files in one directory, most specific first.
const MISE_FILES: &[&str] = &[
    "mise.local.toml",
    ".mise.local.toml",
    "mise.toml",
    ".mise.toml",
    "mise/config.toml",
    ".mise/config.toml",
    ".config/mise.toml",
    ".config/mise/config.toml",
];

fn mise(root: &Path, name: &str, env: &LaunchEnv) -> Shim {
    let unresolved = |why: String| Shim::Unresolved {
        manager: "mise",
        root: root.to_path_buf(),
        why,
    };
    let Some((tool, aliases)) = mise_tool(name) else {
        return unresolved(format!("which tool provides {name} is not known"));
    };
    let var = format!("MISE_{}_VERSION", tool.to_ascii_uppercase());
    let global = env.var_dir("MISE_GLOBAL_CONFIG_FILE").or_else(|| {
        env.var_dir("MISE_CONFIG_DIR")
            .or_else(|| {
                env.xdg("XDG_CONFIG_HOME", ".config")
                    .map(|c| c.join("mise"))
            })
            .map(|d| d.join("config.toml"))
    });
    let found = env
        .var(&var)
        .map(|v| (vec![v.to_owned()], var.clone()))
        .or_else(|| {
            env.cwd.ancestors().find_map(|d| {
                MISE_FILES
                    .iter()
                    .find_map(|f| mise_toml_versions(&d.join(f), tool))
                    .or_else(|| {
                        let f = d.join(".tool-versions");
                        let v = tool_versions_entry(&read_small(&f)?, aliases)?;
                        Some((v, f.display().to_string()))
                    })
            })
        })
        .or_else(|| mise_toml_versions(&global?, tool));
    let Some((versions, origin)) = found else {
        return unresolved(format!("no version of {tool} set in any mise config"));
    };
    let installs = root.join("installs").join(tool);
    let mut why = Vec::new();
    for v in &versions {
        let attempt = match v.as_str() {
            "system" => system_binary(name, &root.join("shims"), env)
                .ok_or_else(|| format!("no {name} on PATH outside mise for `system`")),
            "latest" => latest_with_prefix_any(&installs)
                .ok_or_else(|| format!("no installed {tool}"))
                .and_then(|full| find_in_install(&installs, &full, name, false)),
            _ => find_in_install(&installs, v, name, true),
        };
        match attempt {
            Ok(real) => return resolved("mise", real, v, &origin),
            Err(e) => why.push(e),
        }
    }
    unresolved(format!("{tool} from {origin}: {}", why.join("; ")))
}

/// The highest all-numeric version installed under `dir`.
fn latest_with_prefix_any(dir: &Path) -> Option<String> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .max_by(|a, b| crate::resolve::version_cmp(a, b))
}

/// The versions a mise TOML config gives `tool` (`node = "22"`,
/// `node = ["22", "20"]`, `node = { version = "22" }`, `"core:node"`).
fn mise_toml_versions(path: &Path, tool: &str) -> Option<(Vec<String>, String)> {
    let text = read_capped(path, MANIFEST_CAP).ok()?;
    let table: toml::Table = text.parse().ok()?;
    let tools = table.get("tools")?.as_table()?;
    let value = tools
        .get(tool)
        .or_else(|| tools.get(&format!("core:{tool}")))?;
    let one = |v: &toml::Value| -> Option<String> {
        match v {
            toml::Value::String(s) => Some(s.clone()),
            toml::Value::Table(t) => t.get("version")?.as_str().map(str::to_owned),
            _ => None,
        }
    };
    let versions: Vec<String> = match value {
        toml::Value::Array(a) => a.iter().filter_map(one).collect(),
        v => one(v).into_iter().collect(),
    };
    Some((versions, path.display().to_string()))
}

fn volta(root: &Path, name: &str, env: &LaunchEnv) -> Shim {
    let unresolved = |why: String| Shim::Unresolved {
        manager: "volta",
        root: root.to_path_buf(),
        why,
    };
    if !matches!(name, "node" | "npm" | "npx" | "corepack") {
        return unresolved(format!(
            "{name} is a volta-installed package or tool; only node, npm and npx are followed"
        ));
    }
    let json = |p: &Path| -> Option<serde_json::Value> {
        serde_json::from_str(&read_capped(p, MANIFEST_CAP).ok()?).ok()
    };
    let project = find_upward(&env.cwd, &["package.json"]);
    let pin = project
        .as_ref()
        .and_then(|p| Some((json(p)?.get("volta")?.clone(), p)));
    let platform = root.join("tools/user/platform.json");
    let (node, npm, origin) = match pin {
        Some((v, p)) if v.get("node").is_some() => (
            v.get("node").and_then(|n| n.as_str()).map(str::to_owned),
            v.get("npm").and_then(|n| n.as_str()).map(str::to_owned),
            format!("the volta pin in {}", p.display()),
        ),
        _ => match json(&platform) {
            Some(v) => (
                v.pointer("/node/runtime")
                    .and_then(|n| n.as_str())
                    .map(str::to_owned),
                v.pointer("/node/npm")
                    .and_then(|n| n.as_str())
                    .map(str::to_owned),
                platform.display().to_string(),
            ),
            None => {
                return unresolved(format!(
                    "no pin in package.json and no {}",
                    platform.display()
                ));
            }
        },
    };
    let Some(node) = node else {
        return unresolved(format!("{origin} names no node version"));
    };
    let images = root.join("tools/image");
    let node_bin = match find_in_install(&images.join("node"), &node, "node", false) {
        Ok(b) => b,
        Err(e) => return unresolved(format!("node from {origin}: {e}")),
    };
    let node_dir = node_bin
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf);
    let real = match (&npm, name) {
        (Some(npm), "npm" | "npx") => {
            match find_in_install(&images.join("npm"), npm, name, false) {
                Ok(b) => b,
                Err(e) => return unresolved(format!("npm from {origin}: {e}")),
            }
        }
        _ => match find_in_install(&images.join("node"), &node, name, false) {
            Ok(b) => b,
            Err(e) => return unresolved(format!("node from {origin}: {e}")),
        },
    };
    Shim::Resolved {
        manager: "volta",
        extra: node_dir
            .into_iter()
            .filter(|d| !real.starts_with(d))
            .collect(),
        real,
        version: node,
        origin,
    }
}
