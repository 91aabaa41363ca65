//! Helpers shared by the `enforce` tests.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Set in the test binary re-run by [`alone`]: the name of the one test
/// the re-run is for.
const ALONE_VAR: &str = "BULKHEAD_TEST_ALONE";

/// Runs `body` as the only test of a process of its own, for a test that
/// changes state the whole process shares (its environment), which the
/// other tests, running as threads beside it, would otherwise see. `test`
/// is the test's full path, `concat!(module_path!(), "::NAME")`.
///
/// In the test run, this re-runs the test binary with that one test
/// (`--exact`) and fails unless the re-run ran it and it passed; the
/// re-run's output is printed here, so the harness shows it as the test's
/// own. In the re-run, it runs `body`.
pub fn alone(test: &str, body: impl FnOnce()) {
    // The harness names tests by their path without the crate, which is the
    // binary's name.
    let name = test.split_once("::").map_or(test, |(_, path)| path);
    if std::env::var(ALONE_VAR).is_ok_and(|v| v == name) {
        body();
        return;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(&exe)
        .args([name, "--exact", "--nocapture"])
        .env(ALONE_VAR, name)
        .output()
        .unwrap_or_else(|e| panic!("re-run {} for {name}: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    // A name that matched no test would pass with "0 passed": one passed
    // test is what shows that this one ran.
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed;"),
        "{name}, run in a process of its own, did not pass ({})",
        out.status
    );
}

/// Call ids unique across parallel tests and test binaries: the test
/// process's pid in the high bits, a counter in the low bits.
pub fn call_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    (u64::from(std::process::id()) << 20) | NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A spawned `sh -c` that is SIGKILLed and reaped when dropped, so a failing
/// test does not leave it behind (the cage's Drop kills its descendants).
pub struct Proc(pub Child);

impl Proc {
    pub fn sh(script: &str) -> Proc {
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh");
        Proc(child)
    }

    /// Like [`Proc::sh`], but the script starts only after [`Proc::release`]
    /// (it first reads a line from stdin), the way a worker waits for its
    /// instructions: so it can be attached before it forks anything.
    pub fn gated(script: &str) -> Proc {
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("read _gate; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh");
        Proc(child)
    }

    pub fn release(&mut self) {
        use std::io::Write;
        let mut stdin = self.0.stdin.take().expect("gated proc");
        stdin.write_all(b"go\n").expect("release");
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits for exit; `None` on timeout.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.0.try_wait().expect("try_wait") {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `(ppid, state)` of a process, `None` if gone.
pub fn stat(pid: u32) -> Option<(u32, char)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let mut it = rest.split_whitespace();
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    Some((ppid, state))
}

/// Dead means gone or a zombie.
pub fn is_dead(pid: u32) -> bool {
    stat(pid).is_none_or(|(_, st)| st == 'Z' || st == 'X')
}

/// Live descendants of `root` (not including it).
pub fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((ppid, st)) = stat(pid)
            && st != 'Z'
        {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            if seen.insert(c) {
                out.push(c);
                stack.push(c);
            }
        }
    }
    out
}

/// Waits until `f` holds; panics with `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the tree under `root` has at least `n` live descendants and
/// returns them.
pub fn wait_descendants(root: u32, n: usize) -> Vec<u32> {
    let mut found = Vec::new();
    wait_for(
        &format!("{n} descendants of {root}"),
        Duration::from_secs(10),
        || {
            found = descendants(root);
            found.len() >= n
        },
    );
    found
}

pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).expect("mkdir");
    }
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// True when this machine has the hybrid layout the real-cgroup tests
/// need (root, v1 memory controller). On CI it always does; elsewhere the
/// real-cgroup tests say so and pass vacuously.
pub fn have_v1() -> bool {
    let ok = Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
        // SAFETY: geteuid has no preconditions.
        && unsafe { libc::geteuid() } == 0;
    if !ok {
        // CI runs as root on a hybrid-cgroup machine: there, a missing v1
        // hierarchy is a broken environment, never a reason to skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run these tests as root with a cgroup v1 memory hierarchy"
        );
        eprintln!("skipping: needs root and a cgroup v1 memory hierarchy");
    }
    ok
}

/// Resident memory of the test process itself, in bytes.
pub fn self_rss() -> u64 {
    let text = read(Path::new("/proc/self/statm"));
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
