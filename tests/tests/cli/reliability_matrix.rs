//! RELIABILITY.md's matrix names a test for every fault, bad input and
//! escape attempt. Each must exist where the row says, be a test, and not
//! be `#[ignore]`d, so that the table cannot drift from what CI runs.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// At least this many rows: fewer means the table was cut by an edit (or
/// its heading renamed), and checking what is left would pass vacuously.
const MIN_ROWS: usize = 40;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// Where a test binary's root and its modules live, from the workspace:
/// `(root file, module directory)`. A binary without modules has its tests
/// in the root (`module` is then the binary's name).
fn binary(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "supervisor" => ("tests/tests/supervisor.rs", "tests/tests/supervisor"),
        "cli" => ("tests/tests/cli.rs", "tests/tests/cli"),
        "mcp" => ("tests/tests/mcp.rs", "tests/tests/mcp"),
        "store" => ("tests/tests/store.rs", "tests/tests/store"),
        "agent" => ("tests/tests/agent.rs", "tests/tests/agent"),
        "tui" => ("tests/tests/tui.rs", "tests/tests/tui"),
        "escape" => ("tests/escape/main.rs", "tests/escape"),
        "enforce" => (
            "host/supervisor/tests/enforce.rs",
            "host/supervisor/tests/enforce",
        ),
        "ipc" => ("ipc/tests/ipc.rs", "ipc/tests/ipc"),
        "alloc_bound" => ("ipc/tests/alloc_bound.rs", ""),
        "proxy" => ("host/egress/tests/proxy/main.rs", "host/egress/tests/proxy"),
        "launch" => ("host/launch/tests/launch.rs", "host/launch/tests"),
        _ => return None,
    })
}

/// The test paths named in the last cell of each row of the `## The matrix`
/// section, with their row for messages.
fn matrix_tests(markdown: &str) -> Vec<(String, String)> {
    let mut in_matrix = false;
    let mut tests = Vec::new();
    for line in markdown.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            in_matrix = heading.trim() == "The matrix";
            continue;
        }
        if !in_matrix || !line.starts_with('|') || line.starts_with("|---") {
            continue;
        }
        let cells: Vec<&str> = line.trim_end_matches('|').split('|').collect();
        let last = cells.last().map_or("", |c| c.trim());
        if last == "test" {
            continue; // a header
        }
        let path = last.trim_matches('`').to_owned();
        let row = cells.get(1).map_or("", |c| c.trim()).to_owned();
        tests.push((row, path));
    }
    tests
}

/// Whether `source` defines `fn name` as a test that runs: `Ok`, or what is
/// wrong with it.
fn check_test(source: &str, name: &str) -> Result<(), String> {
    let lines: Vec<&str> = source.lines().collect();
    let defines = |line: &str| {
        let l = line.trim_start();
        let l = l.strip_prefix("pub ").unwrap_or(l);
        let l = l.strip_prefix("async ").unwrap_or(l);
        l.strip_prefix("fn ")
            .and_then(|rest| rest.strip_prefix(name))
            .is_some_and(|rest| rest.starts_with('(') || rest.starts_with('<'))
    };
    let at = lines
        .iter()
        .position(|l| defines(l))
        .ok_or_else(|| format!("no `fn {name}`"))?;
    // The attributes and comments right above it.
    let attributes: Vec<&str> = lines[..at]
        .iter()
        .rev()
        .map(|l| l.trim())
        .take_while(|l| l.starts_with("#[") || l.starts_with("//"))
        .filter(|l| l.starts_with("#["))
        .collect();
    if !attributes
        .iter()
        .any(|a| *a == "#[test]" || a.starts_with("#[tokio::test"))
    {
        return Err(format!("`fn {name}` is not a #[test] or #[tokio::test]"));
    }
    if attributes.iter().any(|a| a.starts_with("#[ignore")) {
        return Err(format!("`fn {name}` is #[ignore]d, so CI does not run it"));
    }
    Ok(())
}

/// Checks one `binary::module::test` (or `binary::test`) against the tree.
fn check_path(root: &Path, path: &str) -> Result<(), String> {
    let parts: Vec<&str> = path.split("::").collect();
    let (bin, module, name) = match parts.as_slice() {
        [bin, module, name] => (*bin, Some(*module), *name),
        [bin, name] => (*bin, None, *name),
        _ => return Err("not binary::module::test".into()),
    };
    let (bin_root, dir) = binary(bin).ok_or_else(|| format!("unknown test binary {bin:?}"))?;
    let file = match module {
        Some(m) => {
            let bin_source = std::fs::read_to_string(root.join(bin_root))
                .map_err(|e| format!("{bin_root}: {e}"))?;
            if !bin_source.contains(&format!("mod {m};")) {
                return Err(format!("{bin_root} declares no `mod {m};`"));
            }
            root.join(dir).join(format!("{m}.rs"))
        }
        None => root.join(bin_root),
    };
    let source = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    check_test(&source, name).map_err(|e| format!("{}: {e}", file.display()))
}

#[test]
fn every_test_the_matrix_names_exists_and_runs() {
    let root = workspace();
    let markdown = std::fs::read_to_string(root.join("RELIABILITY.md")).expect("RELIABILITY.md");
    let tests = matrix_tests(&markdown);
    assert!(
        tests.len() >= MIN_ROWS,
        "the matrix has {} rows, fewer than {MIN_ROWS}",
        tests.len()
    );
    let mut seen = HashSet::new();
    let mut problems = Vec::new();
    for (row, path) in &tests {
        if !seen.insert(path.as_str()) {
            problems.push(format!("{row}: {path} is named twice"));
        }
        if let Err(e) = check_path(&root, path) {
            problems.push(format!("{row}: {path}: {e}"));
        }
    }
    assert!(
        problems.is_empty(),
        "RELIABILITY.md:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_finds_missing_ignored_and_plain_functions() {
    let source = "\
#[test]
fn runs() {}

/// Slow.
#[test]
#[ignore = \"slow\"]
fn ignored() {}

fn helper() {}

#[tokio::test(flavor = \"multi_thread\")]
async fn runs_async() {}
";
    assert_eq!(check_test(source, "runs"), Ok(()));
    assert_eq!(check_test(source, "runs_async"), Ok(()));
    assert!(check_test(source, "ignored").is_err_and(|e| e.contains("#[ignore]d")));
    assert!(check_test(source, "helper").is_err_and(|e| e.contains("not a #[test]")));
    assert!(check_test(source, "run").is_err_and(|e| e.contains("no `fn run`")));
    let rows = matrix_tests(
        "## The matrix\n\n| # | what | test |\n|---|---|---|\n| W1 | x | `a::b::c` |\n\n## Other\n\n| y | `d::e::f` |\n",
    );
    assert_eq!(rows, vec![("W1".to_owned(), "a::b::c".to_owned())]);
}
