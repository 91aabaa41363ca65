//! Attempts 4 and 5: a TCP connection to a listener on the host's
//! loopback, and a DNS query to a resolver there. Under `untrusted`
//! (network `none`) the tool's network namespace has no usable interface
//! at all; without one, seccomp refuses Internet sockets.

use std::net::{TcpListener, UdpSocket};

use crate::{Fixture, attempt};

/// What stops a packet: the namespace (no route), Landlock's TCP rules, or
/// the seccomp fallback.
const NETWORK_BARRIERS: [&str; 3] = ["net_ns", "landlock_tcp", "seccomp_inet"];
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
    a.assert_stopped_by(&["net_ns", "seccomp_inet"], &["ENETUNREACH", "EPERM"]);
    let mut buf = [0u8; 512];
    assert!(
        resolver.recv_from(&mut buf).is_err(),
        "the resolver got a query"
    );
}
