//! The built-in policies and the path lists they are made of.

use std::time::Duration;

use bulkhead_ipc::{NetworkMode, OnMissing};

use super::{FsPolicy, Policy, PolicyLimits};

/// What every sandboxed tool may read to run at all: programs, libraries,
/// locale and certificate data, device nodes, `/proc` and `/sys` (which
/// runtimes read for their own limits). `/etc` comes with its secrets
/// carved out by [`SYSTEM_SECRETS`]. Missing entries are skipped.
pub(crate) const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/opt",
    "/dev",
    "/proc",
    "/sys",
    "/nix/store",
];

/// Device files every tool may write: the sinks and sources programs open
/// by name. Not `/dev/tty`: a tool has no terminal.
pub(crate) const DEVICE_WRITE: &[&str] = &["/dev/null", "/dev/zero", "/dev/full"];

/// Secrets of the system, denied even where `/etc` is readable.
pub(crate) const SYSTEM_SECRETS: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssl/private",
    "/etc/security/opasswd",
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_ecdsa_key",
    "/etc/ssh/ssh_host_ed25519_key",
    "/etc/ssh/ssh_host_dsa_key",
    "/etc/NetworkManager/system-connections",
    "/etc/wpa_supplicant",
    "/var/lib/docker",
    "/run/secrets",
];

/// Secrets under `$HOME`: keys, cloud and registry credentials, password
/// stores, browser profiles (cookies and saved passwords). `~/` is the
/// user's home. `.env` files are found by name instead (see `resolve`).
pub(crate) const HOME_SECRETS: &[&str] = &[
    "~/.ssh",
    "~/.gnupg",
    "~/.aws",
    "~/.azure",
    "~/.config/gcloud",
    "~/.kube",
    "~/.docker/config.json",
    "~/.netrc",
    "~/.npmrc",
    "~/.pypirc",
    "~/.git-credentials",
    "~/.config/gh",
    "~/.config/hub",
    "~/.cargo/credentials",
    "~/.cargo/credentials.toml",
    "~/.terraform.d/credentials.tfrc.json",
    "~/.vault-token",
    "~/.password-store",
    "~/.local/share/keyrings",
    "~/.mozilla",
    "~/.thunderbird",
    "~/.config/google-chrome",
    "~/.config/chromium",
    "~/.config/BraveSoftware",
    "~/.config/microsoft-edge",
    "~/.config/vivaldi",
    "~/snap/firefox",
    "~/.var/app/org.mozilla.firefox",
    "~/Library/Keychains",
    "~/Library/Application Support/Google/Chrome",
    "~/Library/Application Support/Firefox",
];

/// The names of the presets, in the order `bulkhead doctor` lists them.
pub const PRESET_NAMES: [&str; 3] = ["untrusted", "workspace", "trusted"];

/// Variables a sandboxed tool gets: enough to run programs and print text,
/// nothing that holds a credential.
const MINIMAL_ENV: &[&str] = &["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM"];

/// The `trusted` preset: limits only.
pub(crate) fn trusted() -> Policy {
    limits_only("trusted")
}

fn limits_only(name: &str) -> Policy {
    Policy {
        name: name.to_owned(),
        filesystem: FsPolicy::Unrestricted,
        network: NetworkMode::Full,
        allow_net: bulkhead_egress::AllowList::default(),
        env: None,
        limits: PolicyLimits::default(),
        cwd: None,
        isolate_processes: false,
        seccomp: false,
        on_missing: OnMissing::BestEffort,
    }
}

/// The built-in policy called `name` (one of [`PRESET_NAMES`]), if there
/// is one.
pub fn preset(name: &str) -> Option<Policy> {
    // Every preset starts from limits only and adds its sandbox.
    let base = limits_only(name);
    Some(match name {
        // Untrusted code: MCP servers by default. Sees the system, its own
        // install dir and what it is given; writes only its temp dir.
        "untrusted" => Policy {
            filesystem: FsPolicy::Restricted {
                read_everything: false,
                system: true,
                workspace_writable: false,
                read: Vec::new(),
                write: Vec::new(),
                deny: Vec::new(),
            },
            network: NetworkMode::None,
            env: Some(MINIMAL_ENV.iter().map(|s| (*s).to_owned()).collect()),
            isolate_processes: true,
            seccomp: true,
            limits: PolicyLimits {
                // An untrusted server gets no more than a typical tool call;
                // a larger figure is one `[policies.x.limits]` away.
                timeout: Some(Duration::from_secs(300)),
                ..PolicyLimits::default()
            },
            ..base
        },
        // bulkhead's own tools: read anything but secrets, write the
        // workspace, no network.
        "workspace" => Policy {
            filesystem: FsPolicy::Restricted {
                read_everything: true,
                system: true,
                workspace_writable: true,
                read: Vec::new(),
                write: Vec::new(),
                deny: Vec::new(),
            },
            network: NetworkMode::None,
            isolate_processes: true,
            seccomp: true,
            ..base
        },
        // Limits only.
        "trusted" => trusted(),
        _ => return None,
    })
}
