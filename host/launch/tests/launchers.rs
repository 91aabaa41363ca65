//! node, bun, deno, uv run, containers and unknown launchers, on fake trees.

use crate::common::{Tree, noted, s, with_var};
use bulkhead_launch::{LaunchError, Launcher, analyze};

fn node_tree() -> Tree {
    let t = Tree::new();
    t.exe("opt/node/bin/node", "\x7fELF node");
    t
}

#[test]
fn node_script_in_a_project() {
    let t = node_tree();
    t.file("home/app/package.json", "{}");
    t.file("home/app/dist/index.js", "");
    let env = t.env("home/app", &["opt/node/bin"]);
    let plan = analyze(
        &s(&[
            "node",
            "--enable-source-maps",
            "dist/index.js",
            "--port",
            "3",
        ]),
        &env,
    )
    .unwrap();
    assert_eq!(plan.launcher, Launcher::Node);
    assert_eq!(plan.read, vec![t.p("home/app"), t.p("opt/node")]);
    assert_eq!(
        plan.argv[1..],
        s(&["--enable-source-maps", "dist/index.js", "--port", "3"])
    );
}

#[test]
fn node_script_inside_node_modules_grants_the_outermost_node_modules() {
    let t = node_tree();
    t.file("home/proj/package.json", "{}");
    t.file("home/proj/node_modules/@x/srv/package.json", "{}");
    t.file(
        "home/proj/node_modules/@x/srv/node_modules/dep/index.js",
        "",
    );
    t.file("home/proj/node_modules/@x/srv/dist/index.js", "");
    let env = t.env("home", &["opt/node/bin"]);
    let plan = analyze(
        &s(&["node", "proj/node_modules/@x/srv/dist/index.js"]),
        &env,
    )
    .unwrap();
    assert_eq!(
        plan.read,
        vec![t.p("home/proj/node_modules"), t.p("opt/node")]
    );
}

#[test]
fn node_options_with_values_are_skipped_and_loaders_granted() {
    let t = node_tree();
    t.file("home/app/package.json", "{}");
    t.file("home/app/server.mjs", "");
    t.file("home/hooks/register.mjs", "");
    t.file("home/app/.env", "");
    let env = t.env("home/app", &["opt/node/bin"]);
    let cmd = s(&[
        "node",
        "--import",
        "../hooks/register.mjs",
        "--env-file=.env",
        "-C",
        "dev",
        "server.mjs",
    ]);
    let plan = analyze(&cmd, &env).unwrap();
    assert_eq!(
        plan.read,
        vec![t.p("home/app"), t.p("home/hooks"), t.p("opt/node")]
    );
}

#[test]
fn node_eval_grants_only_the_runtime() {
    let t = node_tree();
    let env = t.env("home", &["opt/node/bin"]);
    let plan = analyze(&s(&["node", "-e", "require('x')"]), &env).unwrap();
    assert_eq!(plan.read, vec![t.p("opt/node")]);
}

#[test]
fn node_in_dot_local_bin_grants_only_the_binary() {
    let t = Tree::new();
    let node = t.exe("home/.local/bin/node", "");
    let env = t.env("home", &["home/.local/bin"]);
    let plan = analyze(&s(&["node", "-e", "1"]), &env).unwrap();
    assert_eq!(plan.read, vec![node]);
}

#[test]
fn bun_runs_a_file_or_a_package_script() {
    let t = Tree::new();
    t.exe("home/.bun/bin/bun", "");
    t.file(
        "home/app/package.json",
        r#"{"scripts":{"start":"bun src/index.ts"}}"#,
    );
    t.file("home/app/src/index.ts", "");
    let env = t.env("home/app", &["home/.bun/bin"]);
    let plan = analyze(&s(&["bun", "run", "src/index.ts"]), &env).unwrap();
    assert_eq!(plan.launcher, Launcher::Bun);
    assert_eq!(plan.read, vec![t.p("home/.bun"), t.p("home/app")]);
    let plan = analyze(&s(&["bun", "start"]), &env).unwrap();
    assert_eq!(plan.read, vec![t.p("home/.bun"), t.p("home/app")]);
    assert!(
        noted(&plan.notes, "package.json script"),
        "{:?}",
        plan.notes
    );
    let plan = analyze(
        &s(&["bun", "--cwd", "src", "index.ts"]),
        &t.env("home/app", &["home/.bun/bin"]),
    )
    .unwrap();
    assert_eq!(plan.read, vec![t.p("home/.bun"), t.p("home/app")]);
}

