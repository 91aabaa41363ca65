//! Python interpreters, venvs and scripts, on fake trees.

use crate::common::{Tree, noted, s, with_var};
use bulkhead_launch::{Launcher, analyze};

#[test]
fn venv_with_symlinked_python_grants_venv_and_base_prefix() {
    let t = Tree::new();
    let base = t.python_prefix("opt/py312", "3.12");
    t.symlink("home/proj/venv/bin/python", &base);
    t.file(
        "home/proj/venv/pyvenv.cfg",
        &format!(
            "home = {}\ninclude-system-site-packages = false\nversion = 3.12.1\n",
            t.p("opt/py312/bin").display()
        ),
    );
    t.file("home/proj/pyproject.toml", "[project]\nname='x'\n");
    t.file("home/proj/server.py", "print(1)\n");
    let env = t.env("home/proj", &[]);
    let plan = analyze(&s(&["venv/bin/python", "server.py"]), &env).unwrap();
    assert_eq!(plan.launcher, Launcher::Python);
    // The venv's python keeps its path: it finds pyvenv.cfg through it.
    assert_eq!(plan.program, Some(t.p("home/proj/venv/bin/python")));
    assert_eq!(
        plan.argv[0],
        t.p("home/proj/venv/bin/python").to_str().unwrap()
    );
    // The project holds the venv; the base prefix is outside it.
    assert_eq!(plan.read, vec![t.home().join("proj"), t.p("opt/py312")]);
    assert!(noted(&plan.notes, "venv"), "{:?}", plan.notes);
}

#[test]
fn venv_outside_project_and_copied_python_uses_home() {
    let t = Tree::new();
    t.python_prefix("opt/py311", "3.11");
    // --copies: the venv's python is a file, only pyvenv.cfg's home leads out.
    t.exe("home/envs/e1/bin/python", "\x7fELF copy");
    t.file(
        "home/envs/e1/pyvenv.cfg",
        &format!("home = {}\n", t.p("opt/py311/bin").display()),
    );
    t.file("home/srv/main.py", "");
    t.mkdir("home/srv/.git");
    let env = t.env("home", &[]);
    let cmd = s(&[
        t.p("home/envs/e1/bin/python").to_str().unwrap(),
        "-u",
        "srv/main.py",
    ]);
    let plan = analyze(&cmd, &env).unwrap();
    assert_eq!(
        plan.read,
        vec![t.p("home/envs/e1"), t.p("home/srv"), t.p("opt/py311")]
    );
}

#[test]
fn venv_whose_home_is_not_a_python_grants_no_base() {
    let t = Tree::new();
    t.mkdir("home/.ssh");
    t.exe("home/v/bin/python", "");
    t.file(
        "home/v/pyvenv.cfg",
        &format!("home = {}\n", t.home().join(".ssh/x").display()),
    );
    let env = t.env("home", &[]);
    let plan = analyze(
        &s(&[t.p("home/v/bin/python").to_str().unwrap(), "-c", "1"]),
        &env,
    )
    .unwrap();
    assert_eq!(plan.read, vec![t.p("home/v")]);
    assert!(noted(&plan.notes, "base interpreter"), "{:?}", plan.notes);
}

#[test]
fn plain_interpreter_on_path_grants_its_prefix() {
    let t = Tree::new();
    t.python_prefix("opt/python", "3.13");
    let env = t.env("home", &["opt/python/bin"]);
    let plan = analyze(&s(&["python3", "-m", "http.server"]), &env).unwrap();
    assert_eq!(plan.read, vec![t.p("opt/python")]);
    assert_eq!(plan.program, Some(t.p("opt/python/bin/python3")));
}

#[test]
fn interpreter_with_prefix_dot_local_grants_only_stdlib_and_binary() {
    let t = Tree::new();
    let real = t.python_prefix("home/.local", "3.12");
    t.file("home/.local/lib/libpython3.12.so.1.0", "");
    t.file("home/.local/share/keyrings/login.keyring", "secret");
    let env = t.env("home", &["home/.local/bin"]);
    let plan = analyze(&s(&["python3", "-c", "1"]), &env).unwrap();
    assert_eq!(
        plan.read,
        vec![
            real,
            t.p("home/.local/lib/libpython3.12.so.1.0"),
            t.p("home/.local/lib/python3.12"),
        ]
    );
    assert!(noted(&plan.notes, "too wide"), "{:?}", plan.notes);
}

#[test]
fn script_in_home_itself_grants_only_the_file() {
    let t = Tree::new();
    t.python_prefix("opt/py", "3.12");
    t.mkdir("home/.git"); // a dotfiles repository does not make ~ a project
    let script = t.file("home/server.py", "");
    let env = t.env("home", &["opt/py/bin"]);
    let plan = analyze(&s(&["python3", "server.py"]), &env).unwrap();
    assert_eq!(plan.read, vec![script, t.p("opt/py")]);
    assert!(
        noted(&plan.notes, "granted only the file"),
        "{:?}",
        plan.notes
    );
}

