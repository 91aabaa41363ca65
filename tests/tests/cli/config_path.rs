//! The config file is read where the docs tell users to put it.
//!
//! bulkhead reads `$XDG_CONFIG_HOME/bulkhead/bulkhead.toml`, else
//! `~/.config/bulkhead/bulkhead.toml`. Each doc that ships or explains the
//! sample config (the package's README.Debian, the sample's own header,
//! README.md) says how to install it; its commands are run here as
//! written, in a scratch HOME without `XDG_CONFIG_HOME`, and the real
//! `bulkhead doctor` must then show the sample's own policy, `research`.
//! The docs must name that path, and never `config.toml`, which bulkhead
//! does not read.

use std::path::{Path, PathBuf};
use std::process::Command;

use bulkhead_tests::bin;

/// Where the Debian package puts the sample; the docs copy it from there.
const PACKAGED_SAMPLE: &str = "/usr/share/doc/bulkhead/examples/bulkhead.toml";
/// Where the docs say to copy it.
const DOCUMENTED_PATH: &str = "~/.config/bulkhead/bulkhead.toml";
/// A policy only the sample defines.
const SAMPLE_POLICY: &str = "research";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the repository")
}

/// The docs that tell users where the config goes: (name, text).
fn docs() -> Vec<(&'static str, String)> {
    [
        "packaging/README.Debian",
        "packaging/bulkhead.toml",
        "README.md",
    ]
    .into_iter()
    .map(|name| {
        let text =
            std::fs::read_to_string(repo().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        (name, text)
    })
    .collect()
}

/// The commands in `doc` that install the sample config: its `mkdir -p`
/// and `cp` lines that name `~/.config/bulkhead`, indented or in a `#`
/// comment, as written.
fn install_commands(doc: &str) -> Vec<String> {
    doc.lines()
        .map(|l| l.trim().trim_start_matches('#').trim())
        .filter(|l| l.starts_with("mkdir -p ") || l.starts_with("cp "))
        .filter(|l| l.contains("~/.config/bulkhead"))
        .map(str::to_owned)
        .collect()
}

/// `bulkhead doctor --json --no-trial` with `home` as HOME, the given
/// `XDG_CONFIG_HOME` (none: unset) and no `BULKHEAD_CONFIG`.
fn doctor(home: &Path, xdg_config_home: Option<&Path>) -> serde_json::Value {
    let mut cmd = Command::new(bin("bulkhead"));
    cmd.args(["doctor", "--json", "--no-trial"])
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("BULKHEAD_CONFIG");
    if let Some(dir) = xdg_config_home {
        cmd.env("XDG_CONFIG_HOME", dir);
    }
    let out = cmd.output().expect("spawn bulkhead");
    assert!(
        out.status.success(),
        "bulkhead doctor: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The policies doctor lists.
fn policies(report: &serde_json::Value) -> Vec<String> {
    report["policies"]
        .as_array()
        .expect("doctor --json lists policies")
        .iter()
        .map(|p| p["policy"].as_str().expect("a policy's name").to_owned())
        .collect()
}

#[test]
fn each_doc_installs_the_sample_where_bulkhead_reads_it() {
    let sample = repo().join("packaging/bulkhead.toml");
    for (name, text) in docs() {
        let commands = install_commands(&text);
        let cp = commands
            .iter()
            .find(|c| c.starts_with("cp "))
            .unwrap_or_else(|| panic!("{name} does not say where to copy the sample config"));
        assert_eq!(
            cp.split_whitespace().last(),
            Some(DOCUMENTED_PATH),
            "{name}: {cp}"
        );
        // The package is not installed here: its sample is this repository's.
        let script = commands
            .join("\n")
            .replace(PACKAGED_SAMPLE, sample.to_str().expect("a UTF-8 path"));
        let home = tempfile::tempdir().expect("scratch HOME");
        let status = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(repo())
            .env("HOME", home.path())
            .env_remove("XDG_CONFIG_HOME")
            .status()
            .expect("spawn bash");
        assert!(status.success(), "{name}'s commands failed:\n{script}");

        let installed = home.path().join(".config/bulkhead/bulkhead.toml");
        let report = doctor(home.path(), None);
        assert_eq!(
            report["config"].as_str().map(Path::new),
            Some(installed.as_path()),
            "{name}: bulkhead did not read the file its commands installed: {report}"
        );
        let research = report["policies"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["policy"] == SAMPLE_POLICY)
            .unwrap_or_else(|| panic!("{name}: the sample's policy is not shown: {report}"));
        assert!(
            research["explained"]
                .as_str()
                .is_some_and(|e| e.contains("network loopback")),
            "{research}"
        );
    }
}

#[test]
fn xdg_config_home_is_read_first_and_config_toml_never() {
    let sample = std::fs::read_to_string(repo().join("packaging/bulkhead.toml")).unwrap();
    let put = |path: &Path| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &sample).unwrap();
    };

    // No file: the presets only.
    let home = tempfile::tempdir().unwrap();
    let report = doctor(home.path(), None);
    assert!(report["config"].is_null(), "{report}");
    assert!(!policies(&report).contains(&SAMPLE_POLICY.to_owned()));

    // `config.toml`, which docs once named, is not read.
    put(&home.path().join(".config/bulkhead/config.toml"));
    let report = doctor(home.path(), None);
    assert!(report["config"].is_null(), "{report}");
    assert!(!policies(&report).contains(&SAMPLE_POLICY.to_owned()));

    // $XDG_CONFIG_HOME/bulkhead/bulkhead.toml.
    let xdg = home.path().join("xdg");
    put(&xdg.join("bulkhead/bulkhead.toml"));
    let report = doctor(home.path(), Some(&xdg));
    assert_eq!(
        report["config"].as_str().map(Path::new),
        Some(xdg.join("bulkhead/bulkhead.toml").as_path())
    );
    assert!(policies(&report).contains(&SAMPLE_POLICY.to_owned()));
}

#[test]
fn the_docs_and_the_help_name_bulkhead_toml_never_config_toml() {
    let help = Command::new(bin("bulkhead"))
        .arg("--help")
        .output()
        .expect("spawn bulkhead");
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let mut texts = docs();
    texts.push(("bulkhead --help", help));
    for (name, text) in texts {
        assert!(
            text.contains("~/.config/bulkhead/bulkhead.toml"),
            "{name} does not name {DOCUMENTED_PATH}"
        );
        assert!(
            !text.contains("config.toml"),
            "{name} names config.toml, which bulkhead does not read"
        );
    }
}
