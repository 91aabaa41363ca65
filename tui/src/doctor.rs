//! `bulkhead doctor`: what this machine can enforce, and what bulkhead uses.

use bulkhead_host::{HostConfig, ToolHost};

use crate::cli::DoctorArgs;

pub async fn doctor(args: DoctorArgs) -> anyhow::Result<u8> {
    let host = ToolHost::new(HostConfig::default())?;
    let enforcer = host.enforcer();
    let rows = enforcer.report();
    let uname = nix_uname();
    let root = unsafe { libc::geteuid() } == 0;
    if args.json {
        let doc = serde_json::json!({
            "version": bulkhead_host::VERSION,
            "kernel": uname,
            "running_as_root": root,
            "worker": {"path": host.worker().path, "found_by": host.worker().found_by},
            "max_workers": host.max_workers(),
            "memory_mechanism": enforcer.mechanism(),
            "kill_mechanism": enforcer.kill_mechanism(),
            "sample_interval_ms": enforcer.sample_interval().as_millis() as u64,
            "mechanisms": rows,
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
    println!("workers: at most {} at once\n", host.max_workers());
    let name_w = rows.iter().map(|r| r.name.len()).max().unwrap_or(10).max(9);
    println!(
        "{:<name_w$}  {:<9}  {:<4}  why",
        "mechanism", "available", "used"
    );
    for r in &rows {
        println!(
            "{:<name_w$}  {:<9}  {:<4}  {}",
            r.name,
            if r.available { "yes" } else { "no" },
            if r.used { "yes" } else { "" },
            r.why
        );
    }
    println!(
        "\nverdict: memory capped by {}, whole-tree kill by {}, usage sampled every {} ms.",
        enforcer.mechanism(),
        enforcer.kill_mechanism(),
        enforcer.sample_interval().as_millis()
    );
    if enforcer.mechanism() == bulkhead_host::enforce::MemoryMechanism::Watchdog {
        println!(
            "         No writable cgroup: memory is polled, not enforced by the kernel; a spike \
             between two samples is stopped only by the RLIMIT_DATA backstop."
        );
    }
    println!("         Filesystem, network and syscall sandboxing are not enforced yet.");
    Ok(0)
}

fn nix_uname() -> String {
    // SAFETY: uname fills the struct; a zeroed utsname is valid input.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!("{} {}", field(&u.release), field(&u.machine))
}
