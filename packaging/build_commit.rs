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
    // Rebuild when HEAD moves: HEAD itself (branch switches), the branch's
    // loose ref (new commits) and packed-refs. Paths are resolved by git,
    // so worktrees (where `.git` is a file) work too. Only existing paths
    // are watched: cargo reruns a build script on every build while a
    // watched path is missing (packed-refs often is). A branch whose ref is
    // packed has no loose file yet; its directory is watched instead, as
    // the next commit creates the file there.
    let branch = git(&["symbolic-ref", "-q", "HEAD"])
        .and_then(|r| git(&["rev-parse", "--git-path", &r]))
        .map(std::path::PathBuf::from)
        .map(|p| match (p.exists(), p.parent()) {
            (false, Some(dir)) => dir.to_path_buf(),
            _ => p,
        });
    let watched = [
        git(&["rev-parse", "--git-path", "HEAD"]).map(std::path::PathBuf::from),
        branch,
        git(&["rev-parse", "--git-path", "packed-refs"]).map(std::path::PathBuf::from),
    ];
    for path in watched.into_iter().flatten() {
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Some(commit)
}
