//! `bulkhead completions bash|zsh|fish`: scripts generated from the real
//! grammar, which complete every subcommand; bash loads its script.

use std::process::Command;

use bulkhead_tests::bin;

fn completions(shell: &str) -> std::process::Output {
    Command::new(bin("bulkhead"))
        .args(["completions", shell])
        .output()
        .unwrap()
}

const SUBCOMMANDS: &[&str] = &["run", "tools", "doctor", "mcp", "completions", "man"];

#[test]
fn each_shell_gets_a_script_naming_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let out = completions(shell);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell} script lacks {sub}");
        }
        // bash and zsh spell flags `--memory`, fish `-l memory`.
        assert!(
            script.contains("memory"),
            "{shell} script lacks run's flags"
        );
    }
}

#[test]
fn the_bash_script_loads_and_registers_bulkhead() {
    let script = String::from_utf8(completions("bash").stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bulkhead.bash");
    std::fs::write(&file, script).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p bulkhead", file.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("bulkhead"));
}

#[test]
fn an_unknown_shell_is_a_usage_error_listing_the_shells() {
    let out = completions("tcsh");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bash, zsh, fish"), "{err}");
}
