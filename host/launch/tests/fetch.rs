//! The cache layout, and the fetch and run commands of a package.

use std::path::Path;

use bulkhead_launch::{
    InstallScripts, LaunchError, cache_dir, fetch_commands, installed_bin, installed_version,
    parse_resolved_version, resolve_version_command, run_command,
};

use crate::common::{Tree, s};

use crate::packages::pkg;

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
