//! Filesystem attempts: read a secret, read it through a symlink planted in
//! a writable directory, write outside the allowed tree.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use crate::args::Args;
use crate::report::{Report, io_errno};

/// Opens and reads `path`; `escaped` once one byte came back. The bytes
/// themselves are never printed: only how many were read.
fn read_file(attempt: &'static str, path: &Path, via: &str) -> Report {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            return Report::os_failure(
                attempt,
                "open",
                io_errno(&e),
                &format!("open {}", path.display()),
            );
        }
    };
    let mut buf = [0u8; 4096];
    match file.read(&mut buf) {
        Ok(0) => Report::failure(
            attempt,
            "read",
            format!(
                "opened {}{via} but it is empty: nothing read",
                path.display()
            ),
        ),
        Ok(n) => Report::escaped(
            attempt,
            format!("read {n} bytes from {}{via}", path.display()),
        ),
        Err(e) => Report::os_failure(
            attempt,
            "read",
            io_errno(&e),
            &format!("read {}", path.display()),
        ),
    }
}

/// `read_secret --path P`
pub fn read_secret(args: &Args) -> Result<Report, String> {
    let path = args.required("path")?;
    Ok(read_file("read_secret", Path::new(path), ""))
}

/// `symlink_secret --path P --link-dir D`: plants `D/link -> P` and reads
/// through it. A sandbox that checks only the path named in open() (not the
/// resolved target) would let this through.
pub fn symlink_secret(args: &Args) -> Result<Report, String> {
    const ATTEMPT: &str = "symlink_secret";
    let target = Path::new(args.required("path")?);
    let link = Path::new(args.required("link-dir")?).join("link");
    if let Err(e) = std::os::unix::fs::symlink(target, &link) {
        return Ok(Report::os_failure(
            ATTEMPT,
            "symlink",
            io_errno(&e),
            &format!("symlink {} -> {}", link.display(), target.display()),
        ));
    }
    let mut report = read_file(ATTEMPT, &link, &format!(" (-> {})", target.display()));
    // Leave the directory as we found it, so the attempt can be repeated.
    if let Err(e) = std::fs::remove_file(&link) {
        report
            .detail
            .push_str(&format!("; removing {} failed: {e}", link.display()));
    }
    Ok(report)
}

/// `write_outside --path P`: creates (or appends to) P and writes a line.
/// A file we created is removed again; one that existed is only appended to,
/// never truncated, so a mistaken path loses no data.
pub fn write_outside(args: &Args) -> Result<Report, String> {
    const ATTEMPT: &str = "write_outside";
    let path = Path::new(args.required("path")?);
    // symlink_metadata: a dangling symlink counts as existing, so we never
    // delete something we did not create.
    let existed = path.symlink_metadata().is_ok();
    let mut file = match OpenOptions::new().append(true).create(true).open(path) {
        Ok(f) => f,
        Err(e) => {
            return Ok(Report::os_failure(
                ATTEMPT,
                "open",
                io_errno(&e),
                &format!("open {} for writing", path.display()),
            ));
        }
    };
    let written = file.write_all(b"escape-probe was here\n");
    drop(file);
    let cleanup = if existed {
        "appended to an existing file, left in place".to_string()
    } else {
        match std::fs::remove_file(path) {
            Ok(()) => "created it, removed again".to_string(),
            Err(e) => format!("created it, removing failed: {e}"),
        }
    };
    Ok(match written {
        Ok(()) => Report::escaped(ATTEMPT, format!("wrote to {} ({cleanup})", path.display())),
        Err(e) => {
            let mut r = Report::os_failure(
                ATTEMPT,
                "write",
                io_errno(&e),
                &format!("write {}", path.display()),
            );
            r.detail.push_str(&format!(" ({cleanup})"));
            r
        }
    })
}
