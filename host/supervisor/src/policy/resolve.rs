//! From a [`Policy`] to one call's [`CallPolicy`]: `~` expanded, paths made
//! canonical, secrets listed, `.env` files found.

use std::path::{Path, PathBuf};

use bulkhead_ipc::{FsRules, NetworkMode, SandboxSpec};

use super::lenient::Lenient;
use super::presets::{DEVICE_WRITE, HOME_SECRETS, SYSTEM_READ, SYSTEM_SECRETS};
use super::{CallPolicy, FsPolicy, Policy, PolicyError};

/// `.env` files are looked for among the entries of these directories only
/// (home, workspace, declared roots), not recursively: a recursive walk of
/// a large workspace at every call start would cost more than the call.
/// Deeper `.env` files are a documented gap.
const ENV_FILE_SCAN_MAX_ENTRIES: usize = 10_000;

/// What a policy is resolved against.
#[derive(Debug, Clone, Default)]
pub struct ResolveContext {
    /// `$HOME`, for `~/` and the home secrets.
    pub home: Option<PathBuf>,
    /// The call's working directory: the workspace.
    pub workspace: Option<PathBuf>,
    /// Roots the caller declares readable (`--allow-read`, an MCP
    /// server's roots).
    pub read: Vec<PathBuf>,
    /// Roots the caller declares writable (`--allow-write`).
    pub write: Vec<PathBuf>,
    /// The program's own install dir (an MCP server's package).
    pub install_dir: Option<PathBuf>,
    /// Hosts the caller allows on top of the policy's (`--allow-net`, a
    /// server's `allow_net`).
    pub allow_net: bulkhead_egress::AllowList,
}

/// Resolves `policy` for one call.
pub fn resolve(policy: &Policy, ctx: &ResolveContext) -> Result<CallPolicy, PolicyError> {
    let allow: bulkhead_egress::AllowList = policy
        .allow_net
        .rules()
        .iter()
        .chain(ctx.allow_net.rules())
        .cloned()
        .collect();
    // The explanation names the hosts the call may reach, the caller's
    // (`--allow-net`) as well as the policy's.
    let explained = if ctx.allow_net.is_empty() {
        policy.explain()
    } else {
        Policy {
            allow_net: allow.clone(),
            ..policy.clone()
        }
        .explain()
    };
    if policy.is_trusted() {
        if !allow.is_empty() {
            return Err(PolicyError::EgressWithoutSandbox {
                policy: policy.name.clone(),
            });
        }
        return Ok(CallPolicy {
            name: policy.name.clone(),
            explained,
            sandbox: None,
            env_allowlist: policy.env.clone(),
            private_tmp: false,
            egress: None,
        });
    }
    // An allow list narrows whatever network the policy names to the
    // proxy's; the host fills in the relay when the call starts.
    let (network, egress) = if allow.is_empty() {
        (policy.network, None)
    } else {
        (NetworkMode::Proxied, Some(allow))
    };
    let filesystem = match &policy.filesystem {
        FsPolicy::Unrestricted => None,
        FsPolicy::Restricted {
            read_everything,
            system,
            workspace_writable,
            read,
            write,
            deny,
        } => {
            let declared = |paths: &[PathBuf], what| {
                paths
                    .iter()
                    .map(|p| canonical_existing(p, what))
                    .collect::<Result<Vec<_>, _>>()
            };
            let declared_read = declared(&ctx.read, "read root")?;
            let declared_write = declared(&ctx.write, "write root")?;
            let policy_read = expand_all(read, ctx, "read root")?;
            let policy_write = expand_all(write, ctx, "write root")?;

            let mut rules = FsRules::default();
            if *read_everything {
                rules.read.push("/".into());
            } else if *system {
                rules
                    .read
                    .extend(SYSTEM_READ.iter().map(|s| (*s).to_owned()));
            }
            let mut write_roots: Vec<PathBuf> = Vec::new();
            if *workspace_writable && let Some(ws) = &ctx.workspace {
                write_roots.push(canonical_existing(ws, "workspace")?);
            }
            write_roots.extend(policy_write);
            write_roots.extend(declared_write);
            let mut read_roots: Vec<PathBuf> = policy_read;
            read_roots.extend(declared_read);
            read_roots.extend(ctx.install_dir.iter().cloned());
            rules.read.extend(
                read_roots
                    .iter()
                    .map(|p| lossless(p))
                    .collect::<Result<Vec<_>, _>>()?,
            );
            rules
                .write
                .extend(DEVICE_WRITE.iter().map(|s| (*s).to_owned()));
            rules.write.extend(
                write_roots
                    .iter()
                    .map(|p| lossless(p))
                    .collect::<Result<Vec<_>, _>>()?,
            );

            let mut denied: Vec<PathBuf> = SYSTEM_SECRETS.iter().map(PathBuf::from).collect();
            if let Some(home) = &ctx.home {
                denied.extend(HOME_SECRETS.iter().map(|s| tilde(s, home)));
            }
            denied.extend(expand_all(deny, ctx, "denied path")?);
            // The workspace is usually a write root too: list it once.
            let mut scanned: Vec<&Path> = Vec::new();
            let candidates = ctx
                .home
                .iter()
                .chain(ctx.workspace.iter())
                .chain(read_roots.iter())
                .chain(write_roots.iter());
            for dir in candidates {
                if !scanned.contains(&dir.as_path()) {
                    scanned.push(dir);
                    denied.extend(env_files(dir));
                }
            }
            let mut lenient = Lenient::default();
            let mut deny: Vec<String> = denied
                .iter()
                .map(|p| lossless(&lenient.canonical(p)))
                .collect::<Result<_, _>>()?;
            deny.sort();
            deny.dedup();
            rules.deny = deny;
            Some(rules)
        }
    };
    Ok(CallPolicy {
        name: policy.name.clone(),
        explained,
        sandbox: Some(SandboxSpec {
            policy: policy.name.clone(),
            filesystem,
            network,
            isolate_processes: policy.isolate_processes,
            seccomp: policy.seccomp,
            on_missing: policy.on_missing,
            egress: None,
        }),
        env_allowlist: policy.env.clone(),
        private_tmp: policy.filesystem != FsPolicy::Unrestricted,
        egress,
    })
}

