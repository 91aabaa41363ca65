// Shared by the build scripts of `bulkhead` (tui/build.rs) and
// `bulkhead-worker` (tool-worker/build.rs), through `include!`, so that both
// binaries of one build report the same commit in `--version`.
//
// The commit comes from `BULKHEAD_BUILD_COMMIT` if set (a build from a
// tarball or a Docker context without `.git` can pass it in), else from
// `git`; without either it is "unknown", never a build failure.

fn emit_build_info() {
    println!("cargo:rerun-if-env-changed=BULKHEAD_BUILD_COMMIT");
    let commit = std::env::var("BULKHEAD_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=BULKHEAD_GIT_COMMIT={}", commit.trim());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=BULKHEAD_TARGET={target}");
}

fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn git_commit() -> Option<String> {
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    // Rebuild when HEAD moves: HEAD itself (branch switches) and the file
    // of the branch it points to (new commits). Both paths are resolved by
    // git, so worktrees (where `.git` is a file) work too.
    for path in [
        git(&["rev-parse", "--git-path", "HEAD"]),
        git(&["symbolic-ref", "-q", "HEAD"]).and_then(|r| git(&["rev-parse", "--git-path", &r])),
        git(&["rev-parse", "--git-path", "packed-refs"]),
    ]
    .into_iter()
    .flatten()
    {
        println!("cargo:rerun-if-changed={path}");
    }
    Some(commit)
}
