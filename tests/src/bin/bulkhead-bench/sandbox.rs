//! `sandbox`: what a sandbox policy adds to a call, `untrusted` and
//! `workspace` against `trusted` (no sandbox), in one run.
//!
//! Calls are made round-robin (trusted, workspace, untrusted, trusted, …)
//! through one host, so drift on a noisy VM hits all three alike. Two
//! tools: `list_directory` (runs in the worker: namespaces for the network,
//! Landlock, seccomp; no PID namespace, since it starts no process) and
//! `shell` running `:` (starts `sh`, so it also pays for the PID, IPC and
//! UTS namespaces). Everything from `ToolHost::call` to the report is
//! timed, as in `overhead`.

use std::path::Path;
use std::time::{Duration, Instant};

use bulkhead_host::policy::{ResolveContext, preset, resolve};
use bulkhead_host::{CallLimits, CallPolicy, CallRequest, HostConfig, Outcome, ToolHost};

use crate::overhead::{N, WARMUP};
use crate::{Row, Scratch, Stats, ms, runtime, sibling};

/// The target: `untrusted` adds at most 4 ms per call (median).
/// For scale: bubblewrap with `--unshare-all` measured ≈ 8 ms here.
const TARGET_ADDED: Duration = Duration::from_millis(4);

const BENCH: &str = "sandbox";

const POLICIES: [&str; 3] = ["trusted", "workspace", "untrusted"];

pub fn run() {
    let scratch = Scratch::new(BENCH);
    let dir = scratch.path().join("empty");
    std::fs::create_dir(&dir).expect("cannot create the directory to list");
    let rt = runtime();
    let _guard = rt.enter();
    let host = ToolHost::new(HostConfig {
        worker: Some(sibling("bulkhead-worker")),
        ..HostConfig::default()
    })
    .expect("cannot start a ToolHost");
    let policies: Vec<CallPolicy> = POLICIES.iter().map(|p| policy(p, &dir)).collect();
    let tools = [
        (
            "list_directory",
            serde_json::json!({ "path": dir, "depth": 1 }).to_string(),
            "in-worker tool",
        ),
        (
            "shell",
            r#"{"command":":"}"#.to_owned(),
            "tool that starts a process",
        ),
    ];
    for (tool, args, what) in tools {
        eprintln!("   {N} rounds of {tool} under {}…", POLICIES.join(", "));
        let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); POLICIES.len()];
        for round in 0..WARMUP + N {
            for (i, p) in policies.iter().enumerate() {
                let took = timed_call(&rt, &host, tool, &args, &dir, p.clone());
                if round >= WARMUP {
                    samples[i].push(took);
                }
            }
        }
        let stats: Vec<Stats> = samples.iter().map(|s| Stats::of(s)).collect();
        let base = stats[0].median;
        for (i, name) in POLICIES.iter().enumerate().skip(1) {
            let added = stats[i].median.saturating_sub(base);
            let is_target = *name == "untrusted";
            Row {
                bench: BENCH,
                name: format!("sandbox: {name} vs trusted, {tool} ({what})"),
                measured: format!("median {}, p90 {}", ms(stats[i].median), ms(stats[i].p90)),
                baseline: format!("trusted: median {}", ms(base)),
                figure: format!("+{} per call", ms(added)),
                target: if is_target {
                    format!("≤ +{}", ms(TARGET_ADDED))
                } else {
                    "—".into()
                },
                met: is_target.then_some(added <= TARGET_ADDED),
                data: serde_json::json!({
                    "policy": name, "tool": tool, "stats": stats[i].json(),
                    "trusted": stats[0].json(), "added_ms": added.as_secs_f64() * 1e3,
                }),
            }
            .emit();
        }
    }
}

fn policy(name: &str, dir: &Path) -> CallPolicy {
    let policy = preset(name).expect("a preset");
    let ctx = ResolveContext {
        home: std::env::var_os("HOME").map(Into::into),
        workspace: Some(dir.to_path_buf()),
        read: vec![dir.to_path_buf()],
        ..ResolveContext::default()
    };
    resolve(&policy, &ctx).expect("cannot resolve the policy")
}

fn timed_call(
    rt: &tokio::runtime::Runtime,
    host: &ToolHost,
    tool: &str,
    args: &str,
    dir: &Path,
    policy: CallPolicy,
) -> Duration {
    let req = CallRequest {
        tool: tool.into(),
        args_json: args.into(),
        limits: CallLimits::default(),
        cwd: Some(dir.to_path_buf()),
        policy,
        stream_output: false,
        inject: Vec::new(),
        inject_seed: None,
    };
    let started = Instant::now();
    let report = rt.block_on(host.call(req).wait());
    let took = started.elapsed();
    assert!(
        matches!(report.outcome, Outcome::Completed),
        "{tool} under {} did not complete: {:?} {}",
        report.enforcement.policy,
        report.outcome,
        report.worker_stderr
    );
    assert!(
        report.enforcement.not_enforced().next().is_none(),
        "the bench must measure a fully enforced sandbox"
    );
    took
}
