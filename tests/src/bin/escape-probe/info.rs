//! `all-info`: what the sandbox looks like from inside, as one JSON object.
//! Not an attempt; for debugging a policy (which ids, namespaces, fds,
//! filters and limits the tool actually got). Environment values are never
//! printed, only names: the environment may hold the very secrets we probe.

use serde_json::{Map, Value, json};

/// A file's text, or `{"error": …}` if it cannot be read.
fn read_text(path: &str) -> Value {
    match std::fs::read_to_string(path) {
        Ok(t) => Value::from(t),
        Err(e) => json!({ "error": format!("{path}: {e}") }),
    }
}

/// The value of `Key:` in /proc/self/status.
fn status_field(status: &str, key: &str) -> Value {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map_or(Value::Null, |v| Value::from(v.trim()))
}

/// Open descriptors and what they point to. The names are collected first
/// and the directory closed, so its own fd (now gone) drops out of the list.
fn open_fds() -> Value {
    let names: Vec<String> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => return json!({ "error": format!("/proc/self/fd: {e}") }),
    };
    let mut fds: Vec<(i64, String)> = names
        .iter()
        .filter_map(|n| {
            let fd: i64 = n.parse().ok()?;
            let target = std::fs::read_link(format!("/proc/self/fd/{n}")).ok()?;
            Some((fd, target.display().to_string()))
        })
        .collect();
    fds.sort();
    Value::Array(
        fds.into_iter()
            .map(|(fd, target)| json!({ "fd": fd, "target": target }))
            .collect(),
    )
}

/// getrlimit's resource type differs between C libraries.
#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

fn rlimit(resource: Resource) -> Value {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass.
    if unsafe { libc::getrlimit(resource, &mut rl) } != 0 {
        return Value::Null;
    }
    let show = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            Value::from("unlimited")
        } else {
            Value::from(v)
        }
    };
    json!({ "soft": show(rl.rlim_cur), "hard": show(rl.rlim_max) })
}

/// The all-info object, serialized.
pub fn all_info() -> String {
    // SAFETY: these id getters cannot fail.
    let (pid, ppid, uid, euid, gid, egid) = unsafe {
        (
            libc::getpid(),
            libc::getppid(),
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // NSpid lists our pid in each PID namespace from the one /proc was
    // mounted in down to ours; the last is our pid in our own namespace
    // (1: we are its init). With a /proc of our own it has one entry only.
    let nspid: Vec<i64> = match status_field(&status, "NSpid") {
        Value::String(s) => s
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect(),
        _ => Vec::new(),
    };
    let mut env_names: Vec<String> = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    env_names.sort();

    let mut out = Map::new();
    out.insert("attempt".into(), "all-info".into());
    out.insert("pid".into(), pid.into());
    out.insert("ppid".into(), ppid.into());
    out.insert("uid".into(), uid.into());
    out.insert("euid".into(), euid.into());
    out.insert("gid".into(), gid.into());
    out.insert("egid".into(), egid.into());
    out.insert("nspid".into(), json!(nspid));
    out.insert("pid_ns_init".into(), (nspid.last() == Some(&1)).into());
    out.insert("fds".into(), open_fds());
    out.insert("env_names".into(), json!(env_names));
    for (key, field) in [
        ("seccomp", "Seccomp"),
        ("seccomp_filters", "Seccomp_filters"),
        ("no_new_privs", "NoNewPrivs"),
        ("cap_eff", "CapEff"),
        ("cap_bnd", "CapBnd"),
    ] {
        out.insert(key.into(), status_field(&status, field));
    }
    out.insert("uid_map".into(), read_text("/proc/self/uid_map"));
    out.insert("gid_map".into(), read_text("/proc/self/gid_map"));
    out.insert("cgroup".into(), read_text("/proc/self/cgroup"));
    out.insert(
        "cwd".into(),
        std::env::current_dir().map_or(Value::Null, |p| p.display().to_string().into()),
    );
    out.insert(
        "rlimits".into(),
        json!({
            "nproc": rlimit(libc::RLIMIT_NPROC),
            "fsize": rlimit(libc::RLIMIT_FSIZE),
            "nofile": rlimit(libc::RLIMIT_NOFILE),
            "as": rlimit(libc::RLIMIT_AS),
        }),
    );
    Value::Object(out).to_string()
}
