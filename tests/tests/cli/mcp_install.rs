//! `bulkhead mcp install CLIENT` through the real binary, on a sample
//! config of each client (tests/fixtures/mcp_install/): every stdio server
//! ends up behind `bulkhead mcp wrap`, the rest of the file is as it was
//! (the expected files pin every byte), a second install changes nothing,
//! `--dry-run` writes nothing, and `--undo` gives back the original bytes.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bulkhead_tests::bin;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mcp_install")
}

/// Each client and its sample; the samples' servers are named so the
/// tests can tell which should be wrapped.
const CASES: &[(&str, &str)] = &[
    ("claude-desktop", "claude-desktop.json"),
    ("claude-code", "claude-code.json"),
    ("cursor", "cursor.json"),
    ("vscode", "vscode.json"),
    ("vscode-insiders", "vscode.json"),
    ("windsurf", "windsurf.json"),
    ("cline", "cline.json"),
    ("roo-code", "roo-code.json"),
    ("jetbrains-copilot", "jetbrains-copilot.json"),
    ("gemini", "gemini.json"),
    ("codex", "codex.toml"),
];

fn install(home: &Path, args: &[&str]) -> Output {
    Command::new(bin("bulkhead"))
        .args(["mcp", "install"])
        .args(args)
        .env("HOME", home)
        .env_remove("CODEX_HOME")
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A scratch copy of fixture `name`.
fn scratch(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    fs::copy(fixtures().join(name), &path).unwrap();
    path
}

fn backup(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.bulkhead-backup", path.display()))
}

#[test]
fn each_client_sample_is_wrapped_then_undone_byte_for_byte() {
    for (client, file) in CASES {
        let dir = tempfile::tempdir().unwrap();
        let path = scratch(dir.path(), file);
        let original = fs::read(&path).unwrap();
        let p = path.to_str().unwrap();
        let base = ["--file", p, "--command", "bulkhead"];

        let out = install(dir.path(), &[&[*client, "--dry-run"][..], &base].concat());
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{client}: {stdout}{stderr}");
        assert!(
            stdout.contains("+++ ") && stdout.contains("dry run"),
            "{client}: {stdout}"
        );
        assert_eq!(
            fs::read(&path).unwrap(),
            original,
            "{client}: --dry-run wrote"
        );
        assert!(!backup(&path).exists(), "{client}: --dry-run made a backup");

        let out = install(dir.path(), &[&[*client][..], &base].concat());
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{client}: {stdout}{stderr}");
        let expected = fs::read(fixtures().join("expected").join(file)).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&fs::read(&path).unwrap()),
            String::from_utf8_lossy(&expected),
            "{client}: not the expected rewrite"
        );
        assert_eq!(
            fs::read(backup(&path)).unwrap(),
            original,
            "{client}: backup"
        );

        // A second install finds everything wrapped and writes nothing.
        let out = install(dir.path(), &[&[*client][..], &base].concat());
        let (stdout, _) = text(&out);
        assert!(
            out.status.success() && stdout.contains("nothing to change"),
            "{client}: {stdout}"
        );
        assert_eq!(
            fs::read(&path).unwrap(),
            expected,
            "{client}: second install"
        );

        let out = install(dir.path(), &[*client, "--file", p, "--undo"]);
        assert!(out.status.success(), "{client}: {:?}", text(&out));
        assert_eq!(fs::read(&path).unwrap(), original, "{client}: --undo");
        assert!(
            !backup(&path).exists(),
            "{client}: backup left after --undo"
        );

        let out = install(dir.path(), &[*client, "--file", p, "--undo"]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{client}: {stderr}");
        assert!(stderr.contains("no backup"), "{client}: {stderr}");
    }
}

/// Undoes the wrap in a parsed entry, so a wrapped file can be compared
/// with its original as a whole.
fn unwrap_entries(servers: &mut Value, original: &Value) {
    let Some(map) = servers.as_object_mut() else {
        return;
    };
    for (name, entry) in map {
        if entry == &original[name.as_str()] {
            continue;
        }
        let args: Vec<Value> = entry["args"].as_array().unwrap().clone();
        assert_eq!(entry["command"], "bulkhead", "{name}");
        assert_eq!(&args[..3], &["mcp", "wrap", "--"], "{name}");
        entry["command"] = args[3].clone();
        if original[name.as_str()].get("args").is_some() {
            entry["args"] = Value::Array(args[4..].to_vec());
        } else {
            entry.as_object_mut().unwrap().remove("args");
        }
    }
}

#[test]
fn strict_json_samples_change_only_command_and_args() {
    for (_, file) in CASES
        .iter()
        .filter(|(c, _)| !matches!(*c, "codex" | "vscode" | "vscode-insiders"))
    {
        let before: Value =
            serde_json::from_slice(&fs::read(fixtures().join(file)).unwrap()).unwrap();
        let mut after: Value =
            serde_json::from_slice(&fs::read(fixtures().join("expected").join(file)).unwrap())
                .unwrap();
        let key = if after.get("servers").is_some() {
            "servers"
        } else {
            "mcpServers"
        };
        unwrap_entries(&mut after[key], &before[key]);
        if let Some(projects) = after.get_mut("projects").and_then(Value::as_object_mut) {
            for (dir, project) in projects {
                unwrap_entries(
                    &mut project["mcpServers"],
                    &before["projects"][dir]["mcpServers"],
                );
            }
        }
        assert_eq!(after, before, "{file}");
    }
}

