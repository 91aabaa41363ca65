//! The wire protocol from outside the crate: every message round trips
//! through every reader and writer, hostile bytes give an error and never a
//! panic, a peer's reset reads as the close it is, and the host's validator
//! holds a worker to the protocol.
//!
//! One test binary, one module per former binary. `alloc_bound` stays a
//! binary of its own: its global allocator counts every allocation of the
//! process, which the tests here would add to.
//!
//! The modules are in `ipc/`: a crate root's modules are looked for beside
//! it, not in a folder of its name, so each `mod` names its file.

#[path = "ipc/hostile_bytes.rs"]
mod hostile_bytes;
#[path = "ipc/peer_reset.rs"]
mod peer_reset;
#[path = "ipc/roundtrip.rs"]
mod roundtrip;
#[path = "ipc/validator.rs"]
mod validator;
