//! Version managers, on fake layouts: pyenv, asdf, mise, volta (shims
//! resolved from their files), nvm and fnm (real binaries behind symlinks).

use crate::common::{Tree, noted, s, with_var};
use bulkhead_launch::{Launcher, analyze};

fn pyenv_shim(t: &Tree, name: &str) {
    t.exe(
        &format!("home/.pyenv/shims/{name}"),
        &format!(
            "#!/usr/bin/env bash\nset -e\nprogram=\"${{0##*/}}\"\nexport PYENV_ROOT=\"{root}\"\n\
             exec \"{root}/libexec/pyenv\" exec \"$program\" \"$@\"\n",
            root = t.p("home/.pyenv").display()
        ),
    );
}

fn pyenv_tree() -> Tree {
    let t = Tree::new();
    pyenv_shim(&t, "python3");
    pyenv_shim(&t, "python");
    t.python_prefix("home/.pyenv/versions/3.11.7", "3.11");
    t.python_prefix("home/.pyenv/versions/3.12.1", "3.12");
    t.python_prefix("home/.pyenv/versions/3.12.10", "3.12");
    t.file("home/.pyenv/version", "3.11.7\n");
    t.mkdir("home/work/proj");
    t
}

#[test]
fn pyenv_global_version_file() {
    let t = pyenv_tree();
    let env = t.env("home/work/proj", &["home/.pyenv/shims"]);
    let plan = analyze(&s(&["python3", "-c", "1"]), &env).unwrap();
    assert_eq!(
        plan.program,
        Some(t.p("home/.pyenv/versions/3.11.7/bin/python3"))
    );
    assert_eq!(plan.read, vec![t.p("home/.pyenv/versions/3.11.7")]);
    assert_eq!(
        plan.path_prepend,
        vec![t.p("home/.pyenv/versions/3.11.7/bin")]
    );
    assert!(noted(&plan.notes, "pyenv shim"), "{:?}", plan.notes);
}

#[test]
fn pyenv_python_version_file_up_the_tree_and_prefix_versions() {
    let t = pyenv_tree();
    // "3.12" is a prefix: the highest installed 3.12.x (3.12.10 > 3.12.1).
    t.file("home/work/.python-version", "# pinned\n3.12\n");
    let env = t.env("home/work/proj", &["home/.pyenv/shims"]);
    let plan = analyze(&s(&["python3", "-c", "1"]), &env).unwrap();
    assert_eq!(plan.read, vec![t.p("home/.pyenv/versions/3.12.10")]);
}

#[test]
fn pyenv_version_env_wins_and_falls_through_a_list() {
    let t = pyenv_tree();
    t.file("home/work/proj/.python-version", "3.11.7\n");
    let env = with_var(
        t.env("home/work/proj", &["home/.pyenv/shims"]),
        "PYENV_VERSION",
        "3.9.0:3.12.1",
    );
    let plan = analyze(&s(&["python", "-c", "1"]), &env).unwrap();
    assert_eq!(plan.read, vec![t.p("home/.pyenv/versions/3.12.1")]);
}

#[test]
fn pyenv_version_with_path_traversal_is_refused() {
    let t = pyenv_tree();
    t.mkdir("home/.ssh");
    t.file("home/work/proj/.python-version", "../../.ssh\n");
    let env = t.env("home/work/proj", &["home/.pyenv/shims"]);
    let plan = analyze(&s(&["python3", "-c", "1"]), &env).unwrap();
    assert!(plan.read.is_empty(), "{:?}", plan.read);
    assert!(noted(&plan.notes, "not a version name"), "{:?}", plan.notes);
    assert!(
        noted(
            &plan.notes,
            &format!("--allow-read {}", t.p("home/.pyenv").display())
        ),
        "{:?}",
        plan.notes
    );
    // The shim stays the program: nothing better is known.
    assert_eq!(plan.program, Some(t.p("home/.pyenv/shims/python3")));
}

#[test]
fn pyenv_symlinked_version_escaping_the_tree_is_refused() {
    let t = pyenv_tree();
    t.python_prefix("elsewhere/py", "3.10");
    t.symlink("home/.pyenv/versions/evil", t.p("elsewhere/py"));
    t.file("home/work/proj/.python-version", "evil\n");
    let env = t.env("home/work/proj", &["home/.pyenv/shims"]);
    let plan = analyze(&s(&["python3", "-c", "1"]), &env).unwrap();
    assert!(plan.read.is_empty(), "{:?}", plan.read);
}

#[test]
fn pyenv_missing_version_names_the_fix() {
    let t = pyenv_tree();
    t.file("home/work/proj/.python-version", "3.8.1\n");
    let env = t.env("home/work/proj", &["home/.pyenv/shims"]);
    let plan = analyze(&s(&["python3", "-c", "1"]), &env).unwrap();
    assert!(plan.read.is_empty());
    assert!(
        noted(&plan.notes, "could not be resolved"),
        "{:?}",
        plan.notes
    );
}

