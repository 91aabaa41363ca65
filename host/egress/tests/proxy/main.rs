//! The proxy end to end, on loopback only: a Unix socket in a temporary
//! directory on one side, servers on 127.0.0.1 on the other. Test names
//! reach 127.0.0.1 only through the injected `StaticResolver`; no DNS is
//! asked and no other address is ever connected to.

mod connect;
mod http;
mod limits;
mod socks;
mod support;
