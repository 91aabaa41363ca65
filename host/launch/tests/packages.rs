//! npx / npm exec / bunx / uvx / uv tool run / pipx run command lines
//! (the cache layout and the fetch and run commands are in `fetch.rs`).

use bulkhead_launch::{
    Ecosystem, Installer, LaunchError, Launcher, PackageRef, VersionSpec, analyze,
};

use crate::common::{Tree, noted, s};

pub(crate) fn pkg(cmd: &[&str]) -> PackageRef {
    let t = Tree::new();
    let plan = analyze(&s(cmd), &t.env("home", &[])).unwrap();
    assert!(plan.unsupported.is_none(), "{:?}", plan.unsupported);
    plan.package
        .unwrap_or_else(|| panic!("no package for {cmd:?}"))
}

pub(crate) fn unsupported(cmd: &[&str]) -> String {
    let t = Tree::new();
    let plan = analyze(&s(cmd), &t.env("home", &[])).unwrap();
    plan.unsupported
        .unwrap_or_else(|| panic!("{cmd:?} was supported"))
}

pub(crate) fn error(cmd: &[&str]) -> LaunchError {
    let t = Tree::new();
    match analyze(&s(cmd), &t.env("home", &[])) {
        Err(e) => e,
        Ok(p) => panic!("{cmd:?} parsed: {p:?}"),
    }
}

#[test]
fn npx_scoped_package_with_yes() {
    let p = pkg(&[
        "npx",
        "-y",
        "@modelcontextprotocol/server-filesystem",
        "/home/me/projects",
    ]);
    assert_eq!(p.installer, Installer::Npm);
    assert_eq!(p.package.ecosystem, Ecosystem::Npm);
    assert_eq!(p.package.name, "@modelcontextprotocol/server-filesystem");
    assert_eq!(p.package.version, VersionSpec::Unspecified);
    assert_eq!(p.bin, None);
    assert_eq!(p.default_bin(), "server-filesystem");
    assert_eq!(p.args, s(&["/home/me/projects"]));
}

#[test]
fn npx_versions_latest_and_ranges() {
    let p = pkg(&["npx", "--yes", "@scope/name@1.2.3", "--flag"]);
    assert_eq!(p.package.name, "@scope/name");
    assert_eq!(p.exact_version(), Some("1.2.3"));
    assert_eq!(p.args, s(&["--flag"]));
    let p = pkg(&["npx", "-y", "server-x@latest"]);
    assert_eq!(p.package.version, VersionSpec::Latest);
    assert_eq!(p.package.requirement(), "server-x@latest");
    let p = pkg(&["npx", "server-x@^2.1"]);
    assert_eq!(p.package.version, VersionSpec::Requirement("^2.1".into()));
    let p = pkg(&["npx", "server-x@v3.0.0-rc.1"]);
    assert_eq!(p.exact_version(), Some("3.0.0-rc.1"));
}

#[test]
fn npx_package_flag_with_separate_command() {
    let p = pkg(&[
        "npx",
        "-p",
        "@a/tools@2.0.0",
        "--package=helper",
        "a-tool",
        "serve",
        "-v",
    ]);
    assert_eq!(p.package.name, "@a/tools");
    assert_eq!(p.with.len(), 1);
    assert_eq!(p.with[0].name, "helper");
    assert_eq!(p.bin.as_deref(), Some("a-tool"));
    assert_eq!(p.args, s(&["serve", "-v"]));
}

#[test]
fn npx_registry_and_unknown_options() {
    let t = Tree::new();
    let plan = analyze(
        &s(&[
            "npx",
            "--registry",
            "https://npm.corp:8443/",
            "--frobnicate",
            "val",
            "srv",
        ]),
        &t.env("home", &[]),
    )
    .unwrap();
    let p = plan.package.unwrap();
    assert_eq!(p.registries[0].url, "https://npm.corp:8443/");
    assert_eq!(p.package.name, "srv");
    assert!(noted(&plan.notes, "--frobnicate"), "{:?}", plan.notes);
}

