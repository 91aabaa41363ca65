//! Helpers for the package-launcher tests (`tests/tests/mcp/launchers.rs`):
//! servers started as MCP clients start them (`npx -y PKG`, `uvx PKG`, a
//! venv's python), through `bulkhead mcp wrap`, driven by the official
//! inspector, each test with a scratch `HOME` of its own.
//!
//! # Environment
//!
//! An MCP client starts its server with a small environment: the official
//! SDKs (and so the inspector) pass `HOME`, `PATH`, `TERM`, `SHELL`, `USER`
//! and `LOGNAME`, plus what the client's config lists. The tests do the
//! same: [`client_env`] is what a config would list here — the CA and
//! registry settings of this machine, when it has any (a registry reached
//! through a CA in the system store needs `NODE_EXTRA_CA_CERTS` for npm and
//! `SSL_CERT_FILE` for uv) — and the direct runs of `bulkhead` get exactly
//! the defaults plus that ([`bulkhead_cmd`]).
//!
//! # Caches
//!
//! Fetching from the registry takes seconds, so tests that are not about a
//! cold fetch share one bulkhead package cache per test process
//! ([`shared_cache`], an `XDG_CACHE_HOME` under `target/`), and the Python
//! venv with `fastmcp` and `mcp` is kept under `target/` between runs
//! ([`test_venv`], rebuilt when its key changes).

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{alive, peer, profile_dir};

/// Variables a client's config would pass here, when this machine sets
/// them: CA bundles, registries and proxies, and `UV_NATIVE_TLS`.
#[rustfmt::skip] // a table: one long list, not one item a line
pub const FORWARDED_VARS: &[&str] = &[
    "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "UV_NATIVE_TLS",
    "npm_config_registry", "npm_config_cafile", "UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL",
    "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy",
];

/// What the SDKs' stdio transports pass to a server from their own
/// environment.
const CLIENT_DEFAULTS: &[&str] = &["PATH", "TERM", "SHELL", "USER", "LOGNAME"];

/// The longest any one inspector or bulkhead run may take: a cold fetch is
/// seconds; this is a bound so that a hang fails the test, not a target.
pub const RUN_LIMIT: Duration = Duration::from_secs(300);

/// `-e` values for the inspector and extra variables for direct runs:
/// [`FORWARDED_VARS`] that are set, and `XDG_CACHE_HOME` when `cache` is
/// given (else it is unset, and bulkhead's cache is under `HOME`).
pub fn client_env(cache: Option<&Path>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = FORWARDED_VARS
        .iter()
        .filter_map(|k| Some(((*k).to_owned(), std::env::var(k).ok()?)))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    if let Some(c) = cache {
        env.push(("XDG_CACHE_HOME".into(), c.display().to_string()));
    }
    env
}

/// `bulkhead ARGS…` with a client's environment: the defaults, `HOME`, and
/// `env`; nothing else of the test's.
pub fn bulkhead_cmd(home: &Path, env: &[(String, String)], args: &[&str]) -> Command {
    let mut cmd = as_client(crate::bin("bulkhead"), home, env);
    cmd.args(args);
    cmd
}

