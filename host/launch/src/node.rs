//! JavaScript runtimes: node, bun and deno, their real prefixes, and the
//! script, module or package.json script they run.

use std::path::{Path, PathBuf};

use crate::plan::Builder;
use crate::resolve::absolutize;
use crate::script::{grant_cwd_project, grant_script};

/// Grants a runtime binary's prefix (`realpath(bin)/..`: `/usr`,
/// `~/.nvm/versions/node/v22.1.0`, fnm's `installation`, `~/.bun`), or only
/// the binary when the prefix is too wide (`~/.local`). Returns the real
/// binary.
pub(crate) fn runtime(b: &mut Builder, invoked: &Path, what: &str) -> Option<PathBuf> {
    let Ok(real) = invoked.canonicalize() else {
        b.note(format!("{what}: {} does not exist", invoked.display()));
        return None;
    };
    origin_note(b, invoked, &real);
    match real.parent().and_then(Path::parent) {
        Some(prefix) if b.too_wide(prefix).is_none() => {
            b.grant_dir(prefix, &format!("{what} prefix"));
            b.note(format!("{what}: prefix {}", prefix.display()));
        }
        _ => {
            b.grant_file(&real);
            b.note(format!(
                "{what}: {} sits in a directory too wide to grant; granted only the binary",
                real.display()
            ));
        }
    }
    Some(real)
}

/// Says where a node came from when a manager without shims put it there.
fn origin_note(b: &mut Builder, invoked: &Path, real: &Path) {
    let env = b.env;
    let nvm = env
        .var_dir("NVM_DIR")
        .or_else(|| env.home.as_ref().map(|h| h.join(".nvm")))
        .and_then(|d| d.canonicalize().ok());
    if let Some(v) = nvm.and_then(|d| {
        real.strip_prefix(d.join("versions/node"))
            .ok()
            .map(Path::to_path_buf)
    }) {
        if let Some(version) = v.iter().next() {
            b.note(format!("node {} from nvm", version.to_string_lossy()));
        }
    }
    if invoked
        .components()
        .any(|c| c.as_os_str().to_string_lossy().contains("fnm_multishells"))
    {
        b.note(format!(
            "fnm multishell link {} resolved to {} (the link lasts only as long as its shell; \
             the resolved path is used)",
            invoked.display(),
            real.display()
        ));
    }
}

/// Node options that take the next argument as their value.
#[rustfmt::skip] // an option table: one long list, not one item a line
const NODE_VALUES: &[&str] = &[
    "-r", "--require", "--import", "--loader", "--experimental-loader", "-C", "--conditions",
    "--input-type", "--title", "--env-file", "--env-file-if-exists", "--inspect-port",
    "--debug-port", "--redirect-warnings", "--diagnostic-dir", "--report-dir",
    "--report-directory", "--icu-data-dir", "--openssl-config", "--tls-cipher-list",
    "--tls-keylog", "--watch-path", "--disable-warning", "--dns-result-order",
    "--unhandled-rejections", "--experimental-config-file", "--secure-heap", "--secure-heap-min",
    "--max-http-header-size", "--heapsnapshot-signal", "--cpu-prof-dir", "--heap-prof-dir",
    "--localstorage-file", "--trace-event-categories",
];

/// Node options whose value is a file the process loads.
#[rustfmt::skip] // an option table: one long list, not one item a line
const NODE_FILE_VALUES: &[&str] = &[
    "-r", "--require", "--import", "--loader", "--experimental-loader", "--env-file",
    "--env-file-if-exists",
];

/// node ARGS: grants the script, and files named by `--require`,
/// `--import`, `--loader`, `--env-file` when they are paths.
pub(crate) fn analyze_node(b: &mut Builder, args: &[String], cwd: &Path) {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        i += 1;
        if a == "--" {
            if let Some(s) = args.get(i) {
                grant_script(b, s, cwd);
            }
            return;
        }
        if matches!(a.as_str(), "-e" | "--eval" | "-p" | "--print") {
            b.note("node -e/-p: code on the command line, no script to grant");
            return;
        }
        if a == "-" {
            b.note("node reads its program from stdin; no script to grant");
            return;
        }
        if a.starts_with('-') {
            let (key, inline) = match a.split_once('=') {
                Some((k, v)) => (k, Some(v.to_owned())),
                None => (a.as_str(), None),
            };
            let value = match inline {
                Some(v) => Some(v),
                None if NODE_VALUES.contains(&key) => {
                    i += 1;
                    args.get(i - 1).cloned()
                }
                None => None,
            };
            if let Some(v) = value.filter(|_| NODE_FILE_VALUES.contains(&key)) {
                if v.starts_with(['.', '/']) {
                    grant_script(b, &v, cwd);
                }
            }
            continue;
        }
        grant_script(b, a, cwd);
        crate::script::note_dir_args(b, &args[i..], cwd);
        return;
    }
    b.note("node with no script reads its program from stdin; no script to grant");
}

/// Bun options that take the next argument as their value.
#[rustfmt::skip] // an option table: one long list, not one item a line
const BUN_VALUES: &[&str] = &[
    "--cwd", "-r", "--preload", "--env-file", "-c", "--config", "--tsconfig-override", "-d",
    "--define", "-l", "--loader", "--conditions", "--main-fields", "--extension-order",
    "--jsx-factory", "--jsx-fragment", "--jsx-import-source", "--jsx-runtime", "--port",
    "--install", "-F", "--filter", "--shell", "--origin", "--elide-lines",
];