#[test]
fn pyenv_system_is_the_next_python_on_path() {
    let t = pyenv_tree();
    t.python_prefix("usr-ish", "3.10");
    t.file("home/work/proj/.python-version", "system\n");
    let env = t.env("home/work/proj", &["home/.pyenv/shims", "usr-ish/bin"]);
    let plan = analyze(&s(&["python3", "-c", "1"]), &env).unwrap();
    assert_eq!(plan.program, Some(t.p("usr-ish/bin/python3")));
    assert_eq!(plan.read, vec![t.p("usr-ish")]);
}

#[test]
fn pyenv_virtualenv_version_is_a_venv() {
    let t = pyenv_tree();
    let base = t.p("home/.pyenv/versions/3.12.1/bin/python3.12");
    t.symlink("home/.pyenv/versions/3.12.1/envs/tools/bin/python3", &base);
    t.file(
        "home/.pyenv/versions/3.12.1/envs/tools/pyvenv.cfg",
        &format!(
            "home = {}\n",
            t.p("home/.pyenv/versions/3.12.1/bin").display()
        ),
    );
    t.symlink(
        "home/.pyenv/versions/tools",
        t.p("home/.pyenv/versions/3.12.1/envs/tools"),
    );
    let env = with_var(
        t.env("home/work/proj", &["home/.pyenv/shims"]),
        "PYENV_VERSION",
        "tools",
    );
    let plan = analyze(&s(&["python3", "-c", "1"]), &env).unwrap();
    assert_eq!(plan.read, vec![t.p("home/.pyenv/versions/3.12.1")]);
    assert!(noted(&plan.notes, "venv"), "{:?}", plan.notes);
}

fn asdf_shim(t: &Tree, name: &str, plugin: &str, versions: &[&str]) {
    let mut text = String::from("#!/usr/bin/env bash\n");
    for v in versions {
        text.push_str(&format!("# asdf-plugin: {plugin} {v}\n"));
    }
    text.push_str(&format!(
        "exec asdf exec \"{name}\" \"$@\" # asdf_allow: ' asdf '\n"
    ));
    t.exe(&format!("home/.asdf/shims/{name}"), &text);
}

#[test]
fn asdf_tool_versions_up_the_tree() {
    let t = Tree::new();
    asdf_shim(&t, "node", "nodejs", &["20.11.0", "22.1.0"]);
    t.exe("home/.asdf/installs/nodejs/20.11.0/bin/node", "");
    t.exe("home/.asdf/installs/nodejs/22.1.0/bin/node", "");
    t.file(
        "home/work/.tool-versions",
        "python 3.12.1\nnodejs 22.1.0 # current\n",
    );
    t.file("home/work/app/index.js", "");
    t.file("home/work/app/package.json", "{}");
    let env = t.env("home/work/app", &["home/.asdf/shims"]);
    let plan = analyze(&s(&["node", "index.js"]), &env).unwrap();
    assert_eq!(plan.launcher, Launcher::Node);
    assert_eq!(
        plan.program,
        Some(t.p("home/.asdf/installs/nodejs/22.1.0/bin/node"))
    );
    assert_eq!(
        plan.read,
        vec![
            t.p("home/.asdf/installs/nodejs/22.1.0"),
            t.p("home/work/app")
        ]
    );
}

#[test]
fn asdf_home_tool_versions_and_env_override() {
    let t = Tree::new();
    asdf_shim(&t, "node", "nodejs", &["20.11.0"]);
    t.exe("home/.asdf/installs/nodejs/20.11.0/bin/node", "");
    t.exe("home/.asdf/installs/nodejs/18.0.0/bin/node", "");
    t.file("home/.tool-versions", "nodejs 20.11.0\n");
    let env = t.env("home", &["home/.asdf/shims"]);
    let plan = analyze(&s(&["node", "-e", "1"]), &env).unwrap();
    assert_eq!(plan.read, vec![t.p("home/.asdf/installs/nodejs/20.11.0")]);
    let env = with_var(env, "ASDF_NODEJS_VERSION", "18.0.0");
    let plan = analyze(&s(&["node", "-e", "1"]), &env).unwrap();
    assert_eq!(plan.read, vec![t.p("home/.asdf/installs/nodejs/18.0.0")]);
}

#[test]
fn asdf_without_a_version_is_unresolved() {
    let t = Tree::new();
    asdf_shim(&t, "python3", "python", &["3.12.1"]);
    let env = t.env("home", &["home/.asdf/shims"]);
    let plan = analyze(&s(&["python3", "-c", "1"]), &env).unwrap();
    assert!(plan.read.is_empty());
    assert!(
        noted(
            &plan.notes,
            &format!("--allow-read {}", t.p("home/.asdf").display())
        ),
        "{:?}",
        plan.notes
    );
}

