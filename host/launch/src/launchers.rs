//! Which kind of command this is, and the analysis for each.

use std::path::{Path, PathBuf};

use crate::pkgargs::{self, Outcome, Parsed};
use crate::plan::Builder;
use crate::resolve::{shebang, which};
use crate::shims::{self, Shim};
use crate::{LaunchError, LaunchPlan, Launcher, node, python, uv};

/// Container engines: the server runs under their daemon, not as our child.
const CONTAINER_ENGINES: &[&str] = &["docker", "podman", "nerdctl"];

/// Extensions of files a program loads as its code when named as an
/// argument (`java -jar x.jar`, `mcp run server.py`).
const CODE_EXTENSIONS: &[&str] = &[".py", ".js", ".mjs", ".cjs", ".ts", ".mts", ".jar"];

/// A program found on `PATH`: the path it was found at, and what to run
/// (the real binary when it was a shim).
struct Program {
    invoked: PathBuf,
    run: PathBuf,
    /// A shim whose real binary is unknown: nothing is granted for it.
    unresolved: bool,
}

impl Program {
    /// The real binary, when known.
    fn known(&self) -> Option<&Path> {
        (!self.unresolved).then_some(self.run.as_path())
    }
}

enum Kind {
    Python,
    Node,
    Bun,
    Deno,
    Npx { exec: bool, at: usize },
    Bunx,
    Uvx { at: usize },
    UvRun { at: usize },
    PipxRun { at: usize },
    Other,
}

fn first_positional(args: &[String]) -> Option<usize> {
    args.iter().position(|a| !a.starts_with('-'))
}

fn classify(name: &str, args: &[String]) -> Kind {
    let sub =
        |names: &[&str]| first_positional(args).filter(|&i| names.contains(&args[i].as_str()));
    match name {
        _ if python::is_python(name) => Kind::Python,
        "node" | "nodejs" => Kind::Node,
        "bun" => Kind::Bun,
        "bunx" => Kind::Bunx,
        "deno" => Kind::Deno,
        "npx" => Kind::Npx { exec: false, at: 0 },
        "npm" => match sub(&["exec", "x"]) {
            Some(i) => Kind::Npx {
                exec: true,
                at: i + 1,
            },
            None => Kind::Other,
        },
        "uvx" => Kind::Uvx { at: 0 },
        "uv" => {
            let i = pkgargs::uv_subcommand(args);
            match (
                args.get(i).map(String::as_str),
                args.get(i + 1).map(String::as_str),
            ) {
                (Some("run"), _) => Kind::UvRun { at: i },
                (Some("tool"), Some("run")) => Kind::Uvx { at: i + 2 },
                _ => Kind::Other,
            }
        }
        "pipx" => match sub(&["run"]) {
            Some(i) => Kind::PipxRun { at: i + 1 },
            None => Kind::Other,
        },
        _ => Kind::Other,
    }
}

/// Finds `cmd` and resolves a shim, noting what happened.
fn find(b: &mut Builder, cmd: &str, name: &str) -> Option<Program> {
    let Some(invoked) = which(cmd, b.env) else {
        let hint = if cmd.contains('/') {
            "as a path from the cwd"
        } else {
            "on PATH (clients start servers without your shell's setup: use a full path)"
        };
        b.note(format!("{cmd} not found {hint}"));
        return None;
    };
    let (run, unresolved) = resolve_shim(b, &invoked, name);
    Some(Program {
        invoked,
        run,
        unresolved,
    })
}

/// The real binary behind `invoked`, and whether it is an unresolved shim.
fn resolve_shim(b: &mut Builder, invoked: &Path, name: &str) -> (PathBuf, bool) {
    match shims::resolve(invoked, name, b.env) {
        Some(Shim::Resolved {
            manager,
            real,
            version,
            origin,
            extra,
        }) => {
            b.note(format!(
                "{} is a {manager} shim: runs {} ({version}, from {origin})",
                invoked.display(),
                real.display()
            ));
            for e in extra {
                b.grant_dir(&e, &format!("{manager} image"));
            }
            if let Some(d) = real.parent() {
                b.prepend_path(d.to_path_buf());
            }
            (real, false)
        }
        Some(Shim::Unresolved { manager, root, why }) => {
            b.note(format!(
                "{} is a {manager} shim that could not be resolved ({why}): run the real \
                 binary by its full path, or add --allow-read {}",
                invoked.display(),
                root.display()
            ));
            (invoked.to_path_buf(), true)
        }
        None => (invoked.to_path_buf(), false),
    }
}

