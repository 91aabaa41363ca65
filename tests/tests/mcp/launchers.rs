//! Servers started the way client configs start them — `npx -y PKG`,
//! `uvx PKG`, a venv's `python server.py`, an unknown launcher — through
//! `bulkhead mcp wrap` under the default policy (`untrusted`): the package
//! is fetched once into bulkhead's cache by a worker whose only network is
//! the registry, and the server runs from there, read-only, with no
//! network.
//!
//! Every test has a fresh scratch `HOME` and is driven as a client drives a
//! server: the official inspector (`--cli`), or the official Python SDK,
//! passing the server only the SDK's default variables plus this machine's
//! CA and registry settings (`bulkhead_tests::launchers::client_env`). The
//! wrapped server must list the same tools as the same package run bare by
//! its launcher, and answer a call.
//!
//! The packages come from the npm registry and PyPI (the only network the
//! tests use). To keep the number of fetches small, tests that are not about
//! a cold fetch share one package cache (`shared_cache`); the tests named
//! `cold_…` start from an empty one under their `HOME` (`XDG_CACHE_HOME`
//! unset). The bare references run with a `HOME` of their own, where their
//! launchers keep their own caches.

use std::path::{Path, PathBuf};

use bulkhead_tests::launchers::{
    Inspected, PackageLine, RUN_LIMIT, Scratch, as_client, bulkhead_cmd, client_env,
    entries_starting, inspect_as_client, inspect_bare, output_within, package_line, shared_cache,
    test_venv, tool_names, wrapped,
};
use serde_json::Value;

pub(super) const EVERYTHING: &str = "@modelcontextprotocol/server-everything";
pub(super) const FILESYSTEM: &str = "@modelcontextprotocol/server-filesystem";

pub(super) fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

pub(super) fn npx(package: &str, args: &[&str]) -> Vec<String> {
    let mut argv = strings(&["npx", "-y", package]);
    argv.extend(strings(args));
    argv
}

/// The text of a tool result's first content item.
pub(super) fn first_text(result: &Value) -> &str {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content in {result}"))
}