fn mise_tree() -> Tree {
    let t = Tree::new();
    let mise = t.exe("home/.local/bin/mise", "\x7fELF mise");
    for n in ["node", "npx", "python3"] {
        t.symlink(&format!("home/.local/share/mise/shims/{n}"), &mise);
    }
    t.exe("home/.local/share/mise/installs/node/22.1.0/bin/node", "");
    t.exe("home/.local/share/mise/installs/node/22.1.0/bin/npx", "");
    t.exe("home/.local/share/mise/installs/node/20.9.0/bin/node", "");
    // mise's runtime symlink for the partial version.
    t.symlink("home/.local/share/mise/installs/node/22", "./22.1.0");
    t.python_prefix("home/.local/share/mise/installs/python/3.12.1", "3.12");
    t
}

#[test]
fn mise_toml_in_project_with_partial_version() {
    let t = mise_tree();
    t.file("home/app/mise.toml", "[tools]\nnode = \"22\"\n");
    t.file("home/app/server.js", "");
    let env = t.env("home/app", &["home/.local/share/mise/shims"]);
    let plan = analyze(&s(&["node", "server.js"]), &env).unwrap();
    assert_eq!(
        plan.program,
        Some(t.p("home/.local/share/mise/installs/node/22.1.0/bin/node"))
    );
    assert!(
        plan.read
            .contains(&t.p("home/.local/share/mise/installs/node/22.1.0"))
    );
}

#[test]
fn mise_tool_versions_alias_and_global_config() {
    let t = mise_tree();
    t.file("home/a/.tool-versions", "nodejs 20.9.0\n");
    let env = t.env("home/a", &["home/.local/share/mise/shims"]);
    let plan = analyze(&s(&["node", "-e", "1"]), &env).unwrap();
    assert_eq!(
        plan.read,
        vec![t.p("home/.local/share/mise/installs/node/20.9.0")]
    );
    t.file(
        "home/.config/mise/config.toml",
        "[tools]\npython = { version = \"3.12.1\" }\nnode = [\"latest\"]\n",
    );
    let env = t.env("home", &["home/.local/share/mise/shims"]);
    let plan = analyze(&s(&["python3", "-c", "1"]), &env).unwrap();
    assert_eq!(
        plan.read,
        vec![t.p("home/.local/share/mise/installs/python/3.12.1")]
    );
    let plan = analyze(&s(&["node", "-e", "1"]), &env).unwrap();
    assert_eq!(
        plan.read,
        vec![t.p("home/.local/share/mise/installs/node/22.1.0")]
    );
}

#[test]
fn mise_unknown_version_is_unresolved() {
    let t = mise_tree();
    let env = t.env("home", &["home/.local/share/mise/shims"]);
    let plan = analyze(&s(&["node", "-e", "1"]), &env).unwrap();
    assert!(plan.read.is_empty(), "{:?}", plan.read);
    assert!(
        noted(&plan.notes, "mise shim that could not be resolved"),
        "{:?}",
        plan.notes
    );
}

fn volta_tree() -> Tree {
    let t = Tree::new();
    let shim = t.exe("home/.volta/bin/volta-shim", "\x7fELF volta-shim");
    for n in ["node", "npm", "npx"] {
        t.symlink(&format!("home/.volta/bin/{n}"), &shim);
    }
    for v in ["20.11.0", "22.1.0"] {
        for n in ["node", "npm", "npx"] {
            t.exe(&format!("home/.volta/tools/image/node/{v}/bin/{n}"), "");
        }
    }
    t.exe("home/.volta/tools/image/npm/10.8.0/bin/npx", "");
    t.file(
        "home/.volta/tools/user/platform.json",
        r#"{"node":{"runtime":"20.11.0","npm":null},"pnpm":null,"yarn":null}"#,
    );
    t
}

#[test]
fn volta_default_platform() {
    let t = volta_tree();
    let env = t.env("home", &["home/.volta/bin"]);
    let plan = analyze(&s(&["node", "-e", "1"]), &env).unwrap();
    assert_eq!(
        plan.program,
        Some(t.p("home/.volta/tools/image/node/20.11.0/bin/node"))
    );
    assert_eq!(plan.read, vec![t.p("home/.volta/tools/image/node/20.11.0")]);
}

