//! `bulkhead completions SHELL` and `bulkhead man`: shell completions and
//! man pages generated from the clap grammar of this very binary, so they
//! cannot drift from its flags. They are generated at install or packaging
//! time by running the built binary (`packaging/install.sh`,
//! `packaging/gen-assets.sh` for the Debian package), not by a build script:
//! the grammar lives in this binary's `cli.rs`, which a build script could
//! not compile without the host library.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory, ValueEnum};

use crate::cli::Cli;

/// Shells a completion script is generated for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write bulkhead.1 and one page per subcommand (bulkhead-run.1, …)
    /// into this directory instead of printing bulkhead.1.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// The grammar as users see it: with the long version, as `--version`
/// prints it, left out (it would run the worker).
fn command() -> clap::Command {
    Cli::command()
}

pub fn completions(args: &CompletionsArgs) -> anyhow::Result<u8> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut command(), "bulkhead", &mut out);
    out.flush().context("cannot write the completion script")?;
    Ok(0)
}

pub fn man(args: &ManArgs) -> anyhow::Result<u8> {
    match &args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command(), dir)
                .with_context(|| format!("cannot write man pages to {}", dir.display()))?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(command())
                .render(&mut out)
                .context("cannot write the man page")?;
            out.flush().context("cannot write the man page")?;
        }
    }
    Ok(0)
}
