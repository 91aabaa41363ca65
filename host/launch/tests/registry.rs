//! Registry hosts and the config files the fetch reads, from fake configs.

use crate::common::{Tree, s, with_var};
use bulkhead_launch::{
    LaunchEnv, LaunchError, PackageRef, analyze, registry_hosts, registry_settings,
};

fn pkg(env: &LaunchEnv, cmd: &[&str]) -> PackageRef {
    analyze(&s(cmd), env).unwrap().package.unwrap()
}

/// An environment with no system config leaking in: only what the test
/// writes under the tree counts (`/etc/uv/uv.toml`, `/etc/pip.conf` exist
/// or not on the machine running the tests).
fn isolated(t: &Tree, cwd: &str) -> LaunchEnv {
    let env = t.env(cwd, &[]);
    let env = with_var(env, "XDG_CONFIG_DIRS", t.p("etc-xdg").to_str().unwrap());
    with_var(
        env,
        "XDG_CONFIG_HOME",
        t.p("home/.config").to_str().unwrap(),
    )
}

#[test]
fn npm_defaults() {
    let t = Tree::new();
    let env = isolated(&t, "home");
    let p = pkg(
        &env,
        &["npx", "-y", "@modelcontextprotocol/server-everything"],
    );
    assert_eq!(
        registry_hosts(&p, &env).unwrap(),
        vec!["registry.npmjs.org"]
    );
}

#[test]
fn npmrc_registry_scope_expansion_cafile_and_auth_ignored() {
    let t = Tree::new();
    let ca = t.file("home/certs/corp.pem", "");
    t.file(
        "home/.npmrc",
        &format!(
            "; user config\nregistry = \"https://npm.${{CORP}}.example/\"\n\
             @corp:registry=https://npm.corp.example:8443/scoped/\n\
             //npm.corp.example/:_authToken=${{NPM_TOKEN}}\ncafile={}\n",
            ca.display()
        ),
    );
    let env = with_var(isolated(&t, "home"), "CORP", "internal");
    let p = pkg(&env, &["npx", "@corp/srv"]);
    let st = registry_settings(&p, &env).unwrap();
    assert_eq!(
        st.hosts,
        vec!["npm.corp.example:8443", "npm.internal.example"]
    );
    assert!(st.read.contains(&t.p("home/.npmrc")));
    assert!(st.read.contains(&ca));
}

#[test]
fn npm_env_and_command_line_override_files() {
    let t = Tree::new();
    t.file("home/.npmrc", "registry=https://from-file.example/\n");
    let env = with_var(
        isolated(&t, "home"),
        "NPM_CONFIG_REGISTRY",
        "https://from-env.example/",
    );
    let p = pkg(&env, &["npx", "srv"]);
    let st = registry_settings(&p, &env).unwrap();
    assert_eq!(st.hosts, vec!["from-env.example"]);
    assert!(st.env.contains(&(
        "NPM_CONFIG_REGISTRY".into(),
        "https://from-env.example/".into()
    )));
    let p = pkg(&env, &["npx", "--registry=http://localhost:4873", "srv"]);
    assert_eq!(registry_hosts(&p, &env).unwrap(), vec!["localhost:4873"]);
}

#[test]
fn project_npmrc_is_carried_into_the_fetch() {
    let t = Tree::new();
    t.file("home/app/package.json", "{}");
    t.file("home/app/.npmrc", "registry=https://proj.example/npm/\n");
    let env = isolated(&t, "home/app");
    let p = pkg(&env, &["npx", "srv"]);
    let st = registry_settings(&p, &env).unwrap();
    assert_eq!(st.hosts, vec!["proj.example"]);
    assert!(st.env.contains(&(
        "npm_config_registry".into(),
        "https://proj.example/npm/".into()
    )));
}

#[test]
fn proxy_is_a_host_too() {
    let t = Tree::new();
    let env = with_var(
        isolated(&t, "home"),
        "HTTPS_PROXY",
        "http://user:pw@proxy.corp:3128",
    );
    let p = pkg(&env, &["uvx", "srv"]);
    let st = registry_settings(&p, &env).unwrap();
    assert_eq!(
        st.hosts,
        vec!["pypi.org", "files.pythonhosted.org", "proxy.corp:3128"]
    );
}

#[test]
fn uv_defaults_and_uv_toml() {
    let t = Tree::new();
    let env = isolated(&t, "home");
    let p = pkg(&env, &["uvx", "mcp-server-fetch"]);
    assert_eq!(
        registry_hosts(&p, &env).unwrap(),
        vec!["pypi.org", "files.pythonhosted.org"]
    );
    t.file(
        "home/.config/uv/uv.toml",
        "index-url = \"https://pypi.corp.example/simple\"\n\
         extra-index-url = [\"https://extra.example/simple\"]\n\
         [[index]]\nname = \"x\"\nurl = \"https://idx.example/simple\"\n\
         [pip]\nfind-links = [\"/opt/wheels\", \"https://wheels.example/\"]\n",
    );
    let st = registry_settings(&p, &env).unwrap();
    assert_eq!(
        st.hosts,
        vec![
            "pypi.corp.example",
            "extra.example",
            "idx.example",
            "wheels.example"
        ]
    );
    assert!(st.read.contains(&t.p("home/.config/uv/uv.toml")));
}