/// `program` with a client's environment: the defaults, `HOME` (also the
/// working directory), and `env`; nothing else of the test's.
pub fn as_client(program: impl AsRef<OsStr>, home: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().env("HOME", home).current_dir(home);
    for k in CLIENT_DEFAULTS {
        if let Ok(v) = std::env::var(k) {
            cmd.env(k, v);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// Runs `cmd` to its end, in a process group of its own, and returns what
/// it printed; past `limit` the group is killed and the test fails with
/// what it had printed by then. When `cmd` ends, what is left of its group
/// is killed too, so that no straggler holds its pipes open.
pub fn output_within(cmd: &mut Command, limit: Duration, what: &str) -> Output {
    run_group(cmd, limit, what, |_| false).unwrap_or_else(|out| {
        panic!(
            "{what} did not end within {limit:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs `cmd` in a process group of its own until it ends, or until
/// `done(stdout so far)` holds (then the group is killed, and the status
/// is the kill's); `Err` with what it printed when `limit` passed first.
fn run_group(
    cmd: &mut Command,
    limit: Duration,
    what: &str,
    done: impl Fn(&[u8]) -> bool,
) -> Result<Output, Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let group = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let mut stdout_pipe = child.stdout.take().expect("stdout piped");
    let out = std::thread::spawn(move || {
        let mut buf = [0u8; 64 * 1024];
        while let Ok(n @ 1..) = stdout_pipe.read(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut stderr_pipe = child.stderr.take().expect("stderr piped");
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut buf);
        buf
    });
    let kill_group = || {
        // SAFETY: kill(2) on the process group this function created (its
        // leader is our child, not yet reaped when this is called).
        unsafe { libc::kill(-group, libc::SIGKILL) };
    };
    let mut stdout = Vec::new();
    let timed_out = loop {
        while let Ok(chunk) = rx.try_recv() {
            stdout.extend_from_slice(&chunk);
        }
        // Peek at the exit without reaping, so the group's id stays ours.
        // SAFETY: siginfo_t is plain data; zeroed is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own child with WNOWAIT.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                group as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid is valid to read after a successful waitid.
        let exited = r == 0 && unsafe { info.si_pid() } != 0;
        if exited || done(&stdout) {
            break false;
        }
        if started.elapsed() > limit {
            break true;
        }
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(50)) {
            stdout.extend_from_slice(&chunk);
        }
    };
    kill_group();
    let status = child.wait().expect("wait");
    let _ = out.join();
    stdout.extend(rx.try_iter().flatten());
    let stderr = err.join().expect("stderr reader");
    let output = Output {
        status,
        stdout,
        stderr,
    };
    if timed_out { Err(output) } else { Ok(output) }
}

/// What the inspector said.
#[derive(Debug)]
pub struct Inspected {
    /// It exited 0.
    pub ok: bool,
    /// Its stdout as JSON (an error envelope on failure), `Null` if none.
    pub json: serde_json::Value,
    /// Its stderr, which carries the server's (and so bulkhead's) stderr.
    pub stderr: String,
    /// Its stdout, raw.
    pub stdout: String,
}

impl Inspected {
    /// The JSON answer of a run that must have worked.
    pub fn answer(&self) -> &serde_json::Value {
        assert!(
            self.ok && self.json.get("error").is_none(),
            "the inspector failed: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        &self.json
    }
}

/// `$MCP_NODE $MCP_INSPECTOR --cli SERVER… --method METHOD…`, run with
/// `HOME` = `home` (its stdio server gets the SDK's default variables) and
/// `env` passed to the server with `-e`. The target comes first and every
/// inspector option after it: the inspector splits its arguments at the
/// first `--`, which `bulkhead mcp wrap … -- CMD` contains.
pub fn inspect_as_client(
    home: &Path,
    env: &[(String, String)],
    server: &[String],
    method: &[&str],
) -> Inspected {
    let mut cmd = inspector_cmd(home, env, server, method);
    let out = output_within(
        &mut cmd,
        RUN_LIMIT,
        &format!("the inspector {method:?} against {server:?}"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Inspected {
        ok: out.status.success(),
        json: serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout,
    }
}

fn inspector_cmd(
    home: &Path,
    env: &[(String, String)],
    server: &[String],
    method: &[&str],
) -> Command {
    let mut cmd = Command::new(peer("MCP_NODE"));
    cmd.arg(peer("MCP_INSPECTOR"))
        .arg("--cli")
        .args(server)
        .arg("--method")
        .args(method);
    for (k, v) in env {
        cmd.arg("-e").arg(format!("{k}={v}"));
    }
    // The server's start includes a cold fetch in some tests: seconds, but
    // more than the inspector's default 15 s on a loaded machine.
    cmd.args(["--connect-timeout", "240000"])
        .env("HOME", home)
        .env_remove("XDG_CACHE_HOME")
        .env_remove("BULKHEAD_CONFIG")
        .current_dir(home);
    cmd
}

/// The answer of the inspector against a bare server (`server`, not
/// wrapped), taken as soon as it is printed: the inspector then waits for
/// the server's exit, and a server started by `npx` outlives the `SIGTERM`
/// the inspector sends to npx (npx does not pass it on) until its own
/// pending requests time out (a minute, for server-everything's roots
/// request). The answer is the reference; the bare server's teardown is
/// not what is tested, so its group is killed.
pub fn inspect_bare(
    home: &Path,
    env: &[(String, String)],
    server: &[String],
    method: &[&str],
) -> serde_json::Value {
    let mut cmd = inspector_cmd(home, env, server, method);
    let complete = |out: &[u8]| serde_json::from_slice::<serde_json::Value>(out).is_ok();
    let what = format!("the inspector {method:?} against the bare {server:?}");
    let out = run_group(&mut cmd, RUN_LIMIT, &what, complete)
        .unwrap_or_else(|out| panic!("{what}: no answer within {RUN_LIMIT:?}: {out:?}"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: no JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        v.get("error").is_none(),
        "{what} failed: {v}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

/// The names of a `tools/list` answer's tools, sorted.
pub fn tool_names(list: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = list["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {list}"))
        .iter()
        .map(|t| t["name"].as_str().expect("a tool name").to_owned())
        .collect();
    names.sort();
    names
}

/// `bulkhead mcp wrap FLAGS… -- CMD…` as an inspector target.
pub fn wrapped(flags: &[&str], command: &[String]) -> Vec<String> {
    let mut argv = vec![crate::bin("bulkhead").display().to_string()];
    argv.extend(["mcp", "wrap"].map(String::from));
    argv.extend(flags.iter().map(|f| (*f).to_owned()));
    argv.push("--".into());
    argv.extend(command.iter().cloned());
    argv
}

/// A package `mcp wrap` named on stderr:
/// `bulkhead: mcp wrap: INSTALLER NAME@VERSION (fetched into|from DIR, read-only to the server)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageLine {
    pub installer: String,
    pub name: String,
    pub version: String,
    pub dir: PathBuf,
    /// `fetched into` (true) or `from` (false).
    pub fetched: bool,
}

/// The package line in `stderr`, if there is one.
pub fn package_line(stderr: &str) -> Option<PackageLine> {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("bulkhead: mcp wrap: "))
        .filter(|l| l.ends_with(", read-only to the server)"))?;
    let (what, rest) = line.split_once(" (")?;
    let (installer, spec) = what.split_once(' ')?;
    // The version follows the last `@` (a scoped name starts with one).
    let (name, version) = spec.rsplit_once('@')?;
    let rest = rest.strip_suffix(", read-only to the server)")?;
    let (fetched, dir) = match rest.strip_prefix("fetched into ") {
        Some(d) => (true, d),
        None => (false, rest.strip_prefix("from ")?),
    };
    Some(PackageLine {
        installer: installer.to_owned(),
        name: name.to_owned(),
        version: version.to_owned(),
        dir: PathBuf::from(dir),
        fetched,
    })
}

/// `target/launcher-tests`, created.
pub fn work_root() -> PathBuf {
    let dir = profile_dir()
        .parent()
        .expect("target/<profile> has a parent")
        .join("launcher-tests");
    std::fs::create_dir_all(&dir).expect("create target/launcher-tests");
    dir
}

/// An `XDG_CACHE_HOME` for this test process, empty when first asked for;
/// those of test processes that have ended are removed then.
pub fn shared_cache() -> &'static Path {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    CACHE.get_or_init(|| {
        let root = work_root();
        for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name
                .strip_prefix("cache-")
                .and_then(|p| p.parse::<i32>().ok())
                && !alive(pid)
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let dir = root.join(format!("cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the shared cache");
        dir
    })
}

/// What the test venv holds; a change rebuilds it.
const VENV_KEY: &str = "v1: fastmcp mcp";

/// A venv (`python3 -m venv`) with `fastmcp` and the official MCP SDK
/// (`mcp`) from PyPI, under `target/launcher-tests/venv`. Kept between runs
/// while its key (this file's `VENV_KEY` and `python3 --version`) holds;
/// built under a file lock, so test processes side by side build it once.
pub fn test_venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let root = work_root();
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join("venv.lock"))
            .expect("open venv.lock");
        let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("lock venv.lock");
        let version = Command::new("python3")
            .arg("--version")
            .output()
            .expect("python3 is needed for the venv tests");
        let key = format!(
            "{VENV_KEY}; {}",
            String::from_utf8_lossy(&version.stdout).trim()
        );
        let venv = root.join("venv");
        let key_file = venv.join("bulkhead-test-venv.key");
        let python = venv.join("bin/python");
        if std::fs::read_to_string(&key_file).is_ok_and(|k| k == key) && python.exists() {
            return venv;
        }
        let _ = std::fs::remove_dir_all(&venv);
        let out = output_within(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            Duration::from_secs(300),
            "python3 -m venv",
        );
        assert!(
            out.status.success(),
            "python3 -m venv (on Debian: apt-get install python3-venv): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = output_within(
            Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "fastmcp",
                "mcp",
            ]),
            Duration::from_secs(900),
            "pip install fastmcp mcp",
        );
        assert!(
            out.status.success(),
            "pip install fastmcp mcp: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&key_file, &key).expect("write the venv's key");
        venv
    })
}

/// A scratch directory with `home/` (a fresh `HOME`), `bare-home/` (the
/// `HOME` of bare, unwrapped runs, whose launchers write their own caches
/// there) and `work/` (files of the test). Apart, so that granting `work/`
/// never grants an ancestor of `HOME`.
pub struct Scratch {
    _dir: tempfile::TempDir,
    pub home: PathBuf,
    pub bare_home: PathBuf,
    pub work: PathBuf,
}

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("bulkhead-launchers-")
            .tempdir()
            .expect("tempdir");
        // Canonical, as bulkhead names the paths it grants.
        let base = dir.path().canonicalize().expect("canonical tempdir");
        let [home, bare_home, work] = ["home", "bare-home", "work"].map(|d| base.join(d));
        for d in [&home, &bare_home, &work] {
            std::fs::create_dir_all(d).expect("scratch dir");
        }
        Self {
            _dir: dir,
            home,
            bare_home,
            work,
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// Entries of `dir` whose names start with `prefix`.
pub fn entries_starting(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}
