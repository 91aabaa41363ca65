//! `uv run`: a script or command in a uv project's environment.

use std::path::{Path, PathBuf};

use crate::plan::Builder;
use crate::resolve::{absolutize, find_upward, is_executable, read_small};
use crate::script::{grant_project_dir, grant_script};

/// `uv run` options that take the next argument as their value (the
/// `uv tool run` ones plus the project ones).
#[rustfmt::skip] // an option table: one long list, not one item a line
const RUN_VALUES: &[&str] = &[
    "with", "with-editable", "with-requirements", "python", "p", "directory", "project",
    "env-file", "extra", "group", "only-group", "no-group", "package", "index", "default-index",
    "index-url", "i", "extra-index-url", "find-links", "f", "cache-dir", "config-file", "color",
    "python-preference", "allow-insecure-host", "config-setting", "C", "refresh-package",
    "reinstall-package", "upgrade-package", "P", "exclude-newer", "resolution", "prerelease",
    "link-mode", "index-strategy", "keyring-provider", "python-platform", "no-binary-package",
    "no-build-package", "torch-backend", "exclude-newer-package", "fork-strategy", "no-extra",
    "constraints", "overrides",
];

/// What the options said.
#[derive(Default)]
struct RunOpts {
    directory: Option<String>,
    project: Option<String>,
    cache_dir: Option<String>,
    with: bool,
    module: bool,
    no_project: bool,
    script: bool,
}

/// `uv ARGS` where the subcommand at `run_at` is `run`.
pub(crate) fn analyze_run(b: &mut Builder, args: &[String], run_at: usize) {
    let mut o = RunOpts::default();
    let mut i = 0;
    let mut command = Vec::new();
    while let Some(a) = args.get(i) {
        i += 1;
        if i - 1 == run_at {
            continue;
        }
        if a == "--" {
            command.extend(args[i..].iter().cloned());
            break;
        }
        let Some(stripped) = a.strip_prefix('-') else {
            command.extend(args[i - 1..].iter().cloned());
            break;
        };
        let (key, inline) = match stripped.strip_prefix('-') {
            Some(long) => match long.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (long.to_owned(), None),
            },
            None => (stripped.chars().take(1).collect(), {
                let rest: String = stripped.chars().skip(1).collect();
                (!rest.is_empty()).then_some(rest)
            }),
        };
        let value = match inline {
            Some(v) => Some(v),
            None if RUN_VALUES.contains(&key.as_str()) => {
                i += 1;
                args.get(i - 1).cloned()
            }
            None => None,
        };
        match key.as_str() {
            "directory" => o.directory = value,
            "project" => o.project = value,
            "cache-dir" => o.cache_dir = value,
            "with" | "with-editable" | "with-requirements" => o.with = true,
            "m" | "module" => o.module = true,
            "s" | "script" => o.script = true,
            "no-project" | "isolated" => o.no_project = true,
            _ => {}
        }
    }
    let env = b.env;
    let cwd = match &o.directory {
        Some(d) => absolutize(Path::new(d), &env.cwd),
        None => env.cwd.clone(),
    };
    let Some((first, rest)) = command.split_first() else {
        b.note("uv run with no command");
        return;
    };
    let project = if o.no_project || o.script {
        None
    } else if let Some(p) = &o.project {
        Some(absolutize(Path::new(p), &cwd))
    } else {
        find_upward(&cwd, &["pyproject.toml"]).and_then(|f| f.parent().map(Path::to_path_buf))
    };
    let venv = project.as_ref().map(|p| project_venv(b, p));
    if let Some(p) = &project {
        grant_project_dir(b, p, "uv project");
        b.note(format!(
            "uv run syncs {} before running; without network that works only if it is \
             already in sync (run `uv sync` there first)",
            p.display()
        ));
    }
    let python = venv.as_ref().map(|v| v.join("bin/python"));
    match &python {
        Some(py) if py.exists() => crate::python::runtime(b, py),
        Some(py) => b.note(format!(
            "uv run: {} does not exist yet; uv would create it at start (network, writes): \
             run `uv sync` first",
            py.display()
        )),
        None => b.note(
            "uv run outside a project: uv picks an interpreter itself; if it is not a system \
             one, add --allow-read for it",
        ),
    }
    let mut ephemeral = o.with;
    if o.module {
        b.note(format!(
            "uv run -m {first}: a module of the project's environment"
        ));
    } else if first.ends_with(".py") || o.script {
        if let Some(real) = grant_script(b, first, &cwd) {
            if read_small(&real).is_some_and(|t| t.contains("# /// script")) {
                b.note(format!(
                    "{first} declares inline dependencies (PEP 723): uv builds its environment \
                     in its cache at start"
                ));
                ephemeral = true;
            }
            if let Some(py) = python.as_ref().filter(|p| p.exists()) {
                b.note(format!(
                    "without uv, the same runs as: {} {}",
                    py.display(),
                    real.display()
                ));
            }
        }
    } else if crate::python::is_python(first) {
        if let crate::python::Target::Script(s) = crate::python::target(rest) {
            grant_script(b, &s, &cwd);
        }
    } else {
        let in_venv = venv
            .as_ref()
            .map(|v| v.join("bin").join(first))
            .filter(|p| is_executable(p));
        match in_venv {
            Some(p) => b.note(format!("uv run {first}: {}", p.display())),
            None => b.note(format!(
                "uv run {first}: not in a project environment; uv looks it up on PATH"
            )),
        }
        // `uv run --with mcp mcp run server.py`: scripts among the arguments.
        for a in rest.iter().filter(|a| a.ends_with(".py")) {
            grant_script(b, a, &cwd);
        }
    }
    crate::script::note_dir_args(b, rest, &cwd);
    if ephemeral {
        let cache = o
            .cache_dir
            .map(|c| absolutize(Path::new(&c), &cwd))
            .or_else(|| env.var_dir("UV_CACHE_DIR"))
            .or_else(|| env.xdg("XDG_CACHE_HOME", ".cache").map(|c| c.join("uv")));
        if let Some(c) = cache {
            if b.grant_dir(&c, "uv cache") {
                b.note(format!(
                    "uv run builds a throwaway environment in {}: it needs network unless \
                     everything is cached, and write access there",
                    c.display()
                ));
            }
        }
    }
}

/// The project's environment: `UV_PROJECT_ENVIRONMENT` (relative to the
/// project) or `.venv`.
fn project_venv(b: &Builder, project: &Path) -> PathBuf {
    match b.env.var("UV_PROJECT_ENVIRONMENT") {
        Some(v) => absolutize(Path::new(v), project),
        None => project.join(".venv"),
    }
}