/// `bulkhead mcp fetch --json -- CMD…` as a client would run it; parsed.
pub(super) fn fetch_json(home: &Path, env: &[(String, String)], command: &[String]) -> Value {
    let mut args = vec!["mcp", "fetch", "--json", "--"];
    args.extend(command.iter().map(String::as_str));
    let out = output_within(
        &mut bulkhead_cmd(home, env, &args),
        RUN_LIMIT,
        "bulkhead mcp fetch",
    );
    assert!(
        out.status.success(),
        "mcp fetch {command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "mcp fetch --json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The package line of a wrapped start, which must name `name`.
pub(super) fn package_of(run: &Inspected, installer: &str, name: &str) -> PackageLine {
    let p = package_line(&run.stderr).unwrap_or_else(|| {
        panic!(
            "no `bulkhead: mcp wrap: {installer} {name}@…` line: {}",
            run.stderr
        )
    });
    assert_eq!(
        (p.installer.as_str(), p.name.as_str()),
        (installer, name),
        "{p:?}"
    );
    p
}

/// The fetch wrote only bulkhead's cache: no `~/.npm`, no `~/.cache/uv`,
/// no pip or pipx directories in the client's `HOME`.
pub(super) fn assert_no_user_caches(home: &Path) {
    for d in [".npm", ".cache/uv", ".cache/pip", ".local/share/pipx"] {
        assert!(
            !home.join(d).exists(),
            "{d} was created in the client's HOME"
        );
    }
}

/// A fetch, finished or failed, leaves no scratch beside the versions.
pub(super) fn assert_no_scratch_left(package_root: &Path) {
    let left = entries_starting(package_root, ".scratch");
    assert!(
        left.is_empty(),
        "{}: fetch scratch left behind: {left:?}",
        package_root.display()
    );
}

/// A package directory of the cache: the package's files are there, and
/// the fetch finished.
pub(super) fn assert_cached_npm(dir: &Path, name: &str, version: &str) {
    let manifest = dir.join("node_modules").join(name).join("package.json");
    let text = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    let v: Value = serde_json::from_str(&text).expect("package.json");
    assert_eq!(v["version"], version, "{}", manifest.display());
    assert!(dir.join(".bulkhead-complete").exists(), "{}", dir.display());
}

/// `npx -y server-everything` from an empty cache: fetched into
/// `~/.cache/bulkhead` (no `XDG_CACHE_HOME`), pinned, and then the same
/// tools and the same answers as the same version run bare by npx.
#[test]
fn cold_npx_server_everything_is_fetched_once_and_answers_like_bare_npx() {
    let s = Scratch::new();
    let env = client_env(None);
    let target = wrapped(&[], &npx(EVERYTHING, &[]));

    let list = inspect_as_client(&s.home, &env, &target, &["tools/list"]);
    let listed = list.answer().clone();
    let p = package_of(&list, "npm", EVERYTHING);
    assert!(p.fetched, "an empty cache is fetched into: {}", list.stderr);
    let root = s
        .home
        .join(".cache/bulkhead/packages/npm/@modelcontextprotocol+server-everything");
    assert_eq!(p.dir, root.join(&p.version), "where the package went");
    assert_cached_npm(&p.dir, EVERYTHING, &p.version);
    let pin = std::fs::read_to_string(root.join("pin")).expect("a version-less command is pinned");
    assert_eq!(pin.trim(), p.version);
    assert_no_scratch_left(&root);

    // The same version, run bare by npx (its own HOME: npx caches there).
    let bare = npx(&format!("{EVERYTHING}@{}", p.version), &[]);
    let bare_list = inspect_bare(&s.bare_home, &env, &bare, &["tools/list"]);
    assert_eq!(tool_names(&listed), tool_names(&bare_list));
    assert!(tool_names(&listed).contains(&"echo".to_owned()));

    let call = [
        "tools/call",
        "--tool-name",
        "echo",
        "--tool-arg",
        "message=hi",
    ];
    let through = inspect_as_client(&s.home, &env, &target, &call);
    assert_eq!(first_text(through.answer()), "Echo: hi");
    let direct = inspect_bare(&s.bare_home, &env, &bare, &call);
    assert_eq!(through.answer(), &direct, "echo differs through bulkhead");
    // The later starts ran from the cache.
    let again = package_of(&through, "npm", EVERYTHING);
    assert!(
        !again.fetched,
        "a cached package is not fetched again: {}",
        through.stderr
    );
    assert_eq!(again.dir, p.dir);

    assert_no_user_caches(&s.home);
    assert!(
        s.bare_home.join(".npm").exists(),
        "bare npx caches in its HOME (the control)"
    );
}

/// `npx -y server-filesystem DIR --allow-read DIR`: the server reads what
/// it was given, and lists the tools bare npx's lists.
#[test]
fn npx_server_filesystem_reads_the_directory_it_is_given() {
    let s = Scratch::new();
    let data = s.work.join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("hello.txt"), "hello\n").unwrap();
    let d = data.display().to_string();
    let env = client_env(Some(shared_cache()));
    let target = wrapped(&["--allow-read", &d], &npx(FILESYSTEM, &[&d]));

    let list = inspect_as_client(&s.home, &env, &target, &["tools/list"]);
    let listed = list.answer().clone();
    let p = package_of(&list, "npm", FILESYSTEM);
    let bare = npx(&format!("{FILESYSTEM}@{}", p.version), &[&d]);
    let bare_list = inspect_bare(&s.bare_home, &env, &bare, &["tools/list"]);
    assert_eq!(tool_names(&listed), tool_names(&bare_list));

    let call = [
        "tools/call",
        "--tool-name",
        "list_directory",
        "--tool-arg",
        &format!("path={d}"),
    ];
    let through = inspect_as_client(&s.home, &env, &target, &call);
    let text = first_text(through.answer());
    assert!(
        text.contains("[FILE] hello.txt") && text.contains("[DIR] sub"),
        "{text}"
    );
    let direct = inspect_bare(&s.bare_home, &env, &bare, &call);
    assert_eq!(through.answer(), &direct);
    assert_no_user_caches(&s.home);
}

const FASTMCP_SERVER: &str = r#"from fastmcp import FastMCP

mcp = FastMCP("bulkhead-launcher-test")


@mcp.tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@mcp.tool
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


if __name__ == "__main__":
    mcp.run(show_banner=False)
"#;

/// A FastMCP server run as `VENV/bin/python server.py`: bulkhead grants the
/// venv, its base interpreter's prefix and the script's directory, and
/// nothing is fetched.
#[test]
fn fastmcp_server_in_a_venv() {
    let venv = test_venv();
    let s = Scratch::new();
    let script = s.work.join("server.py");
    std::fs::write(&script, FASTMCP_SERVER).unwrap();
    let python = venv.join("bin/python").display().to_string();
    let server = vec![python, script.display().to_string()];
    let env = client_env(None);
    let target = wrapped(&[], &server);

    let list = inspect_as_client(&s.home, &env, &target, &["tools/list"]);
    let listed = list.answer().clone();
    assert_eq!(tool_names(&listed), ["add", "shout"]);
    assert_eq!(
        package_line(&list.stderr),
        None,
        "nothing to fetch: {}",
        list.stderr
    );
    let bare = inspect_bare(&s.bare_home, &env, &server, &["tools/list"]);
    assert_eq!(tool_names(&listed), tool_names(&bare));

    let call = [
        "tools/call",
        "--tool-name",
        "add",
        "--tool-arg",
        "a=2",
        "b=40",
    ];
    let through = inspect_as_client(&s.home, &env, &target, &call);
    assert_eq!(first_text(through.answer()), "42");
    let direct = inspect_bare(&s.bare_home, &env, &server, &call);
    assert_eq!(through.answer(), &direct);

    // What was granted, and why.
    let plan = fetch_json(&s.home, &env, &server);
    assert_eq!(plan["package"], Value::Null, "{plan}");
    let read: Vec<PathBuf> = plan["read"]
        .as_array()
        .expect("read")
        .iter()
        .map(|r| PathBuf::from(r.as_str().expect("a path")))
        .collect();
    let venv_canon = venv.canonicalize().unwrap();
    assert!(read.contains(&venv_canon), "the venv is read: {plan}");
    assert!(
        read.contains(&s.work),
        "the script's directory is read: {plan}"
    );
    let base = std::fs::read_to_string(venv.join("pyvenv.cfg"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("home = ").map(str::to_owned))
        .expect("pyvenv.cfg names its base");
    let base_prefix = Path::new(&base).parent().unwrap().canonicalize().unwrap();
    assert!(
        read.iter().any(|r| base_prefix.starts_with(r)),
        "the base interpreter's prefix {} is read: {plan}",
        base_prefix.display()
    );
    assert!(
        !s.home.join(".cache/bulkhead").exists(),
        "no package, no cache"
    );
}

/// `uvx mcp-server-time` from an empty cache: fetched with uv into
/// bulkhead's cache (no `~/.cache/uv`), then the same tools as bare uvx.
#[test]
fn cold_uvx_mcp_server_time() {
    assert!(
        which("uvx"),
        "uvx is not on PATH: install uv (`python3 -m pip install uv`; .ci/run does)"
    );
    let s = Scratch::new();
    let env = client_env(None);
    let target = wrapped(&[], &strings(&["uvx", "mcp-server-time"]));

    let list = inspect_as_client(&s.home, &env, &target, &["tools/list"]);
    let listed = list.answer().clone();
    let p = package_of(&list, "uv", "mcp-server-time");
    assert!(p.fetched, "{}", list.stderr);
    let root = s.home.join(".cache/bulkhead/packages/uv/mcp-server-time");
    assert_eq!(p.dir, root.join(&p.version));
    assert!(
        p.dir.join("venv/bin/mcp-server-time").exists(),
        "{}",
        p.dir.display()
    );
    assert_eq!(
        std::fs::read_to_string(root.join("pin"))
            .expect("pinned")
            .trim(),
        p.version
    );
    assert_no_scratch_left(&root);

    let bare = strings(&["uvx", &format!("mcp-server-time@{}", p.version)]);
    let bare_list = inspect_bare(&s.bare_home, &env, &bare, &["tools/list"]);
    assert_eq!(tool_names(&listed), tool_names(&bare_list));

    let call = [
        "tools/call",
        "--tool-name",
        "get_current_time",
        "--tool-arg",
        "timezone=UTC",
    ];
    let through = inspect_as_client(&s.home, &env, &target, &call);
    let answer: Value = serde_json::from_str(first_text(through.answer())).unwrap_or_else(|e| {
        panic!(
            "get_current_time's text is not JSON ({e}): {}",
            through.stdout
        )
    });
    assert_eq!(answer["timezone"], "UTC", "{answer}");
    assert!(
        answer["datetime"].as_str().is_some_and(|d| d.len() >= 19),
        "{answer}"
    );
    assert_no_user_caches(&s.home);
}

const SDK_CLIENT: &str = r#""""The official MCP Python SDK as the client: argv[1:] is the server."""
import json
import os
import sys

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client


async def main() -> None:
    params = StdioServerParameters(command=sys.argv[1], args=sys.argv[2:], env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            echo = await session.call_tool("echo", {"message": "hi from the python sdk"})
            print(json.dumps({
                "server": init.model_dump(mode="json", by_alias=True)["serverInfo"]["name"],
                "tools": sorted(t.name for t in tools.tools),
                "echo": echo.model_dump(mode="json", by_alias=True),
            }))


anyio.run(main)
"#;

/// The official Python SDK (`mcp`) as the client of `mcp wrap -- npx -y
/// server-everything`: initialize, list_tools, call_tool.
#[test]
fn python_sdk_client_through_wrap() {
    let venv = test_venv();
    let s = Scratch::new();
    let client = s.work.join("client.py");
    std::fs::write(&client, SDK_CLIENT).unwrap();
    let env = client_env(Some(shared_cache()));
    let target = wrapped(&[], &npx(EVERYTHING, &[]));

    let sdk = |home: &Path, server: &[String]| -> (Value, String) {
        // The client passes its whole environment (a client's) to the server.
        let mut py = as_client(venv.join("bin/python"), home, &env);
        py.arg(&client).args(server);
        let out = output_within(&mut py, RUN_LIMIT, "the SDK client");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "the SDK client failed: {stderr}");
        let v = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
        (v, stderr)
    };

    let (through, stderr) = sdk(&s.home, &target);
    assert_eq!(through["server"], "mcp-servers/everything", "{through}");
    assert_eq!(
        through["echo"]["content"][0]["text"], "Echo: hi from the python sdk",
        "{through}"
    );
    assert_ne!(through["echo"]["isError"], true, "{through}");
    let p = package_line(&stderr).unwrap_or_else(|| panic!("no package line: {stderr}"));
    assert_eq!(p.name, EVERYTHING);

    // The same answers as the same client gets from the same version run
    // bare by npx. (Not compared with the inspector's list: the tools a
    // server lists depend on the client's capabilities, e.g. roots.)
    let bare = npx(&format!("{EVERYTHING}@{}", p.version), &[]);
    let (direct, _) = sdk(&s.bare_home, &bare);
    assert_eq!(
        through, direct,
        "the SDK client's answers differ through bulkhead"
    );
    assert_no_user_caches(&s.home);
}

/// At run time the cache is read-only to the server: a filesystem server
/// pointed at its own package directory can read it and not change it.
#[test]
fn the_server_cannot_write_its_own_package() {
    let s = Scratch::new();
    let env = client_env(Some(shared_cache()));
    let fetched = fetch_json(&s.home, &env, &npx(FILESYSTEM, &["/nonexistent"]));
    let dir = PathBuf::from(fetched["package"]["dir"].as_str().expect("package.dir"));
    let version = fetched["package"]["version"].as_str().expect("version");
    assert_cached_npm(&dir, FILESYSTEM, version);
    let d = dir.display().to_string();
    let target = wrapped(&["--allow-read", &d], &npx(FILESYSTEM, &[&d]));
    let manifest = dir
        .join("node_modules")
        .join(FILESYSTEM)
        .join("package.json");
    let before = std::fs::read(&manifest).unwrap();

    // Readable…
    let read = inspect_as_client(
        &s.home,
        &env,
        &target,
        &[
            "tools/call",
            "--tool-name",
            "read_text_file",
            "--tool-arg",
            &format!("path={}", manifest.display()),
        ],
    );
    assert!(first_text(read.answer()).contains(&format!("\"version\": \"{version}\"")));

    // …but neither a new file nor a changed one.
    let new_file = dir.join("pwned.txt");
    for (path, what) in [
        (&new_file, "a new file"),
        (&manifest, "the package's manifest"),
    ] {
        let write = inspect_as_client(
            &s.home,
            &env,
            &target,
            &[
                "tools/call",
                "--tool-name",
                "write_file",
                "--tool-arg",
                &format!("path={}", path.display()),
                "content=poisoned",
            ],
        );
        assert!(!write.ok, "writing {what} did not fail: {}", write.stdout);
        let text = write.stdout.to_ascii_lowercase();
        assert!(
            text.contains("eacces") || text.contains("permission denied"),
            "writing {what}: not a permission error: {}",
            write.stdout
        );
    }
    assert!(
        !new_file.exists(),
        "the server created a file in its package"
    );
    assert_eq!(
        std::fs::read(&manifest).unwrap(),
        before,
        "the manifest changed"
    );
    assert_no_user_caches(&s.home);
}

pub(super) fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}