#[test]
fn malformed_files_are_left_untouched_and_the_error_names_the_line() {
    for (client, file, line) in [("cursor", "bad.json", 5), ("codex", "bad.toml", 3)] {
        let dir = tempfile::tempdir().unwrap();
        let path = scratch(dir.path(), file);
        let original = fs::read(&path).unwrap();
        let out = install(dir.path(), &[client, "--file", path.to_str().unwrap()]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(&format!("{file}:{line}:")), "{stderr}");
        assert!(stderr.contains("left untouched"), "{stderr}");
        assert_eq!(fs::read(&path).unwrap(), original);
        assert!(!backup(&path).exists());
    }
}

#[test]
fn a_config_without_servers_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = scratch(dir.path(), "empty.json");
    let out = install(
        dir.path(),
        &["claude-desktop", "--file", path.to_str().unwrap()],
    );
    let (stdout, _) = text(&out);
    assert!(
        out.status.success() && stdout.contains("no MCP servers"),
        "{stdout}"
    );
    assert_eq!(
        fs::read(&path).unwrap(),
        fs::read(fixtures().join("empty.json")).unwrap()
    );
    assert!(!backup(&path).exists());
}

#[test]
fn default_path_comes_from_home_and_command_from_this_binary() {
    let home = tempfile::tempdir().unwrap();
    fs::create_dir_all(home.path().join(".cursor")).unwrap();
    let path = home.path().join(".cursor/mcp.json");
    fs::copy(fixtures().join("cursor.json"), &path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();

    let out = install(home.path(), &["cursor", "--", "--net", "none"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let after: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let exe = fs::canonicalize(bin("bulkhead")).unwrap();
    let time = &after["mcpServers"]["time"];
    assert_eq!(time["command"], exe.to_str().unwrap());
    assert_eq!(
        time["args"],
        serde_json::json!([
            "mcp",
            "wrap",
            "--net",
            "none",
            "--",
            "uvx",
            "mcp-server-time",
            "--local-timezone=Europe/Paris"
        ])
    );
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the file's mode is kept");

    let out = install(home.path(), &["cursor", "--undo"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(
        fs::read(&path).unwrap(),
        fs::read(fixtures().join("cursor.json")).unwrap()
    );
}

#[test]
fn list_shows_each_client_and_whether_its_config_exists() {
    let home = tempfile::tempdir().unwrap();
    fs::create_dir_all(home.path().join(".codex")).unwrap();
    fs::copy(
        fixtures().join("codex.toml"),
        home.path().join(".codex/config.toml"),
    )
    .unwrap();
    let out = install(home.path(), &["--list"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for (client, _) in CASES {
        assert!(stdout.contains(client), "{client} missing from\n{stdout}");
    }
    let codex = home.path().join(".codex/config.toml");
    assert!(
        stdout.contains(&format!("found    {}", codex.display())),
        "{stdout}"
    );
    let cursor = home.path().join(".cursor/mcp.json");
    assert!(
        stdout.contains(&format!("missing  {}", cursor.display())),
        "{stdout}"
    );
}

#[test]
fn a_missing_config_says_where_it_looked() {
    let home = tempfile::tempdir().unwrap();
    let out = install(home.path(), &["windsurf"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(".codeium/windsurf/mcp_config.json"),
        "{stderr}"
    );
}

#[test]
fn servers_mcp_wrap_cannot_run_are_left_as_they_are() {
    // `docker run` would sandbox only the docker client; wrap refuses it,
    // so install must not turn a working entry into a failing one.
    let dir = tempfile::tempdir().unwrap();
    let path = scratch(dir.path(), "claude-desktop.json");
    let out = install(
        dir.path(),
        &[
            "claude-desktop",
            "--file",
            path.to_str().unwrap(),
            "--dry-run",
        ],
    );
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("keep github: mcp wrap cannot run it: docker"),
        "{stdout}"
    );
}

#[test]
fn the_global_config_flag_is_not_the_client_file() {
    // `bulkhead --config FILE` names bulkhead's own config; install must
    // not take it for the client's file and rewrite it.
    let home = tempfile::tempdir().unwrap();
    let path = scratch(home.path(), "cursor.json");
    let out = Command::new(bin("bulkhead"))
        .args([
            "--config",
            path.to_str().unwrap(),
            "mcp",
            "install",
            "cursor",
        ])
        .env("HOME", home.path())
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(".cursor/mcp.json"), "{stderr}");
    assert_eq!(
        fs::read(&path).unwrap(),
        fs::read(fixtures().join("cursor.json")).unwrap()
    );
}
