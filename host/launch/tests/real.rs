//! Against what this machine really has (python3, node, npm/npx, uv/uvx):
//! each test skips, saying so, when its tool is absent. The `#[ignore]`d
//! ones fetch from the real registries and run the server (network):
//! `cargo test -p bulkhead-launch --test real -- --ignored`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bulkhead_launch::{
    InstallScripts, LaunchEnv, Launcher, analyze, analyze_installed, cache_dir, fetch_commands,
    installed_version, parse_resolved_version, registry_settings, resolve_version_command,
};

fn env() -> LaunchEnv {
    LaunchEnv::from_process().expect("process environment")
}

fn have(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    if !found {
        eprintln!("skipped: no {tool} on PATH");
    }
    found
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

#[test]
fn python3_resolves_to_a_real_prefix() {
    if !have("python3") {
        return;
    }
    let plan = analyze(&s(&["python3", "-c", "1"]), &env()).unwrap();
    assert_eq!(plan.launcher, Launcher::Python);
    let program = plan.program.clone().unwrap();
    assert!(program.is_file(), "{plan:#?}");
    // Not a shim: a pyenv/asdf shim would have been replaced by the real binary.
    assert!(!program.to_string_lossy().contains("/shims/"), "{plan:#?}");
    let stdlib = plan.read.iter().any(|r| {
        ["lib", "lib64"].iter().any(|l| {
            std::fs::read_dir(r.join(l))
                .is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.path().join("os.py").is_file())))
        })
    });
    assert!(stdlib, "no prefix with lib/python*/os.py in {plan:#?}");
}

#[test]
fn node_resolves_to_a_real_prefix() {
    if !have("node") {
        return;
    }
    let plan = analyze(&s(&["node", "-e", "1"]), &env()).unwrap();
    assert_eq!(plan.launcher, Launcher::Node);
    let node = plan.program.clone().unwrap();
    assert!(plan.read.iter().any(|r| node.starts_with(r)), "{plan:#?}");
}

#[test]
fn npx_and_npm_exec_name_the_package_and_node() {
    if !have("npx") || !have("npm") {
        return;
    }
    let e = env();
    for cmd in [
        s(&["npx", "-y", "@modelcontextprotocol/server-everything"]),
        s(&[
            "npm",
            "exec",
            "--yes",
            "--",
            "@modelcontextprotocol/server-everything",
        ]),
    ] {
        let plan = analyze(&cmd, &e).unwrap();
        assert_eq!(plan.launcher, Launcher::Npx);
        let p = plan.package.clone().unwrap();
        assert_eq!(p.package.name, "@modelcontextprotocol/server-everything");
        assert!(!plan.read.is_empty(), "node's prefix: {plan:#?}");
        let st = registry_settings(&p, &e).unwrap();
        assert!(!st.hosts.is_empty(), "{st:#?}");
    }
}

#[test]
fn uv_and_uvx_resolve_and_name_the_package() {
    if !have("uvx") || !have("uv") {
        return;
    }
    let e = env();
    for cmd in [
        s(&["uvx", "mcp-server-fetch"]),
        s(&["uv", "tool", "run", "mcp-server-fetch"]),
    ] {
        let plan = analyze(&cmd, &e).unwrap();
        assert_eq!(plan.launcher, Launcher::Uvx);
        let program = plan.program.clone().unwrap();
        assert!(!program.to_string_lossy().contains("/shims/"), "{plan:#?}");
        let p = plan.package.unwrap();
        assert_eq!(p.bin.as_deref(), Some("mcp-server-fetch"));
        assert!(!registry_settings(&p, &e).unwrap().hosts.is_empty());
    }
}

fn run_step(step: &bulkhead_launch::Step, extra: &[(String, String)]) -> String {
    let mut cmd = Command::new(&step.argv[0]);
    cmd.args(&step.argv[1..])
        .envs(extra.iter().cloned())
        .envs(step.env.iter().cloned())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{:?}: {e}", step.argv));
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(step.stdin.as_deref().unwrap_or("").as_bytes())
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?} failed", step.argv);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sends MCP's initialize to `argv`, closes stdin, and returns stdout
/// (killed after 60 s).
fn initialize(argv: &[String]) -> String {
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        // The test's own child, by its id.
        let _ = Command::new("kill").arg(pid.to_string()).status();
    });
    let msg = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{msg}").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    drop(watchdog);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Resolves, fetches into a fresh cache, analyzes and runs `command`.
/// The cache is deleted when the returned guard drops.
fn end_to_end(command: &[&str]) -> (bulkhead_launch::LaunchPlan, PathBuf, tempfile::TempDir) {
    let e = env();
    let plan = analyze(&s(command), &e).unwrap();
    let pkg = plan.package.unwrap();
    let guard = tempfile::Builder::new()
        .prefix("bulkhead-launch-e2e")
        .tempdir()
        .unwrap();
    let base = guard.path().to_path_buf();
    let settings = registry_settings(&pkg, &e).unwrap();
    eprintln!("hosts {:?}, reads {:?}", settings.hosts, settings.read);
    let version = match pkg.exact_version() {
        Some(v) => v.to_owned(),
        None => {
            let step = resolve_version_command(&pkg, &base.join("scratch")).unwrap();
            parse_resolved_version(&pkg, &run_step(&step, &settings.env)).unwrap()
        }
    };
    let dir = cache_dir(&base, &pkg, &version).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    for step in fetch_commands(&pkg, Some(&version), &dir, InstallScripts::Skip).unwrap() {
        eprintln!("fetch: {:?} {:?}", step.env, step.argv);
        run_step(&step, &settings.env);
    }
    assert_eq!(installed_version(&pkg, &dir).unwrap(), version);
    let run = analyze_installed(&pkg, &dir, &e).unwrap();
    eprintln!("run: {run:#?}");
    let out = initialize(&run.argv);
    assert!(out.contains("\"result\""), "no initialize result: {out}");
    (run, dir, guard)
}

fn under(read: &[PathBuf], p: &Path) -> bool {
    let p = p.canonicalize().unwrap();
    read.iter().any(|r| p.starts_with(r))
}

#[test]
#[ignore = "network: fetches @modelcontextprotocol/server-everything from the npm registry"]
fn npx_server_everything_end_to_end() {
    if !have("npm") {
        return;
    }
    let (run, dir, _cache) = end_to_end(&["npx", "-y", "@modelcontextprotocol/server-everything"]);
    assert_eq!(run.launcher, Launcher::Node);
    assert!(under(&run.read, &dir.join("node_modules")));
}

#[test]
#[ignore = "network: fetches mcp-server-fetch from PyPI"]
fn uvx_mcp_server_fetch_end_to_end() {
    if !have("uv") {
        return;
    }
    let (run, dir, _cache) = end_to_end(&["uvx", "mcp-server-fetch"]);
    assert_eq!(run.launcher, Launcher::Python);
    assert!(under(&run.read, &dir.join("venv/pyvenv.cfg")));
}

#[test]
#[ignore = "network: fetches mcp-server-time from PyPI with pipx"]
fn pipx_run_mcp_server_time_end_to_end() {
    if !have("pipx") {
        return;
    }
    let (run, dir, _cache) = end_to_end(&["pipx", "run", "mcp-server-time"]);
    assert_eq!(run.launcher, Launcher::Python);
    assert!(under(&run.read, &dir.join("bin")));
}
