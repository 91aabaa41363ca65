//! The launch analysis against fake trees and, where this machine has
//! them, real interpreters: one test binary, one module per area.
//!
//! The modules are beside this file: a crate root's modules are looked
//! for there, so each `mod` names its file.

#[path = "common/mod.rs"]
mod common;
#[path = "fetch.rs"]
mod fetch;
#[path = "launchers.rs"]
mod launchers;
#[path = "packages.rs"]
mod packages;
#[path = "python.rs"]
mod python;
#[path = "real.rs"]
mod real;
#[path = "registry.rs"]
mod registry;
#[path = "shims.rs"]
mod shims;