#[test]
fn bun_x_is_a_package_launcher() {
    let t = Tree::new();
    t.exe("home/.bun/bin/bun", "");
    let env = t.env("home", &["home/.bun/bin"]);
    let plan = analyze(&s(&["bun", "x", "--bun", "cowsay@1.6.0", "hi"]), &env).unwrap();
    assert_eq!(plan.launcher, Launcher::Bunx);
    let pkg = plan.package.unwrap();
    assert!(pkg.force_bun);
    assert_eq!(pkg.exact_version(), Some("1.6.0"));
    assert_eq!(pkg.args, s(&["hi"]));
}

#[test]
fn deno_local_and_remote_modules() {
    let t = Tree::new();
    t.exe("home/.deno/bin/deno", "");
    t.file("home/app/deno.json", "{}");
    t.file("home/app/main.ts", "");
    t.mkdir("home/.cache/deno/npm");
    let env = t.env("home/app", &["home/.deno/bin"]);
    let plan = analyze(
        &s(&[
            "deno",
            "run",
            "--allow-read=/x",
            "-c",
            "deno.json",
            "main.ts",
        ]),
        &env,
    )
    .unwrap();
    assert_eq!(plan.launcher, Launcher::Deno);
    assert_eq!(plan.read, vec![t.p("home/.deno"), t.p("home/app")]);
    assert!(noted(&plan.notes, "--allow-read"), "{:?}", plan.notes);
    let plan = analyze(&s(&["deno", "run", "-A", "jsr:@scope/server"]), &env).unwrap();
    assert_eq!(plan.read, vec![t.p("home/.cache/deno"), t.p("home/.deno")]);
    assert!(noted(&plan.notes, "deno cache"), "{:?}", plan.notes);
    // Deno 2 runs a file named directly.
    let plan = analyze(&s(&["deno", "main.ts"]), &env).unwrap();
    assert_eq!(plan.read, vec![t.p("home/.deno"), t.p("home/app")]);
}

fn uv_project(t: &Tree) {
    t.exe("opt/uv/bin/uv", "\x7fELF uv");
    let base = t.python_prefix("opt/py", "3.12");
    t.file("home/proj/pyproject.toml", "[project]\nname = \"p\"\n");
    t.symlink("home/proj/.venv/bin/python", &base);
    t.file(
        "home/proj/.venv/pyvenv.cfg",
        &format!("home = {}\n", t.p("opt/py/bin").display()),
    );
    t.file("home/proj/server.py", "import mcp\n");
}

#[test]
fn uv_run_script_in_project() {
    let t = Tree::new();
    uv_project(&t);
    let env = t.env("home", &["opt/uv/bin"]);
    let plan = analyze(&s(&["uv", "run", "--directory", "proj", "server.py"]), &env).unwrap();
    assert_eq!(plan.launcher, Launcher::UvRun);
    assert_eq!(
        plan.read,
        vec![t.p("home/proj"), t.p("opt/py"), t.p("opt/uv/bin/uv")]
    );
    assert!(
        noted(&plan.notes, "without uv, the same runs as"),
        "{:?}",
        plan.notes
    );
    assert!(noted(&plan.notes, "uv sync"), "{:?}", plan.notes);
}

#[test]
fn uv_run_with_and_inline_metadata_need_the_uv_cache() {
    let t = Tree::new();
    uv_project(&t);
    t.mkdir("home/.cache/uv");
    t.file(
        "home/tools/one.py",
        "# /// script\n# dependencies = [\"httpx\"]\n# ///\n",
    );
    let env = t.env("home", &["opt/uv/bin"]);
    let plan = analyze(&s(&["uv", "run", "tools/one.py"]), &env).unwrap();
    assert_eq!(
        plan.read,
        vec![
            t.p("home/.cache/uv"),
            t.p("home/tools"),
            t.p("opt/uv/bin/uv")
        ]
    );
    assert!(noted(&plan.notes, "PEP 723"), "{:?}", plan.notes);
    // Claude Desktop's FastMCP form: uv run --with mcp[cli] mcp run /abs/server.py
    let server = t.p("home/proj/server.py");
    let plan = analyze(
        &s(&[
            "uv",
            "run",
            "--with",
            "mcp[cli]",
            "mcp",
            "run",
            server.to_str().unwrap(),
        ]),
        &env,
    )
    .unwrap();
    assert!(plan.read.contains(&t.p("home/proj")), "{:?}", plan.read);
    assert!(
        plan.read.contains(&t.p("home/.cache/uv")),
        "{:?}",
        plan.read
    );
}

