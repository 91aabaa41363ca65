//! The command lines of `npx`/`npm exec`, `bunx`/`bun x`, `uvx`/`uv tool
//! run` and `pipx run`, parsed into a [`PackageRef`].

use crate::LaunchError;
use crate::packages::{Installer, PackageRef, PackageSpec, RegistryArg, validate_bin};

/// A parsed package launch, or why it cannot be fetched from a registry.
pub(crate) enum Parsed {
    Ref(PackageRef),
    Unsupported(String),
}

/// Parse results plus notes for the user.
pub(crate) struct Outcome {
    pub parsed: Parsed,
    pub notes: Vec<String>,
}

/// One option as written: `--key=value`, `--key value`, `-k value`.
struct Opt {
    key: String,
    value: Option<String>,
}

/// How a launcher's options take values.
struct Grammar {
    launcher: &'static str,
    /// Options that always take a value (long names and one-letter shorts).
    values: &'static [&'static str],
    /// Options that never do.
    switches: &'static [&'static str],
    /// npx's rule for an option it does not know: it takes the next
    /// argument as its value unless that starts with `-`. Otherwise an
    /// unknown option is a switch.
    unknown_takes_next: bool,
}

/// Splits `args` into options and positionals. With `stop_at_positional`
/// (npx, uvx, pipx, bunx), the first positional ends the options and
/// everything from it on is positional; otherwise (npm exec) options are
/// read until `--`.
fn split(
    g: &Grammar,
    args: &[String],
    stop_at_positional: bool,
    notes: &mut Vec<String>,
) -> Result<(Vec<Opt>, Vec<String>), LaunchError> {
    let mut opts = Vec::new();
    let mut positionals = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            positionals.extend(args[i..].iter().cloned());
            break;
        }
        let Some(stripped) = arg.strip_prefix('-').filter(|s| !s.is_empty()) else {
            positionals.push(arg.clone());
            if stop_at_positional {
                positionals.extend(args[i..].iter().cloned());
                break;
            }
            continue;
        };
        let long = stripped.strip_prefix('-');
        let (key, inline) = match long {
            Some(l) => match l.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (l.to_owned(), None),
            },
            // A short option: `-p`, `-pVALUE`, or switches run together (`-qy`).
            None => {
                let first: String = stripped.chars().take(1).collect();
                let rest = &stripped[first.len()..];
                if g.values.contains(&first.as_str()) {
                    let v = rest.strip_prefix('=').unwrap_or(rest);
                    (first, (!v.is_empty()).then(|| v.to_owned()))
                } else {
                    for c in stripped.chars() {
                        opts.push(Opt {
                            key: c.to_string(),
                            value: None,
                        });
                    }
                    continue;
                }
            }
        };
        let value = if inline.is_some() {
            inline
        } else if g.values.contains(&key.as_str()) {
            let Some(v) = args.get(i) else {
                return Err(LaunchError::MissingValue {
                    launcher: g.launcher,
                    option: arg.clone(),
                });
            };
            i += 1;
            Some(v.clone())
        } else if g.switches.contains(&key.as_str())
            || key.starts_with("no-")
            || !g.unknown_takes_next
        {
            if !g.switches.contains(&key.as_str()) && !key.starts_with("no-") {
                notes.push(format!(
                    "{}: option {arg} is not known here; taken as a flag",
                    g.launcher
                ));
            }
            None
        } else {
            match args.get(i).filter(|n| !n.starts_with('-')) {
                Some(v) => {
                    notes.push(format!(
                        "{}: option {arg} is not known here; taken with {v:?} as its value, as npx does",
                        g.launcher
                    ));
                    i += 1;
                    Some(v.clone())
                }
                None => None,
            }
        };
        opts.push(Opt { key, value });
    }
    Ok((opts, positionals))
}

/// The value of an option [`split`] gave one.
fn val(o: &Opt) -> String {
    o.value.clone().unwrap_or_default()
}

