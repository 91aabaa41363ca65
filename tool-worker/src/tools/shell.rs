//! `shell`: runs `command` with `sh -c` in `cwd`, streaming stdout and
//! stderr as they come.
//!
//! The call ends when the shell exits. Whatever it left running in the
//! background is killed then: a backgrounded grandchild that holds the output
//! pipe must not keep the call open (the failure of openai/codex #4337).

use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use bulkhead_ipc::{MAX_CHUNK_BYTES, StreamId, ToolExit};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{OutputSink, Tool, ToolContext, ToolEnd, ToolFailure};
use crate::tree;

/// How long one `poll` waits before the loop checks whether the shell has
/// exited. Short enough that a finished shell whose pipes are held open by a
/// background child is noticed quickly; long enough to cost nothing.
const POLL_INTERVAL_MS: u16 = 20;

/// Arguments of `shell`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellArgs {
    /// The command line, run as `sh -c COMMAND`.
    pub command: String,
    /// Working directory; defaults to the host's.
    #[serde(default)]
    pub cwd: Option<String>,
}

pub struct Shell;

impl Tool for Shell {
    type Args = ShellArgs;
    const NAME: &'static str = "shell";
    const DESCRIPTION: &'static str = "Runs a command with sh -c; stdout and stderr are streamed and capped, the exit code reported.";
    const SPAWNS_PROCESSES: bool = true;

    fn run(
        &self,
        args: ShellArgs,
        sink: &mut dyn OutputSink,
        _ctx: &ToolContext<'_>,
    ) -> Result<ToolEnd, ToolFailure> {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(&args.command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(cwd) = &args.cwd {
            cmd.current_dir(cwd);
        }
        tree::die_with_worker(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| match &args.cwd {
            Some(cwd) => ToolFailure::io(format!("cannot start sh in cwd \"{cwd}\""), e),
            None => ToolFailure::io("cannot start /bin/sh", e),
        })?;
        let pid = Pid::from_raw(child.id() as i32);
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(ToolFailure::io("shell", io::Error::other("pipes missing")));
        };
        // The child is waited for by pid below, never through `child`.
        drop(child);

        let pump = pump(sink, pid, stdout.into(), stderr.into());
        // Stop whatever is left: the shell itself if we stopped early, and
        // anything it started, then reap it all.
        if pump.as_ref().map_or(true, |p| p.stopped) {
            tree::signal_descendants();
        }
        let status = match pump {
            Ok(Pump {
                status: Some(s), ..
            }) => Some(s),
            _ => wait_blocking(pid),
        };
        tree::kill_descendants();
        let pump = pump.map_err(|e| ToolFailure::io("reading the shell's output", e))?;

        let (exit, summary) = match status {
            _ if pump.stopped => (ToolExit::Stopped, serde_json::json!({"stopped": true})),
            Some(WaitStatus::Exited(_, code)) => {
                (ToolExit::Code(code), serde_json::json!({"exit_code": code}))
            }
            Some(WaitStatus::Signaled(_, sig, _)) => (
                ToolExit::Signal(sig as i32),
                serde_json::json!({"signal": sig as i32}),
            ),
            _ => (ToolExit::Stopped, serde_json::json!({"stopped": true})),
        };
        Ok(ToolEnd {
            exit,
            summary: Some(summary),
        })
    }
}

struct Pump {
    /// The shell's status, if it exited while we were reading.
    status: Option<WaitStatus>,
    /// We stopped reading because the sink said stop.
    stopped: bool,
}

/// Forwards both pipes to the sink until both reach EOF or the sink says
/// stop. Once the shell exits, its leftover children are killed so the
/// pipes do reach EOF.
fn pump(sink: &mut dyn OutputSink, pid: Pid, stdout: OwnedFd, stderr: OwnedFd) -> io::Result<Pump> {
    let mut open: Vec<(StreamId, std::fs::File)> = vec![
        (StreamId::Stdout, stdout.into()),
        (StreamId::Stderr, stderr.into()),
    ];
    let mut buf = vec![0u8; MAX_CHUNK_BYTES];
    let mut status = None;
    while !open.is_empty() {
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd<'_>> = open
                .iter()
                .map(|(_, f)| PollFd::new(f.as_fd(), PollFlags::POLLIN))
                .collect();
            match poll(&mut fds, PollTimeout::from(POLL_INTERVAL_MS)) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            fds.iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect()
        };
        let mut closed = Vec::new();
        for (k, (stream, file)) in open.iter_mut().enumerate() {
            if !ready[k] {
                continue;
            }
            let n = loop {
                match file.read(&mut buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                closed.push(k);
            } else if !sink.write(*stream, &buf[..n])? {
                return Ok(Pump {
                    status,
                    stopped: true,
                });
            }
        }
        for k in closed.into_iter().rev() {
            open.remove(k);
        }
        if status.is_none() {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(s) => {
                    status = Some(s);
                    // The shell is gone; what remains only holds the pipes.
                    // Bytes already written stay readable after the kill.
                    tree::signal_descendants();
                }
                Err(_) => {}
            }
        }
        if sink.cancelled() {
            return Ok(Pump {
                status,
                stopped: true,
            });
        }
    }
    Ok(Pump {
        status,
        stopped: false,
    })
}

fn wait_blocking(pid: Pid) -> Option<WaitStatus> {
    loop {
        match waitpid(pid, None) {
            Ok(s) => return Some(s),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}
