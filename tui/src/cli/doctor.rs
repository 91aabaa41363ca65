//! `bulkhead doctor`: what this machine can enforce, and what each policy
//! gets here.
//!
//! Three parts: the limit mechanisms the host uses (cgroups or watchdog),
//! the sandbox mechanisms the worker could build (each tried for real by
//! `bulkhead-worker --probe-sandbox`), and a verdict per policy, taken from
//! a trial call under that policy: the worker's own account of what it
//! enforced, not a guess from version numbers.

use bulkhead_config::Config;
use bulkhead_host::policy::{ResolveContext, resolve};
use bulkhead_host::{CallLimits, CallRequest, HostConfig, Outcome, ToolHost};
use serde::Serialize;

use crate::cli::DoctorArgs;

/// The verdict for one policy on this machine.
#[derive(Debug, Serialize)]
struct Verdict {
    policy: String,
    explained: String,
    /// "fully enforced", "partly enforced", "refused", or "not tried".
    verdict: &'static str,
    missing: Vec<String>,
    detail: Option<String>,
}

pub async fn doctor(args: DoctorArgs, config: Option<&std::path::Path>) -> anyhow::Result<u8> {
    let policies = match Config::load(config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bulkhead: {e}");
            return Ok(crate::cli::EXIT_USAGE);
        }
    };
    let host = ToolHost::new(HostConfig {
        worker_from_config: policies.worker.clone(),
        ..HostConfig::default()
    })?;
    let enforcer = host.enforcer();
    let rows = enforcer.report();
    let probe = host.probe_sandbox().await.unwrap_or_else(|e| {
        serde_json::json!([{"mechanism": "sandbox probe", "available": false, "detail": e.to_string()}])
    });
    let mut verdicts = Vec::new();
    for policy in policies.all() {
        verdicts.push(if args.no_trial {
            Verdict {
                policy: policy.name.clone(),
                explained: policy.explain(),
                verdict: "not tried",
                missing: Vec::new(),
                detail: None,
            }
        } else {
            trial(&host, policy).await
        });
    }
    let uname = uname();
    let root = nix::unistd::geteuid().is_root();
    if args.json {
        let doc = serde_json::json!({
            "version": bulkhead_host::VERSION,
            "kernel": uname,
            "running_as_root": root,
            "config": policies.source,
            "worker": {"path": host.worker().path, "found_by": host.worker().found_by},
            "max_workers": host.max_workers(),
            "memory_mechanism": enforcer.mechanism(),
            "kill_mechanism": enforcer.kill_mechanism(),
            "sample_interval_ms": enforcer.sample_interval().as_millis() as u64,
            "mechanisms": rows,
            "sandbox": probe,
            "policies": verdicts,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(0);
    }
    println!(
        "bulkhead {} on Linux {uname}, running as {}",
        bulkhead_host::VERSION,
        if root { "root" } else { "an ordinary user" }
    );
    println!(
        "worker:  {} (found {})",
        host.worker().path.display(),
        host.worker().found_by
    );
    if let Some(src) = &policies.source {
        println!("config:  {}", src.display());
    }
    println!("workers: at most {} at once\n", host.max_workers());

    let mut table: Vec<(String, bool, String, String)> = rows
        .iter()
        .map(|r| {
            let used = if r.used { "yes" } else { "" };
            (
                r.name.to_string(),
                r.available,
                used.to_owned(),
                r.why.clone(),
            )
        })
        .collect();
    for p in probe.as_array().into_iter().flatten() {
        table.push((
            p["mechanism"].as_str().unwrap_or("?").to_owned(),
            p["available"].as_bool().unwrap_or(false),
            "sandbox".to_owned(),
            p["detail"].as_str().unwrap_or("").to_owned(),
        ));
    }
    let w = table.iter().map(|r| r.0.len()).max().unwrap_or(10).max(9);
    println!(
        "{:<w$}  {:<9}  {:<7}  why",
        "mechanism", "available", "used"
    );
    for (name, available, used, why) in &table {
        let avail = if *available { "yes" } else { "no" };
        println!("{name:<w$}  {avail:<9}  {used:<7}  {why}");
    }
    println!(
        "\nlimits: memory capped by {}, whole-tree kill by {}, usage sampled every {} ms.",
        enforcer.mechanism(),
        enforcer.kill_mechanism(),
        enforcer.sample_interval().as_millis()
    );
    if enforcer.mechanism() == bulkhead_host::enforce::MemoryMechanism::Watchdog {
        println!(
            "        No writable cgroup: memory is polled, not enforced by the kernel; a spike \
             between two samples is stopped only by the RLIMIT_DATA backstop."
        );
    }
    println!("\npolicies (verdict from a trial call under each):");
    for v in &verdicts {
        let missing = if v.missing.is_empty() {
            String::new()
        } else {
            format!(": not enforced {}", v.missing.join(", "))
        };
        println!("  {:<10} {}{missing}", v.policy, v.verdict);
        println!("  {:<10} {}", "", v.explained);
        if let Some(d) = &v.detail {
            println!("  {:<10} {d}", "");
        }
    }
    Ok(0)
}

/// Runs a trivial call under `policy` and reads back what the worker
/// enforced.
async fn trial(host: &ToolHost, policy: &bulkhead_host::Policy) -> Verdict {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let ctx = ResolveContext {
        home,
        workspace: std::env::current_dir().ok(),
        ..ResolveContext::default()
    };
    let mut v = Verdict {
        policy: policy.name.clone(),
        explained: policy.explain(),
        verdict: "not tried",
        missing: Vec::new(),
        detail: None,
    };
    let call_policy = match resolve(policy, &ctx) {
        Ok(p) => p,
        Err(e) => {
            v.detail = Some(e.to_string());
            return v;
        }
    };
    let report = host
        .call(
            CallRequest::new("list_directory", r#"{"path":"/usr"}"#)
                .limits(CallLimits {
                    max_output_bytes: 4096,
                    ..CallLimits::default()
                })
                .policy(call_policy),
        )
        .wait()
        .await;
    v.missing = report
        .enforcement
        .not_enforced()
        .map(|m| format!("{} ({})", m.mechanism, m.detail))
        .collect();
    v.verdict = match &report.outcome {
        Outcome::Failed { error } if error.contains("requires mechanisms") => {
            v.detail = Some(error.clone());
            "refused"
        }
        Outcome::Failed { error } => {
            v.detail = Some(format!("trial call failed: {error}"));
            "not tried"
        }
        _ if v.missing.is_empty() => "fully enforced",
        _ => "partly enforced",
    };
    v
}

fn uname() -> String {
    match nix::sys::utsname::uname() {
        Ok(u) => format!(
            "{} {}",
            u.release().to_string_lossy(),
            u.machine().to_string_lossy()
        ),
        Err(_) => "unknown".into(),
    }
}