/// npx's grammar, from npm's own npx-cli.js: the options it knows take a
/// value (`opts`) and npm's boolean config keys (`switches`); anything else
/// takes the next argument unless it starts with `-`, exactly as npx does.
#[rustfmt::skip] // an option table: one long list, not one item a line
const NPX: Grammar = Grammar {
    launcher: "npx",
    values: &[
        "package", "p", "call", "c", "cache", "userconfig", "globalconfig", "registry", "prefix",
        "loglevel", "workspace", "w", "shell", "script-shell", "node-options",
    ],
    switches: &[
        "yes", "y", "quiet", "q", "silent", "s", "verbose", "d", "dd", "ddd", "version", "v",
        "help", "h", "prefer-offline", "prefer-online", "offline", "ignore-scripts",
        "legacy-peer-deps", "force", "f", "global", "g", "dry-run", "json", "strict-ssl",
        "workspaces", "include-workspace-root", "foreground-scripts", "audit", "fund",
        "update-notifier", "color",
    ],
    unknown_takes_next: true,
};

/// `npx ARGS` (`exec = false`) or `npm exec ARGS` (`exec = true`, options
/// read until `--`); `bunx` with `installer = Bun`.
pub(crate) fn npx(args: &[String], exec: bool) -> Result<Outcome, LaunchError> {
    let mut notes = Vec::new();
    let (opts, pos) = split(&NPX, args, !exec, &mut notes)?;
    let mut packages = Vec::new();
    let mut registries = Vec::new();
    for o in &opts {
        match o.key.as_str() {
            "package" | "p" => packages.push(val(o)),
            "call" | "c" => {
                return Ok(Outcome {
                    parsed: Parsed::Unsupported(
                        "npx -c runs a shell command line, which is not analyzed; name the \
                         package and its command instead"
                            .to_owned(),
                    ),
                    notes,
                });
            }
            "registry" => registries.push(RegistryArg {
                flag: "--registry".to_owned(),
                url: val(o),
            }),
            k if k.ends_with(":registry") => registries.push(RegistryArg {
                flag: format!("--{k}"),
                url: val(o),
            }),
            _ => {}
        }
    }
    finish_npm(
        Installer::Npm,
        "npx",
        packages,
        pos,
        registries,
        false,
        notes,
    )
}

/// bunx's options (`bunx --help`): only `--package` takes a value.
#[rustfmt::skip] // an option table: one long list, not one item a line
const BUNX: Grammar = Grammar {
    launcher: "bunx",
    values: &["package", "p"],
    switches: &["bun", "b", "silent", "verbose", "no-install", "help", "h"],
    unknown_takes_next: false,
};

/// `bunx ARGS` or `bun x ARGS`.
pub(crate) fn bunx(args: &[String]) -> Result<Outcome, LaunchError> {
    let mut notes = Vec::new();
    let (opts, pos) = split(&BUNX, args, true, &mut notes)?;
    let packages = opts
        .iter()
        .filter(|o| matches!(o.key.as_str(), "package" | "p"))
        .map(val)
        .collect();
    let force_bun = opts.iter().any(|o| matches!(o.key.as_str(), "bun" | "b"));
    finish_npm(
        Installer::Bun,
        "bunx",
        packages,
        pos,
        Vec::new(),
        force_bun,
        notes,
    )
}

fn finish_npm(
    installer: Installer,
    launcher: &'static str,
    packages: Vec<String>,
    mut pos: Vec<String>,
    registries: Vec<RegistryArg>,
    force_bun: bool,
    notes: Vec<String>,
) -> Result<Outcome, LaunchError> {
    let (specs, bin) = if packages.is_empty() {
        if pos.is_empty() {
            return Err(LaunchError::MissingPackage { launcher });
        }
        (vec![pos.remove(0)], None)
    } else {
        let bin = (!pos.is_empty()).then(|| pos.remove(0));
        (packages, bin)
    };
    if let Some(b) = &bin {
        validate_bin(b)?;
    }
    let mut parsed = Vec::new();
    for s in &specs {
        match PackageSpec::parse_npm(s)? {
            Ok(p) => parsed.push(p),
            Err(why) => {
                return Ok(Outcome {
                    parsed: Parsed::Unsupported(non_registry(launcher, &why)),
                    notes,
                });
            }
        }
    }
    let package = parsed.remove(0);
    Ok(Outcome {
        parsed: Parsed::Ref(PackageRef {
            installer,
            package,
            with: parsed,
            bin,
            args: pos,
            registries,
            python: None,
            force_bun,
        }),
        notes,
    })
}