#[test]
fn uv_project_config_env_and_no_config() {
    let t = Tree::new();
    t.file(
        "home/p/pyproject.toml",
        "[project]\nname='p'\n[tool.uv]\nindex-url = \"https://proj.example/simple\"\n",
    );
    t.mkdir("home/p/sub");
    let env = isolated(&t, "home/p/sub");
    let p = pkg(&env, &["uvx", "srv"]);
    assert_eq!(registry_hosts(&p, &env).unwrap(), vec!["proj.example"]);
    let env = with_var(env, "UV_INDEX_URL", "https://env.example/simple");
    let st = registry_settings(&p, &env).unwrap();
    assert_eq!(st.hosts, vec!["env.example", "proj.example"]);
    assert!(
        st.env
            .contains(&("UV_INDEX_URL".into(), "https://env.example/simple".into()))
    );
    let env = with_var(env, "UV_NO_CONFIG", "1");
    assert_eq!(registry_hosts(&p, &env).unwrap(), vec!["env.example"]);
    let p = pkg(
        &env,
        &["uvx", "--index-url", "https://cli.example/simple", "srv"],
    );
    assert_eq!(
        registry_hosts(&p, &env).unwrap(),
        vec!["cli.example", "env.example"]
    );
}

#[test]
fn pip_conf_for_pipx_with_continuation_and_find_links() {
    let t = Tree::new();
    t.mkdir("wheels");
    t.file(
        "home/.config/pip/pip.conf",
        &format!(
            "[global]\nindex-url = https://pip.corp.example/simple\nextra-index-url =\n    \
             https://a.example/simple\n    https://b.example/simple\nfind-links = {}\n",
            t.p("wheels").display()
        ),
    );
    let env = with_var(isolated(&t, "home"), "UV_NO_CONFIG", "1");
    let p = pkg(&env, &["pipx", "run", "srv"]);
    let st = registry_settings(&p, &env).unwrap();
    assert_eq!(
        st.hosts,
        vec![
            "pip.corp.example",
            "a.example",
            "b.example",
            "pypi.org",
            "files.pythonhosted.org"
        ]
    );
    assert!(st.read.contains(&t.p("wheels")));
    assert!(st.read.contains(&t.p("home/.config/pip/pip.conf")));
}

#[test]
fn oversize_and_broken_configs_are_named_errors() {
    let t = Tree::new();
    t.file("home/.npmrc", &"x".repeat(2 << 20));
    let env = isolated(&t, "home");
    let p = pkg(&env, &["npx", "srv"]);
    match registry_settings(&p, &env) {
        Err(LaunchError::ConfigTooLarge { path, .. }) => assert_eq!(path, t.p("home/.npmrc")),
        other => panic!("{other:?}"),
    }
    t.file(
        "home/.config/uv/uv.toml",
        "index-url = \"ok\"\n[[index]\nurl = 1\n",
    );
    let p = pkg(&env, &["uvx", "srv"]);
    match registry_settings(&p, &env) {
        Err(LaunchError::ConfigParse { path, line, .. }) => {
            assert_eq!(path, t.p("home/.config/uv/uv.toml"));
            assert_eq!(line, 2);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn non_http_registry_is_a_note_not_a_host() {
    let t = Tree::new();
    t.file("home/.npmrc", "registry=ftp://weird/\n");
    let env = isolated(&t, "home");
    let p = pkg(&env, &["npx", "srv"]);
    let st = registry_settings(&p, &env).unwrap();
    assert!(st.hosts.is_empty());
    assert!(
        st.notes.iter().any(|n| n.contains("not an http(s) URL")),
        "{:?}",
        st.notes
    );
}

#[test]
fn bunfig_registry_replaces_npms_default() {
    let t = Tree::new();
    t.file(
        "home/.bunfig.toml",
        "[install]\nregistry = { url = \"https://bun.corp.example/\", token = \"x\" }\n\
         [install.scopes]\nteam = \"https://team.example/\"\n",
    );
    let env = isolated(&t, "home");
    let p = pkg(&env, &["bunx", "srv"]);
    let st = registry_settings(&p, &env).unwrap();
    assert_eq!(st.hosts, vec!["bun.corp.example", "team.example"]);
    assert!(st.read.contains(&t.p("home/.bunfig.toml")));
}

#[test]
fn npm_settings_the_fetch_owns_are_not_passed_through() {
    let t = Tree::new();
    let env = with_var(isolated(&t, "home"), "npm_config_cache", "/elsewhere");
    let env = with_var(env, "npm_config_strict_ssl", "false");
    let p = pkg(&env, &["npx", "srv"]);
    let st = registry_settings(&p, &env).unwrap();
    assert!(
        !st.env.iter().any(|(k, _)| k == "npm_config_cache"),
        "{:?}",
        st.env
    );
    assert!(
        st.env.iter().any(|(k, _)| k == "npm_config_strict_ssl"),
        "{:?}",
        st.env
    );
}
