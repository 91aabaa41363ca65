//! `bulkhead mcp install CLIENT`: rewrite an MCP client's own config so
//! every stdio server runs behind `bulkhead mcp wrap`, with a backup that
//! `--undo` puts back byte for byte.
//!
//! The client list follows ToolHive's `thv client setup` (its
//! `supportedClientIntegrations`: Roo Code, Cline, VS Code and Insiders,
//! Cursor, Claude Code, JetBrains Copilot) plus the clients whose files
//! hold `command`/`args` entries too (Claude Desktop, Windsurf, Gemini
//! CLI, Codex). Unlike ToolHive, which adds URL entries pointing at its
//! proxies, only each server's `command` and `args` change here; every
//! other byte of the file stays.

mod diff;
mod edit;
mod jsonc;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::args::{EXIT_USAGE, InstallArgs};
use edit::{Outcome, Wrapper};

/// Exit code when there is nothing to act on: no config file, or
/// `--undo` with no backup.
const EXIT_NOT_FOUND: u8 = 1;

/// Suffix of the backup kept beside the config. Beside it, not in a
/// backups directory, so it is found by whoever looks at the config, goes
/// wherever the config goes, and `--undo` needs no index of backups.
pub const BACKUP_SUFFIX: &str = ".bulkhead-backup";