fn non_registry(launcher: &str, why: &str) -> String {
    format!(
        "{launcher}: {why}; bulkhead fetches only registry packages into its cache. Install it \
         yourself and wrap the installed command (with --allow-read for where it lives)"
    )
}

/// `uv tool run`'s options (`uvx --help`, uv 0.13): those taking a value,
/// and its flags. uv rejects unknown options, so an unknown one is a flag
/// here (with a note) rather than a guess at a value.
#[rustfmt::skip] // an option table: one long list, not one item a line
const UVX: Grammar = Grammar {
    launcher: "uvx",
    values: &[
        "from", "with", "with-editable", "with-requirements", "python", "p", "index",
        "default-index", "index-url", "i", "extra-index-url", "find-links", "f", "constraints",
        "c", "overrides", "build-constraints", "b", "config-setting", "C",
        "config-settings-package", "refresh-package", "reinstall-package", "upgrade-package", "P",
        "no-binary-package", "no-build-package", "index-strategy", "keyring-provider",
        "resolution", "prerelease", "fork-strategy", "exclude-newer", "exclude-newer-package",
        "link-mode", "python-platform", "cache-dir", "config-file", "directory", "project",
        "color", "allow-insecure-host", "env-file", "torch-backend", "python-preference",
        "build-constraint", "constraint", "override",
    ],
    switches: &[
        "isolated", "offline", "no-cache", "n", "refresh", "reinstall", "upgrade", "U", "no-build",
        "no-binary", "no-sources", "native-tls", "quiet", "q", "verbose", "v", "no-config",
        "no-progress", "no-python-downloads", "managed-python", "no-managed-python", "lfs",
        "no-index", "compile-bytecode", "no-env-file", "preview", "show-resolution", "help", "h",
        "version", "V", "system-certs", "allow-python-downloads",
    ],
    unknown_takes_next: false,
};