#[test]
fn script_without_marker_grants_its_directory() {
    let t = Tree::new();
    t.python_prefix("opt/py", "3.12");
    t.file("home/tools/mcp/server.py", "");
    let env = t.env("home", &["opt/py/bin"]);
    let plan = analyze(
        &s(&[
            "python3",
            "-X",
            "utf8",
            "tools/mcp/server.py",
            "--port",
            "1",
        ]),
        &env,
    )
    .unwrap();
    assert_eq!(plan.read, vec![t.p("home/tools/mcp"), t.p("opt/py")]);
}

#[test]
fn symlinked_script_grants_its_real_project() {
    let t = Tree::new();
    t.python_prefix("opt/py", "3.12");
    t.file("home/code/srv/pyproject.toml", "");
    t.file("home/code/srv/src/srv/main.py", "");
    t.symlink("home/bin/srv.py", t.p("home/code/srv/src/srv/main.py"));
    let env = t.env("home", &["opt/py/bin"]);
    let plan = analyze(&s(&["python3", "bin/srv.py"]), &env).unwrap();
    assert_eq!(plan.read, vec![t.p("home/code/srv"), t.p("opt/py")]);
}

#[test]
fn missing_script_is_a_note_not_a_grant() {
    let t = Tree::new();
    t.python_prefix("opt/py", "3.12");
    let env = t.env("home", &["opt/py/bin"]);
    let plan = analyze(&s(&["python3", "nope.py"]), &env).unwrap();
    assert_eq!(plan.read, vec![t.p("opt/py")]);
    assert!(noted(&plan.notes, "nope.py not found"), "{:?}", plan.notes);
}

#[test]
fn module_in_cwd_grants_the_cwd_project() {
    let t = Tree::new();
    t.python_prefix("opt/py", "3.12");
    t.file("home/proj/pyproject.toml", "");
    t.file("home/proj/mysrv/__init__.py", "");
    let env = t.env("home/proj", &["opt/py/bin"]);
    let plan = analyze(&s(&["python3", "-m", "mysrv.main"]), &env).unwrap();
    assert_eq!(plan.read, vec![t.p("home/proj"), t.p("opt/py")]);
    // A module not in the cwd grants nothing more.
    let plan = analyze(&s(&["python3", "-um", "json.tool"]), &env).unwrap();
    assert_eq!(plan.read, vec![t.p("opt/py")]);
}

#[test]
fn pythonpath_and_pythonhome_are_granted() {
    let t = Tree::new();
    t.python_prefix("opt/py", "3.12");
    t.mkdir("home/libs/a");
    let env = t.env("home", &["opt/py/bin"]);
    let env = with_var(
        env,
        "PYTHONPATH",
        format!("{}:relative", t.p("home/libs/a").display()),
    );
    let plan = analyze(&s(&["python3", "-c", "1"]), &env).unwrap();
    assert_eq!(plan.read, vec![t.p("home/libs/a"), t.p("opt/py")]);
    assert!(noted(&plan.notes, "relative"), "{:?}", plan.notes);
}

#[test]
fn shebang_script_with_venv_python_is_analyzed_as_python() {
    let t = Tree::new();
    let base = t.python_prefix("opt/py", "3.12");
    t.symlink("home/.local/share/uv/tools/fetch/bin/python", &base);
    t.file(
        "home/.local/share/uv/tools/fetch/pyvenv.cfg",
        &format!("home = {}\n", t.p("opt/py/bin").display()),
    );
    t.exe(
        "home/.local/share/uv/tools/fetch/bin/mcp-server-fetch",
        &format!(
            "#!{}\nimport sys\n",
            t.p("home/.local/share/uv/tools/fetch/bin/python").display()
        ),
    );
    t.symlink(
        "home/.local/bin/mcp-server-fetch",
        t.p("home/.local/share/uv/tools/fetch/bin/mcp-server-fetch"),
    );
    let env = t.env("home", &["home/.local/bin"]);
    let plan = analyze(&s(&["mcp-server-fetch", "--x"]), &env).unwrap();
    assert_eq!(plan.launcher, Launcher::Python);
    assert_eq!(
        plan.read,
        vec![t.p("home/.local/share/uv/tools/fetch"), t.p("opt/py")]
    );
    assert_eq!(plan.argv[1], "--x");
}

#[test]
fn pip_long_path_shebang_trick_is_followed() {
    let t = Tree::new();
    let base = t.python_prefix("opt/py", "3.12");
    t.symlink("home/v/bin/python", &base);
    t.file(
        "home/v/pyvenv.cfg",
        &format!("home = {}\n", t.p("opt/py/bin").display()),
    );
    t.exe(
        "home/v/bin/tool",
        &format!(
            "#!/bin/sh\n'''exec' \"{}\" \"$0\" \"$@\"\n' '''\nimport x\n",
            t.p("home/v/bin/python").display()
        ),
    );
    let env = t.env("home", &[]);
    let plan = analyze(&s(&[t.p("home/v/bin/tool").to_str().unwrap()]), &env).unwrap();
    assert_eq!(plan.launcher, Launcher::Python);
    assert_eq!(plan.read, vec![t.p("home/v"), t.p("opt/py")]);
}

#[test]
fn python_not_found_is_noted() {
    let t = Tree::new();
    let env = t.env("home", &[]);
    let plan = analyze(&s(&["python3.99", "x.py"]), &env).unwrap();
    assert_eq!(plan.program, None);
    assert!(noted(&plan.notes, "not found on PATH"), "{:?}", plan.notes);
}