/// `program` then `args`, or the original command when `program` is not
/// UTF-8.
fn argv(program: Option<&Path>, command: &[String], args: &[String]) -> Vec<String> {
    match program.and_then(Path::to_str) {
        Some(p) => std::iter::once(p.to_owned())
            .chain(args.iter().cloned())
            .collect(),
        None => command.to_vec(),
    }
}

pub(crate) fn dispatch(
    b: &mut Builder,
    name: &str,
    command: &[String],
) -> Result<LaunchPlan, LaunchError> {
    let args = &command[1..];
    let cwd = b.env.cwd.clone();
    if CONTAINER_ENGINES.contains(&name) {
        let mut plan = LaunchPlan::new(Launcher::Container, command.to_vec());
        plan.program = which(&command[0], b.env);
        plan.unsupported = Some(format!(
            "{name}: the server would run inside a container started by the {name} daemon, \
             which cannot be sandboxed from outside the container daemon: bulkhead would \
             sandbox only the {name} client, not the server. Use the container's own limits \
             (--network none, --read-only, --memory, --cap-drop ALL), or install the server \
             and wrap its command directly"
        ));
        return Ok(plan);
    }
    let kind = classify(name, args);
    let prog = find(b, &command[0], name);
    let run = prog.as_ref().map(|p| p.run.clone());
    let known = prog
        .as_ref()
        .and_then(Program::known)
        .map(Path::to_path_buf);
    let plan = match kind {
        Kind::Python => {
            let mut plan = LaunchPlan::new(Launcher::Python, argv(run.as_deref(), command, args));
            python::analyze(b, known.as_deref(), args, &cwd);
            plan.program = run;
            plan
        }
        Kind::Node | Kind::Deno | Kind::Bun => {
            let (launcher, what) = match kind {
                Kind::Node => (Launcher::Node, "node"),
                Kind::Deno => (Launcher::Deno, "deno"),
                _ => (Launcher::Bun, "bun"),
            };
            let real = known.as_ref().and_then(|r| node::runtime(b, r, what));
            let program = real.or(run);
            let mut plan = LaunchPlan::new(launcher, argv(program.as_deref(), command, args));
            plan.program = program;
            match kind {
                Kind::Node => node::analyze_node(b, args, &cwd),
                Kind::Deno => node::analyze_deno(b, args, &cwd),
                _ => match node::analyze_bun(b, args, &cwd) {
                    node::BunCommand::X(at) => {
                        let out = pkgargs::bunx(&args[at..])?;
                        return Ok(package_plan(b, Launcher::Bunx, out, command, plan.program));
                    }
                    node::BunCommand::Other(sub) => b.note(format!(
                        "bun {sub}: not a way of running a server; nothing inferred"
                    )),
                    node::BunCommand::Run => {}
                },
            }
            plan
        }
        Kind::Npx { exec, at } => {
            let out = pkgargs::npx(&args[at..], exec)?;
            node_for_packages(b, "node");
            package_plan(b, Launcher::Npx, out, command, run)
        }
        Kind::Bunx => {
            let out = pkgargs::bunx(args)?;
            let real = known.as_ref().and_then(|r| node::runtime(b, r, "bun"));
            package_plan(b, Launcher::Bunx, out, command, real.or(run))
        }
        Kind::Uvx { at } => {
            let out = pkgargs::uvx(&args[at..])?;
            package_plan(b, Launcher::Uvx, out, command, run)
        }
        Kind::PipxRun { at } => {
            let out = pkgargs::pipx_run(&args[at..])?;
            package_plan(b, Launcher::PipxRun, out, command, run)
        }
        Kind::UvRun { at } => {
            if let Some(r) = &known {
                grant_binary(b, r);
            }
            uv::analyze_run(b, args, at);
            let mut plan = LaunchPlan::new(Launcher::UvRun, argv(run.as_deref(), command, args));
            plan.program = run;
            plan
        }
        Kind::Other => match &prog {
            Some(p) => other(b, p, name, command)?,
            None => {
                b.note(format!(
                    "unknown launcher {name}: runs as before; if it fails, add --allow-read for \
                     the files it needs"
                ));
                LaunchPlan::new(Launcher::Other, command.to_vec())
            }
        },
    };
    Ok(plan)
}

/// The runtime a fetched npm package will run on: `node` from `PATH`.
fn node_for_packages(b: &mut Builder, what: &str) {
    if let Some(p) = find(b, "node", "node").as_ref().and_then(Program::known) {
        node::runtime(b, p, what);
    }
}

