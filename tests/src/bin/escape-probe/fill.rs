//! `fill_disk`: writes until the sandbox's file-size limit (RLIMIT_FSIZE:
//! EFBIG) or quota (ENOSPC/EDQUOT) stops it.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use crate::args::Args;
use crate::report::{Report, io_errno, strerror};

const BLOCK: usize = 1 << 20;
/// Never write more than this, whatever `--max` says: an unconfined run
/// must not fill the test machine's disk.
const HARD_MAX: u64 = 1 << 30;

/// `fill_disk --dir D --limit BYTES [--max BYTES]`
pub fn fill_disk(args: &Args) -> Result<Report, String> {
    const ATTEMPT: &str = "fill_disk";
    let dir = Path::new(args.required("dir")?);
    let limit: u64 = args.required_parsed("limit")?;
    let max: u64 = args
        .parsed("max")?
        .unwrap_or_else(|| limit.saturating_mul(4))
        .min(HARD_MAX);
    let path = dir.join("fill");

    // Past RLIMIT_FSIZE the kernel sends SIGXFSZ, whose default action kills
    // us before we can report; ignored, the write fails with EFBIG instead.
    // SAFETY: installing SIG_IGN has no handler code to be unsafe about.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };

    let mut file = match OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) => {
            return Ok(Report::os_failure(
                ATTEMPT,
                "open",
                io_errno(&e),
                &format!("open {}", path.display()),
            ));
        }
    };
    let block = vec![0x5au8; BLOCK];
    let mut total: u64 = 0;
    let mut failure: Option<std::io::Error> = None;
    while total < max {
        // The last block may be partial so we stop exactly at max.
        let want = usize::try_from((max - total).min(BLOCK as u64)).unwrap_or(BLOCK);
        // One write() per step, not write_all: a short write at the limit is
        // counted, and the next write reports the error.
        match file.write(&block[..want]) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(file);
    let cleanup = match std::fs::remove_file(&path) {
        Ok(()) => "file removed".to_string(),
        Err(e) => format!("removing {} failed: {e}", path.display()),
    };
    let how_far = format!(
        "wrote {total} bytes to {} (limit {limit}, max {max})",
        path.display()
    );
    let errno = failure.as_ref().map(io_errno);
    let stopped = match (&failure, errno) {
        (Some(_), Some(e)) if e != 0 => format!("then write failed: {}", strerror(e)),
        (Some(e), _) => format!("then write failed: {e}"),
        (None, _) if total >= max => "stopped at max without an error".to_string(),
        (None, _) => "write returned 0".to_string(),
    };
    let detail = format!("{how_far}; {stopped}; {cleanup}");
    // The errno is kept even on escape: it says what finally stopped us.
    Ok(if total > limit {
        Report::escaped(ATTEMPT, detail).with_errno(errno)
    } else {
        // "max": a --max at or below --limit ran out before anything stopped us.
        let stage = if failure.is_some() { "write" } else { "max" };
        Report::failure(ATTEMPT, stage, detail).with_errno(errno)
    })
}
