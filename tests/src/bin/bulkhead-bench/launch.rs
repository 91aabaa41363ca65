//! `launch`: time from starting an MCP server by its package launcher to
//! the answer of its first `tools/list`, bare and through `bulkhead mcp
//! wrap`, with the package cached (warm) and not (cold).
//!
//! Servers: `npx -y @modelcontextprotocol/server-everything` and `uvx
//! mcp-server-time`, as client configs launch them. Timed, per run: from
//! spawning the command to reading its answer to `tools/list`, the client
//! sending `initialize` at once, then `notifications/initialized` and
//! `tools/list` when `initialize` is answered (the answer must list
//! tools). Then stdin is closed and the run's process group ended.
//!
//! - **bare**: the launcher run by the bench. Warm: an npm and uv cache
//!   already holding the package (one untimed run first); the launcher may
//!   still ask the registry whether a newer version exists, as it does for
//!   any user. Cold: an empty `HOME` and `XDG_CACHE_HOME`, so an empty npm
//!   cache (`~/.npm`) and uv cache (`$XDG_CACHE_HOME/uv`).
//! - **wrapped**: `bulkhead mcp wrap -- CMD…` (its default `untrusted`
//!   policy). Warm: the package already in `$XDG_CACHE_HOME/bulkhead/packages`
//!   (one untimed run first), so nothing is fetched and no registry is
//!   asked: the server runs from the cache, in its sandbox. Cold: an empty
//!   `HOME`/`XDG_CACHE_HOME`, so the run includes the fetch (the version
//!   lookup and the install, each in a sandboxed worker whose only way out
//!   is the egress proxy, allowing the registry). Checked from wrap's
//!   stderr: cold runs say "fetched into", warm ones "from".
//!
//! Every run has a `HOME` of its own under `target/bench/launch/` (cold:
//! fresh each run, removed after; warm: one for all warm runs), so neither
//! the user's caches nor their `~/.config/bulkhead` play a part. Cold runs
//! (`COLD_RUNS` of each) alternate bare and wrapped, then warm runs
//! (`WARM_RUNS` of each) alternate. Needs the package registries
//! (registry.npmjs.org, pypi.org and files.pythonhosted.org); a launcher
//! not on `PATH` is skipped with a note.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{Row, Stats, sibling};

const BENCH: &str = "launch";

/// The servers, as a client's config launches them.
const SERVERS: [&[&str]; 2] = [
    &["npx", "-y", "@modelcontextprotocol/server-everything"],
    &["uvx", "mcp-server-time"],
];

/// Timed runs of each warm path: each takes about a second.
const WARM_RUNS: usize = 5;

/// Timed runs of each cold path: each downloads the package and its
/// dependencies (tens of seconds for npm's), so fewer.
const COLD_RUNS: usize = 3;

/// The most a run may take before the bench gives up on it: a cold fetch
/// on a slow registry day, not a hang.
const COLD_LIMIT: Duration = Duration::from_secs(600);
const WARM_LIMIT: Duration = Duration::from_secs(120);

/// One run's times, from the spawn.
#[derive(Clone, Copy)]
struct Timing {
    initialize: Duration,
    tools_list: Duration,
}

/// Seconds with two decimals.
fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

pub fn run() {
    let base = launch_dir();
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", base.display()));
    for argv in SERVERS {
        if !on_path(argv[0]) {
            eprintln!("   {} is not on PATH: skipped", argv[0]);
            Row {
                bench: BENCH,
                name: format!("launch: `{}`", argv.join(" ")),
                measured: format!("skipped: `{}` is not on PATH", argv[0]),
                baseline: "—".into(),
                figure: "—".into(),
                target: "—".into(),
                met: None,
                data: serde_json::Value::Null,
            }
            .emit();
            continue;
        }
        one_server(&base, argv);
    }
    let _ = std::fs::remove_dir_all(&base);
}