fn package_plan(
    b: &mut Builder,
    launcher: Launcher,
    out: Outcome,
    command: &[String],
    program: Option<PathBuf>,
) -> LaunchPlan {
    for n in out.notes {
        b.note(n);
    }
    let mut plan = LaunchPlan::new(launcher, command.to_vec());
    plan.program = program;
    match out.parsed {
        Parsed::Ref(r) => {
            b.note(format!(
                "{launcher} {}: fetched into bulkhead's package cache and run from there \
                 (inside the sandbox, {launcher} would have no network to fetch it)",
                r.package.requirement()
            ));
            plan.package = Some(r);
        }
        Parsed::Unsupported(why) => plan.unsupported = Some(why),
    }
    plan
}

/// Grants a program's own file (it must be readable to run), unless the
/// system directories already hold it.
fn grant_binary(b: &mut Builder, program: &Path) {
    if let Ok(real) = program.canonicalize() {
        let system = [
            "/usr/",
            "/bin/",
            "/sbin/",
            "/lib/",
            "/lib64/",
            "/opt/",
            "/nix/store/",
        ];
        if !system.iter().any(|s| real.starts_with(s)) {
            b.grant_file(&real);
        }
    }
}

/// Anything else: a script whose `#!` names an interpreter we know is
/// analyzed as that interpreter running it; the rest runs as before.
fn other(
    b: &mut Builder,
    prog: &Program,
    name: &str,
    command: &[String],
) -> Result<LaunchPlan, LaunchError> {
    let args = &command[1..];
    let cwd = b.env.cwd.clone();
    let script = prog.run.to_string_lossy().into_owned();
    if let Some(sb) = shebang(&prog.run) {
        let interp_name = Path::new(&sb.interpreter)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        let launcher = match interp_name.as_str() {
            n if python::is_python(n) => Some(Launcher::Python),
            "node" | "nodejs" => Some(Launcher::Node),
            "bun" => Some(Launcher::Bun),
            "deno" => Some(Launcher::Deno),
            _ => None,
        };
        if let Some(launcher) = launcher {
            let interp = if sb.via_env {
                find(b, &sb.interpreter, &interp_name)
            } else {
                let invoked = PathBuf::from(&sb.interpreter);
                let (run, unresolved) = resolve_shim(b, &invoked, &interp_name);
                Some(Program {
                    invoked,
                    run,
                    unresolved,
                })
            };
            let mut synthetic = sb.args.clone();
            synthetic.push(script.clone());
            synthetic.extend(args.iter().cloned());
            b.note(format!(
                "{}: a {launcher} script (#!{})",
                prog.run.display(),
                sb.line
            ));
            let mut plan = LaunchPlan::new(launcher, argv(Some(&prog.run), command, args));
            plan.program = Some(prog.run.clone());
            let Some(interp) = interp.filter(|i| !i.unresolved) else {
                crate::script::grant_script(b, &script, &cwd);
                return Ok(plan);
            };
            let real = match launcher {
                Launcher::Python => {
                    python::analyze(b, Some(&interp.run), &synthetic, &cwd);
                    interp.run.clone()
                }
                _ => {
                    let what = launcher.name();
                    let real = node::runtime(b, &interp.run, what).unwrap_or(interp.run.clone());
                    match launcher {
                        Launcher::Node => node::analyze_node(b, &synthetic, &cwd),
                        Launcher::Deno => node::analyze_deno(b, &synthetic, &cwd),
                        _ => {
                            node::analyze_bun(b, &synthetic, &cwd);
                        }
                    }
                    real
                }
            };
            if interp.run != interp.invoked {
                // The `#!` leads to a shim, which would fail in the sandbox:
                // run the real interpreter on the script instead.
                plan.argv = argv(Some(&real), command, &synthetic);
                plan.program = Some(real);
            }
            return Ok(plan);
        }
    }
    b.note(format!(
        "unknown launcher {name}: runs as before; if it fails, add --allow-read for the files it needs"
    ));
    if let Some(known) = prog.known() {
        grant_binary(b, known);
    }
    for a in args {
        if CODE_EXTENSIONS.iter().any(|e| a.ends_with(e)) {
            let p = crate::resolve::absolutize(Path::new(a), &cwd);
            if p.is_file() {
                crate::script::grant_script(b, a, &cwd);
            }
        }
    }
    crate::script::note_dir_args(b, args, &cwd);
    let mut plan = LaunchPlan::new(Launcher::Other, argv(Some(&prog.run), command, args));
    plan.program = Some(prog.run.clone());
    Ok(plan)
}