/// What `bun ARGS` does.
pub(crate) enum BunCommand {
    /// Runs a file, a package.json script or a bin (granted here).
    Run,
    /// `bun x`: a package launcher; the arguments after `x`.
    X(usize),
    /// Another subcommand (install, test, build…).
    Other(String),
}

/// bun ARGS: `bun [run] FILE`, `bun [run] SCRIPT` (from package.json),
/// `bun x …` (returned for the package launcher).
pub(crate) fn analyze_bun(b: &mut Builder, args: &[String], cwd: &Path) -> BunCommand {
    let mut cwd = cwd.to_path_buf();
    let mut i = 0;
    let mut saw_run = false;
    while let Some(a) = args.get(i) {
        i += 1;
        if a.starts_with('-') && a != "-" {
            let (key, inline) = match a.split_once('=') {
                Some((k, v)) => (k, Some(v.to_owned())),
                None => (a.as_str(), None),
            };
            if matches!(key, "-e" | "--eval" | "-p" | "--print") {
                b.note("bun -e/-p: code on the command line, no script to grant");
                return BunCommand::Run;
            }
            let value = match inline {
                Some(v) => Some(v),
                None if BUN_VALUES.contains(&key) => {
                    i += 1;
                    args.get(i - 1).cloned()
                }
                None => None,
            };
            if key == "--cwd" {
                if let Some(v) = value {
                    cwd = absolutize(Path::new(&v), &cwd);
                }
            }
            continue;
        }
        if !saw_run {
            match a.as_str() {
                "run" => {
                    saw_run = true;
                    continue;
                }
                "x" => return BunCommand::X(i),
                "install" | "i" | "add" | "a" | "remove" | "rm" | "update" | "test" | "build"
                | "pm" | "create" | "c" | "init" | "upgrade" | "link" | "unlink" | "publish"
                | "outdated" | "patch" | "repl" | "exec" | "info" | "audit" | "why" => {
                    return BunCommand::Other(a.clone());
                }
                _ => {}
            }
        }
        let path = absolutize(Path::new(a), &cwd);
        if path.exists() {
            grant_script(b, a, &cwd);
        } else {
            grant_cwd_project(
                b,
                &cwd,
                &format!("bun run {a} (a package.json script or bin)"),
            );
        }
        crate::script::note_dir_args(b, &args[i..], &cwd);
        return BunCommand::Run;
    }
    b.note("bun with nothing to run");
    BunCommand::Run
}

/// Deno options that take the next argument as their value (most of
/// deno's take theirs only after `=`).
#[rustfmt::skip] // an option table: one long list, not one item a line
const DENO_VALUES: &[&str] = &[
    "-c", "--config", "--import-map", "--cert", "--location", "--seed", "--ext", "-L",
    "--log-level", "--preload", "--watch-exclude", "--port", "--host",
];

/// deno ARGS: `deno run|serve [opts] TARGET`, `deno TARGET`, `deno task`.
pub(crate) fn analyze_deno(b: &mut Builder, args: &[String], cwd: &Path) {
    let deno_dir = b.env.var_dir("DENO_DIR").or_else(|| {
        b.env
            .xdg("XDG_CACHE_HOME", ".cache")
            .map(|c| c.join("deno"))
    });
    let mut i = 0;
    let mut sub = None;
    while let Some(a) = args.get(i) {
        i += 1;
        if a.starts_with('-') {
            if !a.contains('=') && DENO_VALUES.contains(&a.as_str()) {
                i += 1;
            }
            continue;
        }
        if sub.is_none() {
            match a.as_str() {
                "run" | "serve" => {
                    sub = Some(a.clone());
                    continue;
                }
                "task" => {
                    grant_cwd_project(b, cwd, "deno task (runs the cwd's deno.json task)");
                    return;
                }
                "eval" => {
                    b.note("deno eval: code on the command line, no script to grant");
                    return;
                }
                _ if !looks_like_module(a) => {
                    b.note(format!(
                        "deno {a}: not a way of running a server; nothing inferred"
                    ));
                    return;
                }
                _ => {}
            }
        }
        if is_remote(a) {
            b.note(format!(
                "deno: {a} is fetched at start, which needs network; cache it first \
                 (`deno cache {a}`) so it runs from DENO_DIR"
            ));
            if let Some(d) = deno_dir.as_ref().filter(|d| d.is_dir()) {
                b.grant_dir(d, "DENO_DIR");
            }
        } else {
            grant_script(b, a, cwd);
            if let Some(d) = &deno_dir {
                b.note(format!(
                    "deno: if {a} imports remote or npm: modules, deno reads them from {}: \
                     add --allow-read {}",
                    d.display(),
                    d.display()
                ));
            }
        }
        crate::script::note_dir_args(b, &args[i..], cwd);
        return;
    }
    b.note("deno with nothing to run");
}

fn is_remote(s: &str) -> bool {
    ["npm:", "jsr:", "http://", "https://"]
        .iter()
        .any(|p| s.starts_with(p))
}

fn looks_like_module(s: &str) -> bool {
    is_remote(s)
        || s.contains('/')
        || [".ts", ".js", ".mjs", ".mts", ".tsx", ".jsx", ".cjs"]
            .iter()
            .any(|e| s.ends_with(e))
}