/// Splits a `--with` value on the commas between requirements, not those
/// inside one (`a>=1,<2,b` → `a>=1,<2` and `b`).
fn split_with(v: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in v.split(',') {
        let starts_name = part
            .trim_start()
            .starts_with(|c: char| c.is_ascii_alphanumeric());
        match out.last_mut() {
            Some(last) if !starts_name => {
                last.push(',');
                last.push_str(part);
            }
            _ => out.push(part.trim().to_owned()),
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// `uvx ARGS` or `uv tool run ARGS`.
pub(crate) fn uvx(args: &[String]) -> Result<Outcome, LaunchError> {
    let mut notes = Vec::new();
    let (opts, mut pos) = split(&UVX, args, true, &mut notes)?;
    let mut from = None;
    let mut with = Vec::new();
    let mut registries = Vec::new();
    let mut python = None;
    for o in &opts {
        let flag = format!("--{}", o.key);
        match o.key.as_str() {
            "from" => from = Some(val(o)),
            "with" => with.extend(split_with(&val(o))),
            "with-editable" | "with-requirements" => {
                return Ok(Outcome {
                    parsed: Parsed::Unsupported(non_registry(
                        "uvx",
                        &format!("{flag} {} names local files", val(o)),
                    )),
                    notes,
                });
            }
            "python" | "p" => python = Some(val(o)),
            "index" | "default-index" | "extra-index-url" | "find-links" => {
                registries.push(RegistryArg { flag, url: val(o) })
            }
            "index-url" | "i" => registries.push(RegistryArg {
                flag: "--index-url".to_owned(),
                url: val(o),
            }),
            "f" => registries.push(RegistryArg {
                flag: "--find-links".to_owned(),
                url: val(o),
            }),
            _ => {}
        }
    }
    if pos.is_empty() {
        return Err(LaunchError::MissingPackage { launcher: "uvx" });
    }
    let command = pos.remove(0);
    let (spec, bin) = match from {
        Some(f) => {
            validate_bin(&command)?;
            (f, command)
        }
        None => {
            let name_end = command
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
                .unwrap_or(command.len());
            (command.clone(), command[..name_end].to_owned())
        }
    };
    finish_pypi(
        Installer::Uv,
        "uvx",
        &spec,
        &with,
        bin,
        pos,
        registries,
        python,
        notes,
    )
}

#[allow(clippy::too_many_arguments)] // one call site per launcher; a struct would only rename them
fn finish_pypi(
    installer: Installer,
    launcher: &'static str,
    spec: &str,
    with: &[String],
    bin: String,
    args: Vec<String>,
    registries: Vec<RegistryArg>,
    python: Option<String>,
    notes: Vec<String>,
) -> Result<Outcome, LaunchError> {
    let unsupported = |why: String| Outcome {
        parsed: Parsed::Unsupported(non_registry(launcher, &why)),
        notes: notes.clone(),
    };
    let package = match PackageSpec::parse_pypi(spec)? {
        Ok(p) => p,
        Err(why) => return Ok(unsupported(why)),
    };
    let mut extra = Vec::new();
    for w in with {
        match PackageSpec::parse_pypi(w)? {
            Ok(p) => extra.push(p),
            Err(why) => return Ok(unsupported(why)),
        }
    }
    validate_bin(&bin)?;
    Ok(Outcome {
        parsed: Parsed::Ref(PackageRef {
            installer,
            package,
            with: extra,
            bin: Some(bin),
            args,
            registries,
            python,
            force_bun: false,
        }),
        notes,
    })
}

/// `pipx run`'s options (`pipx run --help`, pipx 1.18).
#[rustfmt::skip] // an option table: one long list, not one item a line
const PIPX: Grammar = Grammar {
    launcher: "pipx run",
    values: &[
        "spec", "python", "pip-args", "index-url", "i", "backend", "with", "python-args",
        "fetch-python", "cooldown",
    ],
    switches: &[
        "no-cache", "pypackages", "path", "system-site-packages", "editable", "e",
        "fetch-missing-python", "verbose", "v", "quiet", "q", "help", "h", "skip-maintenance",
        "global", "refresh", "no-path-check",
    ],
    unknown_takes_next: false,
};

/// `pipx run ARGS`.
pub(crate) fn pipx_run(args: &[String]) -> Result<Outcome, LaunchError> {
    let mut notes = Vec::new();
    let (opts, mut pos) = split(&PIPX, args, true, &mut notes)?;
    let mut spec = None;
    let mut with = Vec::new();
    let mut registries = Vec::new();
    let mut python = None;
    for o in &opts {
        match o.key.as_str() {
            "spec" => spec = Some(val(o)),
            "with" => with.extend(split_with(&val(o))),
            "python" => python = Some(val(o)),
            "index-url" | "i" => registries.push(RegistryArg {
                flag: "--index-url".to_owned(),
                url: val(o),
            }),
            "pip-args" => notes.push(format!(
                "pipx run --pip-args {:?} is not passed on to the fetch",
                val(o)
            )),
            _ => {}
        }
    }
    if pos.is_empty() {
        return Err(LaunchError::MissingPackage {
            launcher: "pipx run",
        });
    }
    let app = pos.remove(0);
    if spec.is_none() && (app.ends_with(".py") || app.contains("://")) {
        return Ok(Outcome {
            parsed: Parsed::Unsupported(non_registry(
                "pipx run",
                &format!("{app:?} is a script, not a package"),
            )),
            notes,
        });
    }
    let (spec, bin) = match spec {
        Some(s) => (s, app),
        None => {
            let end = app
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
                .unwrap_or(app.len());
            (app.clone(), app[..end].to_owned())
        }
    };
    finish_pypi(
        Installer::Pipx,
        "pipx run",
        &spec,
        &with,
        bin,
        pos,
        registries,
        python,
        notes,
    )
}

/// uv's global options, which may come before its subcommand.
#[rustfmt::skip] // an option table: one long list, not one item a line
const UV_GLOBAL_VALUES: &[&str] = &[
    "cache-dir", "directory", "project", "config-file", "color", "python-preference",
    "allow-insecure-host",
];

/// Skips uv's global options before the subcommand; returns the index of
/// the subcommand in `args`.
pub(crate) fn uv_subcommand(args: &[String]) -> usize {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let Some(key) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
            return i;
        };
        i += 1;
        if !key.contains('=') && UV_GLOBAL_VALUES.contains(&key) {
            i += 1;
        }
    }
    i
}