enum Format {
    Json(&'static [&'static [&'static str]]),
    /// The name of the table of servers.
    Toml(&'static str),
}

struct Client {
    name: &'static str,
    title: &'static str,
    /// The user config, relative to HOME (see `user_path`).
    user: fn(&Path) -> PathBuf,
    /// The project config, relative to the current directory, if the
    /// client reads one.
    project: Option<&'static str>,
    format: Format,
}

const MCP_SERVERS: &[&[&str]] = &[&["mcpServers"]];
const SERVERS: &[&[&str]] = &[&["servers"]];

/// Where desktop apps keep their settings: `~/.config` on Linux, like
/// ToolHive's platform prefix; `~/Library/Application Support` on macOS.
fn app_config(home: &Path) -> PathBuf {
    if cfg!(target_os = "macos") {
        home.join("Library/Application Support")
    } else {
        home.join(".config")
    }
}

const CLIENTS: &[Client] = &[
    Client {
        name: "claude-desktop",
        title: "Claude Desktop",
        user: |h| app_config(h).join("Claude/claude_desktop_config.json"),
        project: None,
        format: Format::Json(MCP_SERVERS),
    },
    Client {
        name: "claude-code",
        title: "Claude Code",
        user: |h| h.join(".claude.json"),
        project: Some(".mcp.json"),
        // Servers added with `claude mcp add` (local scope) live per
        // project, under `projects.<dir>.mcpServers`.
        format: Format::Json(&[&["mcpServers"], &["projects", "*", "mcpServers"]]),
    },
    Client {
        name: "cursor",
        title: "Cursor",
        user: |h| h.join(".cursor/mcp.json"),
        project: Some(".cursor/mcp.json"),
        format: Format::Json(MCP_SERVERS),
    },
    Client {
        name: "vscode",
        title: "VS Code",
        user: |h| app_config(h).join("Code/User/mcp.json"),
        project: Some(".vscode/mcp.json"),
        format: Format::Json(SERVERS),
    },
    Client {
        name: "vscode-insiders",
        title: "VS Code Insiders",
        user: |h| app_config(h).join("Code - Insiders/User/mcp.json"),
        project: Some(".vscode/mcp.json"),
        format: Format::Json(SERVERS),
    },
    Client {
        name: "windsurf",
        title: "Windsurf",
        user: |h| h.join(".codeium/windsurf/mcp_config.json"),
        project: None,
        format: Format::Json(MCP_SERVERS),
    },
    Client {
        name: "cline",
        title: "Cline (VS Code extension)",
        user: |h| {
            app_config(h).join(
                "Code/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json",
            )
        },
        project: None,
        format: Format::Json(MCP_SERVERS),
    },
    Client {
        name: "roo-code",
        title: "Roo Code (VS Code extension)",
        user: |h| {
            app_config(h).join(
                "Code/User/globalStorage/rooveterinaryinc.roo-cline/settings/mcp_settings.json",
            )
        },
        project: Some(".roo/mcp.json"),
        format: Format::Json(MCP_SERVERS),
    },
    Client {
        name: "jetbrains-copilot",
        title: "GitHub Copilot for JetBrains",
        user: |h| h.join(".config/github-copilot/intellij/mcp.json"),
        project: None,
        format: Format::Json(SERVERS),
    },
    Client {
        name: "gemini",
        title: "Gemini CLI",
        user: |h| h.join(".gemini/settings.json"),
        project: Some(".gemini/settings.json"),
        format: Format::Json(MCP_SERVERS),
    },
    Client {
        name: "codex",
        title: "Codex CLI",
        // Codex reads CODEX_HOME instead of ~/.codex when it is set.
        user: |h| match std::env::var_os("CODEX_HOME").filter(|c| !c.is_empty()) {
            Some(dir) => PathBuf::from(dir).join("config.toml"),
            None => h.join(".codex/config.toml"),
        },
        project: None,
        format: Format::Toml("mcp_servers"),
    },
];

/// The names `CLIENT` accepts, in `--list` order.
pub const CLIENT_NAMES: [&str; 11] = [
    "claude-desktop",
    "claude-code",
    "cursor",
    "vscode",
    "vscode-insiders",
    "windsurf",
    "cline",
    "roo-code",
    "jetbrains-copilot",
    "gemini",
    "codex",
];

fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .context("HOME is not set, so the client's config cannot be found; give --file PATH")
}

pub fn install(args: InstallArgs) -> anyhow::Result<u8> {
    if args.list {
        return list();
    }
    let Some(name) = args.client.as_deref() else {
        eprintln!("bulkhead: mcp install: name a client (see --list)");
        return Ok(EXIT_USAGE);
    };
    let Some(client) = CLIENTS.iter().find(|c| c.name == name) else {
        eprintln!("bulkhead: mcp install: unknown client {name:?} (see --list)");
        return Ok(EXIT_USAGE);
    };
    let path = match (&args.file, args.project) {
        (Some(p), _) => p.clone(),
        (None, true) => match client.project {
            Some(p) => PathBuf::from(p),
            None => {
                eprintln!(
                    "bulkhead: mcp install: {} has no project config",
                    client.title
                );
                return Ok(EXIT_USAGE);
            }
        },
        (None, false) => (client.user)(&home()?),
    };
    // A config that is a symlink (dotfile managers) is edited where it
    // points, so the link stays a link.
    let path = fs::canonicalize(&path).unwrap_or(path);
    let backup = backup_path(&path);
    if args.undo {
        return undo(&path, &backup);
    }
    let original = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "bulkhead: mcp install: no {} config at {} (give its path with --file)",
                client.title,
                path.display()
            );
            return Ok(EXIT_NOT_FOUND);
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let Ok(text) = String::from_utf8(original) else {
        eprintln!(
            "bulkhead: mcp install: {} is not UTF-8 text; left untouched",
            path.display()
        );
        return Ok(EXIT_USAGE);
    };
    let command = match &args.command {
        Some(c) => c.clone(),
        None => std::env::current_exe()
            .context("finding this bulkhead's path (or give --command NAME)")?
            .to_string_lossy()
            .into_owned(),
    };
    let mut flags = args.wrap_arg.clone();
    flags.extend(args.wrap_args.iter().cloned());
    // Asks the launch analysis `mcp wrap` itself runs, so install leaves
    // exactly the entries wrap would refuse (containers, packages from
    // outside a registry, malformed launcher lines).
    let launch_env = bulkhead_launch::LaunchEnv::from_process().ok();
    let refuse = |argv: &[String]| -> Option<String> {
        let env = launch_env.as_ref()?;
        match bulkhead_launch::analyze(argv, env) {
            Ok(plan) => plan
                .unsupported
                .map(|why| format!("mcp wrap cannot run it: {why}")),
            Err(e) => Some(format!("mcp wrap cannot run it: {e}")),
        }
    };
    let wrapper = Wrapper {
        command: &command,
        flags: &flags,
        refuse: &refuse,
    };
    let result = match client.format {
        Format::Json(paths) => edit::json(&text, paths, &wrapper),
        Format::Toml(table) => edit::toml(&text, table, &wrapper),
    };
    let rewrite = match result {
        Ok(r) => r,
        Err(bad) => {
            eprintln!(
                "bulkhead: mcp install: {}:{}:{}: cannot parse: {}; left untouched",
                path.display(),
                bad.line,
                bad.column,
                bad.message
            );
            return Ok(EXIT_USAGE);
        }
    };
    if rewrite.servers.is_empty() {
        println!("no MCP servers in {}; nothing to do", path.display());
        return Ok(0);
    }
    for (name, outcome) in &rewrite.servers {
        match outcome {
            Outcome::Wrapped { before, after } => {
                println!(
                    "wrap {name}:\n  - {}\n  + {}",
                    before.join(" "),
                    after.join(" ")
                );
            }
            Outcome::Kept(why) => println!("keep {name}: {why}"),
        }
    }
    if rewrite.text == text {
        println!("{}: nothing to change", path.display());
        return Ok(0);
    }
    if args.dry_run {
        print!("--- {}\n+++ {}\n", path.display(), path.display());
        print!("{}", diff::unified(&text, &rewrite.text));
        println!("dry run: nothing written");
        return Ok(0);
    }
    // The first backup is never replaced: it is the file from before any
    // install, which is what `--undo` is for.
    if backup.exists() {
        println!(
            "keeping the earlier backup {} (from before the first install)",
            backup.display()
        );
    } else {
        fs::copy(&path, &backup)
            .with_context(|| format!("backing up {} to {}", path.display(), backup.display()))?;
    }
    write_atomic(&path, rewrite.text.as_bytes())?;
    let which = match (&args.file, args.project) {
        (Some(_), _) => format!(" --file {}", path.display()),
        (None, true) => " --project".to_owned(),
        (None, false) => String::new(),
    };
    println!(
        "wrote {} (backup: {}; `bulkhead mcp install {}{which} --undo` restores it)",
        path.display(),
        backup.display(),
        client.name
    );
    Ok(0)
}

fn backup_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(BACKUP_SUFFIX);
    PathBuf::from(s)
}

