//! Attempts 4, 5 and 15: a TCP connection to a listener on the host's
//! loopback, a DNS query to a resolver there, and a connection to the
//! host's abstract Unix socket. Under `untrusted` (network `none`) seccomp
//! refuses every socket but a Unix one, and Landlock scopes abstract
//! sockets to the sandbox; on a kernel without that scoping, the tool's
//! network namespace has no usable interface and abstract names of its own.

use std::net::{TcpListener, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};

use crate::{Fixture, attempt};

/// What stops a packet: the socket allowlist, Landlock's TCP rules, or the
/// namespace (no route).
const NETWORK_BARRIERS: [&str; 3] = ["net_ns", "landlock_tcp", "seccomp_net"];
const NETWORK_ERRNOS: [&str; 3] = ["ENETUNREACH", "EACCES", "EPERM"];

#[test]
fn connect_to_a_listener_on_the_host() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let fx = Fixture::new();
    let a = attempt(&fx, &["tcp_connect", "--addr", &addr], &[]);
    a.assert_stopped_by(&NETWORK_BARRIERS, &NETWORK_ERRNOS);
    assert!(listener.accept().is_err(), "the listener got a connection");
}

#[test]
fn resolve_a_name() {
    let resolver = UdpSocket::bind("127.0.0.1:0").unwrap();
    resolver.set_nonblocking(true).unwrap();
    let addr = resolver.local_addr().unwrap().to_string();
    let fx = Fixture::new();
    let a = attempt(
        &fx,
        &["dns", "--server", &addr, "--name", "example.test"],
        &[],
    );
    a.assert_stopped_by(&["net_ns", "seccomp_net"], &["ENETUNREACH", "EPERM"]);
    let mut buf = [0u8; 512];
    assert!(
        resolver.recv_from(&mut buf).is_err(),
        "the resolver got a query"
    );
}

#[test]
fn connect_to_the_hosts_abstract_socket() {
    let name = format!("bulkhead-escape-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixListener::bind_addr(&addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let fx = Fixture::new();
    let a = attempt(&fx, &["abstract_connect", "--name", &name], &[]);
    a.assert_stopped_by(&["landlock_scope", "net_ns"], &["EPERM", "ECONNREFUSED"]);
    assert!(listener.accept().is_err(), "the listener got a connection");
}

/// A policy that turns seccomp off cannot rest `none` on the socket
/// allowlist: it gets the empty network namespace, which stops the same
/// attempts, and the report says which one it got.
#[test]
fn without_seccomp_none_is_a_namespace() {
    let fx = Fixture::new();
    let config = fx.home.path().join(".config/bulkhead");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("bulkhead.toml"),
        "[policies.untrusted]\nseccomp = false\n",
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let a = attempt(&fx, &["tcp_connect", "--addr", &addr], &[]);
    assert!(
        a.mechanism("seccomp_net").is_none(),
        "a policy without seccomp got the allowlist: {:#}",
        a.report["enforcement"]
    );
    a.assert_stopped_by(&["net_ns", "landlock_tcp"], &["ENETUNREACH", "EACCES"]);
    assert!(listener.accept().is_err(), "the listener got a connection");
}