#[test]
fn npm_exec_forms() {
    let p = pkg(&["npm", "exec", "--yes", "--", "srv@1.0.0", "--port", "1"]);
    assert_eq!(p.package.name, "srv");
    assert_eq!(p.args, s(&["--port", "1"]));
    let p = pkg(&["npm", "x", "--package", "srv", "--", "srv-cli", "a"]);
    assert_eq!(p.bin.as_deref(), Some("srv-cli"));
    assert_eq!(p.args, s(&["a"]));
}

#[test]
fn npx_non_registry_sources_are_unsupported() {
    assert!(unsupported(&["npx", "github:user/repo"]).contains("git"));
    assert!(unsupported(&["npx", "user/repo"]).contains("GitHub shorthand"));
    assert!(unsupported(&["npx", "./local"]).contains("local path"));
    assert!(unsupported(&["npx", "https://x/y.tgz"]).contains("URL"));
    assert!(unsupported(&["npx", "-c", "echo hi"]).contains("shell command"));
}

#[test]
fn npx_malformed_is_an_error() {
    // `..` alone is a path to npm (and so not fetched); inside a name it is an error.
    assert!(unsupported(&["npx", "-y", ".."]).contains("local path"));
    assert!(matches!(
        error(&["npx", "-y", "@scope/.."]),
        LaunchError::InvalidPackageName {
            ecosystem: Ecosystem::Npm,
            ..
        }
    ));
    assert!(matches!(
        error(&["npx", "@../x"]),
        LaunchError::InvalidPackageName { .. }
    ));
    assert!(matches!(
        error(&["npx", "@scope/a/b"]),
        LaunchError::InvalidPackageName { .. }
    ));
    assert!(matches!(
        error(&["npx", "_private"]),
        LaunchError::InvalidPackageName { .. }
    ));
    assert!(matches!(
        error(&["npx", "node_modules"]),
        LaunchError::InvalidPackageName { .. }
    ));
    assert!(matches!(
        error(&["npx", "a b"]),
        LaunchError::InvalidPackageName { .. }
    ));
    assert!(matches!(
        error(&["npx", "srv@"]),
        LaunchError::InvalidVersion { .. }
    ));
    assert!(matches!(
        error(&["npx", "srv@1.0;rm"]),
        LaunchError::InvalidVersion { .. }
    ));
    assert!(matches!(
        error(&["npx", "-p"]),
        LaunchError::MissingValue { .. }
    ));
    assert!(matches!(
        error(&["npx", "-y"]),
        LaunchError::MissingPackage { .. }
    ));
    assert!(matches!(
        error(&["npx", "-p", "a", "../bin"]),
        LaunchError::InvalidBinName { .. }
    ));
}

#[test]
fn bunx_forms() {
    let p = pkg(&["bunx", "--bun", "-p", "@x/srv@0.3.0", "srv", "--stdio"]);
    assert_eq!(p.installer, Installer::Bun);
    assert!(p.force_bun);
    assert_eq!(p.bin.as_deref(), Some("srv"));
    assert_eq!(p.args, s(&["--stdio"]));
}

#[test]
fn uvx_forms() {
    let p = pkg(&["uvx", "mcp-server-fetch"]);
    assert_eq!(p.installer, Installer::Uv);
    assert_eq!(p.package.ecosystem, Ecosystem::PyPI);
    assert_eq!(p.bin.as_deref(), Some("mcp-server-fetch"));
    assert_eq!(p.package.version, VersionSpec::Unspecified);
    let p = pkg(&["uvx", "mcp-server-fetch@2025.4.7", "--ignore-robots-txt"]);
    assert_eq!(p.exact_version(), Some("2025.4.7"));
    assert_eq!(p.args, s(&["--ignore-robots-txt"]));
    let p = pkg(&["uvx", "mcp-server-time==0.6.2"]);
    assert_eq!(p.exact_version(), Some("0.6.2"));
    assert_eq!(p.bin.as_deref(), Some("mcp-server-time"));
    let p = pkg(&["uvx", "srv@latest"]);
    assert_eq!(p.package.version, VersionSpec::Latest);
    let p = pkg(&["uvx", "srv>=1,<2"]);
    assert_eq!(p.package.version, VersionSpec::Requirement(">=1,<2".into()));
}

