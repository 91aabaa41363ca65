//! `--key value` options. Every attempt declares the keys it accepts, so a
//! typo (`--pth`) is a usage error instead of a silently ignored option that
//! would make an attempt probe the wrong thing.

use std::collections::BTreeMap;
use std::str::FromStr;

/// The options after the attempt name. Errors are usage messages.
#[derive(Debug)]
pub struct Args {
    values: BTreeMap<String, String>,
}

impl Args {
    /// Parses `--key value` pairs, accepting only `allowed` keys, each once.
    pub fn parse(raw: &[String], allowed: &[&str]) -> Result<Args, String> {
        let mut values = BTreeMap::new();
        let mut it = raw.iter();
        while let Some(flag) = it.next() {
            let Some(key) = flag.strip_prefix("--") else {
                return Err(format!(
                    "unexpected argument {flag:?} (options are --key value)"
                ));
            };
            if !allowed.contains(&key) {
                return Err(if allowed.is_empty() {
                    format!("unknown option --{key}: this attempt takes no options")
                } else {
                    format!(
                        "unknown option --{key} (accepted: --{})",
                        allowed.join(", --")
                    )
                });
            }
            let Some(value) = it.next() else {
                return Err(format!("option --{key} needs a value"));
            };
            if values.insert(key.to_string(), value.clone()).is_some() {
                return Err(format!("option --{key} given twice"));
            }
        }
        Ok(Args { values })
    }

    pub fn opt(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn required(&self, key: &str) -> Result<&str, String> {
        self.opt(key).ok_or_else(|| format!("missing --{key}"))
    }

    /// `--key` parsed as `T`, or `None` when absent.
    pub fn parsed<T: FromStr>(&self, key: &str) -> Result<Option<T>, String> {
        match self.opt(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("--{key} {v:?} is not a valid {}", short_type_name::<T>())),
        }
    }

    pub fn required_parsed<T: FromStr>(&self, key: &str) -> Result<T, String> {
        self.parsed(key)?.ok_or_else(|| format!("missing --{key}"))
    }

    /// A pid to aim a signal or ptrace at. Only positive values: kill(0)
    /// and kill(-1) would hit our own group or every process we may signal.
    pub fn pid(&self) -> Result<libc::pid_t, String> {
        let pid: libc::pid_t = self.required_parsed("pid")?;
        if pid <= 0 {
            return Err(format!("--pid {pid}: must be a positive pid"));
        }
        Ok(pid)
    }
}

/// `SocketAddr` rather than `core::net::socket_addr::SocketAddr`.
fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rejects_bad_usage_by_name() {
        let e = Args::parse(&strings(&["--pth", "x"]), &["path"]).unwrap_err();
        assert!(e.contains("--pth"), "{e}");
        let e = Args::parse(&strings(&["--path"]), &["path"]).unwrap_err();
        assert!(e.contains("needs a value"), "{e}");
        let a = Args::parse(&strings(&["--pid", "-1"]), &["pid"]).unwrap();
        assert!(a.pid().is_err());
        let a = Args::parse(&strings(&["--pid", "12"]), &["pid"]).unwrap();
        assert_eq!(a.pid(), Ok(12));
    }
}
