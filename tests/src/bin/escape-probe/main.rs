//! `escape-probe`: a hostile tool for bulkhead's sandbox tests. Each run
//! makes one escape attempt and prints one JSON line saying whether it got
//! out and, if not, at which step and with which errno it was stopped, so a
//! test can assert that every attempt failed *for the right reason* (a
//! missing file is not a sandbox).
//!
//! Usage: `escape-probe ATTEMPT [--key value]...`
//!
//! ```text
//! {"attempt":"read_secret","escaped":false,"stage":"open","errno":13,"errno_name":"EACCES","detail":"open /x: Permission denied"}
//! ```
//!
//! Attempts (`escaped` is true when the goal was reached; see each module):
//!
//! ```text
//! read_secret    --path P                       open+read P
//! symlink_secret --path P --link-dir D          D/link -> P, read through it
//! write_outside  --path P                       create/append P (removed if created)
//! tcp_connect    --addr IP:PORT                 connect, 3 s timeout
//! abstract_connect --name N                     connect to the abstract Unix socket @N
//! dns            [--server IP:PORT] --name N    UDP A query (default: resolv.conf, port 53)
//! dns_libc       --name N                       getaddrinfo
//! signal_host    --pid P                        kill(P, SIGCONT)
//! ptrace_host    --pid P                        PTRACE_SEIZE, then detach
//! read_environ   --pid P --secret NAME          NAME= in /proc/P/environ, or in our own env
//! inherited_fd   --fd N                         is fd N open
//! outlive        --marker M                     double fork + setsid; stage "spawned"
//! linger         --marker M                     sleep forever (what outlive leaves behind)
//! fork_bomb      [--max N]                      fork until failure or N (default 2000)
//! fill_disk      --dir D --limit B [--max B]    write D/fill past B bytes
//! tiocsti                                       TIOCSTI on fds 0-2 and /dev/tty
//! mount          --dir D                        tmpfs on D
//! load_module                                   init_module; escaped unless EPERM
//! all-info                                      ids, namespaces, fds, filters (not an attempt)
//! mcp                                           serve the attempts as an MCP server (stdio)
//! ```
//!
//! Exit status 0 whenever an attempt ran (escaped or not), 2 on bad usage
//! (message on stderr). Every attempt undoes what it managed to do (files
//! removed, tmpfs unmounted, fork-bomb children reaped), so running the
//! probe unconfined is safe; `outlive` alone leaves a sleeping process on
//! purpose, whose pid it prints.

mod args;
mod bomb;
mod dns;
mod fds;
mod files;
mod fill;
mod info;
mod kernel;
mod mcp;
mod net;
mod procs;
mod report;
mod sock;
mod spawn;

use std::io::Write;
use std::process::ExitCode;

use args::Args;
use report::Report;

type Attempt = fn(&Args) -> Result<Report, String>;

/// Every attempt: its name, the options it accepts, the code.
const ATTEMPTS: &[(&str, &[&str], Attempt)] = &[
    ("read_secret", &["path"], files::read_secret),
    (
        "symlink_secret",
        &["path", "link-dir"],
        files::symlink_secret,
    ),
    ("write_outside", &["path"], files::write_outside),
    ("tcp_connect", &["addr"], net::tcp_connect),
    ("abstract_connect", &["name"], net::abstract_connect),
    ("dns", &["server", "name"], dns::dns),
    ("dns_libc", &["name"], dns::dns_libc),
    ("signal_host", &["pid"], procs::signal_host),
    ("ptrace_host", &["pid"], procs::ptrace_host),
    ("read_environ", &["pid", "secret"], procs::read_environ),
    ("inherited_fd", &["fd"], fds::inherited_fd),
    ("outlive", &["marker"], spawn::outlive),
    ("fork_bomb", &["max"], bomb::fork_bomb),
    ("fill_disk", &["dir", "limit", "max"], fill::fill_disk),
    ("tiocsti", &[], kernel::tiocsti),
    ("mount", &["dir"], kernel::mount),
    ("load_module", &[], kernel::load_module),
];

fn usage() -> String {
    let mut names: Vec<&str> = ATTEMPTS.iter().map(|(n, _, _)| *n).collect();
    names.extend(["linger", "all-info"]);
    format!(
        "usage: escape-probe ATTEMPT [--key value]...\nattempts: {}",
        names.join(", ")
    )
}

/// Runs the command line; Ok is the JSON line, Err a usage message.
fn run(argv: &[String]) -> Result<String, String> {
    let Some((name, rest)) = argv.split_first() else {
        return Err("no attempt given".into());
    };
    match name.as_str() {
        "all-info" => {
            Args::parse(rest, &[])?;
            Ok(info::all_info())
        }
        "linger" => match spawn::linger(&Args::parse(rest, &["marker"])?) {
            Err(e) => Err(e),
        },
        _ => {
            let Some((_, keys, attempt)) = ATTEMPTS.iter().find(|(n, _, _)| n == name) else {
                return Err(format!("unknown attempt {name:?}"));
            };
            Ok(attempt(&Args::parse(rest, keys)?)?.to_json_line())
        }
    }
}

fn main() -> ExitCode {
    // Arguments that are not UTF-8 are a usage error, not a panic.
    let argv: Option<Vec<String>> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string().ok())
        .collect();
    if argv
        .as_ref()
        .is_some_and(|a| a.first().is_some_and(|n| n == "mcp"))
    {
        return mcp::serve();
    }
    let result = match argv {
        Some(argv) => run(&argv),
        None => Err("arguments must be UTF-8".into()),
    };
    match result {
        Ok(line) => {
            // println! would panic on a closed stdout; the attempt ran anyway.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
            ExitCode::SUCCESS
        }
        Err(msg) => {
            let _ = writeln!(std::io::stderr(), "escape-probe: {msg}\n{}", usage());
            ExitCode::from(2)
        }
    }
}