/// The policy's working directory with `~/` expanded, if it sets one.
pub fn policy_cwd(policy: &Policy, home: Option<&Path>) -> Result<Option<PathBuf>, PolicyError> {
    let Some(cwd) = &policy.cwd else {
        return Ok(None);
    };
    let path = match home {
        Some(h) => tilde(cwd, h),
        None if cwd.starts_with('~') => {
            return Err(PolicyError::Path {
                what: "working directory",
                path: cwd.clone(),
                message: "starts with ~ but $HOME is not set".into(),
            });
        }
        None => PathBuf::from(cwd),
    };
    Ok(Some(path))
}

fn tilde(path: &str, home: &Path) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None if path == "~" => home.to_path_buf(),
        None => PathBuf::from(path),
    }
}

fn expand_all(
    paths: &[String],
    ctx: &ResolveContext,
    what: &'static str,
) -> Result<Vec<PathBuf>, PolicyError> {
    paths
        .iter()
        .map(|p| match (&ctx.home, p.starts_with('~')) {
            (Some(home), _) => Ok(tilde(p, home)),
            (None, false) => Ok(PathBuf::from(p)),
            (None, true) => Err(PolicyError::Path {
                what,
                path: p.clone(),
                message: "starts with ~ but $HOME is not set".into(),
            }),
        })
        .collect()
}

/// A root the user named must exist: a typo would otherwise quietly grant
/// nothing (or, for a write root, make the tool fail far from the cause).
fn canonical_existing(path: &Path, what: &'static str) -> Result<PathBuf, PolicyError> {
    std::fs::canonicalize(path).map_err(|e| PolicyError::Path {
        what,
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Paths travel as UTF-8 in the spec; a path that is not is refused rather
/// than mangled into a different path.
fn lossless(path: &Path) -> Result<String, PolicyError> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| PolicyError::Path {
            what: "path",
            path: path.display().to_string(),
            message: "is not valid UTF-8, which sandbox rules cannot name".into(),
        })
}

/// `.env`, `.env.local` and the like among the entries of `dir`.
fn env_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .take(ENV_FILE_SCAN_MAX_ENTRIES)
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name == ".env" || name.starts_with(".env.")
        })
        .map(|e| e.path())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::preset;

    fn ctx(home: &Path, ws: &Path) -> ResolveContext {
        ResolveContext {
            home: Some(home.to_path_buf()),
            workspace: Some(ws.to_path_buf()),
            ..ResolveContext::default()
        }
    }

    #[test]
    fn trusted_has_no_sandbox() {
        let p = preset("trusted").unwrap();
        let r = resolve(&p, &ResolveContext::default()).unwrap();
        assert!(r.sandbox.is_none());
        assert!(!r.private_tmp);
    }

    #[test]
    fn untrusted_reads_the_system_and_denies_home_secrets_and_env_files() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".ssh")).unwrap();
        std::fs::write(home.path().join(".env"), "K=V").unwrap();
        let ws = tempfile::tempdir().unwrap();
        std::fs::write(ws.path().join(".env.local"), "K=V").unwrap();
        let p = preset("untrusted").unwrap();
        let r = resolve(&p, &ctx(home.path(), ws.path())).unwrap();
        let spec = r.sandbox.unwrap();
        let fs = spec.filesystem.unwrap();
        assert!(fs.read.contains(&"/usr".to_owned()));
        assert!(
            !fs.read
                .iter()
                .any(|p| Path::new(p).starts_with(home.path()))
        );
        let home_c = std::fs::canonicalize(home.path()).unwrap();
        let ws_c = std::fs::canonicalize(ws.path()).unwrap();
        for denied in [
            home_c.join(".ssh"),
            home_c.join(".env"),
            ws_c.join(".env.local"),
            home_c.join(".aws"),
        ] {
            assert!(
                fs.deny.contains(&denied.display().to_string()),
                "{denied:?} not in {:?}",
                fs.deny
            );
        }
        assert!(fs.deny.contains(&"/etc/shadow".to_owned()));
        assert_eq!(spec.network, bulkhead_ipc::NetworkMode::None);
        assert!(r.private_tmp);
    }

    #[test]
    fn workspace_reads_everything_and_writes_the_workspace() {
        let home = tempfile::tempdir().unwrap();
        let ws = tempfile::tempdir().unwrap();
        let r = resolve(&preset("workspace").unwrap(), &ctx(home.path(), ws.path())).unwrap();
        let fs = r.sandbox.unwrap().filesystem.unwrap();
        assert_eq!(fs.read, vec!["/".to_owned()]);
        let ws_c = std::fs::canonicalize(ws.path())
            .unwrap()
            .display()
            .to_string();
        assert!(fs.write.contains(&ws_c));
    }

    #[test]
    fn a_missing_declared_root_is_an_error_naming_it() {
        let mut c = ResolveContext::default();
        c.read.push(PathBuf::from("/no/such/root"));
        let e = resolve(&preset("untrusted").unwrap(), &c)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/no/such/root") && e.contains("read root"),
            "{e}"
        );
    }
}