#[test]
fn uvx_from_with_python_index() {
    let p = pkg(&[
        "uvx",
        "--python",
        "3.12",
        "--from",
        "mcp[cli]==1.9.0",
        "--with",
        "httpx>=0.27,<1,rich",
        "--index-url",
        "https://pypi.corp/simple",
        "mcp",
        "run",
        "server.py",
    ]);
    assert_eq!(p.package.name, "mcp");
    assert_eq!(p.package.extras, s(&["cli"]));
    assert_eq!(p.exact_version(), Some("1.9.0"));
    assert_eq!(p.bin.as_deref(), Some("mcp"));
    assert_eq!(p.with.len(), 2);
    assert_eq!(p.with[0].requirement(), "httpx>=0.27,<1");
    assert_eq!(p.with[1].name, "rich");
    assert_eq!(p.python.as_deref(), Some("3.12"));
    assert_eq!(p.registries[0].flag, "--index-url");
    assert_eq!(p.args, s(&["run", "server.py"]));
    assert_eq!(p.package.requirement(), "mcp[cli]==1.9.0");
}

#[test]
fn uv_tool_run_and_globals() {
    let t = Tree::new();
    let plan = analyze(
        &s(&[
            "uv",
            "--cache-dir",
            "/c",
            "tool",
            "run",
            "mcp-server-git",
            "--repository",
            ".",
        ]),
        &t.env("home", &[]),
    )
    .unwrap();
    assert_eq!(plan.launcher, Launcher::Uvx);
    let p = plan.package.unwrap();
    assert_eq!(p.package.name, "mcp-server-git");
    assert_eq!(p.args, s(&["--repository", "."]));
}

#[test]
fn uvx_unsupported_and_malformed() {
    assert!(unsupported(&["uvx", "--from", "git+https://github.com/a/b", "b"]).contains("URL"));
    assert!(unsupported(&["uvx", "--with-requirements", "req.txt", "x"]).contains("local files"));
    assert!(unsupported(&["uvx", "../../etc"]).contains("local path"));
    assert!(matches!(
        error(&["uvx", "srv/../../etc"]),
        LaunchError::InvalidPackageName {
            ecosystem: Ecosystem::PyPI,
            ..
        }
    ));
    assert!(matches!(
        error(&["uvx", "a.."]),
        LaunchError::InvalidPackageName { .. }
    ));
    assert!(matches!(
        error(&["uvx", "--", "-x-"]),
        LaunchError::InvalidPackageName { .. }
    ));
    assert!(matches!(
        error(&["uvx", "srv@../x"]),
        LaunchError::InvalidVersion { .. }
    ));
    assert!(matches!(
        error(&["uvx", "--from"]),
        LaunchError::MissingValue { .. }
    ));
    assert!(matches!(
        error(&["uvx"]),
        LaunchError::MissingPackage { .. }
    ));
}

#[test]
fn pipx_run_forms() {
    let p = pkg(&[
        "pipx",
        "run",
        "--spec",
        "black==24.1.0",
        "blackd",
        "--bind-host",
        "x",
    ]);
    assert_eq!(p.installer, Installer::Pipx);
    assert_eq!(p.bin.as_deref(), Some("blackd"));
    assert_eq!(p.exact_version(), Some("24.1.0"));
    let p = pkg(&[
        "pipx",
        "run",
        "mcp-server-time==0.6.2",
        "--local-timezone",
        "UTC",
    ]);
    assert_eq!(p.bin.as_deref(), Some("mcp-server-time"));
    assert_eq!(p.args, s(&["--local-timezone", "UTC"]));
    assert!(unsupported(&["pipx", "run", "script.py"]).contains("script"));
}
