//! Name resolution: `dns` sends a hand-built query straight to a server
//! over UDP (what malware would do, bypassing any resolver configuration);
//! `dns_libc` goes through getaddrinfo like an ordinary program.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::Duration;

use crate::args::Args;
use crate::report::{Report, io_errno, last_errno};
use crate::sock::{sockaddr, socket_for, wait_for};

const TIMEOUT_MS: i32 = 3000;
/// getaddrinfo has no timeout of its own; a resolver with unreachable
/// servers retries for tens of seconds. We give up (and say so) after this.
const LIBC_TIMEOUT: Duration = Duration::from_secs(10);
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// A standard query for `name`'s A record, recursion desired.
pub fn build_query(id: u16, name: &str) -> Result<Vec<u8>, String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    // flags RD; one question, no answer/authority/additional records.
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!(
                "--name {name:?}: every label must be 1 to 63 bytes"
            ));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    if q.len() - 12 > 255 {
        return Err(format!("--name {name:?}: longer than 255 bytes encoded"));
    }
    q.extend_from_slice(&[0, 1, 0, 1]); // QTYPE A, QCLASS IN
    Ok(q)
}

/// The first `nameserver` of resolv.conf, port 53; Err is the ready report.
fn default_server(attempt: &'static str) -> Result<SocketAddr, Report> {
    let text = std::fs::read_to_string(RESOLV_CONF).map_err(|e| {
        Report::os_failure(
            attempt,
            "resolv_conf",
            io_errno(&e),
            &format!("read {RESOLV_CONF}"),
        )
    })?;
    let first = text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("nameserver"))
            .then(|| words.next())
            .flatten()
    });
    let Some(word) = first else {
        return Err(Report::failure(
            attempt,
            "resolv_conf",
            format!("no nameserver line in {RESOLV_CONF}"),
        ));
    };
    // A link-local server may carry a %scope suffix that IpAddr cannot parse.
    let ip_text = word.split('%').next().unwrap_or(word);
    match ip_text.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, 53)),
        Err(_) => Err(Report::failure(
            attempt,
            "resolv_conf",
            format!("nameserver {word:?} in {RESOLV_CONF} is not an IP address"),
        )),
    }
}

/// `dns [--server IP:PORT] --name N`
pub fn dns(args: &Args) -> Result<Report, String> {
    const ATTEMPT: &str = "dns";
    let name = args.required("name")?;
    let id = (std::process::id() & 0xffff) as u16;
    let query = build_query(id, name)?;
    let server = match args.parsed::<SocketAddr>("server")? {
        Some(s) => s,
        None => match default_server(ATTEMPT) {
            Ok(s) => s,
            Err(report) => return Ok(report),
        },
    };
    let fd = match socket_for(&server, libc::SOCK_DGRAM) {
        Ok(fd) => fd,
        Err(e) => return Ok(Report::os_failure(ATTEMPT, "socket", e, "socket")),
    };
    let (sa, len) = sockaddr(&server);
    // SAFETY: query is a valid buffer; sa/len a valid sockaddr.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            query.as_ptr() as *const libc::c_void,
            query.len(),
            0,
            &sa as *const _ as *const libc::sockaddr,
            len,
        )
    };
    if sent < 0 {
        return Ok(Report::os_failure(
            ATTEMPT,
            "send",
            last_errno(),
            &format!("sendto {server}"),
        ));
    }
    match wait_for(&fd, libc::POLLIN, TIMEOUT_MS) {
        Err(e) => return Ok(Report::os_failure(ATTEMPT, "recv", e, "poll")),
        Ok(0) => {
            return Ok(Report::failure(
                ATTEMPT,
                "recv",
                format!("timeout: no reply from {server} within {TIMEOUT_MS} ms"),
            ));
        }
        Ok(_) => {}
    }
    let mut buf = [0u8; 1500];
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            0,
        )
    };
    if n < 0 {
        // ECONNREFUSED here is an ICMP port-unreachable: the packet did get out.
        return Ok(Report::os_failure(
            ATTEMPT,
            "recv",
            last_errno(),
            &format!("recv from {server}"),
        ));
    }
    let n = n as usize;
    let id_ok = n >= 2 && buf[..2] == id.to_be_bytes();
    let rcode = if n >= 4 {
        (buf[3] & 0x0f).to_string()
    } else {
        "?".into()
    };
    Ok(Report::escaped(
        ATTEMPT,
        format!("reply of {n} bytes from {server} (id matches: {id_ok}, rcode {rcode})"),
    ))
}

/// `dns_libc --name N`: getaddrinfo through std, on a thread so a resolver
/// stuck retrying cannot hang the probe.
pub fn dns_libc(args: &Args) -> Result<Report, String> {
    const ATTEMPT: &str = "dns_libc";
    let name = args.required("name")?.to_string();
    let (tx, rx) = mpsc::channel();
    let lookup = name.clone();
    let spawned = std::thread::Builder::new().spawn(move || {
        let result = (lookup.as_str(), 0u16)
            .to_socket_addrs()
            .map(|it| it.collect::<Vec<_>>());
        let _ = tx.send(result);
    });
    if let Err(e) = spawned {
        return Ok(Report::os_failure(
            ATTEMPT,
            "thread",
            io_errno(&e),
            "spawn resolver thread",
        ));
    }
    Ok(match rx.recv_timeout(LIBC_TIMEOUT) {
        Err(_) => Report::failure(
            ATTEMPT,
            "getaddrinfo",
            format!(
                "timeout: getaddrinfo({name}) did not return within {} s",
                LIBC_TIMEOUT.as_secs()
            ),
        ),
        Ok(Ok(addrs)) if addrs.is_empty() => Report::failure(
            ATTEMPT,
            "getaddrinfo",
            format!("getaddrinfo({name}) returned no address"),
        ),
        Ok(Ok(addrs)) => {
            let ips: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            Report::escaped(ATTEMPT, format!("{name} resolved to {}", ips.join(", ")))
        }
        // getaddrinfo's EAI_* errors carry no errno (only EAI_SYSTEM does):
        // the text is what tells a blocked network from an unknown name.
        Ok(Err(e)) => Report::failure(ATTEMPT, "getaddrinfo", format!("getaddrinfo({name}): {e}"))
            .with_errno(e.raw_os_error()),
    })
}

#[cfg(test)]
mod tests {
    use super::build_query;

    #[test]
    fn query_encodes_labels() {
        let q = build_query(0x1234, "example.test.").unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x07example\x04test\x00\x00\x01\x00\x01");
        assert!(build_query(1, "a..b").is_err());
    }
}