#[test]
fn uv_run_without_venv_says_to_sync() {
    let t = Tree::new();
    t.exe("opt/uv/bin/uv", "");
    t.file("home/p2/pyproject.toml", "");
    t.file("home/p2/main.py", "");
    let env = t.env("home/p2", &["opt/uv/bin"]);
    let plan = analyze(&s(&["uv", "run", "main.py"]), &env).unwrap();
    assert_eq!(plan.read, vec![t.p("home/p2"), t.p("opt/uv/bin/uv")]);
    assert!(noted(&plan.notes, "does not exist yet"), "{:?}", plan.notes);
}

#[test]
fn docker_and_podman_are_unsupported() {
    let t = Tree::new();
    let env = t.env("home", &[]);
    for engine in ["docker", "podman"] {
        let plan = analyze(&s(&[engine, "run", "-i", "--rm", "mcp/fetch"]), &env).unwrap();
        assert_eq!(plan.launcher, Launcher::Container);
        let why = plan.unsupported.unwrap();
        assert!(
            why.contains("cannot be sandboxed from outside the container daemon"),
            "{why}"
        );
        assert!(
            why.contains(&format!("sandbox only the {engine} client")),
            "{why}"
        );
    }
}

#[test]
fn unknown_launcher_runs_as_before_with_a_note() {
    let t = Tree::new();
    let bin = t.exe("home/go/bin/github-mcp-server", "\x7fELF go");
    t.mkdir("home/data");
    let env = t.env("home", &["home/go/bin"]);
    let plan = analyze(
        &s(&["github-mcp-server", "stdio", "--root", "./data"]),
        &env,
    )
    .unwrap();
    assert_eq!(plan.launcher, Launcher::Other);
    assert_eq!(plan.program, Some(bin.clone()));
    assert_eq!(plan.read, vec![bin]);
    assert!(
        noted(
            &plan.notes,
            "unknown launcher github-mcp-server: runs as before"
        ),
        "{:?}",
        plan.notes
    );
    assert!(
        noted(&plan.notes, "add --allow-read ./data"),
        "{:?}",
        plan.notes
    );
}

#[test]
fn unknown_launcher_with_a_code_file_argument() {
    let t = Tree::new();
    t.exe("opt/java/bin/java", "");
    t.file("home/srv/build.gradle", "");
    t.mkdir("home/srv/.git");
    t.file("home/srv/build/server.jar", "");
    let env = t.env("home/srv", &["opt/java/bin"]);
    let plan = analyze(&s(&["java", "-jar", "build/server.jar"]), &env).unwrap();
    // The program's own file (outside the system directories) and the jar's project.
    assert_eq!(plan.read, vec![t.p("home/srv"), t.p("opt/java/bin/java")]);
}

#[test]
fn empty_command_is_an_error() {
    let t = Tree::new();
    let env = t.env("home", &[]);
    assert!(matches!(analyze(&[], &env), Err(LaunchError::EmptyCommand)));
    assert!(matches!(
        analyze(&s(&[""]), &env),
        Err(LaunchError::EmptyCommand)
    ));
}

#[test]
fn nothing_too_wide_is_ever_granted() {
    let t = Tree::new();
    t.exe("bin/node", "");
    let env = with_var(
        t.env("home", &["bin"]),
        "PYTHONPATH",
        t.home().to_str().unwrap(),
    );
    t.python_prefix("opt/py", "3.12");
    let env2 = t.env("home", &["opt/py/bin"]);
    let env2 = with_var(env2, "PYTHONPATH", t.home().to_str().unwrap());
    for (cmd, env) in [
        (s(&["node", "-e", "1"]), &env),
        (s(&["python3", "-c", "1"]), &env2),
    ] {
        let plan = analyze(&cmd, env).unwrap();
        for r in &plan.read {
            assert!(
                r != &t.home() && r != &t.root && r != std::path::Path::new("/"),
                "{r:?}"
            );
        }
    }
}