#[test]
fn volta_project_pin_with_npm() {
    let t = volta_tree();
    t.file(
        "home/app/package.json",
        r#"{"name":"app","volta":{"node":"22.1.0","npm":"10.8.0"}}"#,
    );
    t.file("home/app/index.js", "");
    let env = t.env("home/app", &["home/.volta/bin"]);
    let plan = analyze(&s(&["node", "index.js"]), &env).unwrap();
    assert_eq!(
        plan.read,
        vec![t.p("home/.volta/tools/image/node/22.1.0"), t.p("home/app")]
    );
    // npx from the pinned npm; node's image granted beside it.
    let plan = analyze(&s(&["npx", "-y", "some-server"]), &env).unwrap();
    assert_eq!(
        plan.program,
        Some(t.p("home/.volta/tools/image/npm/10.8.0/bin/npx"))
    );
    assert!(
        plan.read
            .contains(&t.p("home/.volta/tools/image/node/22.1.0")),
        "{:?}",
        plan.read
    );
}

#[test]
fn volta_node_from_a_shebang_is_rewritten_to_the_real_node() {
    let t = volta_tree();
    t.file("home/srv/package.json", "{}");
    t.exe(
        "home/srv/bin/server.js",
        "#!/usr/bin/env node\nconsole.log(1)\n",
    );
    let env = t.env("home", &["home/.volta/bin"]);
    let script = t.p("home/srv/bin/server.js");
    let plan = analyze(&s(&[script.to_str().unwrap(), "--stdio"]), &env).unwrap();
    assert_eq!(plan.launcher, Launcher::Node);
    let node = t.p("home/.volta/tools/image/node/20.11.0/bin/node");
    assert_eq!(
        plan.argv,
        s(&[node.to_str().unwrap(), script.to_str().unwrap(), "--stdio"])
    );
    assert_eq!(
        plan.read,
        vec![t.p("home/.volta/tools/image/node/20.11.0"), t.p("home/srv")]
    );
}

#[test]
fn volta_installed_package_binary_is_unresolved() {
    let t = volta_tree();
    let shim = t.p("home/.volta/bin/volta-shim");
    t.symlink("home/.volta/bin/tsc", shim);
    let env = t.env("home", &["home/.volta/bin"]);
    let plan = analyze(&s(&["tsc"]), &env).unwrap();
    assert!(
        noted(&plan.notes, "volta shim that could not be resolved"),
        "{:?}",
        plan.notes
    );
}

#[test]
fn nvm_node_is_real_and_its_version_dir_is_the_prefix() {
    let t = Tree::new();
    t.exe("home/.nvm/versions/node/v22.1.0/bin/node", "");
    t.symlink(
        "home/.nvm/versions/node/v22.1.0/bin/npx",
        "../lib/node_modules/npm/bin/npx-cli.js",
    );
    t.file(
        "home/.nvm/versions/node/v22.1.0/lib/node_modules/npm/bin/npx-cli.js",
        "",
    );
    t.file("home/app/package.json", "{}");
    t.file("home/app/dist/index.js", "");
    let env = t.env("home/app", &["home/.nvm/versions/node/v22.1.0/bin"]);
    let plan = analyze(&s(&["node", "dist/index.js"]), &env).unwrap();
    assert_eq!(
        plan.read,
        vec![t.p("home/.nvm/versions/node/v22.1.0"), t.p("home/app")]
    );
    assert!(
        noted(&plan.notes, "node v22.1.0 from nvm"),
        "{:?}",
        plan.notes
    );
}

#[test]
fn fnm_multishell_symlink_is_canonicalized() {
    let t = Tree::new();
    let inst = "home/.local/share/fnm/node-versions/v20.12.0/installation";
    t.exe(&format!("{inst}/bin/node"), "");
    t.symlink(
        "home/.local/state/fnm_multishells/4242_1700000000",
        t.p(inst),
    );
    let env = t.env(
        "home",
        &["home/.local/state/fnm_multishells/4242_1700000000/bin"],
    );
    let plan = analyze(&s(&["node", "-e", "1"]), &env).unwrap();
    assert_eq!(plan.program, Some(t.p(&format!("{inst}/bin/node"))));
    assert_eq!(plan.read, vec![t.p(inst)]);
    assert!(noted(&plan.notes, "fnm multishell"), "{:?}", plan.notes);
}

#[test]
fn pyenv_shim_for_a_python_script_runs_the_real_script() {
    let t = pyenv_tree();
    t.mkdir("home/.pyenv/.git"); // pyenv is a git checkout: never the "project"
    pyenv_shim(&t, "pip3");
    let real = t.exe(
        "home/.pyenv/versions/3.11.7/bin/pip3",
        &format!(
            "#!{}\nimport pip\n",
            t.p("home/.pyenv/versions/3.11.7/bin/python3.11").display()
        ),
    );
    let env = t.env("home", &["home/.pyenv/shims"]);
    let plan = analyze(&s(&["pip3", "--version"]), &env).unwrap();
    assert_eq!(plan.launcher, Launcher::Python);
    assert_eq!(plan.program, Some(real.clone()));
    assert_eq!(plan.argv, s(&[real.to_str().unwrap(), "--version"]));
    assert_eq!(plan.read, vec![t.p("home/.pyenv/versions/3.11.7")]);
}