fn one_server(base: &Path, argv: &[&str]) {
    let label = argv.join(" ");
    let bare: Vec<String> = argv.iter().map(|s| (*s).to_owned()).collect();
    let mut wrapped: Vec<String> = vec![
        sibling("bulkhead").display().to_string(),
        "mcp".into(),
        "wrap".into(),
        "--".into(),
    ];
    wrapped.extend(bare.iter().cloned());

    let (mut cold_bare, mut cold_wrapped) = (Vec::new(), Vec::new());
    for i in 0..COLD_RUNS {
        eprintln!(
            "   `{label}` cold {}/{COLD_RUNS}: bare, then wrapped…",
            i + 1
        );
        let home = base.join(format!("cold-{i}"));
        cold_bare.push(session(&bare, &home, COLD_LIMIT, None));
        let _ = std::fs::remove_dir_all(&home);
        cold_wrapped.push(session(&wrapped, &home, COLD_LIMIT, Some("fetched into")));
        let _ = std::fs::remove_dir_all(&home);
    }

    let home = base.join("warm");
    eprintln!("   `{label}` warm: filling the caches (untimed)…");
    session(&bare, &home, COLD_LIMIT, None);
    session(&wrapped, &home, COLD_LIMIT, Some("fetched into"));
    let (mut warm_bare, mut warm_wrapped) = (Vec::new(), Vec::new());
    for i in 0..WARM_RUNS {
        eprintln!("   `{label}` warm {}/{WARM_RUNS}…", i + 1);
        warm_bare.push(session(&bare, &home, WARM_LIMIT, None));
        warm_wrapped.push(session(&wrapped, &home, WARM_LIMIT, Some(" (from ")));
    }
    let _ = std::fs::remove_dir_all(&home);

    for (how, bare_runs, wrapped_runs) in [
        ("warm (package cached)", &warm_bare, &warm_wrapped),
        (
            "cold (empty caches: the fetch included)",
            &cold_bare,
            &cold_wrapped,
        ),
    ] {
        let list =
            |runs: &[Timing]| Stats::of(&runs.iter().map(|t| t.tools_list).collect::<Vec<_>>());
        let init =
            |runs: &[Timing]| Stats::of(&runs.iter().map(|t| t.initialize).collect::<Vec<_>>());
        let range = |runs: &[Timing]| {
            let s: Vec<Duration> = runs.iter().map(|t| t.tools_list).collect();
            format!(
                "{:.2}–{:.2}",
                s.iter().min().copied().unwrap_or_default().as_secs_f64(),
                s.iter().max().copied().unwrap_or_default().as_secs_f64()
            )
        };
        let (b, w) = (list(bare_runs), list(wrapped_runs));
        let diff = w.median.as_secs_f64() - b.median.as_secs_f64();
        Row {
            bench: BENCH,
            name: format!(
                "launch: `{label}`, {how}: time to the first `tools/list` answer, through `mcp wrap`"
            ),
            measured: format!(
                "median {} (runs {} s; {} runs)",
                secs(w.median),
                range(wrapped_runs),
                wrapped_runs.len()
            ),
            baseline: format!(
                "bare launcher: median {} (runs {} s)",
                secs(b.median),
                range(bare_runs)
            ),
            figure: format!(
                "{}{:.2} s ({:.2}×); `initialize` answered at {} wrapped, {} bare",
                if diff >= 0.0 { "+" } else { "−" },
                diff.abs(),
                w.median.as_secs_f64() / b.median.as_secs_f64(),
                secs(init(wrapped_runs).median),
                secs(init(bare_runs).median)
            ),
            target: "—".into(),
            met: None,
            data: serde_json::json!({
                "command": argv, "bare": b.json(), "wrapped": w.json(),
                "bare_initialize": init(bare_runs).json(),
                "wrapped_initialize": init(wrapped_runs).json(),
            }),
        }
        .emit();
    }
}

/// `target/bench/launch`, beside the binaries' profile directory.
fn launch_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("cannot locate the running bulkhead-bench");
    let target = exe
        .parent()
        .and_then(Path::parent)
        .expect("bulkhead-bench lives in target/<profile>/");
    target.join("bench").join("launch")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// One session of `command` with `home` as its `HOME` (and
/// `home/.cache` as `XDG_CACHE_HOME`): spawn → `tools/list` answered.
/// `expect`: a text wrap's stderr must contain (its package line).
fn session(command: &[String], home: &Path, limit: Duration, expect: Option<&str>) -> Timing {
    std::fs::create_dir_all(home)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", home.display()));
    let stderr_path = home.with_extension("stderr");
    let stderr = std::fs::File::create(&stderr_path).expect("create the stderr log");
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("npm_config_cache")
        .env_remove("NPM_CONFIG_CACHE")
        .env_remove("UV_CACHE_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        // A group of its own, so every process the launcher starts ends
        // with the run.
        .process_group(0);
    // A pyenv shim (`uvx` here) finds its versions from `PYENV_ROOT`,
    // which defaults to the real `~/.pyenv`.
    if std::env::var_os("PYENV_ROOT").is_none()
        && let Some(real) = std::env::var_os("HOME").map(PathBuf::from)
        && real.join(".pyenv").is_dir()
    {
        cmd.env("PYENV_ROOT", real.join(".pyenv"));
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", command.join(" ")));
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = started + limit;
    let fail = |child: &mut Child, why: String| -> ! {
        end_group(child);
        let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let tail: String = log
            .chars()
            .rev()
            .take(2000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        panic!("`{}`: {why}; its stderr ends:\n{tail}", command.join(" "));
    };
    let answer = |child: &mut Child, id: u64| -> serde_json::Value {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                        continue;
                    };
                    if v["id"] == id {
                        return v;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    fail(child, format!("no answer to request {id} within {limit:?}"))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    fail(child, format!("ended before answering request {id}"))
                }
            }
        }
    };
    let init = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "bulkhead-bench", "version": "1"}}});
    writeln!(stdin, "{init}").expect("send initialize");
    let a = answer(&mut child, 0);
    let initialize = started.elapsed();
    if a.get("result").is_none() {
        fail(&mut child, format!("initialize failed: {a}"));
    }
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
    )
    .expect("send initialized");
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list"}}"#)
        .expect("send tools/list");
    let a = answer(&mut child, 1);
    let tools_list = started.elapsed();
    let tools = a["result"]["tools"].as_array().map_or(0, Vec::len);
    if tools == 0 {
        fail(&mut child, format!("tools/list listed no tools: {a:.300}"));
    }
    drop(stdin);
    // Closing stdin ends a stdio server; give it a moment, then end the
    // group either way.
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until && matches!(child.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    end_group(&mut child);
    let _ = reader.join();
    if let Some(text) = expect {
        let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        assert!(
            log.contains(text),
            "`{}`: its stderr does not say {text:?}:\n{log:.2000}",
            command.join(" ")
        );
    }
    let _ = std::fs::remove_file(&stderr_path);
    Timing {
        initialize,
        tools_list,
    }
}

/// Kills what is left of the run's process group (ours: the child leads
/// it), then reaps the child.
fn end_group(child: &mut Child) {
    let pgid = child.id() as libc::pid_t;
    // SAFETY: killpg of the group this bench created for the run.
    unsafe { libc::killpg(pgid, libc::SIGKILL) };
    let _ = child.wait();
}
