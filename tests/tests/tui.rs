//! The TUI in a real terminal (tmux): direct mode's cards, a four-worker
//! flood, model mode, approvals, and fault injection.
//!
//! One test binary for the area, one module per former binary. Each test
//! runs its own tmux server on a socket in its own scratch directory.
//!
//! The modules are in `tui/`: a crate root's modules are looked for beside
//! it, not in a folder of its name, so each `mod` names its file.

#[path = "tui/approval.rs"]
mod approval;
#[path = "tui/flood.rs"]
mod flood;
#[path = "tui/inject.rs"]
mod inject;
#[path = "tui/model.rs"]
mod model;
#[path = "tui/model_inject.rs"]
mod model_inject;
#[path = "tui/tmux.rs"]
mod tmux;
