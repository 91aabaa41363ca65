//! The interactive side of `bulkhead`: the TUI that runs when no
//! subcommand is given. A library so the bench can drive its event loop
//! headless; the binary (`main.rs`) holds the subcommands.

pub mod app;
