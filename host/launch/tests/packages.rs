//! npx / npm exec / bunx / uvx / uv tool run / pipx run command lines, the
//! cache layout, and the fetch and run commands.

mod common;

use std::path::Path;

use bulkhead_launch::{
    Ecosystem, InstallScripts, Installer, LaunchError, Launcher, PackageRef, VersionSpec, analyze,
    cache_dir, fetch_commands, installed_bin, installed_version, parse_resolved_version,
    resolve_version_command, run_command,
};
use common::{Tree, noted, s};

fn pkg(cmd: &[&str]) -> PackageRef {
    let t = Tree::new();
    let plan = analyze(&s(cmd), &t.env("home", &[])).unwrap();
    assert!(plan.unsupported.is_none(), "{:?}", plan.unsupported);
    plan.package
        .unwrap_or_else(|| panic!("no package for {cmd:?}"))
}

fn unsupported(cmd: &[&str]) -> String {
    let t = Tree::new();
    let plan = analyze(&s(cmd), &t.env("home", &[])).unwrap();
    plan.unsupported
        .unwrap_or_else(|| panic!("{cmd:?} was supported"))
}

fn error(cmd: &[&str]) -> LaunchError {
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

#[test]
fn cache_dir_layout_and_validation() {
    let base = Path::new("/c/bulkhead");
    let p = pkg(&["npx", "-y", "@scope/name@1.2.3"]);
    assert_eq!(
        cache_dir(base, &p, "1.2.3").unwrap(),
        Path::new("/c/bulkhead/packages/npm/@scope+name/1.2.3")
    );
    let p = pkg(&["uvx", "Mcp_Server.Fetch"]);
    assert_eq!(
        cache_dir(base, &p, "2025.4.7").unwrap(),
        Path::new("/c/bulkhead/packages/uv/mcp-server-fetch/2025.4.7")
    );
    // Extras, --with, --python and registries change the install: a suffix.
    let a = cache_dir(base, &pkg(&["uvx", "--with", "x", "srv"]), "1.0").unwrap();
    let b = cache_dir(base, &pkg(&["uvx", "--with", "y", "srv"]), "1.0").unwrap();
    assert_ne!(a, b);
    assert!(
        a.to_str()
            .unwrap()
            .starts_with("/c/bulkhead/packages/uv/srv/1.0@")
    );
    assert_eq!(
        a,
        cache_dir(base, &pkg(&["uvx", "--with", "x", "srv"]), "1.0").unwrap()
    );
    // Versions and names that would leave the directory are refused.
    let mut p = pkg(&["npx", "srv"]);
    for v in ["../x", "..", "1/2", "", ".hidden"] {
        assert!(
            matches!(
                cache_dir(base, &p, v),
                Err(LaunchError::InvalidVersion { .. })
            ),
            "{v}"
        );
    }
    p.package.name = "../../etc".into();
    assert!(matches!(
        cache_dir(base, &p, "1.0.0"),
        Err(LaunchError::InvalidPackageName { .. })
    ));
}

#[test]
fn fetch_and_run_commands_npm() {
    let p = pkg(&[
        "npx",
        "-y",
        "--registry=https://r.example/",
        "@s/srv@^1",
        "--stdio",
    ]);
    let dir = Path::new("/c/packages/npm/@s+srv/1.4.0");
    let steps = fetch_commands(&p, Some("1.4.0"), dir, InstallScripts::Skip).unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(
        steps[0].argv,
        s(&[
            "npm",
            "install",
            "--prefix",
            "/c/packages/npm/@s+srv/1.4.0",
            "--no-audit",
            "--no-fund",
            "--no-update-notifier",
            "--ignore-scripts",
            "--registry=https://r.example/",
            "@s/srv@1.4.0",
        ])
    );
    assert_eq!(
        steps[0].env,
        vec![(
            "npm_config_cache".into(),
            "/c/packages/npm/@s+srv/1.4.0/.fetch-cache".into()
        )]
    );
    let run = fetch_commands(&p, None, dir, InstallScripts::Run).unwrap();
    assert!(!run[0].argv.contains(&"--ignore-scripts".to_owned()));
    assert!(run[0].argv.contains(&"@s/srv@^1".to_owned()));
    let r = resolve_version_command(&p, Path::new("/scratch")).unwrap();
    assert_eq!(
        r.argv[..5],
        s(&["npm", "view", "--json", "@s/srv@^1", "version"])
    );
    assert_eq!(parse_resolved_version(&p, "\"1.4.0\"\n").unwrap(), "1.4.0");
    assert_eq!(
        parse_resolved_version(&p, r#"["1.2.0","1.10.0","1.9.3","1.10.0-rc.1"]"#).unwrap(),
        "1.10.0"
    );
    assert!(parse_resolved_version(&p, "").is_err());
    assert!(parse_resolved_version(&p, "\"../1\"").is_err());
    assert!(resolve_version_command(&pkg(&["npx", "a@1.0.0"]), Path::new("/s")).is_none());
}

#[test]
fn fetch_and_run_commands_uv_and_pipx() {
    let p = pkg(&[
        "uvx",
        "--python",
        "3.12",
        "--with",
        "rich",
        "mcp-server-fetch",
        "--x",
    ]);
    let dir = Path::new("/c/uv/f/1.0");
    let steps = fetch_commands(&p, Some("1.0"), dir, InstallScripts::Skip).unwrap();
    assert_eq!(
        steps[0].argv,
        s(&[
            "uv",
            "venv",
            "--no-project",
            "--python",
            "3.12",
            "/c/uv/f/1.0/venv"
        ])
    );
    assert_eq!(
        steps[1].argv,
        s(&[
            "uv",
            "pip",
            "install",
            "--python",
            "/c/uv/f/1.0/venv/bin/python",
            "--no-build",
            "mcp-server-fetch==1.0",
            "rich",
        ])
    );
    assert!(
        steps[1]
            .env
            .contains(&("UV_CACHE_DIR".into(), "/c/uv/f/1.0/.fetch-cache".into()))
    );
    assert!(
        steps[1]
            .env
            .contains(&("UV_PYTHON_DOWNLOADS".into(), "never".into()))
    );
    assert_eq!(
        run_command(&p, dir).unwrap(),
        s(&["/c/uv/f/1.0/venv/bin/mcp-server-fetch", "--x"])
    );
    let r = resolve_version_command(&p, Path::new("/scratch")).unwrap();
    assert_eq!(r.stdin.as_deref(), Some("mcp-server-fetch\n"));
    let out = "# comment\nmcp-server-fetch==2025.4.7\n";
    assert_eq!(parse_resolved_version(&p, out).unwrap(), "2025.4.7");
    assert!(parse_resolved_version(&p, "other==1\n").is_err());

    let p = pkg(&[
        "pipx",
        "run",
        "--spec",
        "mcp-server-time",
        "mcp-server-time",
    ]);
    let dir = Path::new("/c/pipx/t/0.6.2");
    let steps = fetch_commands(&p, Some("0.6.2"), dir, InstallScripts::Skip).unwrap();
    assert_eq!(
        steps[0].argv,
        s(&[
            "pipx",
            "install",
            "--pip-args=--only-binary=:all:",
            "mcp-server-time==0.6.2"
        ])
    );
    assert!(
        steps[0]
            .env
            .contains(&("PIPX_HOME".into(), "/c/pipx/t/0.6.2/pipx".into()))
    );
    assert!(
        steps[0]
            .env
            .contains(&("PIPX_BIN_DIR".into(), "/c/pipx/t/0.6.2/bin".into()))
    );
    assert_eq!(
        run_command(&p, dir).unwrap(),
        s(&["/c/pipx/t/0.6.2/bin/mcp-server-time"])
    );
    let report =
        r#"{"version":"1","install":[{"metadata":{"name":"mcp_server_time","version":"0.6.2"}}]}"#;
    assert_eq!(parse_resolved_version(&p, report).unwrap(), "0.6.2");
}

#[test]
fn bun_fetch_and_run() {
    let p = pkg(&["bunx", "--bun", "srv@1.0.0", "a"]);
    let dir = Path::new("/c/bun/srv/1.0.0");
    let steps = fetch_commands(&p, Some("1.0.0"), dir, InstallScripts::Skip).unwrap();
    assert_eq!(
        steps[0].argv,
        s(&[
            "bun",
            "add",
            "--cwd",
            "/c/bun/srv/1.0.0",
            "--no-progress",
            "--ignore-scripts",
            "srv@1.0.0"
        ])
    );
    assert!(resolve_version_command(&pkg(&["bunx", "srv"]), Path::new("/s")).is_none());
    let t = Tree::new();
    t.file(
        "pkg/node_modules/srv/package.json",
        r#"{"name":"srv","version":"1.0.0","bin":"cli.js"}"#,
    );
    assert_eq!(
        run_command(&p, &t.p("pkg")).unwrap(),
        s(&[
            "bun",
            "--bun",
            t.p("pkg/node_modules/.bin/srv").to_str().unwrap(),
            "a"
        ])
    );
}

#[test]
fn installed_bin_follows_npms_rule() {
    let t = Tree::new();
    let manifest = |json: &str| {
        t.file("d/node_modules/@m/server-everything/package.json", json);
    };
    let p = pkg(&["npx", "-y", "@m/server-everything"]);
    let dir = t.p("d");
    manifest(
        r#"{"name":"@m/server-everything","version":"2.0.1","bin":{"mcp-server-everything":"dist/index.js"}}"#,
    );
    assert_eq!(installed_bin(&p, &dir).unwrap(), "mcp-server-everything");
    assert_eq!(installed_version(&p, &dir).unwrap(), "2.0.1");
    assert_eq!(
        run_command(&p, &dir).unwrap(),
        s(&[t
            .p("d/node_modules/.bin/mcp-server-everything")
            .to_str()
            .unwrap()])
    );
    manifest(r#"{"name":"x","version":"1.0.0","bin":"cli.js"}"#);
    assert_eq!(installed_bin(&p, &dir).unwrap(), "server-everything");
    manifest(r#"{"name":"x","version":"1.0.0","bin":{"a":"a.js","server-everything":"s.js"}}"#);
    assert_eq!(installed_bin(&p, &dir).unwrap(), "server-everything");
    manifest(r#"{"name":"x","version":"1.0.0","bin":{"a":"a.js","b":"b.js"}}"#);
    assert!(matches!(
        installed_bin(&p, &dir),
        Err(LaunchError::Manifest { .. })
    ));
    manifest(r#"{"name":"x","version":"1.0.0","bin":{"../evil":"a.js"}}"#);
    assert!(matches!(
        installed_bin(&p, &dir),
        Err(LaunchError::InvalidBinName { .. })
    ));
    manifest(r#"{"name":"x","version":"1.0.0"}"#);
    assert!(matches!(
        installed_bin(&p, &dir),
        Err(LaunchError::Manifest { .. })
    ));
    manifest(r#"{"name":"x","version":"../../x"}"#);
    assert!(matches!(
        installed_version(&p, &dir),
        Err(LaunchError::InvalidVersion { .. })
    ));
    assert!(matches!(
        installed_bin(&p, &t.p("nowhere")),
        Err(LaunchError::Manifest { .. })
    ));
}

#[test]
fn installed_version_of_a_python_package() {
    let t = Tree::new();
    t.mkdir("d/venv/lib/python3.12/site-packages/mcp_server_fetch-2025.4.7.dist-info");
    t.mkdir("d/venv/lib/python3.12/site-packages/httpx-0.28.1.dist-info");
    let p = pkg(&["uvx", "mcp-server-fetch"]);
    assert_eq!(installed_version(&p, &t.p("d")).unwrap(), "2025.4.7");
    t.mkdir(
        "e/pipx/venvs/mcp-server-time/lib/python3.12/site-packages/mcp_server_time-0.6.2.dist-info",
    );
    let p = pkg(&["pipx", "run", "mcp-server-time"]);
    assert_eq!(installed_version(&p, &t.p("e")).unwrap(), "0.6.2");
}
