//! The one JSON line every attempt prints, and errno helpers.
//!
//! The line is formatted by hand so the keys come out in a fixed order
//! (`attempt` first), which keeps the output readable in test failures;
//! every value still goes through `serde_json` for escaping.

use serde_json::Value;

/// What one attempt did. `stage` names the step that failed, or is
/// `"done"` when the attempt reached its goal (then `escaped` is true).
#[derive(Debug)]
pub struct Report {
    pub attempt: &'static str,
    pub escaped: bool,
    pub stage: String,
    /// The OS error of `stage`, if there was one (a timeout has none).
    pub errno: Option<i32>,
    pub detail: String,
}

impl Report {
    /// The attempt reached its goal.
    pub fn escaped(attempt: &'static str, detail: impl Into<String>) -> Self {
        Report {
            attempt,
            escaped: true,
            stage: "done".into(),
            errno: None,
            detail: detail.into(),
        }
    }

    /// Step `stage` failed with OS error `errno`; `what` is the call and its
    /// argument (e.g. `open /x`) and the detail becomes `what: strerror`.
    pub fn os_failure(attempt: &'static str, stage: &str, errno: i32, what: &str) -> Self {
        Report {
            attempt,
            escaped: false,
            stage: stage.into(),
            errno: Some(errno),
            detail: format!("{what}: {}", strerror(errno)),
        }
    }

    /// Step `stage` failed without an OS error (a timeout, an empty file).
    pub fn failure(attempt: &'static str, stage: &str, detail: impl Into<String>) -> Self {
        Report {
            attempt,
            escaped: false,
            stage: stage.into(),
            errno: None,
            detail: detail.into(),
        }
    }

    pub fn with_errno(mut self, errno: Option<i32>) -> Self {
        self.errno = errno;
        self
    }

    /// The JSON line, without the newline.
    pub fn to_json_line(&self) -> String {
        format!(
            "{{\"attempt\":{},\"escaped\":{},\"stage\":{},\"errno\":{},\"errno_name\":{},\"detail\":{}}}",
            Value::from(self.attempt),
            self.escaped,
            Value::from(self.stage.as_str()),
            self.errno.map_or(Value::Null, Value::from),
            self.errno
                .map_or(Value::Null, |e| Value::from(errno_name(e))),
            Value::from(self.detail.as_str()),
        )
    }
}

/// errno of the last failed libc call.
pub fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// errno carried by a std error; 0 when it has none (std's own errors).
pub fn io_errno(err: &std::io::Error) -> i32 {
    err.raw_os_error().unwrap_or(0)
}

/// The C library's message for `errno`, without std's " (os error N)" tail.
pub fn strerror(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

/// `EACCES` for 13 and so on: the tests compare names, not numbers, so a
/// failure message reads without a table. Unknown values become `E?<n>`.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::EPIPE => "EPIPE",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ELOOP => "ELOOP",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETDOWN => "ENETDOWN",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOTCONN => "ENOTCONN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::EDQUOT => "EDQUOT",
        libc::EKEYREJECTED => "EKEYREJECTED",
        _ => return format!("E?{errno}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_matches_the_documented_shape() {
        let r = Report::os_failure("read_secret", "open", libc::EACCES, "open /x");
        assert_eq!(
            r.to_json_line(),
            r#"{"attempt":"read_secret","escaped":false,"stage":"open","errno":13,"errno_name":"EACCES","detail":"open /x: Permission denied"}"#
        );
        let ok = Report::escaped("tcp_connect", "connected \"q\"");
        assert_eq!(
            ok.to_json_line(),
            r#"{"attempt":"tcp_connect","escaped":true,"stage":"done","errno":null,"errno_name":null,"detail":"connected \"q\""}"#
        );
    }
}
