//! The `bulkhead` command line through the real binary: exit codes and
//! errors, completions, the man page, `--version`, the README's runnable
//! blocks, `run --session` with `bulkhead sessions`, and that every test
//! RELIABILITY.md's matrix names exists and runs.
//!
//! One test binary for the area, one module per former binary. Every test
//! runs the binary in a child process with its own scratch files, so none
//! depends on the test process's own state.
//!
//! The modules are in `cli/`: a crate root's modules are looked for beside
//! it, not in a folder of its name, so each `mod` names its file.

#[path = "cli/commands.rs"]
mod commands;
#[path = "cli/completions.rs"]
mod completions;
#[path = "cli/config_path.rs"]
mod config_path;
#[path = "cli/egress.rs"]
mod egress;
#[path = "cli/man_page.rs"]
mod man_page;
#[path = "cli/mcp_install.rs"]
mod mcp_install;
#[path = "cli/readme_runnable.rs"]
mod readme_runnable;
#[path = "cli/reliability_matrix.rs"]
mod reliability_matrix;
#[path = "cli/run_session_limits.rs"]
mod run_session_limits;
#[path = "cli/sessions_cli.rs"]
mod sessions_cli;
#[path = "cli/utf8_cuts.rs"]
mod utf8_cuts;
#[path = "cli/version.rs"]
mod version;