fn undo(path: &Path, backup: &Path) -> anyhow::Result<u8> {
    if !backup.exists() {
        eprintln!(
            "bulkhead: mcp install --undo: no backup at {}; nothing to restore",
            backup.display()
        );
        return Ok(EXIT_NOT_FOUND);
    }
    // A rename restores the bytes and removes the backup in one step.
    fs::rename(backup, path)
        .with_context(|| format!("restoring {} from {}", path.display(), backup.display()))?;
    println!("restored {} from {}", path.display(), backup.display());
    Ok(0)
}

/// Writes beside the file and renames over it, so a crash leaves either
/// the old file or the new one, never half of one; the mode is kept
/// (configs holding API keys are often 0600).
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mode = fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.bulkhead-tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

fn list() -> anyhow::Result<u8> {
    let home = home()?;
    for client in CLIENTS {
        let user = (client.user)(&home);
        println!("{:<18} {}", client.name, client.title);
        println!("    {:<8} {}", state(&user), user.display());
        if let Some(p) = client.project {
            println!("    {:<8} {} (--project)", state(Path::new(p)), p);
        }
    }
    Ok(0)
}

fn state(path: &Path) -> &'static str {
    if backup_path(path).exists() {
        "wrapped"
    } else if path.exists() {
        "found"
    } else {
        "missing"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_table() {
        let names: Vec<&str> = CLIENTS.iter().map(|c| c.name).collect();
        assert_eq!(names, CLIENT_NAMES);
    }
}
